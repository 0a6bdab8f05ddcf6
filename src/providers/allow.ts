/**
 * What the operator lets specs name beyond the defaults. Where Capstan sends requests (an EC2 endpoint with signed
 * credentials, a Docker engine that receives the join token) and how powerful a docker machine is are the
 * operator's decision, not the spec author's: specs that go further are refused at validation, before any request
 * leaves. Set by the composition root from CAPSTAN_ALLOW_ENDPOINTS and CAPSTAN_ALLOW_PRIVILEGED.
 */
import { posix } from 'node:path';

export interface OperatorAllow {
  /**
   * URL prefixes (`https://host[:port][/path]`) an aws `endpoint` may start with, and engine addresses
   * (`unix:///path`, `/path`, `tcp://host:port`) a docker `engine` may be. Without any: only AWS's own endpoints
   * (no `endpoint`) and the local Docker socket.
   */
  readonly endpoints?: readonly string[];
  /** docker machines may run privileged, on the host's network, or with capabilities beyond the defaults. */
  readonly privileged?: boolean;
}

/** The local Docker socket: always allowed (it is what Capstan itself uses). */
export const LOCAL_ENGINES: readonly string[] = ['unix:///var/run/docker.sock', 'unix:///run/docker.sock'];

/**
 * An engine as the Docker client reaches it (see createDocker): `unix://` and a normalized socket path, or
 * `tcp://host:port` (userinfo and path ignored, as the client ignores them); undefined when it is neither.
 */
export function engineAddress(engine: string): string | undefined {
  const path = engine.startsWith('/') ? engine : engine.startsWith('unix://') ? engine.slice('unix://'.length) : undefined;
  if (path !== undefined) return path.startsWith('/') ? `unix://${posix.normalize(path)}` : undefined;
  if (!engine.startsWith('tcp://')) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${engine.slice('tcp://'.length)}`);
  } catch {
    return undefined;
  }
  return url.hostname ? `tcp://${url.hostname}:${url.port || '2375'}` : undefined;
}

function httpUrl(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
}

/**
 * CAPSTAN_ALLOW_ENDPOINTS: comma-separated URL prefixes and engine addresses. Throws on an entry that is neither,
 * or a URL with credentials, a query or a fragment, so a typo fails the start instead of allowing something else.
 */
export function parseAllowList(text: string | undefined): string[] {
  const entries = (text ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const url = httpUrl(entry);
    if (url ? url.username || url.password || url.search || url.hash : engineAddress(entry) === undefined) {
      throw new Error(`CAPSTAN_ALLOW_ENDPOINTS: "${entry}" is neither an http(s) URL prefix (no credentials, query or fragment) nor an engine address (unix:///path, tcp://host:port)`);
    }
  }
  return entries;
}

/** Whether a docker `engine` may be used: the local socket, or an address on the operator's list. */
export function engineAllowed(engine: string, allow: OperatorAllow = {}): boolean {
  const address = engineAddress(engine);
  if (address === undefined) return false;
  return LOCAL_ENGINES.includes(address) || (allow.endpoints ?? []).some((e) => engineAddress(e) === address);
}

/**
 * Whether an aws `endpoint` may be used: it starts with a URL prefix on the operator's list, compared as URLs
 * (same scheme, host and port; the path at a segment boundary), so `https://ec2.example` does not allow
 * `https://ec2.example.evil`. An endpoint carrying credentials is never allowed.
 */
export function endpointAllowed(endpoint: string, allow: OperatorAllow = {}): boolean {
  const url = httpUrl(endpoint);
  if (!url || url.username || url.password) return false;
  return (allow.endpoints ?? []).some((entry) => {
    const prefix = httpUrl(entry);
    if (!prefix || prefix.protocol !== url.protocol || prefix.host !== url.host) return false;
    const path = prefix.pathname;
    return path.endsWith('/') ? url.pathname.startsWith(path) : url.pathname === path || url.pathname.startsWith(`${path}/`);
  });
}
