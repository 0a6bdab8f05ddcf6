import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Test } from 'tap';
import { createRpcServer, type LeadershipStatus, type RpcServerOptions } from '../../src/rpc/server.js';
import { validateSpec } from '../../src/group/spec.js';
import { resultValidator } from '../../src/rpc/catalog.js';
import type { GroupSpec, Plugins } from '../../src/spi/index.js';
import { MemoryStore } from '../support/memory-store.js';
import { RecordingController } from '../support/recording-controller.js';

/** Kinds that accept any properties: these tests are about the API, not about providers. */
const anyKind = (name: string) => ({ name, schema: { type: 'object' }, create: (): never => { throw new Error(`${name} is not run in API tests`); } });
const plugins: Plugins = { providers: new Map([['aws', anyKind('aws')]]), flavors: new Map([['swarm-worker', anyKind('swarm-worker')]]) };

/** The real spec validation, over kinds that accept any properties. */
export const testValidate = (raw: unknown): GroupSpec => validateSpec(raw, plugins);

export function spec(id = 'workers', size = 3, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    allocation: { size },
    bounds: { min: 1, max: 10 },
    instance: { provider: 'aws', properties: { instanceType: 't3.small' } },
    flavor: { kind: 'swarm-worker', properties: {} },
    ...extra,
  };
}

export const token = 'test-token-7f3a9c1e5b2d4f6a8c0e';

export interface RpcReply {
  status: number;
  body: any;
  text: string;
}

export interface Harness {
  readonly url: string;
  readonly port: number;
  readonly store: MemoryStore;
  readonly controller: RecordingController;
  readonly lead: { status: LeadershipStatus };
  /** Everything the server logged, as text. */
  readonly logs: () => string;
  post(body: string, headers?: Record<string, string>): Promise<RpcReply>;
  /** One call with the token; returns the JSON-RPC response, its result checked against the method's result schema. */
  call(method: string, params?: unknown, auth?: string | null): Promise<any>;
  /** A call that must fail: returns its error object. */
  fail(method: string, params?: unknown, auth?: string | null): Promise<{ code: number; message: string; data?: any }>;
}

export async function startServer(t: Test, options: Partial<RpcServerOptions> & { leading?: boolean } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'capstan-rpc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, token + '\n');
  const store = new MemoryStore();
  const controller = new RecordingController();
  const lead = { status: { nodeId: 'node-a', leading: options.leading ?? true, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', since: new Date().toISOString() } as LeadershipStatus };
  let logText = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      logText += String(chunk);
      done();
    },
  });
  const app = createRpcServer({
    store,
    controller,
    validate: testValidate,
    leadership: { status: () => lead.status },
    tokenFile,
    logger: pino({ level: 'debug' }, sink),
    ...options,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;

  async function post(body: string, headers: Record<string, string> = {}): Promise<RpcReply> {
    const res = await fetch(`${url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  }

  let nextId = 1;
  async function call(method: string, params?: unknown, auth: string | null = token): Promise<any> {
    const id = nextId++;
    const res = await post(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined && { params }) }), auth === null ? {} : { authorization: `Bearer ${auth}` });
    if (res.status !== 200 || res.body?.id !== id) throw new Error(`unexpected answer ${res.status} ${res.text.slice(0, 300)}`);
    if ('result' in res.body) {
      const validate = resultValidator(method);
      if (!validate(res.body.result)) throw new Error(`${method} result breaks its schema: ${JSON.stringify(validate.errors)}`);
    }
    return res.body;
  }

  async function fail(method: string, params?: unknown, auth?: string | null) {
    const res = await call(method, params, auth);
    if (!res.error) throw new Error(`${method} succeeded: ${JSON.stringify(res.result)}`);
    return res.error;
  }

  return { url, port, store, controller, lead, logs: () => logText, post, call, fail };
}
