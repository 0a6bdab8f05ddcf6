/** A group spec as committed by an operator, after validation and defaults (see schemas/group.json). */
export interface GroupSpec {
  readonly id: string;
  readonly allocation: Allocation;
  readonly bounds?: { readonly min?: number; readonly max?: number };
  readonly instance: { readonly provider: string; readonly properties: unknown };
  readonly flavor: { readonly kind: string; readonly properties: unknown };
  readonly update: UpdatePolicy;
  /** When a member with evidence against it is replaced; defaults apply when absent. */
  readonly repair?: RepairPolicy;
  /** Opt-in autoscaling; validated by the schema, acted on by the autoscaler. */
  readonly autoscale?: unknown;
  /**
   * Which member goes first on scale-in (after named and unhealthy ones): `least-busy` (fewest running tasks of
   * non-global services, then newest; the default), `newest` or `oldest`.
   */
  readonly scaleIn?: 'least-busy' | 'newest' | 'oldest';
  /**
   * A warm pool (swarm-worker groups of a size): `size` machines beyond the group's size, booted and joined with
   * Swarm availability drain, activated first on a scale-up; within bounds.max. `state: stopped` (where the provider
   * can stop machines) keeps them stopped once drained: cheaper, and slower to activate (a boot and a rejoin).
   */
  readonly warm?: { readonly size: number; readonly state?: WarmState };
}

/** How the warm pool's machines wait: joined and drained (`running`, the default), or drained and then stopped. */
export type WarmState = 'running' | 'stopped';

export type Allocation = { readonly size: number } | { readonly logicalIds: readonly string[] };

/** A count, or a percentage of the desired size such as "25%". */
export type Quantity = number | `${number}%`;

export interface UpdatePolicy {
  readonly maxUnavailable: Quantity;
  readonly maxSurge: Quantity;
  /** How long a new instance has to become healthy. */
  readonly healthTimeout: Duration;
  /** How long a new instance must stay healthy before it counts as available. */
  readonly healthyFor: Duration;
  readonly onFailure: 'pause' | 'rollback';
}

export interface RepairPolicy {
  /** How long this replica must itself see a member unhealthy, without a break, before replacing it (default 5m). */
  readonly unhealthyFor?: Duration;
  /** Above this many unhealthy members at once nothing is repaired; also the most one pass repairs (default 40%). */
  readonly maxUnhealthy?: Quantity;
}

/** "500ms", "30s", "5m", "1h". */
export type Duration = `${number}${'ms' | 's' | 'm' | 'h'}`;

/** The autoscaler's latest action on a group (epoch ms), stored with the version it made. */
export interface Autoscaled {
  readonly at: number;
  readonly action: 'scale-up' | 'scale-down';
}

/**
 * Operation state stored with a version, so a new leader or a restart of every replica acts as the last one
 * would have: a paused update stays paused, a failed one failed, named removals go on.
 */
export interface VersionState {
  /** The operator paused the rolling update. */
  readonly paused?: boolean;
  /** The rolling update failed (and, under `onFailure: pause`, stopped) for this reason. */
  readonly failure?: string;
  /** Instance ids an operator or the autoscaler named for removal: destroyed first when the size drops. */
  readonly removing?: readonly string[];
  /** The autoscaler's latest action, carried by every later version: a new leader waits out the cooldown it began. */
  readonly autoscaled?: Autoscaled;
  /** What made this version, for the history ("rollback to v4", "pause", "scaleDown: size 5 -> 4"). */
  readonly note?: string;
  /**
   * Machine sections of earlier versions (newest last): where they live elsewhere, their machines are found and
   * replaced through a provider of their own, so moving a group never orphans a machine.
   */
  readonly former?: readonly FormerMachines[];
}

export interface FormerMachines {
  readonly instance: GroupSpec['instance'];
  readonly flavor: GroupSpec['flavor'];
}

/** One stored version of a group's spec. */
export interface SpecVersion {
  readonly id: string;
  readonly version: number;
  readonly createdAt: string;
  readonly spec: GroupSpec;
  readonly state?: VersionState;
}

