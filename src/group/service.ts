import { CapstanError, InvalidError } from '../errors.js';
import type { Logger } from '../log.js';
import type { FormerMachines, GroupController, GroupSpec, PlanPreview, SpecStore, SpecVersion, VersionState } from '../spi/index.js';
import { desiredSize } from './allocation.js';
import { canonicalJson, configHash, logicalIdOf } from './identity.js';
import { PerKeyQueue } from './queue.js';
import { feed } from '../feed.js';

export interface GroupServiceDeps {
  readonly store: SpecStore;
  readonly controller: GroupController;
  /** Validates a raw spec and applies defaults; throws InvalidError. */
  readonly validate: (raw: unknown) => GroupSpec;
  /** Checks against the cluster as it is (see admitSpec), before a commit or a new size is stored. */
  readonly admit?: (spec: GroupSpec) => Promise<void>;
  readonly logger: Logger;
  /** How long group.destroyInstances waits for its instances to go before answering with what is still going. */
  readonly removalWaitMs?: number;
  readonly pollMs?: number;
}

const notFound = (id: string): CapstanError => new CapstanError('notFound', `no group ${id}`, { id });

export function checkBounds(spec: GroupSpec, size: number): void {
  const min = spec.bounds?.min ?? 0;
  const max = spec.bounds?.max;
  if (size < min || (max !== undefined && size > max)) {
    throw new CapstanError('outOfBounds', `size ${size} is outside the bounds of group ${spec.id} (min ${min}, max ${max ?? 'none'})`, { size, min, max });
  }
}

/**
 * The group service: every write to a group goes through here (the API, the autoscaler, a failed update), one at a
 * time per group. Each method fails before storing anything or stores exactly one new version, then tells the
 * controller; the controller's loop is the only thing that touches machines.
 */
export class GroupService {
  private readonly queue = new PerKeyQueue();
  private readonly log: Logger;

  constructor(private readonly d: GroupServiceDeps) {
    this.log = d.logger.child({ component: 'group-service' });
  }

  async current(id: string): Promise<SpecVersion> {
    const sv = await this.d.store.get(id);
    if (!sv) throw notFound(id);
    return sv;
  }

  /** What a commit of `spec` would do now; stores nothing and writes nothing. */
  preview(spec: GroupSpec): Promise<PlanPreview> {
    return this.d.controller.preview(spec);
  }

  /** Stores a new version of the operator's spec. A change of size alone keeps a pause or failure in force. */
  commit(spec: GroupSpec): Promise<{ version: SpecVersion; plan?: PlanPreview }> {
    return this.queue.run(spec.id, async () => {
      await this.d.admit?.(spec);
      const sv = await this.d.store.get(spec.id);
      // The plan is informative here: a provider that cannot be asked right now must not block a commit.
      const plan = await this.d.controller.preview(spec).catch((error: unknown): PlanPreview | undefined => {
        this.log.warn({ group: spec.id, err: String(error) }, 'could not preview a commit');
        return undefined;
      });
      const version = await this.store(spec, sv, { ...next(sv, spec), note: 'commit' });
      return { version, ...(plan && { plan }) };
    });
  }

  /** A new version with a new size; bounds enforced. */
  resize(id: string, to: (size: number) => number, what: string, mark: Mark = {}): Promise<{ version: SpecVersion; size: number; changed: boolean }> {
    return this.queue.run(id, async () => {
      const sv = await this.current(id);
      if (!('size' in sv.spec.allocation)) {
        throw new InvalidError(`group ${id} is allocated by logicalIds, not size: commit a spec with the logicalIds it should have`, [
          { path: '/id', message: 'group is allocated by logicalIds' },
        ]);
      }
      const from = sv.spec.allocation.size;
      const size = to(from);
      checkBounds(sv.spec, size);
      if (size === from) {
        // Nothing to store; the version in force is applied again, in case an earlier call stored it and failed after.
        this.d.controller.apply(sv);
        return { version: sv, size, changed: false };
      }
      const spec = this.d.validate({ ...structuredClone(sv.spec), allocation: { size } });
      await this.d.admit?.(spec);
      const version = await this.store(spec, sv, { ...carried(sv.state), ...mark, note: `${what}: size ${from} -> ${size}` });
      return { version, size, changed: true };
    });
  }

  scale(id: string, size: number) {
    return this.resize(id, () => size, 'scale');
  }

  /** `mark`: the autoscaler's action, stored with the version (its cooldown outlives a change of leader). */
  scaleUp(id: string, count = 1, mark: Mark = {}) {
    return this.resize(id, (n) => n + count, 'scaleUp', mark);
  }

  scaleDown(id: string, count = 1) {
    return this.resize(id, (n) => n - count, 'scaleDown');
  }

