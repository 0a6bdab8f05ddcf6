/** Whether a pending task could run on a machine, judged as swarmkit's scheduler filters judge it. */
import type { NodeView, PendingTask } from './state.js';

/** A machine as constraints see it: a Swarm node, or a new machine of a group as its policy and flavor describe it. */
export interface Placeable {
  readonly id?: string;
  readonly hostname?: string;
  readonly role: 'worker' | 'manager';
  readonly labels: Readonly<Record<string, string>>;
  readonly engineLabels: Readonly<Record<string, string>>;
  readonly os: string;
  readonly architecture: string;
}

/** What is left on a machine: resources, and per-node limit keys already held. */
export interface Room {
  readonly nanoCpus: number;
  readonly memoryBytes: number;
  readonly held: Readonly<Record<string, number>>;
}

/** Image platforms (Go names) against node platforms (uname names), as swarmkit's platform filter matches them. */
const ARCH_ALIASES: Record<string, string> = { amd64: 'x86_64', x86_64: 'x86_64', arm64: 'aarch64', aarch64: 'aarch64', '386': 'i386', i386: 'i386' };
/** A record's own value for a key named by user text: `constructor` or `__proto__` are labels like any other. */
const own = <T>(record: Readonly<Record<string, T>>, key: string): T | undefined => (Object.hasOwn(record, key) ? record[key] : undefined);
const arch = (a: string): string => own(ARCH_ALIASES, a.toLowerCase()) ?? a.toLowerCase();
const same = (a: string | undefined, b: string): boolean => (a ?? '').toLowerCase() === b.toLowerCase();

export const EMPTY: Readonly<Record<string, number>> = {};
/** What is free on a node now. */
export const roomOf = (n: NodeView): Room => ({ nanoCpus: n.nanoCpus - n.reservedNanoCpus, memoryBytes: n.memoryBytes - n.reservedMemoryBytes, held: n.held ?? EMPTY });
/** What a node offers with nothing on it. */
export const capacityOf = (n: NodeView): Room => ({ nanoCpus: n.nanoCpus, memoryBytes: n.memoryBytes, held: EMPTY });
/** The cheap part of misfit, tried first: most machines a task is tried on are full. */
export const hasRoom = (task: PendingTask, r: Room): boolean => task.nanoCpus <= r.nanoCpus && task.memoryBytes <= r.memoryBytes;

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
  else if (lower.startsWith('node.labels.')) actual = own(m.labels, key.slice('node.labels.'.length)) ?? '';
  else if (lower.startsWith('engine.labels.')) actual = own(m.engineLabels, key.slice('engine.labels.'.length)) ?? '';
  else return `constraint "${constraint}" has a key Capstan does not understand`;
  // A new machine's id, hostname and address are unknown: `==` cannot be promised, `!=` is assumed (see decide).
  if (actual === undefined) return equal ? `constraint "${constraint}" names particular nodes, not a new machine` : undefined;
  // Literal, as swarmkit compares: `node.platform.arch==amd64` does not match a node reporting x86_64.
  return same(actual, value) === equal ? undefined : `constraint "${constraint}" is not met (${key} is "${actual}")`;
}

/**
 * Why `task` could not run on `m` with `room` left, or undefined if it could. Whatever a task holds, judging it
 * cannot throw: an error costs that task a reason, never the decision about the others.
 */
export function misfit(task: PendingTask, m: Placeable, room: Room): string | undefined {
  try {
    return judge(task, m, room);
  } catch (err) {
    return `it could not be judged: ${String(err)}`;
  }
}

function judge(task: PendingTask, m: Placeable, room: Room): string | undefined {
  if (task.genericResources) return 'it reserves generic resources, which autoscale policies do not declare';
  if (task.nanoCpus > room.nanoCpus) return `it reserves ${task.nanoCpus / 1e9} CPUs, ${room.nanoCpus / 1e9} are free`;
  if (task.memoryBytes > room.memoryBytes) return `it reserves ${task.memoryBytes} bytes of memory, ${room.memoryBytes} are free`;
  for (const [key, most] of Object.entries(task.limits ?? EMPTY)) {
    const there = own(room.held, key) ?? 0;
    if (there >= most) return `${key}: at most ${most} per node, ${there} there`;
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
