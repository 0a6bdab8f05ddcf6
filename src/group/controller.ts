import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { groupInstances, groupSize, reconcileSeconds, updateProgress } from '../metrics.js';
import { CapstanError } from '../errors.js';
import type {
  Flavor,
  GroupController,
  GroupSpec,
  GroupStatus,
  HealthReport,
  Instance,
  InstanceProvider,
  PlanPreview,
  Plugins,
  SpecVersion,
} from '../spi/index.js';
import { configHash, groupTags, logicalIdOf, TAG } from './identity.js';
import { chunks, mapLimit } from './limit.js';
import { plan, type Action, type Observed, type Plan } from './planner.js';
import { desiredSize } from './allocation.js';

export interface ControllerOptions {
  readonly plugins: Plugins;
  readonly logger: Logger;
  /** Pass interval while converged (default 10 s); unconverged groups pass every `busyMs` (default 1 s). */
  readonly intervalMs?: number;
  readonly busyMs?: number;
  /** Provider calls and drains in flight per group. */
  readonly concurrency?: number;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** How long a launched instance that the provider does not list yet still counts as a member. */
  readonly describeLagMs?: number;
  readonly clock?: () => number;
  /** The cluster member Capstan runs on (a Swarm node id): its instance is destroyed last. */
  readonly selfLink?: string;
  /** Called when an update fails under `onFailure: rollback`; expected to commit the previous version. */
  readonly rollback?: (id: string, reason: string) => Promise<void>;
}

interface Known {
  readonly instance: Instance;
  readonly at: number;
}

/** The reconciling loop of one group: observe -> plan -> act, one pass at a time. */
/** What a pass works with, swapped as one so a commit never lands halfway through a pass. */
interface Config {
  readonly version: SpecVersion;
  readonly hash: string;
  readonly provider: InstanceProvider;
  readonly flavor: Flavor;
}

class GroupLoop {
  cfg!: Config;
  private paused = false;
  private failure: string | undefined;
  /** Launched, not yet listed (describe lag); destroyed, maybe still listed. */
  private readonly launched = new Map<string, Known>();
  private readonly destroyed = new Map<string, number>();
  private readonly healthySince = new Map<string, number>();
  private health = new Map<string, HealthReport>();
  private observed: Instance[] = [];
  private last: Plan | undefined;
  private lastError: GroupStatus['lastError'];
  private lastPassAt: string | undefined;
  private progressKey = '';
  /** Built once per change, so the API can serve the same object (and its serialization) until the next one. */
  private cached: GroupStatus | undefined;
  private errors = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;

  constructor(
    private readonly o: Required<Omit<ControllerOptions, 'selfLink' | 'rollback'>> & Pick<ControllerOptions, 'selfLink' | 'rollback'>,
    version: SpecVersion,
  ) {
    this.log = o.logger.child({ group: version.id });
    this.configure(version);
  }

  get version(): SpecVersion {
    return this.cfg.version;
  }

  configure(version: SpecVersion): void {
    const hash = configHash(version.spec);
    if (this.cfg?.hash === hash) {
      this.cfg = { ...this.cfg, version };
      this.last = undefined;
      this.cached = undefined;
      return;
    }
    const { plugins } = this.o;
    this.cached = undefined;
    // Nothing is known of the new version until a pass has run on it.
    this.last = undefined;
    this.cfg = {
      version,
      hash,
      provider: plugins.providers.get(version.spec.instance.provider)!.create(version.spec.instance.properties),
      flavor: plugins.flavors.get(version.spec.flavor.kind)!.create(version.spec.flavor.properties),
    };
    // A new config is a new update: a pause or failure of the previous one no longer applies.
    this.paused = false;
    this.failure = undefined;
  }

