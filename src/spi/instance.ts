/**
 * Labels an instance carries; the provider stores them with the machine (EC2 tags, container labels).
 * Capstan's own keys: `capstan.group`, `capstan.config` (hash of instance + flavor), `capstan.logical-id`.
 */
export type Tags = Readonly<Record<string, string>>;

/** What a provider is asked to create: already prepared by a flavor. */
export interface InstanceSpec {
  readonly tags: Tags;
  /** Script the machine runs at first boot (user data, container command). */
  readonly init: string;
  /** Fixed identity in logical-id groups (for example a private IP). */
  readonly logicalId?: string;
}

export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped';

/** A live instance as the provider reports it. Terminated machines are never listed. */
export interface Instance {
  readonly id: string;
  readonly tags: Tags;
  readonly state: InstanceState;
  /** Epoch ms of launch; survives restarts of Capstan, unlike anything in memory. */
  readonly launchedAt: number;
  /** Where the machine can be reached, when the provider knows. */
  readonly address?: string;
}

/** A provider bound to one group's `instance.properties`. Batch-first. */
export interface InstanceProvider {
  /** Most instances one provision call may create. */
  readonly maxBatch: number;
  /**
   * Create identical instances (or one per logical id). `intent` is a stable key for this
   * provisioning decision so a retried call does not create twice where the provider can dedupe.
   */
  provision(specs: readonly InstanceSpec[], intent: string): Promise<Instance[]>;
  /** Destroy; ids that no longer exist are success. */
  destroy(ids: readonly string[]): Promise<void>;
  /** Every live instance carrying all of `tags`; pagination stays inside the provider. */
  describe(tags: Tags): Promise<Instance[]>;
  /** Adds tags to live instances, where the provider can (EC2 tags can be added; container labels cannot). */
  tag?(ids: readonly string[], tags: Tags): Promise<void>;
  /**
   * Stops running instances, keeping their disks, so they cost little and can start again (EC2 StopInstances, a
   * container's stop): a warm pool kept stopped. Ids gone or already stopped are success. With `start` or neither.
   */
  stop?(ids: readonly string[]): Promise<void>;
  /** Starts stopped instances again; they boot from the disk they had. Ids already running are success. */
  start?(ids: readonly string[]): Promise<void>;
}

/** A kind of provider, selectable by `instance.provider` in a spec. */
export interface ProviderKind {
  readonly name: string;
  /** JSON Schema of `instance.properties`. */
  readonly schema: object;
  /** Checks beyond the schema; each message names its JSON path. */
  validate?(properties: unknown): string[];
  create(properties: unknown): InstanceProvider;
  /**
   * Where machines made with these properties live (an engine, a region and endpoint). A change of location moves
   * the group's machines in a rolling update, the old ones destroyed through a provider of their own location.
   */
  location?(properties: unknown): string;
  /** Its providers can stop and start machines (they have `stop` and `start`): a spec's `warm.state: stopped` needs it. */
  readonly stoppable?: boolean;
}
