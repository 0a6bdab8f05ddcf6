// GET /events: what happens to the groups as server-sent events, for the web console and `capstan ... --watch`.
// Authenticated like the API (the bearer token in the Authorization header, never in the URL). The leader's replica
// streams its own feed (src/feed.ts); a follower relays the leader's stream, as it forwards the API's group calls.
import { X509Certificate } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { feed as processFeed, type Feed, type FeedEvent } from '../feed.js';
import { forwardedHeader, leaderUrl } from './forward.js';
import type { LeadershipStatus, LeadershipView } from './server.js';

export interface EventsOptions {
  /** Whether an Authorization header carries the token (always true when the API runs open). */
  readonly authorize: (authorization: string | undefined) => boolean;
  readonly leadership: LeadershipView;
  /** The API port of the leader's replica (every replica listens on the same). */
  readonly forwardPort: number;
  /** With TLS, this service's certificate: a follower relays only from a leader presenting exactly it. */
  readonly pinnedCert?: string | Buffer;
  readonly feed?: Feed;
  /** A comment line this often keeps proxies and the client's watchdog satisfied (default 15 s). */
  readonly heartbeatMs?: number;
  /** How often leadership is looked at while streams are open (default 1 s). */
  readonly leadershipCheckMs?: number;
  /** Most streams open at once on this replica (default 100). */
  readonly maxStreams?: number;
  /** How long a follower waits for the leader to answer (default 10 s). */
  readonly connectTimeoutMs?: number;
}

/** A stream whose client reads slower than this many bytes behind is dropped: it reconnects and reads the state anew. */
const maxBuffered = 1024 * 1024;

const headers = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  // Proxies in front (nginx) would otherwise hold events back.
  'x-accel-buffering': 'no',
} as const;

interface Stream {
  readonly res: ServerResponse;
  /** Leadership when it opened: a local stream ends when this replica stops leading, a relay when the leader changes. */
  readonly leader: string | undefined;
  readonly local: boolean;
  close(): void;
}