  /** Serializes passes and API-driven operations on this group. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  wake(delayMs = 0): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.exclusive(() => this.pass()).finally(() => this.schedule()), delayMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  pause(): void {
    this.paused = true;
    this.cached = undefined;
    this.log.info({ event: 'update.paused' }, 'rolling update paused');
  }

  resume(): void {
    this.paused = false;
    this.failure = undefined;
    this.cached = undefined;
    this.log.info({ event: 'update.resumed' }, 'rolling update resumed');
    this.wake();
  }

  private schedule(): void {
    if (this.stopped) return;
    const { baseMs, maxMs } = this.o.backoff;
    // Exponential backoff with full jitter after provider errors; quick passes while work remains.
    const delay = this.errors
      ? Math.min(maxMs, baseMs * 2 ** (this.errors - 1)) * (0.5 + Math.random() / 2)
      : this.last?.converged
        ? this.o.intervalMs
        : this.o.busyMs;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.exclusive(() => this.pass()).finally(() => this.schedule()), delay);
  }

  /** One reconcile pass. Errors are recorded, never thrown: the next pass tries again. */
  async pass(): Promise<Plan | undefined> {
    const cfg = this.cfg;
    const end = reconcileSeconds.startTimer({ group: cfg.version.id });
    try {
      const observed = await this.observe(cfg);
      const p = plan({ spec: cfg.version.spec, configHash: cfg.hash, observed, now: this.o.clock(), paused: this.paused, ...this.self(observed) });
      this.reportProgress(cfg, observed, p);
      this.last = p;
      this.lastPassAt = new Date(this.o.clock()).toISOString();
      if (p.failure && !this.failure) await this.fail(cfg, p.failure);
      const ok = await this.act(cfg, p.actions);
      this.errors = ok ? 0 : this.errors + 1;
      this.metrics();
      return p;
    } catch (err) {
      this.errors++;
      this.recordError('observe', err);
      return undefined;
    } finally {
      this.cached = undefined;
      end();
    }
  }

  /** One describe, one batch of health checks; in-flight launches count as members until listed. */
  async observe(cfg: Config = this.cfg): Promise<Observed[]> {
    const now = this.o.clock();
    const listed = await cfg.provider.describe({ [TAG.group]: cfg.version.id });
    const ids = new Set(listed.map((i) => i.id));
    for (const [id, k] of this.launched) if (ids.has(id) || now - k.at > this.o.describeLagMs) this.launched.delete(id);
    for (const [id, at] of this.destroyed) if (!ids.has(id) || now - at > this.o.describeLagMs) this.destroyed.delete(id);
    const members = [...listed.filter((i) => !this.destroyed.has(i.id)), ...[...this.launched.values()].map((k) => k.instance)];
    this.observed = members;
    this.health = await cfg.flavor.health(members);
    await cfg.flavor.tidy?.(cfg.version.id, members);
    for (const i of members) {
      if (this.health.get(i.id)?.health === 'healthy') {
        if (!this.healthySince.has(i.id)) this.healthySince.set(i.id, now);
      } else this.healthySince.delete(i.id);
    }
    for (const id of this.healthySince.keys()) if (!this.health.has(id)) this.healthySince.delete(id);
    return members.map((instance) => {
      const since = this.healthySince.get(instance.id);
      return { instance, health: this.health.get(instance.id)?.health ?? 'unknown', ...(since === undefined ? {} : { healthySince: since }) };
    });
  }

  /** A log line whenever the group moves (members, health or update progress), so a scale-up or update can be watched. */
  private reportProgress(cfg: Config, observed: readonly Observed[], p: Plan): void {
    const healthy = observed.filter((o) => o.health === 'healthy').length;
    const key = `${cfg.version.version}|${observed.length}|${healthy}|${p.update.state}|${p.update.done}|${p.update.failed}|${p.converged}`;
    if (key === this.progressKey) return;
    this.progressKey = key;
    const size = desiredSize(cfg.version.spec);
    this.log.info(
      { event: 'group.progress', version: cfg.version.version, size, instances: observed.length, healthy, update: p.update, converged: p.converged },
      `${cfg.version.id} v${cfg.version.version}: ${healthy}/${size} healthy, ${observed.length} instances${p.update.state === 'idle' ? '' : `, update ${p.update.state} ${p.update.done}/${p.update.total}`}${p.converged ? ', converged' : ''}`,
    );
  }

  private self(observed: readonly Observed[]): { selfInstanceId?: string } {
    const link = this.o.selfLink;
    const mine = link ? observed.find((o) => this.health.get(o.instance.id)?.link === link) : undefined;
    return mine ? { selfInstanceId: mine.instance.id } : {};
  }

  private async fail(cfg: Config, reason: string): Promise<void> {
    this.failure = reason;
    const policy = cfg.version.spec.update.onFailure;
    this.log.error({ event: 'update.failed', reason, onFailure: policy }, 'rolling update failed');
    this.paused = true;
    if (policy === 'rollback' && this.o.rollback) {
      try {
        await this.o.rollback(cfg.version.id, reason);
      } catch (err) {
        this.recordError('rollback', err);
      }
    }
  }

  /** Runs every action; one failing action does not stop the others. Returns whether all succeeded. */
  async act(cfg: Config, actions: readonly Action[]): Promise<boolean> {
    const results = await Promise.all(
      actions.map(async (a) => {
        try {
          if (a.kind === 'destroy') await this.destroy(cfg, this.observed.filter((i) => a.ids.includes(i.id)), a.reason);
          else await this.provision(cfg, a.count, a.logicalIds);
          return true;
        } catch (err) {
          this.recordError(a.kind, err);
          return false;
        }
      }),
    );
    return results.every(Boolean);
  }

