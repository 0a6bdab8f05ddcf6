import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { JSONRPCErrorCode, JSONRPCServer, type JSONRPCID, type JSONRPCRequest, type JSONRPCResponse } from 'json-rpc-2.0';
import { CapstanError, ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { registry } from '../metrics.js';
import { packageVersion } from '../package.js';
import type { GroupController, GroupSpec, SpecStore } from '../spi/index.js';
import { bearerChecker, readTokenFile } from './auth.js';
import { checkParams, methodSchemas, publicMethods } from './catalog.js';
import { registerConsole } from '../console/serve.js';
import { registerEvents, type EventsOptions } from './events.js';
import { forwardCall, forwardedHeader, leaderUrl } from './forward.js';
import { groupMethods, type AutoscaleView, type Method } from './methods.js';
import { GroupService } from '../group/service.js';
import { rpcCalls } from './metrics.js';
import { openRpcDocument } from './openrpc.js';
import { checkEnvelope, errorResponse, isErrorResponse, parseError, RawJson, RawResponse, responseBody, serializeResponse, toRpcError, tooLarge, type AnyResponse } from './protocol.js';

export const defaultPort = 8640;

/** What this replica knows of Swarm leadership (src/swarm/leader.ts). `leaderAddr` is the leader's host. */
export interface LeadershipStatus {
  readonly nodeId?: string;
  readonly leading: boolean;
  readonly leaderNodeId?: string;
  readonly leaderAddr?: string;
  readonly since?: string;
}

export interface LeadershipView {
  status(): LeadershipStatus;
}

export interface RpcServerOptions {
  readonly store: SpecStore;
  readonly controller: GroupController;
  /** validateSpec bound to the plugins: raw spec in, validated spec with defaults out; throws InvalidError. */
  readonly validate: (raw: unknown) => GroupSpec;
  /** The group.* methods, when the caller shares them (the autoscaler commits through the same per-group queue). */
  readonly groups?: Map<string, Method>;
  /** The group service behind the group.* methods; made from store, controller and validate when absent. */
  readonly service?: GroupService;
  readonly autoscaler?: AutoscaleView;
  readonly leadership: LeadershipView;
  /** Stored specs that are not served (corrupt or invalid), shown by manager.status. */
  readonly storeProblems?: () => readonly object[];
  /** Why this leader does not act yet (its specs are still loading), if so. */
  readonly loading?: () => string | undefined;
  /** manager.recover: re-initialises a Swarm that lost its majority from this replica's manager (src/swarm/recover.ts). */
  readonly recover?: () => Promise<object>;
  /** For /readyz: Docker reachable and a leader known. Always ready when absent. */
  readonly ready?: () => Promise<boolean>;
  /** File holding the bearer token; default env CAPSTAN_TOKEN_FILE. */
  readonly tokenFile?: string;
  /** Serve every method without a token (development only); default env CAPSTAN_INSECURE_OPEN=1. */
  readonly insecureOpen?: boolean;
  readonly logger?: Logger;
  /** Port the leader's API listens on; default the port of CAPSTAN_LISTEN (every replica runs the same config). */
  readonly forwardPort?: number;
  readonly forwardTimeoutMs?: number;
  /** Largest request body in bytes; default 1 MiB. */
  readonly bodyLimit?: number;
  /** Most calls in one batch; default 100. */
  readonly maxBatch?: number;
  /**
   * Most bytes of answers one batch gets (default 4 MiB; 64 KiB for a caller without the token, who can only ask
   * rpc.discover and manager.status): once over, the call that went over and the rest are answered tooLarge.
   */
  readonly maxBatchResponseBytes?: number;
  readonly maxOpenBatchResponseBytes?: number;
  /** Time to receive a whole request, headers and body (default 30 s; headers alone 10 s at most). */
  readonly requestTimeoutMs?: number;
  /** How long a kept-alive connection may sit idle between requests (default 5 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Serve HTTPS with this certificate and key (PEM). Every replica must serve the same certificate: a replica forwards
   * to the leader over HTTPS and sends nothing unless the leader presents exactly it.
   */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Reported by manager.status and rpc.discover; default package.json's version. */
  readonly version?: string;
  /** The web console's built files (default: where `npm run build` puts them). */
  readonly consoleAssets?: string;
  /** The /events stream's timing (tests). */
  readonly events?: Pick<EventsOptions, 'heartbeatMs' | 'leadershipCheckMs' | 'maxStreams'>;
}

/** Host and port from CAPSTAN_LISTEN ("0.0.0.0:8640", "[::]:8640", ":8640" or "8640"); all interfaces, port 8640 by default. */
export function parseListen(value: string | undefined = process.env.CAPSTAN_LISTEN): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):?(\d*)$/.exec(value ?? '');
  const host = m?.[1] ?? (m?.[2] || '0.0.0.0');
  const port = m?.[3] ? Number(m[3]) : defaultPort;
  if (!m || !Number.isInteger(port) || port > 65535) throw new Error(`CAPSTAN_LISTEN=${value} is not host:port`);
  return { host, port };
}

