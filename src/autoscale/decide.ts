/**
 * The pure autoscaling decision: (groups, Swarm nodes, pending tasks, now) -> scale-ups, scale-downs, and the
 * reasons for not acting. No I/O and no clock: the watcher gathers the state and acts on the outcome.
 */
import { Ajv } from 'ajv';
import type { Problem } from '../errors.js';
import { durationMs } from '../group/quantity.js';
import { desiredSize } from '../group/allocation.js';
import { readSchema } from '../package.js';
import type { Duration, GroupSpec, GroupStatus } from '../spi/index.js';

/** schemas/autoscale.json, with its defaults filled in. */
export interface AutoscalePolicy {
  readonly enabled: boolean;
  readonly scaleUpDelay: Duration;
  readonly scaleDownIdle: Duration;
  readonly cooldown: Duration;
  readonly cpus: number;
  readonly memory: number | string;
  readonly labels: Readonly<Record<string, string>>;
  readonly engineLabels: Readonly<Record<string, string>>;
  readonly platform: { readonly os: string; readonly architecture: string };
}

export const autoscaleSchema: object = readSchema('autoscale.json');
const validatePolicy = new Ajv({ allErrors: true, useDefaults: true, strict: false }).compile<AutoscalePolicy>(autoscaleSchema);

/**
 * What makes an autoscale section unusable beyond its schema, for validateSpec to reject at commit. Only a sized
 * swarm-worker group can be scaled: its machines join the Swarm as workers, and one more or one less is always
 * valid (a swarm-manager group must stay odd).
 */
export function autoscaleProblems(spec: GroupSpec): Problem[] {
  if (spec.autoscale === undefined) return [];
  const problems: Problem[] = [];
  if (!('size' in spec.allocation)) problems.push({ path: '/autoscale', message: 'a logicalIds group cannot be scaled by count: use a size allocation' });
  if (spec.flavor.kind !== 'swarm-worker') problems.push({ path: '/autoscale', message: `only swarm-worker groups are autoscaled, not ${spec.flavor.kind}` });
  return problems;
}

/** The group's policy with defaults, or why it has none that can act. */
export function policyOf(spec: GroupSpec): { policy: AutoscalePolicy } | { problem: string } | undefined {
  if (spec.autoscale === undefined) return undefined;
  const policy = structuredClone(spec.autoscale);
  if (!validatePolicy(policy)) {
    return { problem: `invalid autoscale: ${(validatePolicy.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ')}` };
  }
  const problems = autoscaleProblems(spec);
  return problems.length ? { problem: problems.map((p) => p.message).join('; ') } : { policy };
}

const BYTE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** Bytes of a memory quantity as the schema allows it: 1073741824, "1GiB", "1.5GB". */
export function bytesOf(memory: number | string): number {
  if (typeof memory === 'number') return memory;
  const m = /^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$/.exec(memory);
  const unit = m ? BYTE_UNITS[m[2]!] : undefined;
  if (!m || unit === undefined) throw new Error(`bad memory quantity "${memory}"`);
  return Math.floor(Number(m[1]) * unit);
}

/** A Swarm node as the decision sees it. */
export interface NodeView {
  readonly id: string;
  readonly hostname?: string;
  readonly role: 'worker' | 'manager';
  /** Status ready (whatever its availability): a machine that has finished booting. */
  readonly ready: boolean;
  /** Availability active: Swarm may place tasks on it. */
  readonly active: boolean;
  readonly labels: Readonly<Record<string, string>>;
  readonly engineLabels: Readonly<Record<string, string>>;
  readonly os: string;
  readonly architecture: string;
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  /** Reservations of the tasks Swarm placed on it. */
  readonly reservedNanoCpus: number;
  readonly reservedMemoryBytes: number;
  /** Since when (epoch ms) it has run nothing but global-service tasks; undefined while it runs others. */
  readonly idleSince?: number;
  /** Since when (epoch ms) it has been ready; undefined while it is not. */
  readonly readySince?: number;
  /** How many of its tasks hold each per-node limit key (see PendingTask.limits). */
  readonly held?: Readonly<Record<string, number>>;
}

