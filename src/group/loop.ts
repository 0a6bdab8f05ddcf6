import type { Logger } from '../log.js';
import { reconcileSeconds } from '../metrics.js';
import { CapstanError } from '../errors.js';
import type { GroupStatus, Instance, Plugins, SpecVersion } from '../spi/index.js';
import { logicalIdOf, TAG } from './identity.js';
import { Members } from './members.js';
import { Actuator } from './actuator.js';
import type { Observed, Plan } from './plan-types.js';
import { plan } from './planner.js';
import { desiredSize } from './allocation.js';
import { configOf, type Config } from './owners.js';
import { GroupMetrics } from './group-metrics.js';
import { Ticker } from '../ticker.js';
import { feed } from '../feed.js';

export interface LoopOptions {
  readonly plugins: Plugins;
  readonly logger: Logger;
  /** The longest wait between passes: a backstop for what no event announces. */
  readonly intervalMs: number;
  /** How soon to look again while the plan waits for something to be observed (the planner's `lookMs`). */
  readonly busyMs: number;
  readonly concurrency: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  readonly describeLagMs: number;
  readonly clock: () => number;
  readonly selfLink?: string;
  /** This Swarm's cluster id, tagged on every instance; instances of other clusters are invisible. */
  readonly clusterId?: string;
  /** A rolling update failed: the group service stores the failure (and rolls back under `onFailure: rollback`). */
  readonly onUpdateFailed?: (id: string, version: number, reason: string) => void;
}

/**
 * The reconciling loop of one group: observe -> plan -> act, one pass at a time. It lives for one leadership
 * term: stop() aborts it, and every provider or Swarm write first checks that it has not been stopped (fencing).
 */
export class GroupLoop {
  cfg!: Config;
  /** An operator pause or a stored failure, as the version in force says. */
  private paused = false;
  private failure: string | undefined;
  private last: Plan | undefined;
  private lastError: GroupStatus['lastError'];
  private lastPassAt: string | undefined;
  private progressKey = '';
  private blockedReason: string | undefined;
  private unclaimedKey = '';
  /** Built once per change, so the API can serve the same object (and its serialization) until the next one. */
  private cached: { readonly status: GroupStatus; readonly revision: number } | undefined;
  /** Whether the latest pass met an error (the ticker backs off). */
  private failed = false;
  private readonly ticker: Ticker;
  private queue: Promise<unknown>;
  private readonly log: Logger;
  private readonly metrics: GroupMetrics;
  private readonly members: Members;
  private readonly actuator: Actuator;

  /** `after`: the previous term's loop of this group settling, so two loops never act on one group at once. */
  constructor(
    private readonly o: LoopOptions,
    version: SpecVersion,
    after: Promise<unknown> = Promise.resolve(),
  ) {
    this.log = o.logger.child({ group: version.id });
    this.metrics = new GroupMetrics(version.id);
    this.members = new Members(o);
    this.actuator = new Actuator(o, this.members, this.log, () => this.fence());
    this.queue = after.catch(() => {});
    this.ticker = new Ticker({ step: () => this.tick(), intervalMs: o.intervalMs, backoff: o.backoff, clock: o.clock });
    this.configure(version);
  }

  get version(): SpecVersion {
    return this.cfg.version;
  }

  get stopped(): boolean {
    return this.ticker.signal.aborted;
  }

  configure(version: SpecVersion): void {
    this.paused = version.state?.paused === true;
    this.failure = version.state?.failure;
    this.cached = undefined;
    // Nothing is known of the new version until a pass has run on it.
    this.last = undefined;
    this.cfg = configOf(this.o.plugins, this.log, version, this.cfg);
  }

  /** Serializes passes and API-driven operations on this group. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Resolves once nothing of this loop is running. */
  settled(): Promise<unknown> {
    return this.queue;
  }

  /** A pass within `withinMs` (at once by default); wakes that come during a pass make one more. */
  wake(withinMs = 0): void {
    void this.ticker.trigger(withinMs);
  }

  /** Ends this term: no pass starts, and work in flight stops at its next write. */
  stop(): void {
    void this.ticker.stop();
  }

