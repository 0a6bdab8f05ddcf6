#!/usr/bin/env node
import { JSONRPCClient, JSONRPCErrorException, type JSONRPCResponse } from 'json-rpc-2.0';
import { readFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SseParser } from '../console/sse.js';

/** Where the CLI reads and writes; tests pass their own. */
export interface CliIo {
  readonly stdout: { write(s: string): unknown };
  /** Progress and errors; a TTY gets a redrawn progress bar. */
  readonly stderr: { write(s: string): unknown; readonly isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The spec when the file argument is "-". */
  readonly readStdin: () => Promise<string>;
}

const usage = `Usage: capstan [options] <command>

Commands:
  serve                                   run the service (configured by DOCKER_HOST, CAPSTAN_LISTEN, CAPSTAN_TOKEN_FILE)
  status                                  this replica, the leader, version
  recover                                 re-initialise a Swarm that lost its majority from this replica's
                                          manager (--url: that replica); see README "Recovering lost quorum"
  group commit FILE|- [--pretend] [--watch]
  group describe ID
  group list
  group scale ID SIZE [--watch]
  group scale-up ID [COUNT] [--watch]
  group scale-down ID [COUNT] [--watch]
  group destroy-instances ID INSTANCE...
  group pause ID
  group resume ID
  group rollback ID [VERSION] [--watch]
  group history ID
  group free ID                           stop managing; instances keep running
  group destroy ID --yes                  destroy every instance and forget the group

Options:
  --url URL           API address (env CAPSTAN_URL, default http://127.0.0.1:8640)
  --token-file FILE   bearer token file (env CAPSTAN_TOKEN_FILE)
  --pretend           commit: show the plan, store nothing
  --watch             follow the group until it converges on the new version (on the API's event stream)
  --interval SECONDS  --watch polls every SECONDS instead (without the stream, every 1)
  --timeout SECONDS   --watch gives up after this long (default 1800)
  --yes               confirm group destroy
  -h, --help

Results are JSON on stdout; errors go to stderr with a non-zero exit (1 failed, 2 bad usage).
`;

class UsageError extends Error {}

/** A JSON-RPC error answer, or a failure to get one. */
class CallError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    readonly data?: any,
  ) {
    super(message);
  }
}

interface Client {
  call(method: string, params?: object): Promise<any>;
}

