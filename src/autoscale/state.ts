/** The autoscaler's view of the Swarm and the groups, and what it decides: the data the pure decision works on. */
import type { Autoscaled, FlavorKind, GroupSpec, GroupStatus } from '../spi/index.js';

/** How long a node that just became ready counts as booting: the scheduler places pending tasks on it meanwhile. */
export const SCHEDULER_GRACE_MS = 5000;

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
  /**
   * The flavor kind the spec names (Plugins.flavors), asked which labels a new machine of the group will carry.
   * Without one, or one that cannot say (no `labels`), a new machine is counted on for no label.
   */
  readonly flavor?: Pick<FlavorKind, 'name' | 'labels'>;
  /** The autoscaler's latest action on the group as stored with its version: a predecessor's counts for the cooldown. */
  readonly autoscaled?: Autoscaled;
}

export interface AutoscaleState {
  readonly now: number;
  readonly groups: readonly GroupView[];
  readonly nodes: readonly NodeView[];
  readonly pending: readonly PendingTask[];
  /** The latest scaling action of each group (kept by the watcher, or stored by a predecessor) for the cooldown. */
  readonly lastScaled?: Readonly<Record<string, Autoscaled>>;
  /**
   * Per pending task, the groups machines were added to for it (kept by the watcher while it stays pending): since
   * when, and once a machine of that group joined without what the task needs, why (Outcome.unsatisfiable).
   */
  readonly tried?: Readonly<Record<string, Readonly<Record<string, Tried>>>>;
}

export interface Tried {
  readonly at: number;
  readonly verdict?: string;
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
  | 'unsatisfiable'
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
  /** scale-up: how many of them the group's warm pool gives (activated, started first if stopped) instead of new ones. */
  readonly fromPool?: number;
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
  /** Tasks found not to fit a group's new machines after all, with why: for the watcher to remember (Tried). */
  readonly unsatisfiable?: readonly { readonly task: string; readonly group: string; readonly why: string }[];
}
