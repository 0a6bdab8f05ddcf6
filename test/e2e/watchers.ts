// Watchers that sample the lab every few hundred milliseconds while something happens: which machines exist,
// which Swarm nodes serve, when old nodes were drained and their machines went.
import type { Test } from 'tap';
import { Lab, sleep, type Machine } from '../support/lab.js';
import { GROUP, readyActive, sameSet, short } from './common.js';

/** Watchers still sampling: a scenario that fails half-way leaves them to stopAll(). */
const running = new Set<{ stop(): Promise<void> }>();

/** Stops every watcher a scenario left running (it failed before stopping them). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((w) => w.stop()));
}

/** Machines (by link id) and Swarm node events; records when each old node was drained and its machine went. */
export class Watch {
  readonly drainedAt = new Map<string, number>(); // node id -> ms
  readonly machineGoneAt = new Map<string, number>(); // link -> ms
  minReady = Infinity;
  private stopped = false;
  private readonly loop: Promise<void>;
  constructor(
    private readonly lab: Lab,
    private readonly linkOf: Map<string, string>, // node id -> link of the old nodes
  ) {
    this.loop = this.run();
    running.add(this);
  }
  private async run() {
    while (!this.stopped) {
      await this.sample();
      await sleep(150);
    }
  }
  private async sample() {
    try {
      const [nodes, machines] = await Promise.all([this.lab.groupNodes(GROUP, this.lab.alive()), this.lab.machines(GROUP)]);
      const now = Date.now();
      this.minReady = Math.min(this.minReady, readyActive(nodes).length);
      for (const n of nodes) if (n.Spec.Availability === 'drain' && !this.drainedAt.has(n.ID)) this.drainedAt.set(n.ID, now);
      const links = new Set(machines.filter((m) => m.state === 'running').map((m) => m.labels['capstan.link']));
      for (const link of this.linkOf.values()) if (!links.has(link) && !this.machineGoneAt.has(link)) this.machineGoneAt.set(link, now);
    } catch {
      // a manager busy in an election: next round
    }
  }
  /** Ends with one more look, so that what settled since the last round is seen too. */
  async stop() {
    running.delete(this);
    this.stopped = true;
    await this.loop;
    await this.sample();
  }
}

export async function linksOf(lab: Lab): Promise<Map<string, string>> {
  const nodes = await lab.groupNodes(GROUP, lab.alive());
  return new Map(nodes.map((n) => [n.ID, n.Description?.Engine?.Labels?.['capstan.instance'] ?? '']));
}

/** Asserts every old node was drained before its machine disappeared (and is gone from the Swarm). */
export async function checkDrainedFirst(tt: Test, lab: Lab, w: Watch, old: Map<string, string>) {
  const now = new Set((await lab.nodes(lab.alive())).map((n) => n.ID));
  for (const [id, link] of old) {
    const drained = w.drainedAt.get(id);
    const gone = w.machineGoneAt.get(link);
    tt.ok(drained !== undefined && gone !== undefined && drained <= gone, `node ${id.slice(0, 8)} drained (${drained}) before its machine went (${gone})`);
    tt.notOk(now.has(id), `node ${id.slice(0, 8)} removed from docker node ls`);
  }
}

/**
 * Samples every 250 ms, independently: the group's machines on the infrastructure engine (which no election
 * blocks), and how many members of the size serve, counted by identity: a live machine whose own Swarm node
 * (engine label capstan.instance = the machine's link) is Ready and Active. Right after a Raft election Swarm
 * reports every node `unknown` for a few seconds, which says nothing about the node: a node read `unknown` keeps
 * the last state seen of it (a node never seen otherwise does not serve); its availability is read as it is.
 */
export class Sampler {
  /** Every machine id ever seen running, with when it was first and last seen. */
  readonly seen = new Map<string, { first: number; last: number }>();
  readonly samples: { at: number; ids: string[] }[] = [];
  /** Serving samples: how many members were missing, and which machines did not serve then. */
  readonly serving: { at: number; missing: number; notServing: string[] }[] = [];
  private readonly lastState = new Map<string, string>();
  private machines: Machine[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(
    private readonly lab: Lab,
    private readonly size: number,
  ) {
    this.loops = [this.every(() => this.sampleMachines()), this.every(() => this.sampleServing())];
    running.add(this);
  }

  private async every(fn: () => Promise<void>) {
    while (!this.stopped) {
      const t0 = Date.now();
      await fn().catch(() => undefined);
      await sleep(Math.max(0, 250 - (Date.now() - t0)));
    }
  }

  private async sampleMachines() {
    const machines = (await this.lab.machines(GROUP)).filter((m) => m.state === 'running');
    const at = Date.now();
    this.machines = machines;
    this.samples.push({ at, ids: machines.map((m) => m.id) });
    for (const m of machines) {
      const s = this.seen.get(m.id);
      if (s) s.last = at;
      else this.seen.set(m.id, { first: at, last: at });
    }
  }

  private async sampleServing() {
    const nodes = await this.lab.groupNodes(GROUP, this.lab.alive());
    // The machines as they are now, not as they were when the node list was asked for (it may block for seconds).
    const machines = (await this.lab.machines(GROUP)).filter((m) => m.state === 'running');
    const at = Date.now();
    const byLink = new Map<string, { state: string; availability: string }[]>();
    for (const n of nodes) {
      if (n.Status.State !== 'unknown') this.lastState.set(n.ID, n.Status.State);
      const known = { state: this.lastState.get(n.ID) ?? 'unknown', availability: n.Spec.Availability };
      const link = n.Description?.Engine?.Labels?.['capstan.instance'];
      if (link) byLink.set(link, [...(byLink.get(link) ?? []), known]);
    }
    const serves = (m: Machine) => (byLink.get(m.labels['capstan.link'] ?? '') ?? []).some((k) => k.state === 'ready' && k.availability === 'active');
    const notServing = machines.filter((m) => !serves(m)).map((m) => short(m.id));
    const count = machines.length - notServing.length;
    this.serving.push({ at, missing: Math.max(0, this.size - count), notServing });
  }

  /** Ids seen running in the samples taken from `from` on. */
  idsSince(from: number): Set<string> {
    return new Set(this.samples.filter((s) => s.at >= from).flatMap((s) => s.ids));
  }

  /** Samples from `from` on whose running machines are not exactly `ids`. */
  differentFrom(ids: Set<string>, from = 0) {
    return this.samples.filter((s) => s.at >= from && !sameSet(s.ids, ids));
  }

  maxMissing(from = 0) {
    return Math.max(0, ...this.serving.filter((s) => s.at >= from).map((s) => s.missing));
  }

  current(): Machine[] {
    return this.machines;
  }

  async stop() {
    running.delete(this);
    this.stopped = true;
    await Promise.all(this.loops);
  }
}