/** The API through json-rpc-2.0's client (ids, answers, error objects); transport errors are said plainly. */
function client(url: string, token: string | undefined): Client {
  const endpoint = new URL(url);
  if (!endpoint.pathname.endsWith('/rpc')) endpoint.pathname = endpoint.pathname.replace(/\/?$/, '/rpc');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const rpc: JSONRPCClient = new JSONRPCClient(async (request) => {
    let text: string;
    try {
      const res = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(request), signal: AbortSignal.timeout(120_000) });
      text = await res.text();
    } catch (error) {
      throw new CallError(`cannot reach capstan at ${endpoint.href}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    }
    let answer: JSONRPCResponse;
    try {
      answer = JSON.parse(text) as JSONRPCResponse;
    } catch {
      throw new CallError(`not a JSON-RPC answer from ${endpoint.href}: ${text.slice(0, 200)}`);
    }
    rpc.receive(answer);
  });
  return {
    async call(method, params = {}) {
      try {
        return await rpc.request(method, params);
      } catch (error) {
        if (error instanceof JSONRPCErrorException) throw new CallError(error.message, error.code, error.data);
        throw error;
      }
    },
  };
}

const words = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function integer(value: string | undefined, what: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${what} must be an integer >= ${min}, not ${JSON.stringify(value)}`);
  return Number(value);
}

function seconds(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${what} must be a positive number of seconds`);
  return n;
}

interface Watch {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Poll every intervalMs instead of following the event stream (--interval given). */
  readonly poll: boolean;
}

/** What --watch waits on between looks at the group. */
interface Waiter {
  /** Resolves when the group may have moved, or after `ms` at the latest. */
  wait(ms: number): Promise<void>;
  close(): void;
}

/** Without the stream: the clock. */
const clock = (intervalMs: number): Waiter => ({ wait: () => new Promise((resolve) => setTimeout(resolve, intervalMs)), close: () => {} });

/**
 * GET /events (src/rpc/events.ts), the stream the web console follows: wakes the watch when an event names the
 * group (or leadership moves). Undefined when the stream cannot be had (a server before it, a proxy that refuses it);
 * once it ends, the clock takes over.
 */
async function streamOf(url: string, token: string | undefined, id: string, intervalMs: number): Promise<Waiter | undefined> {
  const endpoint = new URL(url);
  endpoint.pathname = endpoint.pathname.replace(/\/?(rpc\/?)?$/, '/events');
  const abort = new AbortController();
  let res: Response;
  try {
    res = await fetch(endpoint, { headers: { accept: 'text/event-stream', ...(token && { authorization: `Bearer ${token}` }) }, signal: abort.signal });
  } catch {
    return undefined;
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  let moved = false;
  let ended = false;
  let wake: (() => void) | undefined;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    const parser = new SseParser();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const e of parser.push(value)) {
          let group: unknown;
          try {
            group = (JSON.parse(e.data) as { group?: unknown }).group;
          } catch {
            continue;
          }
          if (group === id || e.event === 'leadership') {
            moved = true;
            wake?.();
          }
        }
      }
    } catch {
      // aborted or broken: the clock takes over
    } finally {
      ended = true;
      wake?.();
    }
  })();
  return {
    wait: (ms) =>
      new Promise<void>((resolve) => {
        if (moved) {
          moved = false;
          return resolve();
        }
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          moved = false;
          resolve();
        };
        const timer = setTimeout(done, ended ? intervalMs : ms);
        if (!ended) wake = done;
      }),
    close: () => abort.abort(),
  };
}

/** With the stream, a look at the latest this long after the previous one all the same (an event missed in a relay). */
const streamBackstopMs = 15_000;

/** The parts of a group.describe answer that --watch reads. */
export interface DescribeView {
  readonly version: number;
  readonly size: number;
  readonly converged: boolean;
  readonly configHash?: string;
  readonly instances: readonly { readonly config: string; readonly health: string; readonly warm?: boolean }[];
  readonly update: { readonly state: string; readonly total: number; readonly done: number; readonly failed: number; readonly reason?: string };
}

/**
 * What --watch shows of a group: the members serving (healthy, whatever their config) of the size; an update apart,
 * as members on the new config and healthy (replaced) of the size, with those on it and not yet healthy in flight;
 * a scale-down as removal. `fraction` drives the progress bar; `startCount` is the instance count the watch began with.
 */
export function progressOf(id: string, version: number, d: DescribeView, startCount: number): { line: string; fraction: number } {
  const { size } = d;
  // Members of the warm pool are beyond the size on purpose: counted apart.
  const pool = d.instances.filter((i) => i.warm).length;
  const instances = pool ? d.instances.filter((i) => !i.warm) : d.instances;
  const serving = instances.filter((i) => i.health === 'healthy').length;
  const onNew = instances.filter((i) => i.config === d.configHash);
  const replaced = Math.min(onNew.filter((i) => i.health === 'healthy').length, size);
  const inFlight = onNew.length - onNew.filter((i) => i.health === 'healthy').length;
  const old = instances.length - onNew.length;
  const updating = old > 0 || ['rolling', 'paused', 'failed'].includes(d.update.state);
  let line = `${id} v${version}: `;
  let fraction: number;
  if (!updating && instances.length > size) {
    line += `${serving} serving, removing ${words(instances.length - size, 'instance')} (size ${size})`;
    fraction = startCount > size ? (startCount - instances.length) / (startCount - size) : 0;
  } else {
    line += `${serving}/${size} serving`;
    const starting = instances.length - serving;
    if (!updating && starting > 0) line += `, ${starting} starting`;
    if (!updating && instances.length < size) line += `, ${size - instances.length} to create`;
    fraction = size === 0 ? (instances.length === 0 ? 1 : 0) : serving / size;
  }
  if (updating) {
    const stopped = d.update.state === 'paused' || d.update.state === 'failed' ? ` ${d.update.state}${d.update.reason ? ` (${d.update.reason})` : ''}` : '';
    line += `; update${stopped}: ${replaced}/${size} replaced${inFlight ? `, ${inFlight} in flight` : ''}${old ? `, ${old} old` : ''}`;
    fraction = size === 0 ? 0 : replaced / size;
  }
  if (pool) line += `; ${pool} warm`;
  if (d.version < version) line += ` (controller still on v${d.version})`;
  return { line, fraction: Math.max(0, Math.min(fraction, d.version < version ? 0 : 1)) };
}

/**
 * Reads group.describe until the group runs `version` and converged, again each time the event stream says the group
 * moved (or every --interval when polling); progress on stderr.
 */
async function watch(api: Client, io: CliIo, id: string, version: number, w: Watch, stream: () => Promise<Waiter | undefined>): Promise<void> {
  const followed = w.poll ? undefined : await stream();
  const waiter = followed ?? clock(w.intervalMs);
  try {
    await follow(api, io, id, version, w, waiter, followed ? streamBackstopMs : w.intervalMs);
  } finally {
    waiter.close();
  }
}

async function follow(api: Client, io: CliIo, id: string, version: number, w: Watch, waiter: Waiter, mostMs: number): Promise<void> {
  const tty = io.stderr.isTTY === true;
  const deadline = Date.now() + w.timeoutMs;
  let last = '';
  let startCount: number | undefined;
  for (;;) {
    const d = await api.call('group.describe', { id });
    const current = d.version >= version;
    startCount ??= d.instances.filter((i: { warm?: boolean }) => !i.warm).length;
    const { line, fraction } = progressOf(id, version, d, startCount!);
    if (tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      io.stderr.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% ${line}`);
    } else if (line !== last) {
      io.stderr.write(`${line}\n`);
    }
    last = line;
    const done = d.converged && current;
    const stuck = current && (d.update.state === 'failed' || d.update.state === 'paused');
    if (done || stuck || Date.now() >= deadline) {
      if (tty) io.stderr.write('\n');
      if (done) return;
      if (stuck) throw new CallError(`update ${d.update.state}${d.update.reason ? `: ${d.update.reason}` : ''}`);
      throw new CallError(`${id} did not converge on version ${version} within ${w.timeoutMs / 1000}s`);
    }
    await waiter.wait(Math.max(0, Math.min(mostMs, deadline - Date.now())));
  }
}

