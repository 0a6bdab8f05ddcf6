/**
 * The pure autoscaling decision: (groups, Swarm nodes, pending tasks, now) -> scale-ups, scale-downs, and the
 * reasons for not acting. No I/O and no clock: the watcher gathers the state and acts on the outcome.
 */
import type { GroupSpec } from '../spi/index.js';
import { capacityOf, EMPTY, hasRoom, misfit, roomOf } from './placement.js';
import { policyOf } from './policy.js';
import { modelOf, PROTECT_LABEL, scaleInOrder, WARM_LABEL, type Model } from './model.js';
import { SCHEDULER_GRACE_MS, type AutoscaleState, type Decision, type NodeView, type Outcome, type PendingTask, type Reason, type Tried } from './state.js';

export { autoscaleProblems, autoscaleSchema, bytesOf, policyOf, type AutoscalePolicy } from './policy.js';
export { constraintMisfit } from './placement.js';
export * from './state.js';

/** A machine of a group, booting or to be added, as bin-packing fills it. */
interface Bin {
  readonly group: Model;
  /** A machine already there: booting, or a node that just joined (checked against the node itself). */
  readonly booting: boolean;
  readonly node?: NodeView;
  nanoCpus: number;
  memoryBytes: number;
  readonly held: Record<string, number>;
  readonly tasks: string[];
}

const label = (t: PendingTask): string => `${t.id} (${t.service})`;

/**
 * For a task machines of group `m` were added for since `t.at`: why the group's machines will not do after all (one
 * that joined since, and that the scheduler has had its chance with, lacks what the task needs even when empty);
 * 'joining' while one that joined since is still the scheduler's to try; else undefined (none joined, or one did but
 * is merely full). A verdict, once given, stands while the task is pending (the watcher keeps it).
 */
function triedVerdict(task: PendingTask, m: Model, t: Tried, now: number, later: (at: number) => void): string | 'joining' | undefined {
  if (t.verdict !== undefined) return t.verdict;
  const joined = m.members.filter((n) => n.ready && n.readySince !== undefined && n.readySince >= t.at).sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const n of joined) {
    const why = now - n.readySince! >= SCHEDULER_GRACE_MS ? misfit(task, n, capacityOf(n)) : undefined;
    if (why) return `node ${n.hostname ?? n.id} of group ${m.id}, added for it ${(now - t.at) / 1000}s ago, joined without what it needs: ${why}`;
  }
  const young = joined.filter((n) => now - n.readySince! < SCHEDULER_GRACE_MS);
  for (const n of young) later(n.readySince! + SCHEDULER_GRACE_MS);
  return young.length ? 'joining' : undefined;
}

function summarize(items: readonly string[], limit = 3): string {
  return items.length <= limit ? items.join('; ') : `${items.slice(0, limit).join('; ')}; and ${items.length - limit} more`;
}

