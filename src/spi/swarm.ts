/** One Swarm node as Docker's API lists it (the fields Capstan reads), shared by the flavors, leadership and autoscaling. */
export interface SwarmNode {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly CreatedAt?: string;
  readonly Spec: {
    readonly Role: 'worker' | 'manager';
    readonly Availability: 'active' | 'pause' | 'drain';
    readonly Labels?: Readonly<Record<string, string>>;
    readonly [key: string]: unknown;
  };
  readonly Description?: {
    readonly Hostname?: string;
    readonly Platform?: { readonly OS?: string; readonly Architecture?: string };
    readonly Resources?: { readonly NanoCPUs?: number; readonly MemoryBytes?: number };
    readonly Engine?: { readonly Labels?: Readonly<Record<string, string>> };
  };
  readonly Status: { readonly State: 'unknown' | 'down' | 'ready' | 'disconnected'; readonly Addr?: string };
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability: 'unknown' | 'unreachable' | 'reachable'; readonly Addr: string };
}
