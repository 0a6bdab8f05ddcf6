import type { Logger } from '../log.js';
import { CapstanError } from '../errors.js';
import type { GroupController, GroupSpec, GroupStatus, Instance, PlanPreview, Plugins, SpecVersion } from '../spi/index.js';
import { configHash, logicalIdOf, TAG } from './identity.js';
import type { Plan } from './plan-types.js';
import { plan } from './planner.js';
import { desiredSize, poolSize } from './allocation.js';
import { GroupLoop, type LoopOptions } from './loop.js';

export interface ControllerOptions {
  readonly plugins: Plugins;
  readonly logger: Logger;
  /**
   * The longest wait between passes (default 10 s); sooner when the plan says (a `healthyFor` ending, say), and every
   * `busyMs` (default 1 s) while it waits for something to be observed (machines booting, what it just did).
   */
  readonly intervalMs?: number;
  readonly busyMs?: number;
  /** Provider calls and drains in flight per group. */
  readonly concurrency?: number;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** How long a launched instance that the provider does not list yet still counts as a member. */
  readonly describeLagMs?: number;
  readonly clock?: () => number;
  /** The cluster member Capstan runs on (a Swarm node id): its instance is destroyed last. */
  readonly selfLink?: string;
  /** This Swarm's cluster id (`docker info` Swarm.Cluster.ID): tagged on every instance, filtered on every describe. */
  readonly clusterId?: string;
  /** A rolling update failed: expected to store the failure (and roll back under `onFailure: rollback`). */
  readonly onUpdateFailed?: (id: string, version: number, reason: string) => void;
}

/**
 * Runs one loop per group for one leadership term at a time. stop() (leadership lost) aborts every loop; a loop
 * of the next term starts acting only once the previous term's loop of that group has settled.
 */
export class Controller implements GroupController {
  private readonly loops = new Map<string, GroupLoop>();
  /** Loops of an ended term, by group, until their work in flight settles. */
  private readonly retiring = new Map<string, Promise<unknown>>();
  private readonly o: LoopOptions;

  constructor(options: ControllerOptions) {
    this.o = {
      intervalMs: 10_000,
      busyMs: 1000,
      concurrency: 8,
      backoff: { baseMs: 1000, maxMs: 60_000 },
      describeLagMs: 5 * 60_000,
      clock: Date.now,
      ...options,
    };
  }

  /** Starts managing (or moves on) a group; a version older than the one in force is ignored: versions only move forward. */
  apply(version: SpecVersion): void {
    const loop = this.loops.get(version.id);
    if (loop) {
      if (version.version <= loop.version.version) return;
      loop.configure(version);
    } else this.loops.set(version.id, new GroupLoop(this.o, version, this.retiring.get(version.id)));
    this.o.logger.info({ event: 'group.applied', group: version.id, version: version.version }, `group ${version.id} at version ${version.version}`);
    this.trigger(version.id);
  }

  trigger(id: string): void {
    this.loops.get(id)?.wake();
  }

  /** A member's health may have changed (a node event): every group passes soon, bursts of events coalesced. */
  healthChanged(): void {
    for (const loop of this.loops.values()) loop.wake(250);
  }

  status(id: string): GroupStatus | undefined {
    return this.loops.get(id)?.status();
  }

  list(): GroupStatus[] {
    return [...this.loops.values()].map((l) => l.status());
  }

  /** Runs one pass of a group now and waits for it (tests, benchmarks, the CLI's --once). */
  async reconcile(id: string): Promise<Plan | undefined> {
    const loop = this.loop(id);
    return loop.exclusive(() => loop.pass());
  }

  /** The group's live instances as the provider lists them now (no writes, no cluster clean-up). */
  async instances(id: string): Promise<Instance[]> {
    const loop = this.loop(id);
    return (await loop.observe()).map((o) => o.instance);
  }

  /**
   * What a commit of `spec` leads to from what runs now: creations, removals and replacements in all. A dry run:
   * it reads (describe, health) and writes nothing anywhere.
   */
  async preview(spec: GroupSpec): Promise<PlanPreview> {
    const probe = new GroupLoop(this.o, { id: spec.id, version: 0, createdAt: '', spec });
    probe.stop();
    const observed = await probe.observe();
    const hash = configHash(spec);
    const p = plan({ spec, configHash: hash, observed, now: this.o.clock(), paused: true });
    const destroy = p.actions.flatMap((a) => (a.kind === 'destroy' ? a.ids : []));
    const kept = observed.map((o) => o.instance).filter((i) => !destroy.includes(i.id));
    const replace = kept.filter((i) => i.tags[TAG.config] !== hash);
    const current = kept.length - replace.length;
    const missing = p.actions.flatMap((a) => (a.kind === 'provision' ? (a.logicalIds ?? []) : []));
    // The warm pool is part of the group, within bounds.max.
    const size = desiredSize(spec);
    const pool = poolSize(spec);
    const standby = p.actions.find((a) => a.kind === 'standby');
    const moves = standby?.kind === 'standby' ? { warm: standby.warm, activate: standby.active, stop: standby.stop, start: standby.start } : {};
    return {
      create: Math.max(0, size + pool - current),
      ...Object.fromEntries(Object.entries(moves).filter(([, ids]) => ids.length > 0)),
      createLogicalIds: [...missing, ...replace.map((i) => logicalIdOf(i)).filter((id): id is string => id !== undefined)],
      destroy,
      replace: replace.map((i) => i.id),
    };
  }

  /** Stop managing; instances stay. */
  async free(id: string): Promise<void> {
    const loop = this.loops.get(id);
    this.loops.delete(id);
    loop?.stop();
    loop?.forget();
    this.o.logger.info({ event: 'group.freed', group: id }, `group ${id} freed; its instances keep running`);
  }

  /** Destroys every instance of the group (drained first) and stops managing it. */
  async destroy(id: string): Promise<void> {
    const loop = this.loop(id);
    await loop.exclusive(async () => {
      const members = await loop.observe();
      await loop.destroy(loop.cfg, members.map((o) => o.instance), 'group-destroyed');
    });
    await this.free(id);
  }

  /** Ends this term (leadership lost, or shutdown): no loop starts another write. Resolves once all settled. */
  stop(): Promise<unknown> {
    for (const [id, loop] of this.loops) {
      loop.stop();
      const settled = loop.settled();
      this.retiring.set(id, settled);
      void settled.then(() => this.retiring.get(id) === settled && this.retiring.delete(id));
    }
    this.loops.clear();
    return Promise.all(this.retiring.values());
  }

  private loop(id: string): GroupLoop {
    const loop = this.loops.get(id);
    if (!loop) throw new CapstanError('notFound', `no group "${id}"`);
    return loop;
  }
}