  /** Drops this group's metric series (the group was freed or destroyed). */
  forget(): void {
    this.metrics.remove();
  }

  private fence(): void {
    if (this.stopped) throw new CapstanError('noLeader', `group ${this.cfg.version.id}: this replica stood down; the new leader carries on`);
  }

  /** The ticker's step: a pass in turn with API operations; next when the plan says to look. An error backs off. */
  private async tick(): Promise<number | undefined> {
    await this.exclusive(() => this.pass());
    if (this.failed) throw new Error('the pass met an error (recorded in the status)');
    return this.last?.wakeAt;
  }

  /** One reconcile pass. Errors are recorded, never thrown: the next pass tries again. */
  async pass(): Promise<Plan | undefined> {
    if (this.stopped) return undefined;
    const cfg = this.cfg;
    const end = reconcileSeconds.startTimer({ group: cfg.version.id });
    try {
      const observed = await this.observe(cfg);
      this.fence();
      await cfg.flavor.tidy?.(cfg.version.id, this.members.list);
      await this.tagAdopted(cfg);
      this.reportUnclaimed(cfg);
      const p = plan({
        spec: cfg.version.spec,
        configHash: cfg.hash,
        observed,
        now: this.o.clock(),
        paused: this.paused || this.failure !== undefined,
        removing: cfg.version.state?.removing ?? [],
        lookMs: this.o.busyMs,
        ...this.self(observed),
      });
      this.reportProgress(cfg, observed, p);
      this.last = p;
      this.lastPassAt = new Date(this.o.clock()).toISOString();
      if (p.failure && !this.failure) this.fail(cfg, p.failure);
      this.failed = !(await this.actuator.act(cfg, p.actions, (operation, err) => this.recordError(operation, err)));
      this.metrics.set(this.status(), p.repair);
      return p;
    } catch (err) {
      this.failed = true;
      this.recordError('observe', err);
      return undefined;
    } finally {
      this.cached = undefined;
      end();
    }
  }

  /** What the group's members look like now; reads only. */
  observe(cfg: Config = this.cfg): Promise<Observed[]> {
    return this.members.observe(cfg);
  }

  /** Puts this cluster's tag on adopted instances, where the provider can; a failure is retried next pass. */
  private async tagAdopted(cfg: Config): Promise<void> {
    const { clusterId } = this.o;
    if (!this.members.adopt.length || clusterId === undefined || !cfg.provider.tag) return;
    const ids = this.members.adopt.map((i) => i.id);
    await cfg.provider.tag(ids, { [TAG.cluster]: clusterId });
    this.log.info({ event: 'instance.adopted', ids, cluster: clusterId }, `adopted ${ids.length} instance(s) made before the cluster tag`);
  }

  /** A warning whenever the untagged machines nothing links to this cluster change: an operator's to remove. */
  private reportUnclaimed(cfg: Config): void {
    const ids = this.members.unclaimed.map((i) => i.id);
    const key = ids.join();
    if (key === this.unclaimedKey) return;
    this.unclaimedKey = key;
    if (ids.length) {
      this.log.warn(
        { event: 'instance.unclaimed', ids },
        `${cfg.version.id}: left alone ${ids.length} machine(s) without a cluster tag that are no member of this Swarm (another Swarm's, or never joined); if they are this Swarm's, destroy them by hand`,
      );
    }
  }