/** A task of a replicated service that Swarm keeps pending for want of a suitable node. */
export interface PendingTask {
  readonly id: string;
  readonly service: string;
  /** Since when (epoch ms) it has been pending with Swarm's "no suitable node" error. */
  readonly since: number;
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  readonly constraints: readonly string[];
  /** Any of these platforms will do; empty: any platform. */
  readonly platforms: readonly { readonly os?: string; readonly architecture?: string }[];
  /** It reserves generic resources (GPUs...), which no policy declares. */
  readonly genericResources?: boolean;
  /**
   * Per-node limits it is subject to: key -> most tasks holding the key on one node. Its service's max replicas per
   * node ("max replicas of web": 2) and each host-mode published port ("host port tcp/8080": 1).
   */
  readonly limits?: Readonly<Record<string, number>>;
  /** Swarm's own explanation, e.g. "no suitable node (insufficient resources on 1 node)". */
  readonly error: string;
}

export interface GroupView {
  readonly spec: GroupSpec;
  readonly status?: GroupStatus;
}

export interface AutoscaleState {
  readonly now: number;
  readonly groups: readonly GroupView[];
  readonly nodes: readonly NodeView[];
  readonly pending: readonly PendingTask[];
  /** The latest scaling action of each group (kept by the watcher) for the cooldown. */
  readonly lastScaled?: Readonly<Record<string, { readonly at: number; readonly action: 'scale-up' | 'scale-down' }>>;
}

export type Action = 'scale-up' | 'scale-down' | 'none';
/** Why: few values, so it can be a metric label; `message` carries the particulars. */
export type Reason =
  | 'pending-tasks'
  | 'idle'
  | 'delay'
  | 'cooldown'
  | 'bounds'
  | 'booting'
  | 'no-fitting-group'
  | 'scale-up-pending'
  | 'converging'
  | 'invalid-policy';

export interface Decision {
  readonly at: number;
  /** The group acted on or held back; '' when no group is concerned (no group fits). */
  readonly group: string;
  readonly action: Action;
  readonly reason: Reason;
  readonly message: string;
  /** scale-up: machines to add. */
  readonly count?: number;
  /** New desired size of the group. */
  readonly size?: number;
  /** scale-down: the instance to destroy and the Swarm node it is. */
  readonly instanceId?: string;
  readonly nodeId?: string;
  readonly tasks?: readonly string[];
}

export interface Outcome {
  /** Actions first (scale-ups, then scale-downs), then decisions not to act. */
  readonly decisions: readonly Decision[];
  /** When the outcome may change with nothing else happening (a delay, cooldown or idle time running out). */
  readonly nextAt?: number;
}

/** A new machine of a group, as a task would see it. */
interface Model {
  readonly id: string;
  readonly policy: AutoscalePolicy;
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  /** A new machine as constraints see it. */
  readonly machine: Placeable;
  readonly desired: number;
  readonly min: number;
  readonly max: number;
  readonly members: readonly NodeView[];
  readonly instanceOf: ReadonlyMap<string, string>;
  readonly converged: boolean;
  readonly delayMs: number;
  readonly idleMs: number;
  readonly cooldownMs: number;
}

interface Placeable {
  readonly id?: string;
  readonly hostname?: string;
  readonly role: 'worker' | 'manager';
  readonly labels: Readonly<Record<string, string>>;
  readonly engineLabels: Readonly<Record<string, string>>;
  readonly os: string;
  readonly architecture: string;
}

/** How long a node that just became ready counts as booting: the scheduler places pending tasks on it meanwhile. */
export const SCHEDULER_GRACE_MS = 5000;

/** Image platforms (Go names) against node platforms (uname names), as swarmkit's platform filter matches them. */
const ARCH_ALIASES: Record<string, string> = { amd64: 'x86_64', x86_64: 'x86_64', arm64: 'aarch64', aarch64: 'aarch64', '386': 'i386', i386: 'i386' };
const arch = (a: string): string => ARCH_ALIASES[a.toLowerCase()] ?? a.toLowerCase();
const same = (a: string | undefined, b: string): boolean => (a ?? '').toLowerCase() === b.toLowerCase();

