import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import type { Instance } from '../spi/index.js';
import { chunks, mapLimit, valuesOrThrow } from '../concurrency.js';
import { groupTags } from './identity.js';
import type { Members } from './members.js';
import type { Action, StandbyAction } from './plan-types.js';
import type { Config, Owner } from './owners.js';

export interface ActuatorOptions {
  /** Provider calls and drains in flight per group. */
  readonly concurrency: number;
  readonly clusterId?: string;
}

/**
 * Carries out a plan's actions for one loop: provisions in provider-sized batches under intents that name each
 * decision, drains before it destroys. `fence` throws once the loop's term has ended, and is called before every
 * provider or flavor write.
 */
export class Actuator {
  /** Successful provision calls this term: part of each intent, so a new decision never reuses an old one's key. */
  private provisions = 0;
  private readonly term = `${Date.now()}`;

  constructor(
    private readonly o: ActuatorOptions,
    private readonly members: Members,
    private readonly log: Logger,
    private readonly fence: () => void,
  ) {}

  /** Runs every action; one failing action does not stop the others, each failure is told. Returns whether all succeeded. */
  async act(cfg: Config, actions: readonly Action[], failed: (operation: string, err: unknown) => void): Promise<boolean> {
    const results = await Promise.all(
      actions.map(async (a) => {
        try {
          if (a.kind === 'destroy') await this.destroy(cfg, this.members.list.filter((i) => a.ids.includes(i.id)), a.reason);
          else if (a.kind === 'standby') await this.standby(cfg, a);
          else await this.provision(cfg, a.count, a.logicalIds);
          return true;
        } catch (err) {
          failed(a.kind, err);
          return false;
        }
      }),
    );
    return results.every(Boolean);
  }

  private async provision(cfg: Config, count: number, logicalIds?: readonly string[]): Promise<void> {
    const { spec } = cfg.version;
    const { hash, provider, flavor } = cfg;
    // Logical-id groups launch one at a time (each has its own identity); others in provider-sized batches. Each
    // batch's instance specs are prepared when it goes, so memory follows the batches in flight, not the group.
    const members = Array.from({ length: count }, (_, i) => logicalIds?.[i]);
    const batches = (logicalIds ? members.map((l) => [l]) : chunks(members, provider.maxBatch)).map((ids, index) => ({ ids, index }));
    // The intent names this decision: a retry of it (same term, version, members seen, count so far) is
    // recognised by the provider; any later decision has another key, so no name or client token is reused.
    const seen = this.members.list.map((i) => i.id).sort().join(',');
    const decision = `${this.o.clusterId ?? ''}|${spec.id}|${hash}|${this.term}|${cfg.version.version}|${this.provisions}|${seen}`;
    const results = await mapLimit(batches, this.o.concurrency, async ({ ids, index }) => {
      const batch = await Promise.all(
        ids.map((logicalId) =>
          flavor.prepare(
            { tags: groupTags(spec, hash, logicalId, this.o.clusterId), init: '', ...(logicalId === undefined ? {} : { logicalId }) },
            { groupId: spec.id, configHash: hash, ...(logicalId === undefined ? {} : { logicalId }) },
          ),
        ),
      );
      const key = batch.map((s) => s.logicalId ?? '').join(',');
      const intent = createHash('sha256').update(`${decision}|${index}|${key}`).digest('hex').slice(0, 32);
      this.fence();
      const made = await provider.provision(batch, intent);
      this.members.launchedNow(made);
      this.log.info({ event: 'instance.provisioned', count: made.length, ids: made.map((i) => i.id), logicalIds: batch.map((s) => s.logicalId).filter(Boolean), config: hash }, `provisioned ${made.length}`);
      return made.length;
    });
    valuesOrThrow(results);
    this.provisions++;
  }

  /**
   * The warm pool's moves: starts the stopped machines first (a stopped member is activated after its start), then
   * puts members in the pool or takes them out (the flavor sets their availability), then drains and stops machines
   * the pool keeps stopped; each through the provider and flavor of its own location.
   */
  private async standby(cfg: Config, a: StandbyAction): Promise<void> {
    const byId = new Map(this.members.list.map((i) => [i.id, i]));
    const each = async (ids: readonly string[], step: (i: Instance, o: Owner) => Promise<void>) => {
      const results = await mapLimit(ids, this.o.concurrency, async (id) => {
        const instance = byId.get(id);
        if (instance) await step(instance, this.members.ownerOf(id, cfg));
      });
      valuesOrThrow(results);
    };
    const power = async (i: Instance, o: Owner, verb: 'start' | 'stop') => {
      const call = o.provider[verb]?.bind(o.provider);
      if (!call) throw new Error(`the provider of ${i.id} cannot ${verb} machines`);
      this.fence();
      await call([i.id]);
    };
    await each(a.start, async (i, o) => {
      await power(i, o, 'start');
      this.members.startedNow([i.id]);
      this.log.info({ event: 'instance.started', id: i.id }, `${i.id} of the warm pool started`);
    });
    const moves = [...a.warm.map((id) => [id, true] as const), ...a.active.map((id) => [id, false] as const)];
    const warm = new Set(a.warm);
    await each(moves.map(([id]) => id), async (i, { flavor }) => {
      if (!flavor.standby) return;
      this.fence();
      await flavor.standby(i, warm.has(i.id));
      this.log.info({ event: warm.has(i.id) ? 'instance.warm' : 'instance.activated', id: i.id }, warm.has(i.id) ? `${i.id} put in the warm pool` : `${i.id} activated from the warm pool`);
    });
    await each(a.stop, async (i, o) => {
      this.fence();
      await o.flavor.drain(i);
      await power(i, o, 'stop');
      this.log.info({ event: 'instance.stopped', id: i.id }, `${i.id} of the warm pool stopped`);
    });
  }

  /** Drains and destroys, each instance through the provider and flavor of the location it lives in. */
  async destroy(cfg: Config, instances: readonly Instance[], reason: string): Promise<void> {
    const byOwner = new Map<Owner, Instance[]>();
    for (const i of instances) {
      const o = this.members.ownerOf(i.id, cfg);
      byOwner.set(o, [...(byOwner.get(o) ?? []), i]);
    }
    valuesOrThrow(await Promise.allSettled([...byOwner].map(([o, is]) => this.destroyAt(o, is, reason))));
  }

  private async destroyAt({ provider, flavor }: Owner, instances: readonly Instance[], reason: string): Promise<void> {
    if (!instances.length) return;
    // Drain each first (bounded), then destroy in batches, then let the flavor clean up the cluster.
    const drained = await mapLimit(instances, this.o.concurrency, async (i) => {
      this.fence();
      await flavor.drain(i);
    });
    const refused = drained.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    const ready = instances.filter((_, n) => drained[n]!.status === 'fulfilled');
    for (const batch of chunks(ready, provider.maxBatch)) {
      this.fence();
      await provider.destroy(batch.map((i) => i.id));
      this.members.destroyedNow(batch);
      this.log.info({ event: 'instance.destroyed', reason, ids: batch.map((i) => i.id) }, `destroyed ${batch.length} (${reason})`);
      await mapLimit(batch, this.o.concurrency, async (i) => {
        this.fence();
        await flavor.destroyed(i);
      });
    }
    if (refused) throw refused.reason;
  }
}