  /** A log line whenever the group moves (members, health, update progress, the breaker), so it can be watched. */
  private reportProgress(cfg: Config, observed: readonly Observed[], p: Plan): void {
    if (p.repair.blocked !== this.blockedReason) {
      this.blockedReason = p.repair.blocked;
      if (p.repair.blocked) this.log.warn({ event: 'repair.blocked', broken: p.repair.broken, limit: p.repair.limit }, p.repair.blocked);
      else this.log.info({ event: 'repair.unblocked', broken: p.repair.broken, limit: p.repair.limit }, 'repairs allowed again');
    }
    const healthy = observed.filter((o) => o.health === 'healthy').length;
    // A member moving into or out of the warm pool, or being stopped or started there, is a move to watch too.
    const pool = observed.filter((o) => o.warm).map((o) => `${o.instance.id}:${o.instance.state}`).join();
    const key = `${cfg.version.version}|${observed.length}|${healthy}|${p.update.state}|${p.update.done}|${p.update.failed}|${p.converged}|${pool}`;
    if (key === this.progressKey) return;
    this.progressKey = key;
    const size = desiredSize(cfg.version.spec);
    const at = new Date(this.o.clock()).toISOString();
    feed.publish({ type: 'group.progress', group: cfg.version.id, version: cfg.version.version, size, instances: observed.length, healthy, update: p.update, converged: p.converged, at });
    this.log.info(
      { event: 'group.progress', version: cfg.version.version, size, instances: observed.length, healthy, update: p.update, converged: p.converged },
      `${cfg.version.id} v${cfg.version.version}: ${healthy}/${size} healthy, ${observed.length} instances${p.update.state === 'idle' ? '' : `, update ${p.update.state} ${p.update.done}/${p.update.total}`}${p.converged ? ', converged' : ''}`,
    );
  }

  private self(observed: readonly Observed[]): { selfInstanceId?: string } {
    const link = this.o.selfLink;
    const mine = link ? observed.find((o) => this.members.health.get(o.instance.id)?.link === link) : undefined;
    return mine ? { selfInstanceId: mine.instance.id } : {};
  }

  /** Stops replacing at once; the group service stores the failure so every later leader sees it too. */
  private fail(cfg: Config, reason: string): void {
    this.failure = reason;
    this.cached = undefined;
    this.log.error({ event: 'update.failed', reason, onFailure: cfg.version.spec.update.onFailure }, 'rolling update failed');
    this.o.onUpdateFailed?.(cfg.version.id, cfg.version.version, reason);
  }

  /** Drains and destroys these instances of the group (see Actuator). */
  destroy(cfg: Config, instances: readonly Instance[], reason: string): Promise<void> {
    return this.actuator.destroy(cfg, instances, reason);
  }

  private recordError(operation: string, err: unknown): void {
    const e = err as { code?: string; name?: string; message?: string };
    this.cached = undefined;
    this.lastError = { at: new Date(this.o.clock()).toISOString(), operation, code: String(e.code ?? e.name ?? 'Error'), message: String(e.message ?? err) };
    this.log.warn({ event: 'reconcile.error', operation, code: this.lastError.code, err: this.lastError.message }, `${operation} failed`);
  }

  status(): GroupStatus {
    if (this.cached?.revision !== this.members.revision) this.cached = { status: this.build(), revision: this.members.revision };
    return this.cached.status;
  }

  private build(): GroupStatus {
    const spec = this.version.spec;
    const p = this.last;
    const update = !p
      ? { state: 'idle' as const, total: desiredSize(spec), done: 0, failed: 0 }
      : this.failure
        ? { ...p.update, state: 'failed' as const, reason: this.failure }
        : this.paused && p.update.state === 'rolling'
          ? { ...p.update, state: 'paused' as const }
          : p.update;
    return {
      id: spec.id,
      version: this.version.version,
      size: desiredSize(spec),
      configHash: this.cfg.hash,
      instances: this.members.list.map((i) => {
        const h = this.members.health.get(i.id);
        const logicalId = logicalIdOf(i);
        const launchedAt = i.launchedAt > 0 ? { launchedAt: new Date(i.launchedAt).toISOString() } : {};
        return { id: i.id, state: i.state, config: i.tags[TAG.config] ?? '', health: h?.health ?? 'unknown', ...(logicalId ? { logicalId } : {}), ...(h?.link ? { link: h.link } : {}), ...launchedAt, ...(h?.tasks !== undefined ? { tasks: h.tasks } : {}), ...(h?.protected ? { protected: true } : {}), ...(h?.warm ? { warm: true } : {}) };
      }),
      converged: p?.converged ?? false,
      update,
      ...(p ? { repair: p.repair } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.lastPassAt ? { lastPassAt: this.lastPassAt } : {}),
      ...(this.members.unclaimed.length ? { unclaimed: this.members.unclaimed.map((i) => i.id) } : {}),
    };
  }
}
