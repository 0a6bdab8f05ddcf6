/**
 * The Swarm watcher: gathers nodes and tasks from the Docker API when Swarm says something changed (service and
 * node events, then quick re-reads until new tasks are scheduled or refused) and on a backstop poll, runs the pure
 * decision, and acts through injected callbacks. Only the leader's replica runs it.
 */
import type Docker from 'dockerode';
import { Counter } from 'prom-client';
import type { Logger } from '../log.js';
import { registry } from '../metrics.js';
import type { GroupSpec } from '../spi/index.js';
import { decide, preview, type AutoscaleState, type Decision, type GroupView, type NodeView, type Outcome, type PendingTask } from './decide.js';

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
  /** Raise the group's size by `count` (commit the spec, apply it). */
  readonly scaleUp: (groupId: string, count: number, reason: string) => Promise<void>;
  /** Lower the group's size by one and destroy this instance. */
  readonly removeInstance: (groupId: string, instanceId: string, reason: string) => Promise<void>;
  readonly clock?: () => number;
  /** Backstop re-read of the whole Swarm (default 5 s). */
  readonly pollMs?: number;
  /** Re-read interval while new tasks await the scheduler's verdict (default 100 ms). */
  readonly settleMs?: number;
  /** Decisions kept per group for lastDecisions (default 20). */
  readonly history?: number;
}

/** The parts of GET /tasks the watcher reads. */
interface SwarmTask {
  readonly ID: string;
  readonly ServiceID: string;
  readonly NodeID?: string;
  readonly DesiredState?: string;
  readonly Status?: { readonly State?: string; readonly Err?: string };
  readonly Spec?: {
    readonly Resources?: { readonly Reservations?: { readonly NanoCPUs?: number; readonly MemoryBytes?: number; readonly GenericResources?: readonly unknown[] } };
    readonly Placement?: { readonly Constraints?: readonly string[]; readonly Platforms?: readonly { readonly OS?: string; readonly Architecture?: string }[] };
  };
}

/** The parts of GET /nodes the watcher reads. */
interface SwarmNode {
  readonly ID: string;
  readonly Spec?: { readonly Role?: string; readonly Availability?: string; readonly Labels?: Record<string, string> };
  readonly Description?: {
    readonly Hostname?: string;
    readonly Platform?: { readonly OS?: string; readonly Architecture?: string };
    readonly Resources?: { readonly NanoCPUs?: number; readonly MemoryBytes?: number };
    readonly Engine?: { readonly Labels?: Record<string, string> };
  };
  readonly Status?: { readonly State?: string };
}

interface SwarmService {
  readonly ID: string;
  readonly Spec?: {
    readonly Name?: string;
    readonly Mode?: Record<string, unknown>;
    readonly TaskTemplate?: { readonly Placement?: { readonly MaxReplicas?: number } };
    readonly EndpointSpec?: { readonly Ports?: readonly { readonly Protocol?: string; readonly PublishedPort?: number; readonly PublishMode?: string }[] };
  };
}

/** The per-node limits the tasks of a service are subject to (PendingTask.limits). */
function limitsOf(s: SwarmService): Record<string, number> {
  const out: Record<string, number> = {};
  const max = s.Spec?.TaskTemplate?.Placement?.MaxReplicas;
  if (max) out[`max replicas of ${s.Spec?.Name ?? s.ID}`] = max;
  for (const p of s.Spec?.EndpointSpec?.Ports ?? []) if (p.PublishMode === 'host' && p.PublishedPort) out[`host port ${p.Protocol ?? 'tcp'}/${p.PublishedPort}`] = 1;
  return out;
}

