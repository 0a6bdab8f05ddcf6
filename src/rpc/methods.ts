import { CapstanError, InvalidError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GroupController, GroupSpec, GroupStatus, PlanPreview, SpecStore, SpecVersion } from '../spi/index.js';
import type { Decision } from '../autoscale/index.js';
import { desiredSize } from '../group/allocation.js';
import { describeChanges } from './changes.js';
import { RawJson } from './protocol.js';

export interface GroupServiceDeps {
  readonly store: SpecStore;
  readonly controller: GroupController;
  /** Validates a raw spec and applies defaults (validateSpec bound to the plugins); throws InvalidError. */
  readonly validate: (raw: unknown) => GroupSpec;
  readonly logger: Logger;
  /** Autoscaling's recent decisions for describe, and what it would do for a pretend commit. */
  readonly autoscaler?: AutoscaleView;
}

export interface AutoscaleView {
  lastDecisions(groupId: string): readonly Decision[];
  preview(spec: GroupSpec): { readonly decisions: readonly Decision[] } | undefined;
}

/** A method body: params already checked against its schema. */
export type Method = (params: any) => Promise<unknown>;

const idle = { state: 'idle', total: 0, done: 0, failed: 0 } as const;

/**
 * The controller's word, checked against what it observed: right after a new version is applied, a status can
 * still carry the previous pass's verdict while the instances plainly do not match the new size or config yet.
 */
function converged(status: GroupStatus): boolean {
  return status.converged && status.instances.length === status.size && status.instances.every((i) => i.config === status.configHash);
}

const notFound = (id: string): CapstanError => new CapstanError('notFound', `no group ${id}`, { id });

/** Spec problems located from the params' root, like every other invalidParams error. */
function validateIn(validate: (raw: unknown) => GroupSpec, raw: unknown, prefix: string): GroupSpec {
  try {
    return validate(raw);
  } catch (error) {
    if (error instanceof InvalidError) throw new InvalidError(error.message, error.problems.map((p) => ({ path: prefix + p.path, message: p.message })));
    throw error;
  }
}

function checkBounds(spec: GroupSpec, size: number): void {
  const min = spec.bounds?.min ?? 0;
  const max = spec.bounds?.max;
  if (size < min || (max !== undefined && size > max)) {
    throw new CapstanError('outOfBounds', `size ${size} is outside the bounds of group ${spec.id} (min ${min}, max ${max ?? 'none'})`, { size, min, max });
  }
}

/**
 * The group service behind the group.* methods: reads and commits specs in the store and tells the
 * controller. Each method either fails before storing anything or stores exactly one new version.
 */
