import { CapstanError, InvalidError } from '../errors.js';
import type { GroupController, GroupSpec, GroupStatus, SpecStore, SpecVersion } from '../spi/index.js';
import type { Decision } from '../autoscale/index.js';
import { desiredSize } from '../group/allocation.js';
import type { GroupService } from '../group/service.js';
import { describeChanges } from './changes.js';
import { RawJson } from './protocol.js';

export interface GroupMethodsDeps {
  readonly service: GroupService;
  readonly store: SpecStore;
  readonly controller: GroupController;
  /** Validates a raw spec and applies defaults (validateSpec bound to the plugins); throws InvalidError. */
  readonly validate: (raw: unknown) => GroupSpec;
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
 * Members of the warm pool are beyond the size (the planner's verdict includes the pool's).
 */
function converged(status: GroupStatus): boolean {
  return status.converged && status.instances.filter((i) => !i.warm).length === status.size && status.instances.every((i) => i.config === status.configHash);
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

/** A new size the spec's validation refuses (above the operator's largest group) is located at the params' own key. */
async function resizing<T>(key: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof InvalidError) throw new InvalidError(error.message, error.problems.map((p) => (p.path === '/allocation' ? { path: `/${key}`, message: p.message } : p)));
    throw error;
  }
}

/** The group.* JSON-RPC methods: params already checked by their schemas, mapped onto the group service. */
export function groupMethods({ service, store, controller, validate, autoscaler }: GroupMethodsDeps): Map<string, Method> {
  // A status object stands for one controller pass, so its (large) instance list is serialized once per pass.
  const described = new WeakMap<GroupStatus, RawJson>();
  function describeStatus(status: GroupStatus): RawJson {
    let json = described.get(status);
    if (!json) {
      const { id, version, size, configHash, instances, update, repair, lastError, lastPassAt, unclaimed } = status;
      json = new RawJson(JSON.stringify({ id, version, size, converged: converged(status), configHash, instances, update, repair, lastError, lastPassAt, unclaimed }));
      described.set(status, json);
    }
    return json;
  }
  const resized = ({ version, size, changed }: { version: SpecVersion; size: number; changed: boolean }) => ({ id: version.id, version: version.version, size, changed });

  const methods: Record<string, Method> = {
    async 'group.commit'(p: { spec: object; pretend?: boolean }) {
      const spec = validateIn(validate, p.spec, '/spec');
      if (p.pretend) {
        const sv = await store.get(spec.id);
        const autoscale = autoscaler?.preview(spec)?.decisions.filter((d) => d.group === spec.id);
        return { id: spec.id, version: sv?.version ?? 0, stored: false, plan: await service.preview(spec), ...(autoscale && { autoscale }) };
      }
      const { version, plan } = await service.commit(spec);
      return { id: spec.id, version: version.version, stored: true, ...(plan && { plan }) };
    },

    // From the controller, which knows the version it works on; a store read would cost a Swarm call per poll.
    async 'group.describe'(p: { id: string }) {
      const status = controller.status(p.id);
      const decisions = autoscaler?.lastDecisions(p.id) ?? [];
      // Decisions change apart from passes: appended to the cached serialization rather than re-serializing it.
      if (status) return decisions.length ? new RawJson(`${describeStatus(status).json.slice(0, -1)},"autoscale":${JSON.stringify(decisions)}}`) : describeStatus(status);
      const sv = await service.current(p.id);
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

    'group.scale': async (p: { id: string; size: number }) => resized(await resizing('size', () => service.scale(p.id, p.size))),
    'group.scaleUp': async (p: { id: string; count?: number }) => resized(await resizing('count', () => service.scaleUp(p.id, p.count))),
    'group.scaleDown': async (p: { id: string; count?: number }) => resized(await resizing('count', () => service.scaleDown(p.id, p.count))),

    async 'group.destroyInstances'(p: { id: string; instanceIds: string[] }) {
      const r = await service.destroyInstances(p.id, p.instanceIds);
      return { id: p.id, version: r.version.version, size: r.size, destroyed: r.destroyed, removing: r.removing };
    },

    async 'group.pause'(p: { id: string }) {
      const sv = await service.pause(p.id);
      return { id: p.id, version: sv.version, paused: true };
    },

    async 'group.resume'(p: { id: string }) {
      const sv = await service.resume(p.id);
      return { id: p.id, version: sv.version, paused: false };
    },

    async 'group.rollback'(p: { id: string; version?: number }) {
      const { version, from } = await service.rollback(p.id, p.version);
      return { id: p.id, version: version.version, from };
    },

    async 'group.history'(p: { id: string }) {
      const history = await store.history(p.id);
      if (!history.length) throw notFound(p.id);
      return history.map((v, i) => ({
        version: v.version,
        createdAt: v.createdAt,
        size: desiredSize(v.spec),
        changes: describeChanges(history[i - 1]?.spec, v.spec),
        spec: v.spec,
        ...(v.state?.note ? { note: v.state.note } : {}),
        ...(v.state?.paused ? { paused: true } : {}),
        ...(v.state?.failure ? { failure: v.state.failure } : {}),
      }));
    },

    async 'group.free'(p: { id: string }) {
      await service.free(p.id);
      return { id: p.id };
    },

    async 'group.destroy'(p: { id: string }) {
      await service.destroy(p.id);
      return { id: p.id };
    },
  };
  return new Map(Object.entries(methods));
}
