import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { JSONRPCRequest } from 'json-rpc-2.0';
import { CapstanError } from '../errors.js';
import { RawResponse } from './protocol.js';

/** Marks a call a replica forwarded, so a replica that lost leadership meanwhile answers noLeader instead of forwarding again. */
export const forwardedHeader = 'x-capstan-forwarded';

/**
 * The leader's /rpc URL. `addr` is a host; a port on it (as in Swarm's "10.0.0.1:2377" manager address)
 * is Raft's, not ours, so it is dropped for the API port every replica listens on.
 */
export function leaderUrl(addr: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  let host = addr;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (bracketed) host = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(addr)) host = addr.slice(0, addr.lastIndexOf(':'));
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}/rpc`;
}

export interface ForwardTarget {
  readonly url: string;
  readonly nodeId?: string;
  readonly timeoutMs: number;
  readonly from?: string;
  /**
   * With TLS: this service's certificate (PEM). Every replica serves the same one (one Docker secret), so the leader
   * must present exactly it; nothing, the token included, is sent to a server that does not.
   */
  readonly pinnedCert?: string | Buffer;
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** POST over HTTPS to a server that must present `cert` (by fingerprint; its name is not checked: leaders are addresses). */
function postPinned(url: string, body: string, headers: Record<string, string>, timeoutMs: number, cert: string | Buffer): Promise<{ status: number; text: string }> {
  const pin = new X509Certificate(cert).fingerprint256;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        // Our own certificate is trusted as an anchor (self-signed), public roots for one a CA signed; either way the
        // peer's must be ours.
        ca: [String(cert), ...rootCertificates],
        checkServerIdentity: (_host, peer) => (peer.fingerprint256 === pin ? undefined : new Error("the leader did not present this service's certificate")),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new TimeoutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends one call to the leader and returns its answer untouched (null for a notification). */
export async function forwardCall(call: JSONRPCRequest, target: ForwardTarget, authorization: string | undefined): Promise<RawResponse | null> {
  const headers: Record<string, string> = { 'content-type': 'application/json', [forwardedHeader]: target.from ?? 'unknown' };
  if (authorization !== undefined) headers.authorization = authorization;
  let res: { status: number };
  let text: string;
  try {
    if (target.pinnedCert !== undefined) ({ text, ...res } = await postPinned(target.url, JSON.stringify(call), headers, target.timeoutMs, target.pinnedCert));
    else {
      const answer = await fetch(target.url, { method: 'POST', headers, body: JSON.stringify(call), signal: AbortSignal.timeout(target.timeoutMs) });
      res = answer;
      text = await answer.text();
    }
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : 'unreachable';
    throw new CapstanError('noLeader', `the leader (${target.nodeId ?? 'unknown node'}) is ${reason}`, { leaderNodeId: target.nodeId });
  }
  if (res.status === 204 || call.id === undefined) return null;
  // The leader answers every well-formed call with a JSON-RPC object; anything else means it is not a Capstan leader now.
  if (!text.startsWith('{')) throw new CapstanError('noLeader', `the leader (${target.nodeId ?? 'unknown node'}) answered HTTP ${res.status}`, { leaderNodeId: target.nodeId });
  return new RawResponse(text);
}
