// What the planner sees and what it decides: its input (the spec and the observed members) and its plan.
import type { GroupSpec, Health, Instance, UpdateProgress } from '../spi/index.js';

/** An instance as one pass sees it: what the provider listed, plus what the flavor and the controller know. */
export interface Observed {
  readonly instance: Instance;
  /**
   * `healthy`; `unknown` is no information (not joined yet, Swarm right after an election, a failed call) and is
   * never evidence against a machine; `unhealthy` is positive evidence (Down, drained, joined twice).
   */
  readonly health: Health;
  /** Since when (epoch ms) the flavor has said healthy without a break; kept by the controller. */
  readonly healthySince?: number;
  /** Since when (epoch ms) this replica has itself seen it `unhealthy` without a break; kept by the controller. */
  readonly unhealthySince?: number;
  /** The machine became a cluster member at some point (the flavor linked it, or it was seen healthy). */
  readonly joined?: boolean;
  /** Running tasks of non-global services on it, as the flavor counted them this pass (scaleIn `least-busy`). */
  readonly tasks?: number;
  /** Never chosen by scale-in (a Swarm node labelled capstan.protect=true); still replaced by updates, last. */
  readonly protected?: boolean;
  /** A member of the warm pool: joined, serving nothing (Swarm availability drain), ready to be activated. */
  readonly warm?: boolean;
  /** Started by this replica (from a pool kept stopped) and not healthy yet: its engine is rejoining. */
  readonly waking?: boolean;
}

export interface PlanInput {
  readonly spec: GroupSpec;
  readonly configHash: string;
  /** Live instances, including ones launched but not yet listed by the provider (describe lag). */
  readonly observed: readonly Observed[];
  readonly now: number;
  /** Operator pause, or an update failure under `onFailure: pause`: no replacements, only repairs of size. */
  readonly paused: boolean;
  /** The instance hosting Capstan itself, destroyed last. */
  readonly selfInstanceId?: string;
  /** Instances named for removal (group.destroyInstances, the autoscaler): the first to go when the size drops. */
  readonly removing?: readonly string[];
  /**
   * How soon to look again while the plan waits for what only an observation shows (machines booting or joining,
   * what this pass's actions did); without it, wakeAt says only when a fact turns by time alone.
   */
  readonly lookMs?: number;
}

export type DestroyReason = 'scale-down' | 'update' | 'unknown-id' | 'duplicate' | 'repair';

export type Action =
  | { readonly kind: 'provision'; readonly count: number; readonly logicalIds?: readonly string[] }
  | { readonly kind: 'destroy'; readonly ids: readonly string[]; readonly reason: DestroyReason }
  /**
   * Warm pool: members to put in the pool (`warm`: the flavor drains them) and to take out of it (`active`), and
   * machines of the pool to stop (drained first) and to start (before any activation: `start` and `active` both name
   * a stopped member to activate).
   */
  | { readonly kind: 'standby'; readonly warm: readonly string[]; readonly active: readonly string[]; readonly stop: readonly string[]; readonly start: readonly string[] };

export type StandbyAction = Extract<Action, { kind: 'standby' }>;

/** The remediation breaker's view of one pass. */
export interface RepairStatus {
  /** Members with positive evidence against them (unhealthy, or never joined by their deadline). */
  readonly broken: number;
  /** Most members one pass may repair, and above which nothing is repaired. */
  readonly limit: number;
  /** Set when more than `limit` members are broken at once: repairs are held back for this reason. */
  readonly blocked?: string;
}

export interface Plan {
  readonly actions: readonly Action[];
  readonly update: UpdateProgress;
  readonly converged: boolean;
  /** Set when a new instance missed its health deadline during an update: the controller pauses or rolls back. */
  readonly failure?: string;
  readonly repair: RepairStatus;
  /**
   * When to look next: when the plan could change with no new observation (a `healthyFor`, `unhealthyFor` or
   * deadline ends), or, given `lookMs`, that soon while it waits for something to be observed.
   */
  readonly wakeAt?: number;
}

/** What the planner derives of one observed member, once per pass. */
export interface Facts {
  readonly o: Observed;
  readonly current: boolean;
  readonly available: boolean;
  /** A new instance that did not become a member by its deadline (never joined, or joined and is unhealthy). */
  readonly failed: boolean;
  /** Positive evidence long enough to replace it: unhealthy for `repair.unhealthyFor`, or failed. */
  readonly repairable: boolean;
  /** Costs no availability to replace (unhealthy or never joined); `unknown` members are never free. */
  readonly free: boolean;
}

export const idOf = (f: Facts): string => f.o.instance.id;
