/** A group as the autoscaler models it: what a new machine of it would be, its members, its policy's times. */
import { desiredSize } from '../group/allocation.js';
import { durationMs } from '../spi/quantity.js';
import type { GroupSpec, MachineLabels } from '../spi/index.js';
import type { Placeable } from './placement.js';
import { bytesOf, type AutoscalePolicy } from './policy.js';
import type { GroupView, NodeView } from './state.js';

/** Node label that keeps a machine from being chosen by scale-in (the Swarm flavor's PROTECT_LABEL). */
export const PROTECT_LABEL = 'capstan.protect';
/** Node label of a machine in its group's warm pool (the Swarm flavor's WARM_LABEL), with availability drain. */
export const WARM_LABEL = 'capstan.warm';

/**
 * Which idle worker goes first, by the group's `scaleIn`: idle workers run no task of a non-global service, so
 * `least-busy` takes the longest idle (then the newest); `newest` and `oldest` go by launch time (then longest idle).
 */
export function scaleInOrder(m: Model): (a: NodeView, b: NodeView) => number {
  const launched = (n: NodeView) => m.launchedAt.get(m.instanceOf.get(n.id) ?? '') ?? 0;
  const idleFirst = (a: NodeView, b: NodeView) => a.idleSince! - b.idleSince!;
  const newest = (a: NodeView, b: NodeView) => launched(b) - launched(a);
  const byId = (a: NodeView, b: NodeView) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const policy = m.scaleIn;
  if (policy === 'newest') return (a, b) => newest(a, b) || idleFirst(a, b) || byId(a, b);
  if (policy === 'oldest') return (a, b) => newest(b, a) || idleFirst(a, b) || byId(a, b);
  return (a, b) => idleFirst(a, b) || newest(a, b) || byId(a, b);
}

/** A new machine of a group, as a task would see it. */
export interface Model {
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
  /** Launch time (epoch ms) of each instance, where the provider says. */
  readonly launchedAt: ReadonlyMap<string, number>;
  readonly scaleIn: GroupSpec['scaleIn'];
  readonly converged: boolean;
  readonly delayMs: number;
  readonly idleMs: number;
  readonly cooldownMs: number;
}

const NO_LABELS: MachineLabels = { node: {}, engine: {} };

export function modelOf(g: GroupView, policy: AutoscalePolicy, nodes: readonly NodeView[]): Model {
  const { spec } = g;
  // A node belongs to the group by its engine label, or by the link the flavor reported for an instance.
  const instanceOf = new Map((g.status?.instances ?? []).filter((i) => i.link).map((i) => [i.link!, i.id]));
  const members = nodes.filter((n) => n.engineLabels['capstan.group'] === spec.id || instanceOf.has(n.id));
  // What a new machine will carry is the flavor's to say.
  const labels = g.flavor?.labels?.(spec.flavor.properties ?? {}, spec.id) ?? NO_LABELS;
  return {
    id: spec.id,
    policy,
    nanoCpus: Math.round(policy.cpus * 1e9),
    memoryBytes: bytesOf(policy.memory),
    machine: { role: 'worker', labels: labels.node, engineLabels: { ...labels.engine, ...policy.engineLabels }, os: policy.platform.os, architecture: policy.platform.architecture },
    desired: desiredSize(spec),
    min: spec.bounds?.min ?? 0,
    max: spec.bounds?.max ?? Infinity,
    members,
    instanceOf,
    launchedAt: new Map((g.status?.instances ?? []).filter((i) => i.launchedAt).map((i) => [i.id, Date.parse(i.launchedAt!)])),
    scaleIn: spec.scaleIn,
    converged: g.status?.converged ?? false,
    delayMs: durationMs(policy.scaleUpDelay),
    idleMs: durationMs(policy.scaleDownIdle),
    cooldownMs: durationMs(policy.cooldown),
  };
}
