import type { HealthReport, Instance } from '../spi/index.js';
import { ownInstances, TAG } from './identity.js';
import type { Config, Owner } from './owners.js';
import type { Observed } from './planner.js';

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
  /** Which location's provider listed each instance (launches not yet listed are the current one's). */
  private owners = new Map<string, Owner>();
  health = new Map<string, HealthReport>();
  /** The members as of the latest observation, with launches and destructions since then. */
  list: Instance[] = [];
  /** Counts changes of `list`: a status built from an older one is stale. */
  revision = 0;
  /** Untagged instances of this group that this cluster takes as its own (see ownInstances). */
  adopt: Instance[] = [];

  constructor(private readonly o: MembersOptions) {}

  /**
   * One describe and one batch of health checks per location (the current one, and any where earlier versions'
   * machines live); in-flight launches count as members until listed. No writes.
   */
  async observe(cfg: Config): Promise<Observed[]> {
    const now = this.o.clock();
    const owners = [cfg, ...cfg.former];
    const found = await Promise.all(owners.map(async (o) => ownInstances(await o.provider.describe({ [TAG.group]: cfg.version.id }), this.o.clusterId)));
    this.adopt = found[0]!.adopt;
    // An instance listed in two locations (two specs naming one engine) belongs to the first: the current one.
    this.owners = new Map();
    const listed: Instance[] = [];
    found.forEach((f, n) => {
      for (const i of f.own) {
        if (this.owners.has(i.id)) continue;
        this.owners.set(i.id, owners[n]!);
        listed.push(i);
      }
    });
    for (const [id, k] of this.launched) if (this.owners.has(id) || now - k.at > this.o.describeLagMs) this.launched.delete(id);
    for (const [id, at] of this.destroyed) if (!this.owners.has(id) || now - at > this.o.describeLagMs) this.destroyed.delete(id);
    const members = [...listed.filter((i) => !this.destroyed.has(i.id)), ...[...this.launched.values()].map((k) => k.instance)];
    this.list = members;
    this.revision++;
    const reports = await Promise.all(owners.map((o) => o.flavor.health(members.filter((i) => this.ownerOf(i.id, cfg) === o))));
    this.health = new Map(reports.flatMap((r) => [...r]));
    track(this.healthySince, members, (i) => this.health.get(i.id)?.health === 'healthy', now);
    track(this.unhealthySince, members, (i) => this.health.get(i.id)?.health === 'unhealthy', now);
    return members.map((instance) => {
      const h = this.health.get(instance.id);
      const since = this.healthySince.get(instance.id);
      const bad = this.unhealthySince.get(instance.id);
      return {
        instance,
        health: h?.health ?? 'unknown',
        ...(since === undefined ? {} : { healthySince: since }),
        ...(bad === undefined ? {} : { unhealthySince: bad }),
        ...(h?.link === undefined ? {} : { joined: true }),
      };
    });
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

/** Since when each member has met `test` without a break, as this replica saw it. */
function track(since: Map<string, number>, members: readonly Instance[], test: (i: Instance) => boolean, now: number): void {
  const live = new Set(members.map((i) => i.id));
  for (const i of members) {
    if (!test(i)) since.delete(i.id);
    else if (!since.has(i.id)) since.set(i.id, now);
  }
  for (const id of since.keys()) if (!live.has(id)) since.delete(id);
}