  /**
   * Removes exactly these instances. Ids are checked against the provider's listing now; the size drops by the
   * number of named live members not already being removed; an id removed before is success with no change (a
   * retry is a no-op); an id that was never the group's is notFound and changes nothing. The version stored names
   * the instances, so the loop (of this leader or the next) removes those and no others. Waits a bounded time for
   * them to go and says which are still going.
   */
  async destroyInstances(id: string, instanceIds: readonly string[], mark: Mark = {}): Promise<{ version: SpecVersion; size: number; destroyed: string[]; removing: string[] }> {
    const { version, live } = await this.queue.run(id, async () => {
      const sv = await this.current(id);
      // One fresh listing answers both questions: which ids are live, and which logical id each one holds.
      const logicalIds = new Map((await this.d.controller.instances(id)).map((i) => [i.id, logicalIdOf(i)]));
      const listed = new Set(logicalIds.keys());
      const live = instanceIds.filter((i) => listed.has(i));
      const history = await this.d.store.history(id);
      const removedBefore = new Set(history.flatMap((v) => v.state?.removing ?? []));
      const unknown = instanceIds.filter((i) => !listed.has(i) && !removedBefore.has(i));
      if (unknown.length) throw new CapstanError('notFound', `group ${id} has no instance ${unknown.slice(0, 5).join(', ')}`, { id, instanceIds: unknown });
      const already = new Set(sv.state?.removing ?? []);
      const fresh = live.filter((i) => !already.has(i));
      if (!fresh.length) {
        this.d.controller.apply(sv);
        return { version: sv, live };
      }
      const gone = new Set(fresh.map((i) => logicalIds.get(i)));
      const { allocation } = sv.spec;
      const spec: GroupSpec = { ...structuredClone(sv.spec), allocation: 'size' in allocation ? { size: allocation.size - fresh.length } : { logicalIds: allocation.logicalIds.filter((l) => !gone.has(l)) } };
      checkBounds(spec, desiredSize(spec));
      const valid = this.d.validate(spec);
      // The cluster judges the smaller group as it judges a scale: two of three managers left would be refused.
      await this.d.admit?.(valid);
      const removing = [...[...already].filter((i) => listed.has(i)), ...fresh];
      const version = await this.store(valid, sv, { ...carried(sv.state), ...mark, removing, note: `destroyInstances: ${fresh.join(', ')}` });
      return { version, live };
    });
    const remaining = await this.waitGone(id, live);
    return { version, size: desiredSize(version.spec), destroyed: instanceIds.filter((i) => !remaining.includes(i)), removing: remaining };
  }

  /** Polls the loop's view until these instances are gone or the wait ends; returns those still there. */
  private async waitGone(id: string, ids: readonly string[]): Promise<string[]> {
    const deadline = Date.now() + (this.d.removalWaitMs ?? 75_000);
    for (;;) {
      const listed = new Set((this.d.controller.status(id)?.instances ?? []).map((i) => i.id));
      const left = ids.filter((i) => listed.has(i));
      if (!left.length || Date.now() >= deadline) return left;
      await new Promise((r) => setTimeout(r, this.d.pollMs ?? 200));
    }
  }

  pause(id: string): Promise<SpecVersion> {
    return this.setState(id, (s) => ({ ...s, paused: true, note: 'pause' }), (s) => s?.paused === true);
  }

  /** Resumes a paused or failed update. */
  resume(id: string): Promise<SpecVersion> {
    return this.setState(
      id,
      ({ paused: _p, failure: _f, ...s }) => ({ ...s, note: 'resume' }),
      (s) => !s?.paused && !s?.failure,
    );
  }

  /** Commits an earlier version's spec again (default the one before the latest), as a new update. */
  rollback(id: string, target?: number): Promise<{ version: SpecVersion; from: number }> {
    return this.queue.run(id, async () => {
      const history = await this.d.store.history(id);
      const latest = history.at(-1);
      if (!latest) throw notFound(id);
      // By default the last version with another spec: versions that only paused or resumed are no step back.
      const differs = (v: SpecVersion) => canonicalJson(v.spec) !== canonicalJson(latest.spec);
      const to = target === undefined ? history.filter((v) => v.version < latest.version && differs(v)).pop() : history.find((v) => v.version === target);
      if (!to) throw new CapstanError('notFound', `group ${id} has no ${target === undefined ? 'earlier version' : `version ${target}`}`, { id });
      if (to.version === latest.version) throw new InvalidError(`group ${id} is already at version ${latest.version}`, [{ path: '/version', message: 'is the latest version' }]);
      const spec = this.d.validate(structuredClone(to.spec));
      const version = await this.store(spec, latest, { ...next(latest, spec), note: `rollback to v${to.version}` });
      return { version, from: to.version };
    });
  }

