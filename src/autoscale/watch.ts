/**
 * The Swarm watcher: gathers nodes and tasks from the Docker API when Swarm says something changed (service and
 * node events, then quick re-reads until new tasks are scheduled or refused) and on a backstop poll, runs the pure
 * decision, and acts through injected callbacks. Only the leader's replica runs it.
 */
import type Docker from 'dockerode';
import { Counter } from 'prom-client';
import type { Logger } from '../log.js';
import { registry } from '../metrics.js';
import { Ticker } from '../ticker.js';
import { feed } from '../feed.js';
import type { Autoscaled, GroupSpec } from '../spi/index.js';
import { decide, preview, type AutoscaleState, type Decision, type GroupView, type Outcome, type Tried } from './decide.js';
import { SwarmReader } from './read.js';

export const autoscaleDecisions = new Counter({
  name: 'capstan_autoscale_decisions_total',
  help: 'Autoscaling decisions by group, action (scale-up, scale-down, none) and reason',
  labelNames: ['group', 'action', 'reason'] as const,
  registers: [registry],
});

export interface AutoscalerOptions {
  /** A client of a manager of the Swarm (the one Capstan runs on). */
  readonly docker: Docker;
  readonly logger: Logger;
  /** Every managed group: its committed spec and the controller's latest status (read once per evaluation). */
  readonly groups: () => readonly GroupView[] | Promise<readonly GroupView[]>;
  /** Raise the group's size by `count` (commit the spec, apply it), storing `mark` with the version for the cooldown. */
  readonly scaleUp: (groupId: string, count: number, reason: string, mark: Autoscaled) => Promise<void>;
  /** Lower the group's size by one and destroy this instance, storing `mark` with the version for the cooldown. */
  readonly removeInstance: (groupId: string, instanceId: string, reason: string, mark: Autoscaled) => Promise<void>;
  readonly clock?: () => number;
  /** Backstop re-read of the whole Swarm (default 5 s). */
  readonly pollMs?: number;
  /** Re-read interval while new tasks await the scheduler's verdict (default 100 ms). */
  readonly settleMs?: number;
  /** Decisions kept per group for lastDecisions (default 20). */
  readonly history?: number;
}

/** How long after an event the watcher keeps re-reading quickly: the scheduler's verdict on new tasks lands in it. */
const BURST_MS = 1000;
/** How long the watcher trusts its own action over a groups() that does not show it yet. */
const EXPECT_MS = 60_000;
/** How long a node being removed is left out while it is still listed (draining, then leaving). */
const REMOVED_MS = 10 * 60_000;

/**
 * Event-driven autoscaler. start() on gaining leadership, stop() on losing it; may be started again. Never throws
 * from its loop: Docker or callback failures are logged and retried on the next pass.
 */
export class Autoscaler {
  readonly #o: Required<Omit<AutoscalerOptions, 'logger'>> & { logger: Logger };
  #running = false;
  /** One per term: evaluations never overlap; due when the decision or a burst says, at the latest every `pollMs`. */
  #ticker?: Ticker;
  /** The previous term's evaluation in flight: the next term's first waits for it. */
  #stopped: Promise<void> = Promise.resolve();
  #events?: NodeJS.ReadableStream;
  #eventsSince?: number;
  #reconnect?: NodeJS.Timeout;
  #burstUntil = 0;
  readonly #reader: SwarmReader;
  /** Per pending task, the groups machines were added to for it: since when, and the verdict once one joined. */
  readonly #tried = new Map<string, Map<string, Tried>>();
  readonly #lastScaled: Record<string, Autoscaled> = {};
  /** Sizes this watcher committed that groups() may not show yet; nodes it removed that may still be listed. */
  readonly #expected = new Map<string, { size: number; until: number }>();
  readonly #removed = new Map<string, number>();
  readonly #failedAt = new Map<string, number>();
  readonly #inflight = new Set<string>();
  readonly #history = new Map<string, Decision[]>();
  #shown = new Set<string>();
  #last?: AutoscaleState;

