import type { Instance, InstanceSpec } from './instance.js';

export type Health = 'healthy' | 'unhealthy' | 'unknown';

export interface HealthReport {
  readonly health: Health;
  /** The cluster member the instance became (a Swarm node id), once known. */
  readonly link?: string;
  /** Running tasks of non-global services on it (the scale-in policy `least-busy`); counted once per pass. */
  readonly tasks?: number;
  /** Never to be chosen by scale-in (a Swarm node labelled capstan.protect=true); updates still replace it, last. */
  readonly protected?: boolean;
  /** In the group's warm pool: joined, with nothing scheduled on it (see Flavor.standby); healthy if it could serve. */
  readonly warm?: boolean;
}

export interface PrepareContext {
  readonly groupId: string;
  readonly configHash: string;
  readonly logicalId?: string;
}

/** A flavor bound to one group's `flavor.properties`: turns a machine into a cluster member. */
export interface Flavor {
  /** Adds what the machine needs at boot (init script, tags) to a bare spec. */
  prepare(spec: InstanceSpec, ctx: PrepareContext): Promise<InstanceSpec>;
  /** Health of each instance, by instance id; one call per pass so a flavor can batch its lookups. */
  health(instances: readonly Instance[]): Promise<Map<string, HealthReport>>;
  /** Moves work off an instance before it is destroyed (bounded in time). */
  drain(instance: Instance): Promise<void>;
  /**
   * Puts a joined member in the group's warm pool (`warm`: nothing is scheduled on it, and health reports it `warm`)
   * or takes it out to serve. Flavors without it have no warm pool.
   */
  standby?(instance: Instance, warm: boolean): Promise<void>;
  /** Cleans up cluster state once the machine is gone (for example removes a Swarm node). */
  destroyed(instance: Instance): Promise<void>;
  /** Each pass: clean up members whose machines vanished without Capstan (for example their Down Swarm nodes). */
  tidy?(groupId: string, live: readonly Instance[]): Promise<void>;
}

/** Labels a machine carries, as Swarm placement constraints see them. */
export interface MachineLabels {
  /** Labels of its Swarm node (constraint `node.labels.KEY`). */
  readonly node: Readonly<Record<string, string>>;
  /** Labels of its Docker engine (constraint `engine.labels.KEY`). */
  readonly engine: Readonly<Record<string, string>>;
}

export interface FlavorKind {
  readonly name: string;
  /** JSON Schema of `flavor.properties`. */
  readonly schema: object;
  /** Checks beyond the schema, with the whole allocation in view; messages name JSON paths. */
  validate?(properties: unknown, allocation: { size?: number; logicalIds?: readonly string[] }): string[];
  create(properties: unknown): Flavor;
  /** Its flavors keep a warm pool (they have `standby`): a spec's `warm` is allowed only then. */
  readonly warm?: boolean;
  /**
   * The labels every new machine of group `groupId` will carry, known before it exists: those only made at its
   * boot (a templated value) are left out. What the autoscaler counts on when it adds a machine for a task.
   */
  labels?(properties: unknown, groupId: string): MachineLabels;
  /**
   * Checks against the cluster as it is, before a version is stored (commit, scale): what no spec alone can tell,
   * such as how many managers the whole Swarm would have. Messages start with a JSON path.
   */
  admit?(properties: unknown, allocation: { size?: number; logicalIds?: readonly string[] }, groupId: string): Promise<string[]>;
}

/** The kinds a spec may name, by name, and the checks of optional sections (autoscale) owned elsewhere. */
export interface Plugins {
  readonly providers: ReadonlyMap<string, import('./instance.js').ProviderKind>;
  readonly flavors: ReadonlyMap<string, FlavorKind>;
  /** Whole-spec checks beyond the schema; each problem names its JSON path. */
  readonly checks?: readonly ((spec: import('./group.js').GroupSpec) => readonly { readonly path: string; readonly message: string }[])[];
}