/** One server-sent event: the type, the JSON data on one line. */
export function eventText(id: number, event: FeedEvent | { type: string }): string {
  return `id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** What a stream says first: who leads and since when, and how often to expect a sign of life. */
function hello(lead: LeadershipStatus, heartbeatMs: number): string {
  const { nodeId, leading, leaderNodeId, leaderAddr, since } = lead;
  return `retry: 1000\nevent: hello\ndata: ${JSON.stringify({ nodeId, leading, leaderNodeId, leaderAddr, since, heartbeatMs })}\n\n`;
}

/** Opens the leader's /events with the caller's Authorization; resolves with its answer (any status). */
function openUpstream(url: string, authorization: string | undefined, from: string | undefined, timeoutMs: number, cert: string | Buffer | undefined): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const h: Record<string, string> = { accept: 'text/event-stream', [forwardedHeader]: from ?? 'unknown' };
  if (authorization !== undefined) h.authorization = authorization;
  const pin = cert === undefined ? undefined : new X509Certificate(cert).fingerprint256;
  return new Promise((resolve, reject) => {
    const req =
      cert === undefined
        ? httpRequest(url, { headers: h })
        : httpsRequest(url, {
            headers: h,
            // As src/rpc/forward.ts: nothing, the token included, goes to a leader that does not present our certificate.
            ca: [String(cert), ...rootCertificates],
            checkServerIdentity: (_host, peer) => (peer.fingerprint256 === pin ? undefined : new Error("the leader did not present this service's certificate")),
          });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve({ req, res });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** Registers GET /events on the API server. */
export function registerEvents(app: FastifyInstance, o: EventsOptions): void {
  const feed = o.feed ?? processFeed;
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  const maxStreams = o.maxStreams ?? 100;
  const streams = new Set<Stream>();
  let nextId = 1;
  let timers: NodeJS.Timeout[] = [];
  let lastLead = '';
  const leadKey = (l: LeadershipStatus) => `${l.leading}|${l.leaderNodeId ?? ''}|${l.leaderAddr ?? ''}`;

  function write(s: Stream, text: string | Buffer): void {
    if (s.res.writableLength > maxBuffered) return s.close();
    s.res.write(text);
  }

  /** Heartbeats, and leadership watched: a change is told to local streams; a stream that no longer fits it ends. */
  function watch(): void {
    if (timers.length) return;
    lastLead = JSON.stringify(o.leadership.status());
    timers = [
      setInterval(() => {
        for (const s of streams) if (s.local) write(s, ': keepalive\n\n');
      }, heartbeatMs),
      setInterval(() => {
        const lead = o.leadership.status();
        const now = JSON.stringify(lead);
        if (now === lastLead) return;
        lastLead = now;
        for (const s of [...streams]) {
          if (s.leader !== leadKey(lead)) s.close();
          else if (s.local) write(s, eventText(nextId++, { type: 'leadership', ...lead }));
        }
      }, o.leadershipCheckMs ?? 1000),
    ];
    for (const t of timers) t.unref();
  }

  function add(s: Stream): void {
    streams.add(s);
    s.res.on('close', () => {
      s.close();
      streams.delete(s);
      if (!streams.size) {
        for (const t of timers) clearInterval(t);
        timers = [];
      }
    });
    watch();
  }

  function local(res: ServerResponse, lead: LeadershipStatus): void {
    res.writeHead(200, headers);
    res.write(hello(lead, heartbeatMs));
    let unsubscribe = (): void => {};
    const s: Stream = {
      res,
      leader: leadKey(lead),
      local: true,
      close: () => {
        unsubscribe();
        res.end();
      },
    };
    unsubscribe = feed.subscribe((event) => write(s, eventText(nextId++, event)));
    add(s);
  }

  function relay(res: ServerResponse, lead: LeadershipStatus, upstream: { req: ClientRequest; res: IncomingMessage }): void {
    res.writeHead(200, headers);
    const s: Stream = {
      res,
      leader: leadKey(lead),
      local: false,
      close: () => {
        upstream.req.destroy();
        res.end();
      },
    };
    upstream.res.on('data', (chunk: Buffer) => write(s, chunk));
    upstream.res.on('close', () => s.close());
    upstream.res.on('error', () => s.close());
    add(s);
  }

  // Open streams would hold the server's close() until their clients go: they end first.
  app.addHook('preClose', async () => {
    for (const s of [...streams]) s.close();
  });

  app.get('/events', async (req, reply) => {
    const authorization = req.headers.authorization;
    if (!o.authorize(authorization)) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing or wrong bearer token' });
    if (streams.size >= maxStreams) return reply.code(503).header('retry-after', '5').send({ error: `this replica serves ${maxStreams} event streams already` });
    const lead = o.leadership.status();
    if (lead.leading) {
      reply.hijack();
      return local(reply.raw, lead);
    }
    // Only the leader's replica sees groups change; a follower relays its stream (once: a relayed request is not relayed again).
    if (req.headers[forwardedHeader] !== undefined || !lead.leaderAddr) return reply.code(503).header('retry-after', '1').send({ error: 'no replica leads right now; retry shortly' });
    const url = leaderUrl(lead.leaderAddr, o.forwardPort, o.pinnedCert === undefined ? 'http' : 'https').replace(/\/rpc$/, '/events');
    let upstream: { req: ClientRequest; res: IncomingMessage };
    try {
      upstream = await openUpstream(url, authorization, lead.nodeId, o.connectTimeoutMs ?? 10_000, o.pinnedCert);
    } catch {
      return reply.code(502).send({ error: `the leader (${lead.leaderNodeId ?? 'unknown node'}) is unreachable` });
    }
    if (upstream.res.statusCode !== 200) {
      upstream.req.destroy();
      return reply.code(upstream.res.statusCode === 401 ? 401 : 502).send({ error: `the leader (${lead.leaderNodeId ?? 'unknown node'}) answered HTTP ${upstream.res.statusCode}` });
    }
    reply.hijack();
    return relay(reply.raw, lead, upstream);
  });
}
