import type { JSONRPCRequest } from 'json-rpc-2.0';
import { CapstanError } from '../errors.js';
import { RawResponse } from './protocol.js';

/** Marks a call a replica forwarded, so a replica that lost leadership meanwhile answers noLeader instead of forwarding again. */
export const forwardedHeader = 'x-capstan-forwarded';

/**
 * The leader's /rpc URL. `addr` is a host; a port on it (as in Swarm's "10.0.0.1:2377" manager address)
 * is Raft's, not ours, so it is dropped for the API port every replica listens on.
 */
export function leaderUrl(addr: string, port: number): string {
  let host = addr;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (bracketed) host = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(addr)) host = addr.slice(0, addr.lastIndexOf(':'));
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/rpc`;
}

export interface ForwardTarget {
  readonly url: string;
  readonly nodeId?: string;
  readonly timeoutMs: number;
  readonly from?: string;
}

/** Sends one call to the leader and returns its answer untouched (null for a notification). */
export async function forwardCall(call: JSONRPCRequest, target: ForwardTarget, authorization: string | undefined): Promise<RawResponse | null> {
  const headers: Record<string, string> = { 'content-type': 'application/json', [forwardedHeader]: target.from ?? 'unknown' };
  if (authorization !== undefined) headers.authorization = authorization;
  let res: Response;
  let text: string;
  try {
    res = await fetch(target.url, { method: 'POST', headers, body: JSON.stringify(call), signal: AbortSignal.timeout(target.timeoutMs) });
    text = await res.text();
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : 'unreachable';
    throw new CapstanError('noLeader', `the leader (${target.nodeId ?? 'unknown node'}) is ${reason}`, { leaderNodeId: target.nodeId });
  }
  if (res.status === 204 || call.id === undefined) return null;
  // The leader answers every well-formed call with a JSON-RPC object; anything else means it is not a Capstan leader now.
  if (!text.startsWith('{')) throw new CapstanError('noLeader', `the leader (${target.nodeId ?? 'unknown node'}) answered HTTP ${res.status}`, { leaderNodeId: target.nodeId });
  return new RawResponse(text);
}
