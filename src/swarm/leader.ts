import type Docker from 'dockerode';
import type { SwarmNode as FullNode } from '../spi/swarm.js';
import type { Logger } from '../log.js';
import { leadership as leadershipGauge } from '../metrics.js';
import { Ticker } from '../ticker.js';

/** The part of `GET /info` that leadership reads. */
export interface SwarmInfo {
  readonly Swarm?: {
    readonly NodeID?: string;
    readonly LocalNodeState?: string;
    readonly ControlAvailable?: boolean;
    readonly Error?: string;
  };
}

/** The part of one `GET /nodes` entry that leadership reads. */
/** What leadership reads of a node. */
export type SwarmNode = Pick<FullNode, 'ID' | 'ManagerStatus'>;

/** Who leads, as seen from one node. Any doubt is `leading: false` with an `error`. */
export interface Verdict {
  readonly nodeId?: string;
  readonly leading: boolean;
  readonly leaderNodeId?: string;
  /** Host part of the leader's `ManagerStatus.Addr`. */
  readonly leaderAddr?: string;
  readonly error?: string;
}

export interface LeadershipStatus extends Verdict {
  /** When this replica first saw the current verdict (this leader, or this doubt), ISO 8601. */
  readonly since?: string;
  /** When the latest check finished, ISO 8601: how fresh the verdict is. */
  readonly checkedAt?: string;
}

/** Host part of a `host:port` address; IPv6 may be bracketed. */
export function hostOf(addr: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (bracketed) return bracketed[1]!;
  const colon = addr.lastIndexOf(':');
  // More than one colon and no brackets: a bare IPv6 address without a port.
  return colon > 0 && addr.indexOf(':') === colon ? addr.slice(0, colon) : addr;
}

/** This node leads iff the Swarm is active here, it is a manager, and it is the one node `/nodes` calls leader. */
export function decide(info: SwarmInfo, nodes: readonly SwarmNode[]): Verdict {
  const swarm = info.Swarm;
  const nodeId = swarm?.NodeID || undefined;
  const self = nodeId ? { nodeId } : {};
  if (swarm?.LocalNodeState !== 'active') {
    const detail = swarm?.Error ? `: ${swarm.Error}` : '';
    return { ...self, leading: false, error: `swarm is ${swarm?.LocalNodeState || 'unknown'} here, not active${detail}` };
  }
  if (!nodeId) return { leading: false, error: 'no Swarm node id in /info' };
  if (!swarm.ControlAvailable) return { nodeId, leading: false, error: 'this node is not a manager' };
  const leaders = nodes.filter((node) => node.ManagerStatus?.Leader === true);
  if (leaders.length === 0) return { nodeId, leading: false, error: 'no leader among the managers' };
  if (leaders.length > 1) {
    return { nodeId, leading: false, error: `${leaders.length} leaders listed: ${leaders.map((n) => n.ID).join(', ')}` };
  }
  const leader = leaders[0]!;
  const addr = leader.ManagerStatus?.Addr;
  return { nodeId, leading: leader.ID === nodeId, leaderNodeId: leader.ID, ...(addr ? { leaderAddr: hostOf(addr) } : {}) };
}

/**
 * While in doubt (an election under way, the daemon not answering) the next check comes this soon: Raft names a new
 * leader 10-19 s after losing one, and a replica that was serving should act the moment its node is named, not up to
 * a poll later (no node event announces a leader change). After DOUBT_FAST_MS of doubt, the usual poll again.
 */
const DOUBT_POLL_MS = 250;
const DOUBT_FAST_MS = 60_000;

export interface LeadershipOptions {
  readonly docker: Docker;
  readonly logger: Logger;
  /** Backstop poll interval; node events trigger a check sooner. */
  readonly pollMs?: number;
  /** Deadline of one check (`/info` and `/nodes` together); past it this replica stops leading. */
  readonly timeoutMs?: number;
}

/**
 * Tracks whether this replica's node is the Swarm leader. Gives leadership up at once on any doubt, so after the
 * daemon stops answering a leader steps down within `pollMs + timeoutMs`. Single use: start once, stop once.
 */
export class Leadership {
  readonly #docker: Docker;
  readonly #logger: Logger;
  readonly #pollMs: number;
  readonly #timeoutMs: number;
  readonly #listeners = new Set<(leading: boolean) => void>();
  readonly #nodeListeners = new Set<() => void>();
  /** Checks never overlap, so verdicts stay in order: every `pollMs`, and once more after node events. */
  readonly #ticker: Ticker;
  #state: 'new' | 'running' | 'stopped' = 'new';
  #verdict: Verdict = { leading: false };
  #since?: string;
  #checkedAt?: string;
  #reconnectTimer?: NodeJS.Timeout;
  #events?: NodeJS.ReadableStream;
  #eventsSince?: number;

  constructor({ docker, logger, pollMs = 2000, timeoutMs = 5000 }: LeadershipOptions) {
    this.#docker = docker;
    this.#logger = logger.child({ component: 'leadership' });
    this.#pollMs = pollMs;
    this.#timeoutMs = timeoutMs;
    // Each check is due `pollMs` after the last, sooner while in doubt.
    this.#ticker = new Ticker({ step: () => this.#check().then(() => this.#nextCheckAt()), intervalMs: pollMs });
  }