interface CallContext {
  readonly authorization: string | undefined;
  readonly authorized: boolean;
  readonly forwarded: boolean;
}

/** manager.status for a caller without the token: leadership and version only. */
function publicStatus(lead: LeadershipStatus, version: string): object {
  const { nodeId, leading, leaderNodeId, leaderAddr, since } = lead;
  return { nodeId, leading, leaderNodeId, leaderAddr, since, version };
}

const readyTimeoutMs = 2000;
const json = 'application/json; charset=utf-8';

/**
 * The API server: JSON-RPC 2.0 at POST /rpc plus /healthz, /readyz, /metrics, the web console (/) and its event
 * stream (/events). Not listening yet:
 * call `listen(parseListen())`. Throws when there is neither a token file nor an explicit insecure opt-in.
 */
export function createRpcServer(options: RpcServerOptions): FastifyInstance {
  const logger = options.logger ?? createLogger('capstan-rpc');
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  const maxBatch = options.maxBatch ?? 100;
  const maxBatchResponseBytes = options.maxBatchResponseBytes ?? 4 * 1024 * 1024;
  const maxOpenBatchResponseBytes = options.maxOpenBatchResponseBytes ?? 64 * 1024;
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 5_000;
  const version = options.version ?? packageVersion;
  const forwardPort = options.forwardPort ?? parseListen().port;
  // Covers group.destroyInstances, which waits up to 75 s for a drain: a forwarded call gets the leader's own answer.
  const forwardTimeoutMs = options.forwardTimeoutMs ?? 90_000;
  const { leadership } = options;

  const tokenFile = options.tokenFile ?? process.env.CAPSTAN_TOKEN_FILE;
  const open = !tokenFile && (options.insecureOpen ?? process.env.CAPSTAN_INSECURE_OPEN === '1');
  if (!tokenFile && !open) throw new Error('no API token: set CAPSTAN_TOKEN_FILE to a file holding it (a Docker secret), or CAPSTAN_INSECURE_OPEN=1 to run without one');
  const authorize = tokenFile ? bearerChecker(readTokenFile(tokenFile)) : () => true;
  if (open) logger.warn('INSECURE: the API accepts every call from anyone who can reach it, without a token (CAPSTAN_INSECURE_OPEN)');

  const discover = openRpcDocument(version);
  const discoverJson = new RawJson(JSON.stringify(discover));
  const local = new Map<string, (params: unknown, ctx: CallContext) => Promise<unknown>>([
    ['rpc.discover', async () => discoverJson],
    [
      'manager.status',
      async (_params, ctx) => {
        const lead = leadership.status();
        // Without the token: who leads, and the version; nothing about groups, the store or errors.
        if (!ctx.authorized) return publicStatus(lead, version);
        const storeProblems = options.storeProblems?.() ?? [];
        const loading = options.loading?.();
        return { ...lead, uptimeSeconds: Math.round(process.uptime()), version, ...(loading ? { loading } : {}), ...(storeProblems.length ? { storeProblems } : {}) };
      },
    ],
    // Local: with no leader there is nobody to forward to, and only this manager's engine can be re-initialised.
    [
      'manager.recover',
      async () => {
        if (!options.recover) throw new CapstanError('conflict', 'this replica cannot recover a Swarm');
        return options.recover();
      },
    ],
  ]);
  const service = options.service ?? new GroupService({ ...options, logger });
  const methods = new Map<string, (params: unknown, ctx: CallContext) => Promise<unknown>>([...(options.groups ?? groupMethods({ ...options, service })), ...local]);

  const rpc = new JSONRPCServer<CallContext>({ errorListener: () => undefined });
  for (const [name, method] of methods) rpc.addMethod(name, (params, ctx) => method(params, ctx));
  rpc.mapErrorToJSONRPCErrorResponse = (id, error) => {
    const e = toRpcError(error);
    if (e.unexpected) logger.error({ err: error }, 'a method failed unexpectedly');
    return errorResponse(id, e.code, e.message, e.data);
  };
  rpc.applyMiddleware(async (next, request, ctx) => {
    const { method } = request;
    if (!methodSchemas.has(method as never)) return next(request, ctx);
    if (!ctx.authorized && !publicMethods.has(method)) throw new CapstanError('unauthorized', 'missing or wrong bearer token');
    const checked = { ...request, params: checkParams(method, request.params) };
    if (local.has(method)) return next(checked, ctx);
    // Only the leader's controller acts and knows the groups' state, so every group call runs there.
    const lead = leadership.status();
    if (lead.leading) return next(checked, ctx);
    if (ctx.forwarded || !lead.leaderAddr) throw new CapstanError('noLeader', 'no replica leads right now; retry shortly', { leaderNodeId: lead.leaderNodeId });
    const scheme = options.tls ? 'https' : 'http';
    const target = { url: leaderUrl(lead.leaderAddr, forwardPort, scheme), nodeId: lead.leaderNodeId, timeoutMs: forwardTimeoutMs, from: lead.nodeId, pinnedCert: options.tls?.cert };
    return (await forwardCall(request, target, ctx.authorization)) as unknown as JSONRPCResponse | null;
  });

  async function one(entry: unknown, ctx: CallContext): Promise<AnyResponse | null> {
    const request = checkEnvelope(entry);
    if (isErrorResponse(request)) {
      rpcCalls.inc({ method: 'invalid', outcome: String(JSONRPCErrorCode.InvalidRequest) });
      return request;
    }
    const response = (await rpc.receive(request as JSONRPCRequest, ctx)) as AnyResponse | null;
    const outcome = response instanceof RawResponse ? 'forwarded' : response?.error ? String(response.error.code) : 'ok';
    rpcCalls.inc({ method: methodSchemas.has(request.method as never) ? request.method : 'unknown', outcome });
    return response;
  }

  /** A whole HTTP body in, the HTTP answer out (undefined when only notifications came). Calls of a batch run in order. */
  async function handle(body: string, ctx: CallContext): Promise<string | Buffer[] | undefined> {
    let payload: unknown;
    try {
      payload = JSON.parse(body);
    } catch {
      return serializeResponse(parseError());
    }
    if (!Array.isArray(payload)) {
      const response = await one(payload, ctx);
      return response ? responseBody(response) : undefined;
    }
    if (payload.length === 0) return serializeResponse(errorResponse(null, JSONRPCErrorCode.InvalidRequest, 'Invalid Request'));
    if (payload.length > maxBatch) return serializeResponse(tooLarge(`a batch holds at most ${maxBatch} calls`));
    const limit = ctx.authorized ? maxBatchResponseBytes : maxOpenBatchResponseBytes;
    const out: string[] = [];
    let bytes = 0;
    let full = false;
    for (const entry of payload) {
      if (full) {
        // Not run: answered tooLarge (a notification gets nothing, as ever).
        const request = checkEnvelope(entry);
        if (isErrorResponse(request)) out.push(serializeResponse(request));
        else if (request.id !== undefined) {
          rpcCalls.inc({ method: methodSchemas.has(request.method as never) ? request.method : 'unknown', outcome: String(ErrorCode.tooLarge) });
          out.push(serializeResponse(errorResponse(request.id, ErrorCode.tooLarge, `not run: this batch's answers reached ${limit} bytes`, { limit, ran: false })));
        }
        continue;
      }
      const response = await one(entry, ctx);
      if (!response) continue;
      const text = serializeResponse(response);
      bytes += Buffer.byteLength(text);
      if (bytes <= limit) {
        out.push(text);
        continue;
      }
      full = true;
      const id = response instanceof RawResponse ? (entry as { id: JSONRPCID }).id : response.id;
      out.push(serializeResponse(errorResponse(id, ErrorCode.tooLarge, `answer dropped: this batch's answers would exceed ${limit} bytes (the call ran)`, { limit, ran: true })));
    }
    return out.length ? `[${out.join(',')}]` : undefined;
  }

  // Fastify's own logger stays off: it would log request headers, and with them the token.
  // Bounded time for everything a client controls: receiving a request (headers first), sitting idle between
  // requests, and silence on the socket (longer than the longest call: a forward waits up to forwardTimeoutMs).
  const common = { logger: false, bodyLimit, requestTimeout: requestTimeoutMs, keepAliveTimeout: idleTimeoutMs, connectionTimeout: forwardTimeoutMs + 30_000 } as const;
  const server = { headersTimeout: Math.min(10_000, requestTimeoutMs), connectionsCheckingInterval: Math.min(1000, requestTimeoutMs) };
  const { tls } = options;
  // One API either way; only the listener differs.
  const app = (tls ? Fastify({ ...common, https: { ...server, cert: tls.cert, key: tls.key } }) : Fastify({ ...common, http: server })) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  // Any content type: JSON-RPC clients disagree on it, and the body is parsed (or refused) as JSON-RPC anyway.
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit }, (_req, body, done) => done(null, body));
  app.setErrorHandler((error: FastifyError, _req, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 413) return reply.code(413).send(tooLarge(`request body over ${bodyLimit} bytes`));
    if (status < 500) return reply.code(status).send(parseError());
    logger.error({ err: error }, 'request failed');
    return reply.code(500).send(errorResponse(null, JSONRPCErrorCode.InternalError, 'Internal error'));
  });

  app.post('/rpc', async (req, reply) => {
    const authorization = req.headers.authorization;
    const ctx: CallContext = {
      authorization,
      authorized: open || authorize(authorization),
      forwarded: req.headers[forwardedHeader] !== undefined,
    };
    const answer = await handle(typeof req.body === 'string' ? req.body : '', ctx);
    if (answer === undefined) return reply.code(204).send();
    if (typeof answer === 'string') return reply.type(json).send(answer);
    // Pieces of a large answer are written as they are, in one corked write, instead of joined per request.
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': json, 'content-length': answer.reduce((n, b) => n + b.length, 0) });
    res.cork();
    for (const piece of answer) res.write(piece);
    res.end();
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), readyTimeoutMs)));
    const ready = await Promise.race([options.ready ? options.ready().catch(() => false) : Promise.resolve(true), timeout]);
    clearTimeout(timer);
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  // The web console at / (with the Content-Security-Policy on every answer) and its live stream at /events.
  registerConsole(app, { ...(options.consoleAssets !== undefined && { assets: options.consoleAssets }) });
  registerEvents(app, { ...options.events, authorize: (h) => open || authorize(h), leadership, forwardPort, ...(options.tls && { pinnedCert: options.tls.cert }) });

  return app;
}
