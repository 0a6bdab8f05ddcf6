/**
 * Recovering a Swarm that lost its Raft majority for good (`capstan recover`, manager.recover): with no leader, no
 * replica can act, so an operator asks the replica on a surviving manager to re-initialise the Swarm from its own
 * state (`docker swarm init --force-new-cluster`). Refused while the Swarm has a leader or any other manager still
 * answers on its Swarm port: two Swarms with the same name would each go on alone. Afterwards the managers group
 * grows back to its size and the dead managers' nodes are removed by the flavor's tidy.
 */
import { connect } from 'node:net';
import type Docker from 'dockerode';
import { CapstanError } from '../errors.js';

const LEADER_PROBE_MS = 8000;

export interface RecoverResult {
  /** This manager, now the only one, and the address it advertises. */
  readonly nodeId: string;
  readonly advertiseAddr: string;
  /** The managers that were given up: Raft members no longer. */
  readonly gaveUp: readonly { readonly nodeId: string; readonly addr: string }[];
}

interface SwarmInfo {
  readonly NodeID?: string;
  readonly NodeAddr?: string;
  readonly LocalNodeState?: string;
  readonly ControlAvailable?: boolean;
  readonly RemoteManagers?: readonly { readonly NodeID: string; readonly Addr: string }[] | null;
}

/** Whether something accepts a TCP connection at host:port within `ms`. */
export function answers(addr: string, ms: number): Promise<boolean> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)), timeout: ms });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

export async function recoverQuorum(docker: Docker, probe: (addr: string) => Promise<boolean> = (a) => answers(a, 2000)): Promise<RecoverResult> {
  const swarm = ((await docker.info()) as { Swarm?: SwarmInfo }).Swarm ?? {};
  if (swarm.LocalNodeState !== 'active' || !swarm.ControlAvailable || !swarm.NodeID || !swarm.NodeAddr) {
    throw new CapstanError('conflict', 'this engine is not a Swarm manager: run recover on a surviving manager');
  }
  // Listing nodes needs a leader: it answers only while the Swarm has one (without, it waits out a deadline).
  const led = await Promise.race([docker.listNodes().then(() => true, () => false), new Promise<boolean>((r) => setTimeout(r, LEADER_PROBE_MS, false).unref())]);
  if (led) throw new CapstanError('conflict', 'the Swarm has a leader: nothing to recover');
  const others = (swarm.RemoteManagers ?? []).filter((m) => m.NodeID !== swarm.NodeID);
  const alive = (await Promise.all(others.map(async (m) => ((await probe(m.Addr)) ? m : undefined)))).filter((m) => m !== undefined);
  if (alive.length) {
    throw new CapstanError('conflict', `managers still answer (${alive.map((m) => m.Addr).join(', ')}): wait for them to rejoin, or stop them for good before recovering`, {
      answering: alive.map((m) => ({ nodeId: m.NodeID, addr: m.Addr })),
    });
  }
  await docker.swarmInit({ ForceNewCluster: true, ListenAddr: '0.0.0.0:2377', AdvertiseAddr: swarm.NodeAddr }).catch((error: unknown) => {
    throw new CapstanError('conflict', `docker swarm init --force-new-cluster failed: ${(error as Error).message}`);
  });
  return { nodeId: swarm.NodeID, advertiseAddr: swarm.NodeAddr, gaveUp: others.map((m) => ({ nodeId: m.NodeID, addr: m.Addr })) };
}