  /** Starts watching; resolves once the first check is done (leading or not). */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('Leadership can only be started once');
    this.#state = 'running';
    leadershipGauge.set(0);
    this.#watchEvents();
    await this.#ticker.trigger();
  }

  /** Stops watching and gives leadership up (emits false if it was leading). */
  stop(): void {
    if (this.#state !== 'running') return;
    this.#state = 'stopped';
    void this.#ticker.stop();
    clearTimeout(this.#reconnectTimer);
    destroy(this.#events);
    const wasLeading = this.#verdict.leading;
    this.#verdict = { ...(this.#verdict.nodeId ? { nodeId: this.#verdict.nodeId } : {}), leading: false, error: 'stopped' };
    this.#since = new Date().toISOString();
    if (wasLeading) this.#emit(false);
  }

  get leading(): boolean {
    return this.#verdict.leading;
  }

  status(): LeadershipStatus {
    return {
      ...this.#verdict,
      ...(this.#since ? { since: this.#since } : {}),
      ...(this.#checkedAt ? { checkedAt: this.#checkedAt } : {}),
    };
  }

  /** Manager address (host only) of the current leader, for forwarding requests; undefined while in doubt. */
  leaderAddr(): string | undefined {
    return this.#verdict.leaderAddr;
  }

  /** Calls `fn` on every Swarm node event (a node joined, went Down, was drained...); returns an unsubscribe. */
  onNodeEvent(fn: () => void): () => void {
    this.#nodeListeners.add(fn);
    return () => this.#nodeListeners.delete(fn);
  }

  /** Calls `fn` on every change of this replica's leadership; returns a function that unsubscribes. */
  onChange(fn: (leading: boolean) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async #check(): Promise<void> {
    let verdict: Verdict;
    try {
      const [info, nodes] = await withDeadline(
        Promise.all([this.#docker.info() as Promise<SwarmInfo>, this.#docker.listNodes() as Promise<SwarmNode[]>]),
        this.#timeoutMs,
      );
      verdict = decide(info, nodes);
    } catch (err) {
      verdict = { ...(this.#verdict.nodeId ? { nodeId: this.#verdict.nodeId } : {}), leading: false, error: messageOf(err) };
    }
    if (this.#state !== 'running') return;
    this.#checkedAt = new Date().toISOString();
    this.#apply(verdict);
  }

  /** Sooner while in doubt: a doubt's verdicts name no leader, so `#since` is when the doubt began. */
  #nextCheckAt(): number | undefined {
    const now = Date.now();
    const inDoubt = this.#verdict.error !== undefined && now - Date.parse(this.#since!) < DOUBT_FAST_MS;
    return inDoubt ? now + Math.min(this.#pollMs, DOUBT_POLL_MS) : undefined;
  }

  #apply(verdict: Verdict): void {
    const previous = this.#verdict;
    this.#verdict = verdict;
    const changed = verdict.leading !== previous.leading || verdict.leaderNodeId !== previous.leaderNodeId;
    if (changed || !this.#since) this.#since = new Date().toISOString();
    if (verdict.error && verdict.error !== previous.error) {
      this.#logger.warn({ error: verdict.error, wasLeading: previous.leading }, 'leadership in doubt');
    } else if (changed) {
      this.#logger.info({ leaderNodeId: verdict.leaderNodeId, leaderAddr: verdict.leaderAddr, leading: verdict.leading }, 'leader seen');
    }
    if (verdict.leading !== previous.leading) this.#emit(verdict.leading);
  }

  #emit(leading: boolean): void {
    leadershipGauge.set(leading ? 1 : 0);
    this.#logger.info({ nodeId: this.#verdict.nodeId }, leading ? 'leading' : 'stepped down');
    for (const listener of [...this.#listeners]) {
      try {
        listener(leading);
      } catch (err) {
        this.#logger.error({ err }, 'leadership listener failed');
      }
    }
  }

  /**
   * Node events (role, availability, labels, state) trigger a check at once; a leader change or leaving the Swarm
   * emits none, so the poll catches those. The stream also ends on the client's idle timeout; it is reopened with
   * `since` so that events in the gap are replayed rather than lost.
   */
  #watchEvents(): void {
    if (this.#state !== 'running') return;
    const since = this.#eventsSince;
    this.#eventsSince = Math.floor(Date.now() / 1000);
    this.#docker
      .getEvents({ filters: { type: ['node'] }, ...(since ? { since } : {}), abortSignal: this.#ticker.signal })
      .then(
        (stream) => {
          if (this.#state !== 'running') return destroy(stream);
          this.#events = stream;
          stream.on('data', () => {
            void this.#ticker.trigger();
            for (const fn of this.#nodeListeners) fn();
          });
          stream.on('error', (err: unknown) => this.#logger.debug({ error: messageOf(err) }, 'node events stream failed'));
          stream.on('close', () => {
            this.#events = undefined;
            this.#rewatch();
          });
        },
        (err: unknown) => {
          this.#logger.debug({ error: messageOf(err) }, 'cannot watch node events');
          this.#rewatch();
        },
      );
  }

  #rewatch(): void {
    if (this.#state !== 'running') return;
    this.#reconnectTimer = setTimeout(() => this.#watchEvents(), Math.min(this.#pollMs, 1000));
  }
}

function destroy(stream: NodeJS.ReadableStream | undefined): void {
  (stream as { destroy?: () => void } | undefined)?.destroy?.();
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Docker within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
