/**
 * Reads the Swarm for the autoscaler: nodes, services and tasks from the Docker API as the decision sees them
 * (NodeView, PendingTask), with the clocks only an observer can keep: since when each task has been refused by the
 * scheduler, and each node ready and idle.
 */
import type { SwarmNode } from '../spi/swarm.js';
import type Docker from 'dockerode';
import type { NodeView, PendingTask } from './state.js';

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
/** How long a task the scheduler has not judged yet keeps the reads quick. */
const UNJUDGED_MS = 5000;
export interface SwarmView {
  readonly now: number;
  readonly nodes: readonly NodeView[];
  readonly pending: readonly PendingTask[];
  /** Some task has not been judged by the scheduler yet, for a short while: read again soon. */
  readonly unjudged: boolean;
}

export class SwarmReader {
  /** When each pending task was first seen refused by the scheduler, and each node first seen idle and ready. */
  readonly pendingSince = new Map<string, number>();
  readonly unjudgedSince = new Map<string, number>();
  readonly idleSince = new Map<string, number>();
  readonly readySince = new Map<string, number>();

  constructor(private readonly docker: Docker) {}

  /** Forgets every clock: a new leader term starts from what Swarm says, not from what this one remembered. */
  clear(): void {
    this.pendingSince.clear();
    this.unjudgedSince.clear();
    this.idleSince.clear();
    this.readySince.clear();
  }

  /** One read of nodes, services and tasks at `clock()` (taken once they are in); leaves out the nodes in `removed`. */
  async read(clock: () => number, removed: Map<string, number>): Promise<SwarmView> {
    const { docker } = this;
    const [nodes, services, tasks] = (await Promise.all([docker.listNodes(), docker.listServices(), docker.listTasks()])) as [SwarmNode[], SwarmService[], SwarmTask[]];
    const now = clock();
    const global = new Set(services.filter((s) => s.Spec?.Mode && ('Global' in s.Spec.Mode || 'GlobalJob' in s.Spec.Mode)).map((s) => s.ID));
    const names = new Map(services.map((s) => [s.ID, s.Spec?.Name ?? s.ID]));
    const limits = new Map(services.map((s) => [s.ID, limitsOf(s)]));
    const live = tasks.filter((t) => t.DesiredState === 'running' && ACTIVE.has(t.Status?.State ?? ''));

    const pending: PendingTask[] = [];
    for (const t of live) {
      const refused = t.Status?.State === 'pending' && (t.Status.Err ?? '').startsWith(NO_SUITABLE_NODE) && !global.has(t.ServiceID);
      if (!refused) continue;
      const since = this.pendingSince.get(t.ID) ?? now;
      this.pendingSince.set(t.ID, since);
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
    for (const id of this.pendingSince.keys()) if (!pendingIds.has(id)) this.pendingSince.delete(id);
    // Tasks the scheduler has not judged yet: read again soon, so a refusal is seen within one settle interval
    // (for a while only: a task stuck before scheduling for another reason must not keep the reads quick).
    const unjudged = new Set(live.filter((t) => UNSCHEDULED.has(t.Status!.State!) && !t.NodeID && !pendingIds.has(t.ID)).map((t) => t.ID));
    for (const id of unjudged) if (!this.unjudgedSince.has(id)) this.unjudgedSince.set(id, now);
    for (const id of this.unjudgedSince.keys()) if (!unjudged.has(id)) this.unjudgedSince.delete(id);
    const unjudgedNow = [...this.unjudgedSince.values()].some((at) => now - at < UNJUDGED_MS);

    const listed = new Set(nodes.map((n) => n.ID));
    for (const [id, until] of removed) if (until < now || !listed.has(id)) removed.delete(id);
    const onNode = new Map<string, SwarmTask[]>();
    for (const t of live) {
      if (!t.NodeID) continue;
      const list = onNode.get(t.NodeID);
      if (list) list.push(t);
      else onNode.set(t.NodeID, [t]);
    }
    const views: NodeView[] = [];
    for (const n of nodes) {
      if (removed.has(n.ID)) continue;
      const mine = onNode.get(n.ID) ?? [];
      const held: Record<string, number> = {};
      for (const t of mine) for (const key of Object.keys(limits.get(t.ServiceID) ?? {})) held[key] = (held[key] ?? 0) + 1;
      const busy = mine.some((t) => !global.has(t.ServiceID));
      const ready = n.Status?.State === 'ready';
      if (busy || !ready) this.idleSince.delete(n.ID);
      else if (!this.idleSince.has(n.ID)) this.idleSince.set(n.ID, now);
      if (!ready) this.readySince.delete(n.ID);
      else if (!this.readySince.has(n.ID)) this.readySince.set(n.ID, now);
      const idleSince = this.idleSince.get(n.ID);
      const readySince = this.readySince.get(n.ID);
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
    for (const id of this.idleSince.keys()) if (!listed.has(id)) this.idleSince.delete(id);
    for (const id of this.readySince.keys()) if (!listed.has(id)) this.readySince.delete(id);

    return { now, nodes: views, pending, unjudged: unjudgedNow };
  }
}