const ACTIVE = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);
/** States before the scheduler has placed a task or said why it cannot. */
const UNSCHEDULED = new Set(['new', 'allocated', 'pending']);
const NO_SUITABLE_NODE = 'no suitable node';
/** How long after an event the watcher keeps re-reading quickly: the scheduler's verdict on new tasks lands in it. */
const BURST_MS = 1000;
/** How long a task the scheduler has not judged yet keeps the reads quick. */
const UNJUDGED_MS = 5000;
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
  #abort?: AbortController;
  #events?: NodeJS.ReadableStream;
  #eventsSince?: number;
  #timer?: NodeJS.Timeout;
  #reconnect?: NodeJS.Timeout;
  #busy?: Promise<void>;
  #again = false;
  #burstUntil = 0;
  /** When each pending task was first seen refused by the scheduler, and each node first seen idle and ready. */
  readonly #pendingSince = new Map<string, number>();
  readonly #unjudgedSince = new Map<string, number>();
  readonly #idleSince = new Map<string, number>();
  readonly #readySince = new Map<string, number>();
  readonly #lastScaled: Record<string, { at: number; action: 'scale-up' | 'scale-down' }> = {};
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
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#eventsSince = undefined;
    this.#watchEvents();
    this.trigger();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#timer);
    clearTimeout(this.#reconnect);
    this.#abort?.abort();
    (this.#events as { destroy?: () => void } | undefined)?.destroy?.();
    this.#events = undefined;
    // A new leader term starts from what Swarm says, not from what this one remembered.
    this.#pendingSince.clear();
    this.#unjudgedSince.clear();
    this.#idleSince.clear();
    this.#readySince.clear();
    this.#shown.clear();
  }

  /** Evaluate now, or once more after the evaluation in flight (they never overlap). */
  trigger(): void {
    if (!this.#running) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#busy = (async () => {
      let next: number | undefined;
      do {
        this.#again = false;
        next = await this.#evaluate().then(
          (o) => o.nextAt,
          (err: unknown) => {
            this.#o.logger.warn({ event: 'autoscale.error', err: String(err) }, 'could not read the Swarm');
            return undefined;
          },
        );
      } while (this.#again && this.#running);
      this.#busy = undefined;
      this.#schedule(next);
    })();
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

  /** One read of the Swarm, one decision, its actions; an action not started (see #act) is not recorded either. */
  async #evaluate(): Promise<Outcome> {
    const state = await this.#gather();
    this.#last = state;
    const outcome = decide(state);
    this.#record(outcome.decisions.filter((d) => d.action === 'none' || (this.#running && this.#act(d))));
    return outcome;
  }

  async #gather(): Promise<AutoscaleState> {
    const { docker, clock } = this.#o;
    const [nodes, services, tasks, groups] = (await Promise.all([docker.listNodes(), docker.listServices(), docker.listTasks(), this.#o.groups()])) as [
      SwarmNode[],
      SwarmService[],
      SwarmTask[],
      readonly GroupView[],
    ];
    const now = clock();
    const global = new Set(services.filter((s) => s.Spec?.Mode && ('Global' in s.Spec.Mode || 'GlobalJob' in s.Spec.Mode)).map((s) => s.ID));
    const names = new Map(services.map((s) => [s.ID, s.Spec?.Name ?? s.ID]));
    const limits = new Map(services.map((s) => [s.ID, limitsOf(s)]));
    const live = tasks.filter((t) => t.DesiredState === 'running' && ACTIVE.has(t.Status?.State ?? ''));

    const pending: PendingTask[] = [];
    for (const t of live) {
      const refused = t.Status?.State === 'pending' && (t.Status.Err ?? '').startsWith(NO_SUITABLE_NODE) && !global.has(t.ServiceID);
      if (!refused) continue;
      const since = this.#pendingSince.get(t.ID) ?? now;
      this.#pendingSince.set(t.ID, since);
      const r = t.Spec?.Resources?.Reservations;
      const p = t.Spec?.Placement;
      const l = limits.get(t.ServiceID) ?? {};
      pending.push({
        id: t.ID,
        service: names.get(t.ServiceID) ?? t.ServiceID,
        since,
        nanoCpus: r?.NanoCPUs ?? 0,
        memoryBytes: r?.MemoryBytes ?? 0,
        constraints: p?.Constraints ?? [],
        platforms: (p?.Platforms ?? []).map((x) => ({ ...(x.OS ? { os: x.OS } : {}), ...(x.Architecture ? { architecture: x.Architecture } : {}) })),
        ...(r?.GenericResources?.length ? { genericResources: true } : {}),
        ...(Object.keys(l).length ? { limits: l } : {}),
        error: t.Status!.Err!,
      });
    }
    const pendingIds = new Set(pending.map((t) => t.id));
    for (const id of this.#pendingSince.keys()) if (!pendingIds.has(id)) this.#pendingSince.delete(id);
    // Tasks the scheduler has not judged yet: read again soon, so a refusal is seen within one settle interval
    // (for a while only: a task stuck before scheduling for another reason must not keep the reads quick).
    const unjudged = new Set(live.filter((t) => UNSCHEDULED.has(t.Status!.State!) && !t.NodeID && !pendingIds.has(t.ID)).map((t) => t.ID));
    for (const id of unjudged) if (!this.#unjudgedSince.has(id)) this.#unjudgedSince.set(id, now);
    for (const id of this.#unjudgedSince.keys()) if (!unjudged.has(id)) this.#unjudgedSince.delete(id);
    if ([...this.#unjudgedSince.values()].some((at) => now - at < UNJUDGED_MS)) this.#burstUntil = Math.max(this.#burstUntil, now + this.#o.settleMs);

    const listed = new Set(nodes.map((n) => n.ID));
    for (const [id, until] of this.#removed) if (until < now || !listed.has(id)) this.#removed.delete(id);
    const onNode = new Map<string, SwarmTask[]>();
    for (const t of live) {
      if (!t.NodeID) continue;
      const list = onNode.get(t.NodeID);
      if (list) list.push(t);
      else onNode.set(t.NodeID, [t]);
    }
    const views: NodeView[] = [];
    for (const n of nodes) {
      if (this.#removed.has(n.ID)) continue;
      const mine = onNode.get(n.ID) ?? [];
      const held: Record<string, number> = {};
      for (const t of mine) for (const key of Object.keys(limits.get(t.ServiceID) ?? {})) held[key] = (held[key] ?? 0) + 1;
      const busy = mine.some((t) => !global.has(t.ServiceID));
      const ready = n.Status?.State === 'ready';
      if (busy || !ready) this.#idleSince.delete(n.ID);
      else if (!this.#idleSince.has(n.ID)) this.#idleSince.set(n.ID, now);
      if (!ready) this.#readySince.delete(n.ID);
      else if (!this.#readySince.has(n.ID)) this.#readySince.set(n.ID, now);
      const idleSince = this.#idleSince.get(n.ID);
      const readySince = this.#readySince.get(n.ID);
      const d = n.Description;
      views.push({
        id: n.ID,
        ...(d?.Hostname ? { hostname: d.Hostname } : {}),
        role: n.Spec?.Role === 'manager' ? 'manager' : 'worker',
        ready,
        active: n.Spec?.Availability === 'active',
        labels: n.Spec?.Labels ?? {},
        engineLabels: d?.Engine?.Labels ?? {},
        os: d?.Platform?.OS ?? '',
        architecture: d?.Platform?.Architecture ?? '',
        nanoCpus: d?.Resources?.NanoCPUs ?? 0,
        memoryBytes: d?.Resources?.MemoryBytes ?? 0,
        reservedNanoCpus: mine.reduce((a, t) => a + (t.Spec?.Resources?.Reservations?.NanoCPUs ?? 0), 0),
        reservedMemoryBytes: mine.reduce((a, t) => a + (t.Spec?.Resources?.Reservations?.MemoryBytes ?? 0), 0),
        ...(idleSince === undefined ? {} : { idleSince }),
        ...(readySince === undefined ? {} : { readySince }),
        ...(Object.keys(held).length ? { held } : {}),
      });
    }
    for (const id of this.#idleSince.keys()) if (!listed.has(id)) this.#idleSince.delete(id);
    for (const id of this.#readySince.keys()) if (!listed.has(id)) this.#readySince.delete(id);

    return { now, groups: this.#withExpected(groups, now), nodes: views, pending, lastScaled: { ...this.#lastScaled } };
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
    this.#lastScaled[d.group] = { at: now, action: d.action as 'scale-up' | 'scale-down' };
    this.#expected.set(d.group, { size: d.size!, until: now + EXPECT_MS });
    if (d.nodeId) this.#removed.set(d.nodeId, now + REMOVED_MS);
    const call = d.action === 'scale-up' ? this.#o.scaleUp(d.group, d.count!, d.message) : this.#o.removeInstance(d.group, d.instanceId!, d.message);
    call
      .then(
        () => this.#failedAt.delete(d.group),
        (err: unknown) => {
          this.#failedAt.set(d.group, this.#o.clock());
          if (previous) this.#lastScaled[d.group] = previous;
          else delete this.#lastScaled[d.group];
          this.#expected.delete(d.group);
          if (d.nodeId) this.#removed.delete(d.nodeId);
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
    }
    this.#shown = shown;
  }

  #schedule(nextAt: number | undefined): void {
    if (!this.#running) return;
    const now = this.#o.clock();
    const at = Math.min(nextAt ?? Infinity, now < this.#burstUntil ? now + this.#o.settleMs : Infinity, now + this.#o.pollMs);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.trigger(), Math.max(0, at - now));
  }

  /** Service and node events start a burst of quick reads; the stream is reopened with `since` so none are lost. */
  #watchEvents(): void {
    if (!this.#running) return;
    const since = this.#eventsSince;
    this.#eventsSince = Math.floor(Date.now() / 1000);
    const signal = this.#abort!.signal;
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
