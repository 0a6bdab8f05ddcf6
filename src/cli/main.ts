#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CallError, client } from './client.js';
import { streamOf, watch, type Watch } from './watch.js';

export { progressOf, type DescribeView } from './watch.js';

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