export function groupMethods({ store, controller, validate, logger, autoscaler }: GroupServiceDeps): Map<string, Method> {
  // Read-modify-commit calls on one group run one at a time, so concurrent API calls queue instead of conflicting.
  const queues = new Map<string, Promise<unknown>>();
  function serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (queues.get(id) ?? Promise.resolve()).then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    queues.set(id, tail);
    void tail.then(() => queues.get(id) === tail && queues.delete(id));
    return run;
  }

  async function current(id: string): Promise<SpecVersion> {
    const sv = await store.get(id);
    if (!sv) throw notFound(id);
    return sv;
  }

  async function commit(spec: GroupSpec, expected: number, what: string): Promise<SpecVersion> {
    const version = await store.commit(spec, expected);
    logger.info({ group: spec.id, version: version.version, what }, 'committed group spec');
    return version;
  }

  // A status object stands for one controller pass, so its (large) instance list is serialized once per pass.
  const described = new WeakMap<GroupStatus, RawJson>();
  function describeStatus(status: GroupStatus): RawJson {
    let json = described.get(status);
    if (!json) {
      const { id, version, size, configHash, instances, update, lastError, lastPassAt } = status;
      json = new RawJson(JSON.stringify({ id, version, size, converged: converged(status), configHash, instances, update, lastError, lastPassAt }));
      described.set(status, json);
    }
    return json;
  }

  async function resize(id: string, to: (size: number) => number, what: string): Promise<unknown> {
    return serialized(id, async () => {
      const sv = await current(id);
      if (!('size' in sv.spec.allocation)) {
        throw new InvalidError(`group ${id} is allocated by logicalIds, not size: commit a spec with the logicalIds it should have`, [
          { path: '/id', message: 'group is allocated by logicalIds' },
        ]);
      }
      const from = sv.spec.allocation.size;
      const size = to(from);
      checkBounds(sv.spec, size);
      if (size === from) return { id, version: sv.version, size, changed: false };
      const spec = validate({ ...structuredClone(sv.spec), allocation: { size } });
      const version = await commit(spec, sv.version, `${what}: size ${from} -> ${size}`);
      controller.apply(version);
      return { id, version: version.version, size, changed: true };
    });
  }

  const methods: Record<string, Method> = {
    async 'group.commit'(p: { spec: object; pretend?: boolean }) {
      const spec = validateIn(validate, p.spec, '/spec');
      if (p.pretend) {
        const sv = await store.get(spec.id);
        const autoscale = autoscaler?.preview(spec)?.decisions.filter((d) => d.group === spec.id);
        return { id: spec.id, version: sv?.version ?? 0, stored: false, plan: await controller.preview(spec), ...(autoscale && { autoscale }) };
      }
      return serialized(spec.id, async () => {
        const sv = await store.get(spec.id);
        // The plan is informative here: a provider that cannot be asked right now must not block a commit.
        const plan = await controller.preview(spec).catch((error: unknown): PlanPreview | undefined => {
          logger.warn({ group: spec.id, err: error }, 'could not preview a commit');
          return undefined;
        });
        const version = await commit(spec, sv?.version ?? 0, 'commit');
        controller.apply(version);
        return { id: spec.id, version: version.version, stored: true, ...(plan && { plan }) };
      });
    },

    // From the controller, which knows the version it works on; a store read would cost a Swarm call per poll.
    async 'group.describe'(p: { id: string }) {
      const status = controller.status(p.id);
      const decisions = autoscaler?.lastDecisions(p.id) ?? [];
      // Decisions change apart from passes: appended to the cached serialization rather than re-serializing it.
      if (status) return decisions.length ? new RawJson(`${describeStatus(status).json.slice(0, -1)},"autoscale":${JSON.stringify(decisions)}}`) : describeStatus(status);
      const sv = await current(p.id);
      return { id: p.id, version: sv.version, size: desiredSize(sv.spec), converged: false, instances: [], update: idle };
    },

    async 'group.list'() {
      return (await store.list()).map((sv) => {
        const status = controller.status(sv.id);
        return {
          id: sv.id,
          version: sv.version,
          size: desiredSize(sv.spec),
          instances: status?.instances.length ?? 0,
          converged: !!status && status.version === sv.version && converged(status),
        };
      });
    },

    'group.scale': (p: { id: string; size: number }) => resize(p.id, () => p.size, 'scale'),
    'group.scaleUp': (p: { id: string; count?: number }) => resize(p.id, (n) => n + (p.count ?? 1), 'scaleUp'),
    'group.scaleDown': (p: { id: string; count?: number }) => resize(p.id, (n) => n - (p.count ?? 1), 'scaleDown'),

    'group.destroyInstances': (p: { id: string; instanceIds: string[] }) =>
      serialized(p.id, async () => {
        const sv = await current(p.id);
        const instances = new Map((controller.status(p.id)?.instances ?? []).map((i) => [i.id, i]));
        const unknown = p.instanceIds.filter((i) => !instances.has(i));
        if (unknown.length) throw new CapstanError('notFound', `group ${p.id} has no instance ${unknown.slice(0, 5).join(', ')}`, { id: p.id, instanceIds: unknown });
        const spec = structuredClone(sv.spec) as { -readonly [K in keyof GroupSpec]: GroupSpec[K] };
        if ('size' in sv.spec.allocation) {
          spec.allocation = { size: sv.spec.allocation.size - p.instanceIds.length };
        } else {
          const gone = new Set(p.instanceIds.map((i) => instances.get(i)!.logicalId));
          spec.allocation = { logicalIds: sv.spec.allocation.logicalIds.filter((l) => !gone.has(l)) };
        }
        const size = desiredSize(spec);
        checkBounds(spec, size);
        const version = await commit(validate(spec), sv.version, `destroyInstances: ${p.instanceIds.length}`);
        // Applied only after these instances went, so the loop does not pick its own victims for the lower size.
        try {
          await controller.destroyInstances(p.id, p.instanceIds);
        } finally {
          controller.apply(version);
        }
        return { id: p.id, version: version.version, size, destroyed: p.instanceIds };
      }),

    async 'group.pause'(p: { id: string }) {
      await current(p.id);
      controller.pause(p.id);
      logger.info({ group: p.id }, 'paused rolling update');
      return { id: p.id, paused: true };
    },

    async 'group.resume'(p: { id: string }) {
      await current(p.id);
      controller.resume(p.id);
      logger.info({ group: p.id }, 'resumed rolling update');
      return { id: p.id, paused: false };
    },

    'group.rollback': (p: { id: string; version?: number }) =>
      serialized(p.id, async () => {
        const history = await store.history(p.id);
        const latest = history[history.length - 1];
        if (!latest) throw notFound(p.id);
        const target =
          p.version === undefined ? history.filter((v) => v.version < latest.version).pop() : history.find((v) => v.version === p.version);
        if (!target) throw new CapstanError('notFound', `group ${p.id} has no ${p.version === undefined ? 'earlier version' : `version ${p.version}`}`, { id: p.id });
        if (target.version === latest.version) throw new InvalidError(`group ${p.id} is already at version ${latest.version}`, [{ path: '/version', message: 'is the latest version' }]);
        const version = await commit(validate(structuredClone(target.spec)), latest.version, `rollback to version ${target.version}`);
        controller.apply(version);
        return { id: p.id, version: version.version, from: target.version };
      }),

    async 'group.history'(p: { id: string }) {
      const history = await store.history(p.id);
      if (!history.length) throw notFound(p.id);
      return history.map((v, i) => ({ version: v.version, createdAt: v.createdAt, size: desiredSize(v.spec), changes: describeChanges(history[i - 1]?.spec, v.spec) }));
    },

    'group.free': (p: { id: string }) =>
      serialized(p.id, async () => {
        await current(p.id);
        // The store is the truth a restarted leader rebuilds from, so it forgets the group first.
        await store.remove(p.id);
        await controller.free(p.id);
        logger.info({ group: p.id }, 'freed group: instances left running');
        return { id: p.id };
      }),

    'group.destroy': (p: { id: string }) =>
      serialized(p.id, async () => {
        await current(p.id);
        await controller.destroy(p.id);
        await store.remove(p.id);
        logger.info({ group: p.id }, 'destroyed group');
        return { id: p.id };
      }),
  };
  return new Map(Object.entries(methods));
}