/**
 * Why a Swarm placement constraint excludes `m`, or undefined if it admits it. Follows swarmkit: `==`/`!=`, values
 * compared case-insensitively but otherwise literally, a missing label is "". Any other form is not understood, so
 * it excludes.
 */
export function constraintMisfit(constraint: string, m: Placeable): string | undefined {
  const op = /==|!=/.exec(constraint);
  if (!op) return `constraint "${constraint}" is not of the form key==value or key!=value`;
  const key = constraint.slice(0, op.index).trim();
  const value = constraint.slice(op.index + 2).trim();
  const equal = op[0] === '==';
  // Key names are case-insensitive, label names are not.
  const lower = key.toLowerCase();
  let actual: string | undefined;
  if (lower === 'node.role') actual = m.role;
  else if (lower === 'node.platform.os') actual = m.os;
  else if (lower === 'node.platform.arch') actual = m.architecture;
  else if (lower === 'node.id') actual = m.id;
  else if (lower === 'node.hostname') actual = m.hostname;
  else if (lower === 'node.ip') actual = undefined;
  else if (lower.startsWith('node.labels.')) actual = m.labels[key.slice('node.labels.'.length)] ?? '';
  else if (lower.startsWith('engine.labels.')) actual = m.engineLabels[key.slice('engine.labels.'.length)] ?? '';
  else return `constraint "${constraint}" has a key Capstan does not understand`;
  // A new machine's id, hostname and address are unknown: `==` cannot be promised, `!=` is assumed (see decide).
  if (actual === undefined) return equal ? `constraint "${constraint}" names particular nodes, not a new machine` : undefined;
  // Literal, as swarmkit compares: `node.platform.arch==amd64` does not match a node reporting x86_64.
  return same(actual, value) === equal ? undefined : `constraint "${constraint}" is not met (${key} is "${actual}")`;
}

/** What is left on a machine: resources, and per-node limit keys already held. */
interface Room {
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  readonly held: Readonly<Record<string, number>>;
}

const EMPTY: Readonly<Record<string, number>> = {};
const roomOf = (n: NodeView): Room => ({ nanoCpus: n.nanoCpus - n.reservedNanoCpus, memoryBytes: n.memoryBytes - n.reservedMemoryBytes, held: n.held ?? EMPTY });
/** The cheap part of misfit, tried first: most machines a task is tried on are full. */
const hasRoom = (task: PendingTask, r: Room): boolean => task.nanoCpus <= r.nanoCpus && task.memoryBytes <= r.memoryBytes;

/** Why `task` could not run on `m` with `room` left, or undefined if it could. */
function misfit(task: PendingTask, m: Placeable, room: Room): string | undefined {
  if (task.genericResources) return 'it reserves generic resources, which autoscale policies do not declare';
  if (task.nanoCpus > room.nanoCpus) return `it reserves ${task.nanoCpus / 1e9} CPUs, ${room.nanoCpus / 1e9} are free`;
  if (task.memoryBytes > room.memoryBytes) return `it reserves ${task.memoryBytes} bytes of memory, ${room.memoryBytes} are free`;
  for (const [key, most] of Object.entries(task.limits ?? EMPTY)) {
    if ((room.held[key] ?? 0) >= most) return `${key}: at most ${most} per node, ${room.held[key]} there`;
  }
  if (task.platforms.length && !task.platforms.some((p) => (!p.os || same(p.os, m.os)) && (!p.architecture || arch(p.architecture) === arch(m.architecture)))) {
    return `its platforms (${task.platforms.map((p) => `${p.os ?? '*'}/${p.architecture ?? '*'}`).join(', ')}) exclude ${m.os}/${m.architecture}`;
  }
  for (const c of task.constraints) {
    const why = constraintMisfit(c, m);
    if (why) return why;
  }
  return undefined;
}

