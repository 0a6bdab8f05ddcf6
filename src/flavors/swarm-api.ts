/**
 * What the Swarm flavors do to the Swarm, through one manager's API: nodes, join tokens and addresses, node updates,
 * demotion and removal under one membership lock. One instance per Docker client (swarmOf), shared by the flavors.
 */
import type Docker from 'dockerode';
import { CapstanError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';

export type Role = 'worker' | 'manager';
/** Instance tag holding the link id; the node's engine label INSTANCE_LABEL carries the same value. */
export const LINK_TAG = 'capstan.link';
export const INSTANCE_LABEL = 'capstan.instance';
/** Engine label with the group id, so orphan cleanup can stay within one group. */
export const GROUP_LABEL = 'capstan.group';

/** The parts of a Swarm node (GET /nodes) the flavor reads. */
import type { SwarmNode } from '../spi/swarm.js';
export type { SwarmNode };

export interface ManagerView {
  readonly id: string;
  readonly reachable: boolean;
}

/**
 * Why removing `leaving` from the managers (demotion or removal) would lose Raft quorum, or undefined if it is safe:
 * the managers that remain must have a reachable majority, and at least one must remain.
 */
export function quorumRefusal(managers: readonly ManagerView[], leaving: string): string | undefined {
  const remaining = managers.filter((m) => m.id !== leaving);
  if (remaining.length === managers.length) return undefined;
  if (remaining.length === 0) return `node ${leaving} is the last manager`;
  const reachable = remaining.filter((m) => m.reachable).length;
  if (2 * reachable > remaining.length) return undefined;
  return `removing manager ${leaving} would leave ${reachable} reachable of ${remaining.length} managers, not a majority`;
}

export interface JoinInfo {
  readonly tokens: Record<Role, string>;
  /** Every manager a machine may join through, the leader first: the leader may be gone by the time it boots. */
  readonly addrs: readonly string[];
}

const JOIN_INFO_TTL_MS = 5_000;
const SELF_TTL_MS = 60_000;

export class Swarm {
  /** Demotions and removals of managers one at a time, each judged on a fresh node list. */
  private membership: Promise<unknown> = Promise.resolve();
  private joinInfo?: { at: number; value: Promise<JoinInfo> };
  private self?: { at: number; id: string };
  /** Per group, from its latest tidy: when, and the launch times of its live machines not linked to any node yet. */
  readonly unjoined = new Map<string, { at: number; launchedAt: readonly number[] }>();

  constructor(
    readonly docker: Docker,
    readonly logger: Logger,
    readonly pollMs: number,
  ) {}

  async nodes(): Promise<SwarmNode[]> {
    return (await this.docker.listNodes()) as SwarmNode[];
  }

  /** The id of the node whose API this is: the one Capstan runs on. */
  async selfId(): Promise<string | undefined> {
    if (!this.self || Date.now() - this.self.at > SELF_TTL_MS) {
      const id = ((await this.docker.info()) as { Swarm?: { NodeID?: string } }).Swarm?.NodeID;
      this.self = id ? { at: Date.now(), id } : undefined;
    }
    return this.self?.id;
  }

  /** Join tokens and the addresses of the Ready, reachable managers (the leader first); briefly cached for batches. */
  async join(): Promise<JoinInfo> {
    if (!this.joinInfo || Date.now() - this.joinInfo.at > JOIN_INFO_TTL_MS) {
      const value = this.readJoinInfo();
      this.joinInfo = { at: Date.now(), value };
      value.catch(() => (this.joinInfo = undefined));
    }
    return this.joinInfo.value;
  }

  private async readJoinInfo(): Promise<JoinInfo> {
    const [swarm, managers] = await Promise.all([
      this.docker.swarmInspect() as Promise<{ JoinTokens: { Worker: string; Manager: string } }>,
      this.docker.listNodes({ filters: JSON.stringify({ role: ['manager'] }) }) as Promise<SwarmNode[]>,
    ]);
    const candidates = managers
      .filter((n) => n.Status.State === 'ready' && n.ManagerStatus?.Reachability === 'reachable' && n.ManagerStatus.Addr)
      .sort((a, b) => Number(Boolean(b.ManagerStatus!.Leader)) - Number(Boolean(a.ManagerStatus!.Leader)));
    if (candidates.length === 0) throw new CapstanError('noLeader', 'no Ready, reachable manager to join');
    return { tokens: { worker: swarm.JoinTokens.Worker, manager: swarm.JoinTokens.Manager }, addrs: candidates.map((n) => n.ManagerStatus!.Addr) };
  }

  /** Runs `fn` after every earlier membership change has settled. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.membership.then(fn, fn);
    this.membership = run.catch(() => undefined);
    return run;
  }

  /** Demotes a manager unless that would lose quorum; waits (bounded) until it has left the Raft members. */
  demote(nodeId: string): Promise<void> {
    return this.exclusive(async () => {
      const managers = (await this.docker.listNodes({ filters: JSON.stringify({ role: ['manager'] }) })) as SwarmNode[];
      // Quorum is the Raft members': a manager node without ManagerStatus is none (say, given up by a recovery).
      const members = managers.filter((n) => n.ManagerStatus !== undefined);
      const refusal = quorumRefusal(
        members.map((n) => ({ id: n.ID, reachable: n.ManagerStatus?.Reachability === 'reachable' })),
        nodeId,
      );
      if (refusal) throw new CapstanError('quorum', refusal, { node: nodeId });
      if (!managers.some((n) => n.ID === nodeId)) return;
      await this.update(nodeId, { Role: 'worker' });
      this.logger.info({ node: nodeId }, 'manager demoted');
      await this.poll('demotion', 30_000, async () => {
        const node = (await this.docker.getNode(nodeId).inspect()) as SwarmNode;
        return node.ManagerStatus === undefined;
      });
    });
  }

  /**
   * Node spec changes on a fresh copy (`change` may compute them from it), retried when another update got in
   * between (Docker: out of sequence).
   */
  async update(nodeId: string, change: Partial<SwarmNode['Spec']> | ((spec: SwarmNode['Spec']) => Partial<SwarmNode['Spec']>)): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const node = (await this.docker.getNode(nodeId).inspect()) as SwarmNode;
      const changed = typeof change === 'function' ? change(node.Spec) : change;
      try {
        await this.docker.getNode(nodeId).update({ _query: { version: node.Version.Index }, _body: { ...node.Spec, ...changed } });
        return;
      } catch (err) {
        if (attempt >= 5 || !/out of sequence/i.test(String((err as Error).message))) throw err;
      }
    }
  }

  async remove(nodeId: string): Promise<void> {
    try {
      await this.docker.getNode(nodeId).remove({ force: true });
      this.logger.info({ node: nodeId }, 'node removed');
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }

  /**
   * Demotes a Raft member first (if quorum allows), then removes the node. A manager node that is no member (given up
   * by a recovery) is removed as it is: Swarm refuses to demote it ("can't find manager in raft memberlist").
   */
  async removeNode(node: SwarmNode): Promise<void> {
    if (node.ManagerStatus !== undefined) await this.demote(node.ID);
    await this.remove(node.ID);
  }

  /** Polls `done` until true or `timeoutMs` passes (then false); errors in between count as not done. */
  async poll(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await done().catch(() => false)) return true;
      if (Date.now() >= deadline) {
        this.logger.warn({ what, timeoutMs }, `gave up waiting for ${what}`);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }
}

/** Nodes by the link id in their engine label. */
export function linked(nodes: readonly SwarmNode[]): Map<string, SwarmNode[]> {
  const out = new Map<string, SwarmNode[]>();
  for (const node of nodes) {
    const link = node.Description?.Engine?.Labels?.[INSTANCE_LABEL];
    if (link !== undefined) out.set(link, [...(out.get(link) ?? []), node]);
  }
  return out;
}

const swarms = new WeakMap<Docker, Swarm>();

/** One Swarm per client, so the flavors and the node cleanup share the membership lock (pass the same client). */
export function swarmOf(docker: Docker, logger?: Logger, pollMs?: number): Swarm {
  let swarm = swarms.get(docker);
  if (!swarm) {
    swarm = new Swarm(docker, (logger ?? createLogger()).child({ flavor: 'swarm' }), pollMs ?? 500);
    swarms.set(docker, swarm);
  }
  return swarm;
}