/** The decision for the whole cluster at `state.now`. Pure: the same state gives the same outcome. */
export function decide(state: AutoscaleState): Outcome {
  const { now } = state;
  const actions: Decision[] = [];
  const notes: Decision[] = [];
  let nextAt = Infinity;
  const later = (at: number) => {
    if (at > now) nextAt = Math.min(nextAt, at);
  };

  const models: Model[] = [];
  for (const g of [...state.groups].sort((a, b) => (a.spec.id < b.spec.id ? -1 : a.spec.id > b.spec.id ? 1 : 0))) {
    const p = policyOf(g.spec);
    if (!p) continue;
    if ('problem' in p) notes.push({ at: now, group: g.spec.id, action: 'none', reason: 'invalid-policy', message: p.problem });
    else if (p.policy.enabled) models.push(modelOf(g, p.policy, state.nodes));
  }
  const cooling = (m: Model, action: 'scale-up' | 'scale-down'): number | undefined => {
    const last = state.lastScaled?.[m.id];
    // Needed capacity does not wait for a removal's cooldown; everything else does.
    if (!last || (action === 'scale-up' && last.action === 'scale-down')) return undefined;
    const until = last.at + m.cooldownMs;
    return until > now ? until : undefined;
  };

  // Scale-up: first-fit decreasing of the pending tasks into machines still booting, then into new machines.
  // Per group, booting machines first, then new ones in the order they were opened.
  const bins = new Map<Model, Bin[]>();
  const opened = new Map<Model, number>();
  const booting = new Map<string, number>();
  for (const m of models) {
    // A node of the warm pool serves nothing yet: the group's size counts it only once it is activated.
    const count = Math.max(0, m.desired - m.members.filter((n) => n.ready && !(n.labels[WARM_LABEL] === 'true' && !n.active)).length);
    booting.set(m.id, count);
    // A node that has just joined has not been offered the pending tasks by the scheduler yet: count it as booting.
    const fresh = m.members.filter((n) => n.ready && n.active && n.readySince !== undefined && now - n.readySince < SCHEDULER_GRACE_MS);
    for (const n of fresh) later(n.readySince! + SCHEDULER_GRACE_MS);
    bins.set(m, [
      ...fresh.map((n) => ({ ...roomOf(n), group: m, booting: true, node: n, held: { ...n.held }, tasks: [] })),
      ...Array.from({ length: count }, () => ({ group: m, booting: true, nanoCpus: m.nanoCpus, memoryBytes: m.memoryBytes, held: {}, tasks: [] })),
    ]);
    opened.set(m, 0);
  }
  const unfit: { task: PendingTask; why: string }[] = [];
  const unsatisfiable: { task: string; group: string; why: string }[] = [];
  const spentNotes = new Map<string, { tasks: string[]; whys: string[] }>();
  const joiningNotes = new Map<string, string[]>();
  const waiting = new Map<string, PendingTask[]>();
  const held = new Map<string, { reason: 'cooldown' | 'bounds'; tasks: string[]; message: string }>();
  let fittingTasks = 0;
  const tasks = [...state.pending].sort((a, b) => b.nanoCpus - a.nanoCpus || b.memoryBytes - a.memoryBytes || (a.id < b.id ? -1 : 1));
  // Nodes the scheduler has had its chance with: if one fits a pending task as far as Capstan can tell, Swarm wants
  // something Capstan does not model (a node address, a volume or network driver...), and new machines would not do.
  // Without this, machines would be added for such a task until bounds.max.
  const settled = state.nodes
    .filter((n) => n.ready && n.active && (n.readySince === undefined || now - n.readySince >= SCHEDULER_GRACE_MS))
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((n) => ({ node: n, room: roomOf(n) }));
  for (const task of tasks) {
    const refuting = settled.find(({ node, room }) => hasRoom(task, room) && !misfit(task, node, room))?.node;
    if (refuting) {
      const why = `Swarm does not place it on node ${refuting.id}, which fits it as far as Capstan can tell: it needs something Capstan does not model (a node address, a volume or network driver...)`;
      unfit.push({ task, why: `${label(task)}, "${task.error}": ${why}` });
      continue;
    }
    const why = models.map((m) => [m, misfit(task, m.machine, { nanoCpus: m.nanoCpus, memoryBytes: m.memoryBytes, held: EMPTY })] as const);
    // A group whose machine, added for this task, joined without what it needs is not given another for it.
    const fitting: Model[] = [];
    const joining = new Set<Model>();
    let spent = false;
    for (const [m, w] of why) {
      if (w !== undefined) continue;
      const t = state.tried?.[task.id]?.[m.id];
      const verdict = t && triedVerdict(task, m, t, now, later);
      if (verdict === undefined || verdict === 'joining') fitting.push(m);
      if (verdict === 'joining') joining.add(m);
      else if (verdict !== undefined) {
        spent = true;
        unsatisfiable.push({ task: task.id, group: m.id, why: verdict });
        const n = spentNotes.get(m.id) ?? { tasks: [], whys: [] };
        n.tasks.push(task.id);
        n.whys.push(`${label(task)}: ${verdict}`);
        spentNotes.set(m.id, n);
      }
    }
    if (!fitting.length && spent) continue;
    if (!fitting.length) {
      const reasons = why.map(([m, w]) => `group ${m.id}: ${w}`);
      unfit.push({ task, why: `${label(task)}, "${task.error}": ${reasons.length ? reasons.join(', ') : 'no group has autoscale enabled'}` });
      continue;
    }
    fittingTasks++;
    const due = fitting.filter((m) => now - task.since >= m.delayMs);
    if (!due.length) {
      for (const m of fitting) {
        later(task.since + m.delayMs);
        waiting.set(m.id, [...(waiting.get(m.id) ?? []), task]);
      }
      continue;
    }
    let bin: Bin | undefined;
    // A machine not joined yet has the group's labels and platform, which the task fits: only room matters.
    for (const m of due) if ((bin = bins.get(m)!.find((b) => hasRoom(task, b) && !misfit(task, b.node ?? m.machine, b)))) break;
    if (!bin) {
      const openable = due.filter((m) => !joining.has(m));
      if (!openable.length) {
        // The machines added for it joined just now: the scheduler's turn first.
        joiningNotes.set(due[0]!.id, [...(joiningNotes.get(due[0]!.id) ?? []), task.id]);
        continue;
      }
      const open = openable.find((m) => cooling(m, 'scale-up') === undefined && m.desired + opened.get(m)! < m.max);
      if (!open) {
        // Held back: say so for the first group it would have gone to.
        const m = openable[0]!;
        const until = cooling(m, 'scale-up');
        if (until !== undefined) later(until);
        const h = held.get(m.id) ?? {
          reason: until !== undefined ? 'cooldown' : 'bounds',
          tasks: [],
          message: until !== undefined ? `group ${m.id} scaled up ${(now - state.lastScaled![m.id]!.at) / 1000}s ago, cooldown ${m.policy.cooldown}` : `group ${m.id} is at bounds.max ${m.max}`,
        };
        h.tasks.push(task.id);
        held.set(m.id, h);
        continue;
      }
      bin = { group: open, booting: false, nanoCpus: open.nanoCpus, memoryBytes: open.memoryBytes, held: {}, tasks: [] };
      bins.get(open)!.push(bin);
      opened.set(open, opened.get(open)! + 1);
    }
    bin.nanoCpus -= task.nanoCpus;
    bin.memoryBytes -= task.memoryBytes;
    for (const key of Object.keys(task.limits ?? EMPTY)) bin.held[key] = (Object.hasOwn(bin.held, key) ? bin.held[key]! : 0) + 1;
    bin.tasks.push(task.id);
  }
  const since = new Map(state.pending.map((t) => [t.id, t.since]));
  const oldest = (ids: readonly string[]) => ids.reduce((a, id) => Math.max(a, now - since.get(id)!), 0);
  for (const m of models) {
    const added = bins.get(m)!.filter((b) => !b.booting);
    const covered = bins.get(m)!.filter((b) => b.booting).flatMap((b) => b.tasks);
    if (added.length) {
      const ids = added.flatMap((b) => b.tasks);
      // Warm members not already taken by the size (booting counts them): the planner activates these first, Ready
      // ones and those of a pool kept stopped (Down) alike.
      const warm = Math.max(0, m.members.filter((n) => !n.active && n.labels[WARM_LABEL] === 'true').length - (booting.get(m.id) ?? 0));
      const fromPool = Math.min(warm, added.length);
      actions.push({
        at: now,
        group: m.id,
        action: 'scale-up',
        reason: 'pending-tasks',
        count: added.length,
        ...(fromPool ? { fromPool } : {}),
        size: m.desired + added.length,
        tasks: ids,
        message: `${ids.length} task(s) pending for up to ${oldest(ids) / 1000}s fit ${added.length} new machine(s) of group ${m.id}${fromPool ? ` (${fromPool} from its warm pool)` : ''}: ${summarize(ids)}`,
      });
    }
    if (covered.length) {
      const message = `${covered.length} pending task(s) fit machine(s) of group ${m.id} still booting (${booting.get(m.id)}) or just joined`;
      notes.push({ at: now, group: m.id, action: 'none', reason: 'booting', tasks: covered, message });
    }
    const j = joiningNotes.get(m.id);
    if (j) notes.push({ at: now, group: m.id, action: 'none', reason: 'booting', tasks: j, message: `${j.length} pending task(s) wait for the scheduler to try the machine(s) of group ${m.id} added for them, which joined just now` });
    const u = spentNotes.get(m.id);
    if (u) notes.push({ at: now, group: m.id, action: 'none', reason: 'unsatisfiable', tasks: u.tasks, message: `${u.tasks.length} pending task(s) get no further machine of group ${m.id}: ${summarize(u.whys)}` });
    const h = held.get(m.id);
    if (h) notes.push({ at: now, group: m.id, action: 'none', reason: h.reason, tasks: h.tasks, message: `${h.tasks.length} pending task(s) wait: ${h.message}` });
    const w = waiting.get(m.id);
    if (w) {
      const message = `${w.length} task(s) fitting group ${m.id} not pending for its scaleUpDelay ${m.policy.scaleUpDelay} yet: ${summarize(w.map(label))}`;
      notes.push({ at: now, group: m.id, action: 'none', reason: 'delay', tasks: w.map((t) => t.id), message });
    }
  }
  if (unfit.length) {
    const message = `no group's machines would fit ${summarize(unfit.map((u) => u.why))}`;
    notes.push({ at: now, group: '', action: 'none', reason: 'no-fitting-group', tasks: unfit.map((u) => u.task.id), message });
  }

  // Scale-down: one idle worker per group, only while no capacity is wanted anywhere.
  const wanted = fittingTasks > 0 || [...booting.values()].some((n) => n > 0);
  for (const m of models) {
    // Only serving workers: a node an operator drained or paused is theirs to deal with.
    // Never a protected node (node label capstan.protect=true); the group's scaleIn policy says which goes first.
    const idle = m.members
      .filter((n) => n.role === 'worker' && n.ready && n.active && n.idleSince !== undefined && m.instanceOf.has(n.id) && n.labels[PROTECT_LABEL] !== 'true')
      .sort(scaleInOrder(m));
    const idleFor = m.idleMs;
    for (const n of idle) later(n.idleSince! + idleFor);
    const due = idle.filter((n) => now - n.idleSince! >= idleFor);
    if (!due.length) continue;
    const note = (reason: Reason, why: string) => {
      const n = due[0]!;
      notes.push({ at: now, group: m.id, nodeId: n.id, instanceId: m.instanceOf.get(n.id)!, action: 'none', reason, message: `worker ${n.id} idle ${(now - n.idleSince!) / 1000}s stays: ${why}` });
    };
    const until = cooling(m, 'scale-down');
    if (wanted) note('scale-up-pending', 'pending tasks or booting machines want capacity');
    // A rolling update or repair adds and removes machines itself; an idle new machine may be its replacement.
    else if (!m.converged) note('converging', `group ${m.id} has not converged`);
    else if (m.desired - 1 < m.min) note('bounds', `group ${m.id} is at bounds.min ${m.min}`);
    else if (until !== undefined) {
      later(until);
      note('cooldown', `the cooldown ${m.policy.cooldown} of group ${m.id} has not ended`);
    } else {
      // A task pending for another reason (a resource or constraint only this node has) could still land here.
      const n = due.find((n) => !state.pending.some((t) => !misfit(t, n, roomOf(n))));
      if (!n) continue;
      const instanceId = m.instanceOf.get(n.id)!;
      const message = `worker ${n.id} (instance ${instanceId}) ran only global tasks for ${(now - n.idleSince!) / 1000}s`;
      actions.push({ at: now, group: m.id, nodeId: n.id, instanceId, action: 'scale-down', reason: 'idle', size: m.desired - 1, message });
    }
  }
  return { decisions: [...actions, ...notes], ...(nextAt < Infinity ? { nextAt } : {}), ...(unsatisfiable.length ? { unsatisfiable } : {}) };
}

/**
 * What the autoscaler would decide if `spec` were committed: `decide` with that spec in place of the group's, with
 * the group's status and the flavor kind its spec names (as a group of that kind has it).
 */
export function preview(state: AutoscaleState, spec?: GroupSpec): Outcome {
  if (!spec) return decide(state);
  const others = state.groups.filter((g) => g.spec.id !== spec.id);
  const status = state.groups.find((g) => g.spec.id === spec.id)?.status;
  const flavor = state.groups.map((g) => g.flavor).find((f) => f?.name === spec.flavor.kind);
  return decide({ ...state, groups: [...others, { spec, ...(status ? { status } : {}), ...(flavor ? { flavor } : {}) }] });
}