function printError(io: CliIo, error: unknown): void {
  if (error instanceof CallError) {
    io.stderr.write(`capstan: ${error.message}${error.code !== undefined ? ` (code ${error.code})` : ''}\n`);
    for (const p of (error.data?.problems ?? []) as { path: string; message: string }[]) io.stderr.write(`  ${p.path || '/'}: ${p.message}\n`);
  } else {
    io.stderr.write(`capstan: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

/** The `capstan` command line; returns the exit code. */
export async function run(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        'token-file': { type: 'string' },
        pretend: { type: 'boolean' },
        watch: { type: 'boolean' },
        interval: { type: 'string' },
        timeout: { type: 'string' },
        yes: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    io.stderr.write(`capstan: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const { values: o, positionals: args } = parsed;
  if (o.help || args.length === 0 || args[0] === 'help') {
    (o.help || args[0] === 'help' ? io.stdout : io.stderr).write(usage);
    return o.help || args[0] === 'help' ? 0 : 2;
  }

  try {
    if (args[0] === 'serve') {
      const { serve } = await import('../main.js');
      await serve();
      return 0;
    }
    const tokenFile = o['token-file'] ?? io.env.CAPSTAN_TOKEN_FILE;
    const token = tokenFile ? (await readFile(tokenFile, 'utf8')).trim() : undefined;
    const url = o.url ?? io.env.CAPSTAN_URL ?? 'http://127.0.0.1:8640';
    const api = client(url, token);
    const w: Watch = { intervalMs: seconds(o.interval, 1, '--interval') * 1000, timeoutMs: seconds(o.timeout, 1800, '--timeout') * 1000, poll: o.interval !== undefined };
    const print = (result: unknown) => io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    const need = (n: number, what: string) => {
      if (args.length < n) throw new UsageError(`missing ${what}`);
    };
    const done = async (result: { id: string; version: number }) => {
      if (o.watch && result.version > 0) await watch(api, io, result.id, result.version, w, () => streamOf(url, token, result.id, w.intervalMs));
      print(result);
      return 0;
    };

    if (args[0] === 'status' && args.length === 1) return print(await api.call('manager.status')), 0;
    if (args[0] === 'recover' && args.length === 1) return print(await api.call('manager.recover')), 0;
    if (args[0] !== 'group' || args.length < 2) throw new UsageError(`unknown command: ${args.join(' ')}`);
    const [, sub, id, ...rest] = args as [string, string, string | undefined, ...string[]];
    switch (sub) {
      case 'commit': {
        need(3, 'spec file');
        const text = id === '-' ? await io.readStdin() : await readFile(id!, 'utf8');
        let spec: unknown;
        try {
          spec = JSON.parse(text);
        } catch (error) {
          throw new CallError(`${id === '-' ? 'stdin' : id} is not JSON: ${(error as Error).message}`);
        }
        const result = await api.call('group.commit', { spec, ...(o.pretend && { pretend: true }) });
        return o.pretend ? (print(result), 0) : await done(result);
      }
      case 'list':
        return print(await api.call('group.list')), 0;
      case 'describe':
      case 'history':
      case 'pause':
      case 'resume':
      case 'free':
        need(3, 'group id');
        return print(await api.call(`group.${sub}`, { id })), 0;
      case 'destroy':
        need(3, 'group id');
        if (!o.yes) throw new UsageError(`group destroy destroys every instance of ${id}: add --yes`);
        return print(await api.call('group.destroy', { id })), 0;
      case 'scale': {
        need(4, 'size');
        return await done(await api.call('group.scale', { id, size: integer(rest[0], 'SIZE', 0) }));
      }
      case 'scale-up':
      case 'scale-down': {
        need(3, 'group id');
        const count = integer(rest[0], 'COUNT', 1);
        return await done(await api.call(sub === 'scale-up' ? 'group.scaleUp' : 'group.scaleDown', { id, ...(count !== undefined && { count }) }));
      }
      case 'destroy-instances':
        need(4, 'instance ids');
        return print(await api.call('group.destroyInstances', { id, instanceIds: rest })), 0;
      case 'rollback': {
        need(3, 'group id');
        const version = integer(rest[0], 'VERSION', 1);
        return await done(await api.call('group.rollback', { id, ...(version !== undefined && { version }) }));
      }
      default:
        throw new UsageError(`unknown command: group ${sub}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`capstan: ${error.message}\n\n${usage}`);
      return 2;
    }
    printError(io, error);
    return 1;
  }
}

function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    readStdin: async () => {
      let text = '';
      for await (const chunk of process.stdin) text += String(chunk);
      return text;
    },
  };
}

// Run when executed (through npm's bin symlink too), not when imported by tests.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await run(process.argv.slice(2));
