import type { HealthReport, Instance } from '../spi/index.js';
import { durationMs } from '../spi/quantity.js';
import { ownInstances, TAG } from './identity.js';
import type { Config, Owner } from './owners.js';
import type { Observed } from './plan-types.js';

interface Known {
  readonly instance: Instance;
  readonly at: number;
}

export interface MembersOptions {
  readonly clock: () => number;
  /** How long a launched instance that the provider does not list yet still counts as a member. */
  readonly describeLagMs: number;
  readonly clusterId?: string;
}

/**
 * What one loop knows of its group's members: the provider's listing (per location), launches not listed yet and
 * destructions still listed (eventual consistency), and since when this replica has seen each healthy or unhealthy.
 */
export class Members {
  private readonly launched = new Map<string, Known>();
  private readonly destroyed = new Map<string, number>();
  private readonly healthySince = new Map<string, number>();
  private readonly unhealthySince = new Map<string, number>();
  /** When this replica started stopped machines (the warm pool): their nodes read Down until their engines rejoin. */
  private readonly started = new Map<string, number>();
  /** Which location's provider listed each instance (launches not yet listed are the current one's). */
  private owners = new Map<string, Owner>();
  health = new Map<string, HealthReport>();
  /** The members as of the latest observation, with launches and destructions since then. */
  list: Instance[] = [];
  /** Counts changes of `list`: a status built from an older one is stale. */
  revision = 0;
  /** Untagged instances of this group that the flavor links to a member of this cluster: its own, to be tagged. */
  adopt: Instance[] = [];
  /** Untagged instances of this group that nothing links to this cluster: neither counted nor touched. */
  unclaimed: Instance[] = [];

  constructor(private readonly o: MembersOptions) {}

  /**
   * One describe and one batch of health checks per location (the current one, and any where earlier versions'
   * machines live); in-flight launches count as members until listed. No writes.
   */
  async observe(cfg: Config): Promise<Observed[]> {
    const now = this.o.clock();
    const owners = [cfg, ...cfg.former];
    const found = await Promise.all(owners.map(async (o) => ownInstances(await o.provider.describe({ [TAG.group]: cfg.version.id }), this.o.clusterId)));
    // An instance listed in two locations (two specs naming one engine) belongs to the first: the current one.
    this.owners = new Map();
    const listed: Instance[] = [];
    const untagged = new Set<string>();
    found.forEach((f, n) => {
      for (const i of [...f.own, ...f.untagged]) {
        if (this.owners.has(i.id)) continue;
        this.owners.set(i.id, owners[n]!);
        listed.push(i);
      }
      for (const i of f.untagged) untagged.add(i.id);
    });
    for (const [id, k] of this.launched) if (this.owners.has(id) || now - k.at > this.o.describeLagMs) this.launched.delete(id);
    for (const [id, at] of this.destroyed) if (!this.owners.has(id) || now - at > this.o.describeLagMs) this.destroyed.delete(id);
    let members = [...listed.filter((i) => !this.destroyed.has(i.id)), ...[...this.launched.values()].map((k) => k.instance)];
    // With one location (the usual case) every member is the current config's: no per-member filter or merge.
    const reports = await Promise.all(owners.length === 1 ? [cfg.flavor.health(members)] : owners.map((o) => o.flavor.health(members.filter((i) => this.ownerOf(i.id, cfg) === o))));
    // A flavor's answer is a new map each call, kept as it is (read only).
    this.health = reports.length === 1 ? reports[0]! : new Map(reports.flatMap((r) => [...r]));
    // An untagged machine is this cluster's only when the flavor links it to one of its members (a node of this
    // Swarm): two upgraded Swarms sharing one engine or account would otherwise each count the other's untagged
    // machines as their own, and scale them in.
    if (untagged.size) {
      const claimed = (i: Instance) => this.health.get(i.id)?.link !== undefined;
      this.adopt = members.filter((i) => untagged.has(i.id) && claimed(i) && this.owners.get(i.id) === cfg);
      this.unclaimed = members.filter((i) => untagged.has(i.id) && !claimed(i));
      if (this.unclaimed.length) members = members.filter((i) => !untagged.has(i.id) || claimed(i));
    } else {
      this.adopt = [];
      this.unclaimed = [];
    }
    this.list = members;
    this.revision++;
    // One loop over the members: since when each is healthy or unhealthy, and what the planner sees of it.
    const observed: Observed[] = [];
    let healthy = 0;
    let unhealthy = 0;
    const wakeMs = durationMs(cfg.version.spec.update.healthTimeout);
    for (const instance of members) {
      const h = this.health.get(instance.id);
      let health = h?.health ?? 'unknown';
      // A machine started moments ago is no evidence yet, like one just launched, until healthy or its deadline.
      const started = this.started.get(instance.id);
      const waking = started !== undefined && health !== 'healthy' && now - started <= wakeMs;
      if (started !== undefined && !waking) this.started.delete(instance.id);
      if (waking && health === 'unhealthy') health = 'unknown';
      const o: Mutable<Observed> = { instance, health, ...(waking ? { waking } : {}) };
      if (health === 'healthy') {
        healthy++;
        o.healthySince = since(this.healthySince, instance.id, now);
      } else this.healthySince.delete(instance.id);
      if (health === 'unhealthy') {
        unhealthy++;
        o.unhealthySince = since(this.unhealthySince, instance.id, now);
      } else this.unhealthySince.delete(instance.id);
      if (h?.link !== undefined) o.joined = true;
      if (h?.tasks !== undefined) o.tasks = h.tasks;
      if (h?.protected) o.protected = true;
      if (h?.warm) o.warm = true;
      observed.push(o);
    }
    // Members are distinct, so more entries than members counted means some are of instances gone.
    if (this.healthySince.size > healthy || this.unhealthySince.size > unhealthy || this.started.size > 0) {
      const live = new Set(members.map((i) => i.id));
      for (const map of [this.healthySince, this.unhealthySince, this.started]) for (const id of map.keys()) if (!live.has(id)) map.delete(id);
    }
    return observed;
  }

  ownerOf(id: string, cfg: Config): Owner {
    return this.owners.get(id) ?? cfg;
  }

  /** Launched instances are members from the moment the provider returns them, not from the next observation. */
  launchedNow(instances: readonly Instance[]): void {
    const at = this.o.clock();
    for (const instance of instances) this.launched.set(instance.id, { instance, at });
    const known = new Set(this.list.map((i) => i.id));
    this.list = [...this.list, ...instances.filter((i) => !known.has(i.id))];
    this.revision++;
  }

  /** Started machines read `unknown`, not unhealthy, until they are healthy or their health deadline passes. */
  startedNow(ids: readonly string[]): void {
    const at = this.o.clock();
    for (const id of ids) this.started.set(id, at);
  }

  destroyedNow(instances: readonly Instance[]): void {
    const at = this.o.clock();
    for (const i of instances) {
      this.destroyed.set(i.id, at);
      this.launched.delete(i.id);
    }
    const gone = new Set(instances.map((i) => i.id));
    this.list = this.list.filter((i) => !gone.has(i.id));
    this.revision++;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Since when a member has met a test without a break, as this replica saw it: from `now` if it just began. */
function since(map: Map<string, number>, id: string, now: number): number {
  const at = map.get(id);
  if (at !== undefined) return at;
  map.set(id, now);
  return now;
}