  private async provision(cfg: Config, count: number, logicalIds?: readonly string[]): Promise<void> {
    const { spec } = cfg.version;
    const { hash, provider, flavor } = cfg;
    const specs = await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const logicalId = logicalIds?.[i];
        return flavor.prepare(
          { tags: groupTags(spec, hash, logicalId), init: '', ...(logicalId === undefined ? {} : { logicalId }) },
          { groupId: spec.id, configHash: hash, ...(logicalId === undefined ? {} : { logicalId }) },
        );
      }),
    );
    // Logical-id groups launch one at a time (each has its own identity); others in provider-sized batches.
    const batches = logicalIds ? specs.map((s) => [s]) : chunks(specs, provider.maxBatch);
    // The intent names this decision from what was observed, so a retry of it (same members seen) is recognised.
    const seen = this.observed.map((i) => i.id).sort().join(',');
    const results = await mapLimit(batches, this.o.concurrency, async (batch) => {
      const key = batch.map((s) => s.logicalId ?? '').join(',');
      const intent = createHash('sha256').update(`${spec.id}|${hash}|${seen}|${batches.indexOf(batch)}|${key}`).digest('hex').slice(0, 32);
      const made = await provider.provision(batch, intent);
      const at = this.o.clock();
      for (const instance of made) this.launched.set(instance.id, { instance, at });
      this.log.info({ event: 'instance.provisioned', count: made.length, ids: made.map((i) => i.id), logicalIds: batch.map((s) => s.logicalId).filter(Boolean), config: hash }, `provisioned ${made.length}`);
      return made.length;
    });
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  async destroy(cfg: Config, instances: readonly Instance[], reason: string): Promise<void> {
    if (!instances.length) return;
    const { provider, flavor } = cfg;
    // Drain each first (bounded), then destroy in batches, then let the flavor clean up the cluster.
    const drained = await mapLimit(instances, this.o.concurrency, (i) => flavor.drain(i));
    const refused = drained.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    const ready = instances.filter((_, n) => drained[n]!.status === 'fulfilled');
    for (const batch of chunks(ready, provider.maxBatch)) {
      await provider.destroy(batch.map((i) => i.id));
      const at = this.o.clock();
      for (const i of batch) {
        this.destroyed.set(i.id, at);
        this.launched.delete(i.id);
      }
      this.log.info({ event: 'instance.destroyed', reason, ids: batch.map((i) => i.id) }, `destroyed ${batch.length} (${reason})`);
      await mapLimit(batch, this.o.concurrency, (i) => flavor.destroyed(i));
    }
    if (refused) throw refused.reason;
  }

  private recordError(operation: string, err: unknown): void {
    const e = err as { code?: string; name?: string; message?: string };
    this.cached = undefined;
    this.lastError = { at: new Date(this.o.clock()).toISOString(), operation, code: String(e.code ?? e.name ?? 'Error'), message: String(e.message ?? err) };
    this.log.warn({ event: 'reconcile.error', operation, code: this.lastError.code, err: this.lastError.message }, `${operation} failed`);
  }

  status(): GroupStatus {
    this.cached ??= this.build();
    return this.cached;
  }

  private build(): GroupStatus {
    const spec = this.version.spec;
    const p = this.last;
    return {
      id: spec.id,
      version: this.version.version,
      size: desiredSize(spec),
      configHash: this.cfg.hash,
      instances: this.observed.map((i) => {
        const h = this.health.get(i.id);
        const logicalId = logicalIdOf(i);
        return { id: i.id, state: i.state, config: i.tags[TAG.config] ?? '', health: h?.health ?? 'unknown', ...(logicalId ? { logicalId } : {}), ...(h?.link ? { link: h.link } : {}) };
      }),
      converged: p?.converged ?? false,
      update: p ? (this.paused && p.update.state === 'rolling' ? { ...p.update, state: 'paused' } : this.failure ? { ...p.update, state: 'failed', reason: this.failure } : p.update) : { state: 'idle', total: desiredSize(spec), done: 0, failed: 0 },
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.lastPassAt ? { lastPassAt: this.lastPassAt } : {}),
    };
  }

  private metrics(): void {
    const s = this.status();
    groupSize.set({ group: s.id, kind: 'desired' }, s.size);
    groupSize.set({ group: s.id, kind: 'actual' }, s.instances.length);
    groupInstances.reset();
    const counts = new Map<string, number>();
    for (const i of s.instances) counts.set(`${i.state}|${i.health}`, (counts.get(`${i.state}|${i.health}`) ?? 0) + 1);
    for (const [k, n] of counts) {
      const [state, health] = k.split('|');
      groupInstances.set({ group: s.id, state: state!, health: health! }, n);
    }
    for (const kind of ['total', 'done', 'failed'] as const) updateProgress.set({ group: s.id, kind }, s.update[kind]);
  }
}