  /**
   * A rolling update of `version` failed. Stored with the group so every later leader sees it; under
   * `onFailure: rollback` the machines of the last version with another config come back, keeping everything else
   * (size, bounds, update, repair, autoscale) as it is now. Retried on a conflict; a newer version makes it moot.
   */
  async updateFailed(id: string, version: number, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.queue.run(id, () => this.recordFailure(id, version, reason));
        return;
      } catch (err) {
        if (!(err instanceof CapstanError && err.kind === 'conflict') || attempt >= 5) {
          this.log.error({ event: 'update.failureNotStored', group: id, version, err: String(err) }, 'could not store an update failure');
          return;
        }
      }
    }
  }

  private async recordFailure(id: string, version: number, reason: string): Promise<void> {
    const history = await this.d.store.history(id);
    const sv = history.at(-1);
    if (!sv || sv.version !== version || sv.state?.failure) return;
    const failedHash = configHash(sv.spec);
    const good = sv.spec.update.onFailure === 'rollback' ? history.findLast((v) => configHash(v.spec) !== failedHash) : undefined;
    if (!good) {
      await this.store(sv.spec, sv, { ...sv.state, failure: reason, note: `update failed: ${reason}` });
      return;
    }
    const spec = this.d.validate({ ...structuredClone(sv.spec), instance: good.spec.instance, flavor: good.spec.flavor });
    const committed = await this.store(spec, sv, { ...next(sv, spec), note: `rollback: v${sv.version} failed (${reason}); machines of v${good.version}` });
    this.log.warn({ event: 'update.rolledBack', group: id, failed: sv.version, to: good.version, version: committed.version, reason }, `rolled back ${id}`);
  }

  /** Stop managing; instances stay. The store forgets the group first: it is what a new leader rebuilds from. */
  free(id: string): Promise<void> {
    return this.queue.run(id, async () => {
      await this.current(id);
      await this.d.store.remove(id);
      await this.d.controller.free(id);
      this.log.info({ event: 'group.freed', group: id }, 'freed group: instances left running');
      feed.publish({ type: 'group.removed', group: id, at: new Date().toISOString() });
    });
  }

  /** Destroys every instance, then the group; a retry after an interruption finishes the job. */
  destroy(id: string): Promise<void> {
    return this.queue.run(id, async () => {
      this.d.controller.apply(await this.current(id));
      await this.d.controller.destroy(id);
      await this.d.store.remove(id);
      this.log.info({ event: 'group.destroyed', group: id }, 'destroyed group');
      feed.publish({ type: 'group.removed', group: id, at: new Date().toISOString() });
    });
  }

  private async setState(id: string, change: (s: VersionState) => VersionState, done: (s: VersionState | undefined) => boolean): Promise<SpecVersion> {
    return this.queue.run(id, async () => {
      const sv = await this.current(id);
      if (done(sv.state)) {
        this.d.controller.apply(sv);
        return sv;
      }
      return this.store(sv.spec, sv, change(sv.state ?? {}));
    });
  }

  private async store(spec: GroupSpec, sv: SpecVersion | undefined, state: VersionState): Promise<SpecVersion> {
    let version: SpecVersion;
    try {
      version = await this.d.store.commit(spec, sv?.version ?? 0, state);
    } catch (err) {
      // An answer lost after Swarm stored the config (a timeout, a reset) is a commit all the same: read it back.
      const stored = err instanceof CapstanError ? undefined : await this.d.store.get(spec.id).catch(() => undefined);
      if (!stored || stored.version !== (sv?.version ?? 0) + 1 || canonicalJson([stored.spec, stored.state ?? {}]) !== canonicalJson([spec, state])) throw err;
      this.log.warn({ event: 'group.commitRecovered', group: spec.id, version: stored.version, err: String(err) }, 'the store lost its answer, but the version is stored');
      version = stored;
    }
    this.log.info({ event: 'group.committed', group: spec.id, version: version.version, note: state.note }, `${spec.id} v${version.version}: ${state.note ?? 'commit'}`);
    this.d.controller.apply(version);
    feed.publish({ type: 'group.version', group: spec.id, version: version.version, ...(state.note ? { note: state.note } : {}), at: version.createdAt });
    return version;
  }
}

/** What a version passes on to the next when the machines stay the same: a pause, a failure, named removals. */
function carried(state: VersionState | undefined): VersionState {
  const { note: _note, ...rest } = state ?? {};
  return rest;
}

/** What the autoscaler stores with a version it makes. */
type Mark = Pick<VersionState, 'autoscaled'>;

/** Earlier machine sections remembered so moved machines are found; the oldest forgotten beyond this many. */
const KEEP_FORMER = 5;

/**
 * The state a spec starts with after `sv`: the same machines carry a pause, a failure and removals on; new machines
 * are a new update (removals and the autoscaler's last action still carried), and the machines of `sv` are remembered in case they live elsewhere.
 */
function next(sv: SpecVersion | undefined, spec: GroupSpec): VersionState {
  if (!sv) return {};
  if (configHash(sv.spec) === configHash(spec)) return carried(sv.state);
  const mine = { instance: sv.spec.instance, flavor: sv.spec.flavor };
  const key = (f: FormerMachines) => canonicalJson(f.instance);
  const former = [...(sv.state?.former ?? []).filter((f) => key(f) !== key(mine)), mine].filter((f) => key(f) !== canonicalJson(spec.instance));
  const { removing, autoscaled } = sv.state ?? {};
  return { ...(removing?.length ? { removing } : {}), ...(autoscaled ? { autoscaled } : {}), ...(former.length ? { former: former.slice(-KEEP_FORMER) } : {}) };
}