/** Engine labels the swarm flavor sets: capstan.group and its untemplated `labels`. */
function flavorEngineLabels(spec: GroupSpec): Record<string, string> {
  const labels = (spec.flavor.properties as { labels?: Record<string, string> } | undefined)?.labels ?? {};
  return { ...Object.fromEntries(Object.entries(labels).filter(([, v]) => !v.includes('{{'))), 'capstan.group': spec.id };
}

function modelOf(g: GroupView, policy: AutoscalePolicy, nodes: readonly NodeView[]): Model {
  const { spec } = g;
  // A node belongs to the group by its engine label, or by the link the flavor reported for an instance.
  const instanceOf = new Map((g.status?.instances ?? []).filter((i) => i.link).map((i) => [i.link!, i.id]));
  const members = nodes.filter((n) => n.engineLabels['capstan.group'] === spec.id || instanceOf.has(n.id));
  return {
    id: spec.id,
    policy,
    nanoCpus: Math.round(policy.cpus * 1e9),
    memoryBytes: bytesOf(policy.memory),
    machine: { role: 'worker', labels: policy.labels, engineLabels: { ...flavorEngineLabels(spec), ...policy.engineLabels }, os: policy.platform.os, architecture: policy.platform.architecture },
    desired: desiredSize(spec),
    min: spec.bounds?.min ?? 0,
    max: spec.bounds?.max ?? Infinity,
    members,
    instanceOf,
    converged: g.status?.converged ?? false,
    delayMs: durationMs(policy.scaleUpDelay),
    idleMs: durationMs(policy.scaleDownIdle),
    cooldownMs: durationMs(policy.cooldown),
  };
}

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
    const count = Math.max(0, m.desired - m.members.filter((n) => n.ready).length);
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
    const fitting = why.filter(([, w]) => w === undefined).map(([m]) => m);
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
      const open = due.find((m) => cooling(m, 'scale-up') === undefined && m.desired + opened.get(m)! < m.max);
      if (!open) {
        // Held back: say so for the first group it would have gone to.
        const m = due[0]!;
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
    for (const key of Object.keys(task.limits ?? EMPTY)) bin.held[key] = (bin.held[key] ?? 0) + 1;
    bin.tasks.push(task.id);
  }
  const since = new Map(state.pending.map((t) => [t.id, t.since]));
  const oldest = (ids: readonly string[]) => ids.reduce((a, id) => Math.max(a, now - since.get(id)!), 0);
  for (const m of models) {
    const added = bins.get(m)!.filter((b) => !b.booting);
    const covered = bins.get(m)!.filter((b) => b.booting).flatMap((b) => b.tasks);
    if (added.length) {
      const ids = added.flatMap((b) => b.tasks);
      actions.push({
        at: now,
        group: m.id,
        action: 'scale-up',
        reason: 'pending-tasks',
        count: added.length,
        size: m.desired + added.length,
        tasks: ids,
        message: `${ids.length} task(s) pending for up to ${oldest(ids) / 1000}s fit ${added.length} new machine(s) of group ${m.id}: ${summarize(ids)}`,
      });
    }
    if (covered.length) {
      const message = `${covered.length} pending task(s) fit machine(s) of group ${m.id} still booting (${booting.get(m.id)}) or just joined`;
      notes.push({ at: now, group: m.id, action: 'none', reason: 'booting', tasks: covered, message });
    }
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
    const idle = m.members
      .filter((n) => n.role === 'worker' && n.ready && n.active && n.idleSince !== undefined && m.instanceOf.has(n.id))
      .sort((a, b) => a.idleSince! - b.idleSince! || (a.id < b.id ? -1 : 1));
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
  return { decisions: [...actions, ...notes], ...(nextAt < Infinity ? { nextAt } : {}) };
}

/** What the autoscaler would decide if `spec` were committed: `decide` with that spec in place of the group's. */
export function preview(state: AutoscaleState, spec?: GroupSpec): Outcome {
  if (!spec) return decide(state);
  const others = state.groups.filter((g) => g.spec.id !== spec.id);
  const status = state.groups.find((g) => g.spec.id === spec.id)?.status;
  return decide({ ...state, groups: [...others, { spec, ...(status ? { status } : {}) }] });
}