/** Runs one loop per group. Only the leader's controller is started; stop() on losing leadership. */
export class Controller implements GroupController {
  private readonly loops = new Map<string, GroupLoop>();
  private readonly o: ConstructorParameters<typeof GroupLoop>[0];

  constructor(options: ControllerOptions) {
    this.o = {
      intervalMs: 10_000,
      busyMs: 1000,
      concurrency: 8,
      backoff: { baseMs: 1000, maxMs: 60_000 },
      describeLagMs: 5 * 60_000,
      clock: Date.now,
      ...options,
    };
  }

  apply(version: SpecVersion): void {
    const loop = this.loops.get(version.id);
    if (loop) {
      if (loop.version.version === version.version) return;
      loop.configure(version);
    } else this.loops.set(version.id, new GroupLoop(this.o, version));
    this.o.logger.info({ event: 'group.applied', group: version.id, version: version.version }, `group ${version.id} at version ${version.version}`);
    this.trigger(version.id);
  }

  trigger(id: string): void {
    this.loops.get(id)?.wake();
  }

  /** A member's health may have changed (a node event): every group passes soon, bursts of events coalesced. */
  healthChanged(): void {
    for (const loop of this.loops.values()) loop.wake(250);
  }

  status(id: string): GroupStatus | undefined {
    return this.loops.get(id)?.status();
  }

  list(): GroupStatus[] {
    return [...this.loops.values()].map((l) => l.status());
  }

  pause(id: string): void {
    this.loop(id).pause();
  }

  resume(id: string): void {
    this.loop(id).resume();
  }

  /** Runs one pass of a group now and waits for it (tests, benchmarks, the CLI's --once). */
  async reconcile(id: string): Promise<Plan | undefined> {
    const loop = this.loop(id);
    return loop.exclusive(() => loop.pass());
  }

  /** What a commit of `spec` leads to from what runs now: creations, removals and replacements in all. */
  async preview(spec: GroupSpec): Promise<PlanPreview> {
    const probe = new GroupLoop(this.o, { id: spec.id, version: 0, createdAt: '', spec });
    const observed = await probe.observe();
    const hash = configHash(spec);
    const p = plan({ spec, configHash: hash, observed, now: this.o.clock(), paused: true });
    const destroy = p.actions.flatMap((a) => (a.kind === 'destroy' ? a.ids : []));
    const kept = observed.map((o) => o.instance).filter((i) => !destroy.includes(i.id));
    const replace = kept.filter((i) => i.tags[TAG.config] !== hash);
    const current = kept.length - replace.length;
    const missing = p.actions.flatMap((a) => (a.kind === 'provision' ? (a.logicalIds ?? []) : []));
    return {
      create: Math.max(0, desiredSize(spec) - current),
      createLogicalIds: [...missing, ...replace.map((i) => logicalIdOf(i)).filter((id): id is string => id !== undefined)],
      destroy,
      replace: replace.map((i) => i.id),
    };
  }

  async free(id: string): Promise<void> {
    this.loops.get(id)?.stop();
    this.loops.delete(id);
    this.o.logger.info({ event: 'group.freed', group: id }, `group ${id} freed; its instances keep running`);
  }

  async destroyInstances(id: string, instanceIds: readonly string[]): Promise<void> {
    const loop = this.loop(id);
    await loop.exclusive(async () => {
      const members = await loop.observe();
      const wanted = new Set(instanceIds);
      const found = members.filter((o) => wanted.has(o.instance.id)).map((o) => o.instance);
      if (found.length !== wanted.size) {
        const missing = instanceIds.filter((i) => !found.some((f) => f.id === i));
        throw new CapstanError('notFound', `not instances of group ${id}: ${missing.join(', ')}`);
      }
      await loop.destroy(loop.cfg, found, 'requested');
    });
    loop.wake();
  }

  async destroy(id: string): Promise<void> {
    const loop = this.loop(id);
    loop.stop();
    await loop.exclusive(async () => {
      const members = await loop.observe();
      await loop.destroy(loop.cfg, members.map((o) => o.instance), 'group-destroyed');
    });
    this.loops.delete(id);
  }

  /** Stops every loop (leadership lost); instances stay as they are. */
  stop(): void {
    for (const loop of this.loops.values()) loop.stop();
    this.loops.clear();
  }

  private loop(id: string): GroupLoop {
    const loop = this.loops.get(id);
    if (!loop) throw new CapstanError('notFound', `no group "${id}"`);
    return loop;
  }
}