/** Where specs live (Swarm configs in production). Versions only ever grow. */
export interface SpecStore {
  /** Highest valid version of every group. */
  list(): Promise<SpecVersion[]>;
  get(id: string): Promise<SpecVersion | undefined>;
  history(id: string): Promise<SpecVersion[]>;
  /** Stores version `expected + 1`; fails with a conflict if another commit got there first. */
  commit(spec: GroupSpec, expected: number, state?: VersionState): Promise<SpecVersion>;
  remove(id: string): Promise<void>;
}

export type UpdateState = 'idle' | 'rolling' | 'paused' | 'failed' | 'done';

export interface UpdateProgress {
  readonly state: UpdateState;
  /** Members the update must bring to the new config. */
  readonly total: number;
  /** Members on the new config and available. */
  readonly done: number;
  /** Members on the new config that missed their health deadline. */
  readonly failed: number;
  readonly reason?: string;
}

export interface InstanceStatus {
  readonly id: string;
  readonly logicalId?: string;
  readonly state: string;
  readonly config: string;
  readonly health: string;
  /** Cluster member the flavor linked the instance to (a Swarm node id), when known. */
  readonly link?: string;
  /** When the provider launched it (ISO 8601), when it says. */
  readonly launchedAt?: string;
  /** Running tasks of non-global services on it, when the flavor counts them. */
  readonly tasks?: number;
  /** Never chosen by scale-in (Swarm node label capstan.protect=true). */
  readonly protected?: boolean;
  /** In the group's warm pool: joined, nothing scheduled there until a scale-up activates it. */
  readonly warm?: boolean;
}

/** What the controller reports of one group after its latest pass. */
export interface GroupStatus {
  readonly id: string;
  readonly version: number;
  readonly size: number;
  readonly configHash: string;
  readonly instances: readonly InstanceStatus[];
  readonly converged: boolean;
  readonly update: UpdateProgress;
  /** The remediation breaker: members with evidence against them, the limit, and why repairs are held back. */
  readonly repair?: { readonly broken: number; readonly limit: number; readonly blocked?: string };
  readonly lastError?: { readonly at: string; readonly operation: string; readonly code: string; readonly message: string };
  readonly lastPassAt?: string;
  /** Machines of the group without a cluster tag that no member of this cluster links to: left alone, an operator's to remove. */
  readonly unclaimed?: readonly string[];
}

/** What a commit would do now, without doing it. */
export interface PlanPreview {
  readonly create: number;
  readonly createLogicalIds: readonly string[];
  /** Instance ids that would go because the group is too large or they carry an unknown logical id. */
  readonly destroy: readonly string[];
  /** Instance ids on an older config that a rolling update would replace. */
  readonly replace: readonly string[];
  /** Instance ids the warm pool would take in (Swarm availability drain) now. */
  readonly warm?: readonly string[];
  /** Instance ids of the warm pool that would be activated now (a larger size takes warm machines first). */
  readonly activate?: readonly string[];
  /** Instance ids of the warm pool that would be stopped now (a pool kept stopped), or started (to activate, or kept running). */
  readonly stop?: readonly string[];
  readonly start?: readonly string[];
}

/** The reconciling loop as the group service sees it. Only the leader's controller acts. */
export interface GroupController {
  /** Start managing (or move on) a group at this stored version; wakes it at once. Older versions are ignored. */
  apply(version: SpecVersion): void;
  /** Wake a group's loop now (a health change, a request). */
  trigger(id: string): void;
  status(id: string): GroupStatus | undefined;
  list(): GroupStatus[];
  /** The group's live instances as its provider lists them now; reads only. */
  instances(id: string): Promise<import('./instance.js').Instance[]>;
  /** What applying `spec` would do given what is running now; reads only, writes nothing anywhere. */
  preview(spec: GroupSpec): Promise<PlanPreview>;
  /** Stop managing; instances stay. */
  free(id: string): Promise<void>;
  /** Destroy every instance of the group and stop managing it. */
  destroy(id: string): Promise<void>;
}