  constructor(options: AutoscalerOptions) {
    this.#o = { clock: Date.now, pollMs: 5000, settleMs: 100, history: 20, ...options, logger: options.logger.child({ component: 'autoscale' }) };
    this.#reader = new SwarmReader(options.docker);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    const { pollMs, settleMs, logger } = this.#o;
    const after = this.#stopped;
    this.#ticker = new Ticker({
      step: () => after.then(() => this.#evaluate()),
      intervalMs: pollMs,
      // A Swarm that cannot be read is read again soon, then less and less often, at least every `pollMs`.
      backoff: { baseMs: settleMs, maxMs: pollMs },
      onError: (err) => logger.warn({ event: 'autoscale.error', err: String(err) }, 'could not read the Swarm'),
      clock: this.#o.clock,
    });
    this.#eventsSince = undefined;
    this.#watchEvents();
    this.trigger();
  }

  /** Resolves once the evaluation in flight, if any, has finished. */
  stop(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    this.#running = false;
    this.#stopped = this.#ticker!.stop();
    clearTimeout(this.#reconnect);
    (this.#events as { destroy?: () => void } | undefined)?.destroy?.();
    this.#events = undefined;
    // A new leader term starts from what Swarm says, not from what this one remembered.
    this.#reader.clear();
    this.#tried.clear();
    this.#shown.clear();
    return this.#stopped;
  }

  /** Evaluate now, or once more after the evaluation in flight (they never overlap). */
  trigger(): void {
    if (this.#running) void this.#ticker!.trigger();
  }

  /** Recent decisions, oldest first: of one group, '' for those concerning no group, or all of them. */
  lastDecisions(groupId?: string): Decision[] {
    if (groupId !== undefined) return [...(this.#history.get(groupId) ?? [])];
    return [...this.#history.values()].flat().sort((a, b) => a.at - b.at);
  }

  /** What the autoscaler would decide now if `spec` were committed; undefined before the first read of the Swarm. */
  preview(spec?: GroupSpec): Outcome | undefined {
    return this.#last && preview({ ...this.#last, now: this.#o.clock() }, spec);
  }

  /**
   * One read of the Swarm, one decision, its actions; an action not started (see #act) is not recorded either. Next
   * when the decision says (a delay ends), or soon while a burst of quick re-reads lasts.
   */
  async #evaluate(): Promise<number | undefined> {
    const state = await this.#gather();
    this.#last = state;
    const outcome = decide(state);
    for (const u of outcome.unsatisfiable ?? []) {
      const t = this.#tried.get(u.task)?.get(u.group);
      if (t) this.#tried.get(u.task)!.set(u.group, { ...t, verdict: u.why });
    }
    this.#record(outcome.decisions.filter((d) => d.action === 'none' || (this.#running && this.#act(d))));
    const now = this.#o.clock();
    return Math.min(outcome.nextAt ?? Infinity, now < this.#burstUntil ? now + this.#o.settleMs : Infinity);
  }

  async #gather(): Promise<AutoscaleState> {
    const [swarm, groups] = await Promise.all([this.#reader.read(this.#o.clock, this.#removed), this.#o.groups()]);
    const { now, nodes, pending } = swarm;
    if (swarm.unjudged) this.#burstUntil = Math.max(this.#burstUntil, now + this.#o.settleMs);
    const ids = new Set(pending.map((t) => t.id));
    for (const id of this.#tried.keys()) if (!ids.has(id)) this.#tried.delete(id);
    const tried = Object.fromEntries([...this.#tried].map(([task, byGroup]) => [task, Object.fromEntries(byGroup)]));
    // A predecessor's last action, stored with the group, counts as much as this watcher's own.
    const lastScaled = { ...this.#lastScaled };
    for (const g of groups) if (g.autoscaled && g.autoscaled.at > (lastScaled[g.spec.id]?.at ?? -Infinity)) lastScaled[g.spec.id] = g.autoscaled;
    return { now, groups: this.#withExpected(groups, now), nodes, pending, lastScaled, tried };
  }

  /** The groups with the sizes this watcher committed, until groups() shows them. */
  #withExpected(groups: readonly GroupView[], now: number): GroupView[] {
    return groups.map((g) => {
      const e = this.#expected.get(g.spec.id);
      const size = 'size' in g.spec.allocation ? g.spec.allocation.size : undefined;
      if (!e || size === undefined) return g;
      if (size === e.size || e.until < now) {
        this.#expected.delete(g.spec.id);
        return g;
      }
      return { ...g, spec: { ...g.spec, allocation: { size: e.size } } };
    });
  }

  /**
   * Starts the action without waiting for it: a removal drains first, which may take minutes, and must not hold up
   * a scale-up. Until it settles, the state already reflects it (the size it aims at, the node it removes), so the
   * next decisions neither repeat nor contradict it; a failure takes that back.
   */
  #act(d: Decision): boolean {
    const now = this.#o.clock();
    const failed = this.#failedAt.get(d.group);
    // After a failed call, let the backstop poll retry rather than every event.
    if (this.#inflight.has(d.group) || (failed !== undefined && now - failed < this.#o.pollMs)) return false;
    const previous = this.#lastScaled[d.group];
    this.#inflight.add(d.group);
    const mark: Autoscaled = { at: now, action: d.action as Autoscaled['action'] };
    this.#lastScaled[d.group] = mark;
    this.#expected.set(d.group, { size: d.size!, until: now + EXPECT_MS });
    if (d.nodeId) this.#removed.set(d.nodeId, now + REMOVED_MS);
    // The tasks it adds machines for: once one of them has joined, a task still pending gets no further machine here
    // unless that machine would fit it (decide).
    const tried = d.action === 'scale-up' ? (d.tasks ?? []).filter((task) => !this.#tried.get(task)?.has(d.group)) : [];
    for (const task of tried) this.#tried.set(task, (this.#tried.get(task) ?? new Map<string, Tried>()).set(d.group, { at: now }));
    const call = d.action === 'scale-up' ? this.#o.scaleUp(d.group, d.count!, d.message, mark) : this.#o.removeInstance(d.group, d.instanceId!, d.message, mark);
    call
      .then(
        () => this.#failedAt.delete(d.group),
        (err: unknown) => {
          this.#failedAt.set(d.group, this.#o.clock());
          if (previous) this.#lastScaled[d.group] = previous;
          else delete this.#lastScaled[d.group];
          this.#expected.delete(d.group);
          if (d.nodeId) this.#removed.delete(d.nodeId);
          for (const task of tried) this.#tried.get(task)?.delete(d.group);
          this.#o.logger.warn({ event: 'autoscale.failed', group: d.group, action: d.action, err: String(err) }, `${d.action} of ${d.group} failed`);
        },
      )
      .finally(() => {
        this.#inflight.delete(d.group);
        this.trigger();
      });
    return true;
  }

  /** Logs, counts and keeps every action, and each decision not to act when it first appears. */
  #record(decisions: readonly Decision[]): void {
    const shown = new Set<string>();
    for (const d of decisions) {
      const key = `${d.group}|${d.action}|${d.reason}|${d.nodeId ?? ''}|${[...(d.tasks ?? [])].sort().join(',')}`;
      shown.add(key);
      if (d.action === 'none' && this.#shown.has(key)) continue;
      autoscaleDecisions.inc({ group: d.group, action: d.action, reason: d.reason });
      const { message, at: _at, ...fields } = d;
      this.#o.logger.info({ event: 'autoscale.decision', ...fields }, message);
      const kept = this.#history.get(d.group) ?? [];
      kept.push(d);
      this.#history.set(d.group, kept.slice(-this.#o.history));
      feed.publish({ type: 'autoscale.decision', group: d.group, decision: d, at: new Date(d.at).toISOString() });
    }
    this.#shown = shown;
  }

  /** Service and node events start a burst of quick reads; the stream is reopened with `since` so none are lost. */
  #watchEvents(): void {
    if (!this.#running) return;
    const since = this.#eventsSince;
    this.#eventsSince = Math.floor(Date.now() / 1000);
    const signal = this.#ticker!.signal;
    this.#o.docker.getEvents({ filters: { type: ['service', 'node'] }, ...(since ? { since } : {}), abortSignal: signal }).then(
      (stream) => {
        if (signal.aborted) return (stream as { destroy?: () => void }).destroy?.();
        this.#events = stream;
        stream.on('data', () => {
          this.#burstUntil = this.#o.clock() + BURST_MS;
          this.trigger();
        });
        stream.on('error', (err: unknown) => this.#o.logger.debug({ err: String(err) }, 'event stream failed'));
        stream.on('close', () => {
          if (this.#events === stream) this.#events = undefined;
          this.#rewatch(signal);
        });
      },
      (err: unknown) => {
        this.#o.logger.debug({ err: String(err) }, 'cannot watch events');
        this.#rewatch(signal);
      },
    );
  }

  #rewatch(signal: AbortSignal): void {
    if (!this.#running || signal.aborted) return;
    this.#reconnect = setTimeout(() => this.#watchEvents(), Math.min(this.#o.pollMs, 1000));
  }
}
