/**
 * What a replica costs (issue 14 item 3): the real `capstan serve` (dist/src/cli/main.js, as the image runs it) on the
 * tests' own Docker engine (test/support/engine.sh), next to a bare fastify ceiling (bench/ceiling-server.ts), in
 * alternating rounds, each in fresh processes:
 *   - spawn to the API answering (GET /healthz 200), and to ready (GET /readyz 200: specs loaded, leader known);
 *   - RSS idle, no group (3 s after ready);
 *   - RSS at 1,000 simulator instances (a group committed over the API, 3 s after it converged);
 *   - peak RSS with 8 clients calling group.describe of those 1,000 for BENCH_SECONDS (the kernel's high-water mark,
 *     VmHWM: the highest the process ever was), and their req/s;
 *   - the ceiling: spawn to /healthz, idle RSS, and the same 8 clients on the same describe answer (its bytes).
 * Then, per round, an aws group of BENCH_AWS_SIZE (default 100) instances on moto: what loading the AWS SDK and
 * running the group costs, settled and under the same describe load. Figures are medians with their range over BENCH_ROUNDS (default 3) rounds, printed with
 * the machine's load average; nothing is asserted. MB here are MiB (2^20 bytes), as Docker's memory limits count.
 * BENCH_DOCKER_HOST names another Swarm manager's engine; BENCH_AWS=0 skips moto; BENCH_NODE_OPTIONS is given to every
 * measured process as NODE_OPTIONS (to try V8 flags such as --max-semi-space-size).
 * Alone: `npx tsc -p tsconfig.json && node dist/bench/serve.js`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';

const TOP = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(TOP, 'dist/src/cli/main.js');
const CEILING = fileURLToPath(new URL('./ceiling-server.js', import.meta.url));
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const durationS = Number(process.env.BENCH_SECONDS ?? 3);
const awsSize = Number(process.env.BENCH_AWS_SIZE ?? 100);
const SIZE = 1000;
const CLIENTS = 8;
const SETTLE_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * VmRSS, its anonymous part (RssAnon: the heaps; the rest is mostly pages of the node binary and of files, which
 * the kernel can drop and read again) and VmHWM (the highest VmRSS so far) of a live process, in MiB.
 */
function memoryOf(pid: number): { rss: number; anon: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, anon: kib('RssAnon') / 1024, peak: kib('VmHWM') / 1024 };
}

interface Proc {
  readonly child: ChildProcess;
  readonly base: string;
  readonly startedAt: number;
  output(): string;
}

function start(args: string[], env: NodeJS.ProcessEnv, port: number): Proc {
  if (process.env.BENCH_NODE_OPTIONS) env = { ...env, NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS };
  const startedAt = performance.now();
  // stdout (the JSON log) goes nowhere, as a service's would go to its log driver; stderr is kept for errors.
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + String(d)).slice(-4000)));
  return { child, base: `http://127.0.0.1:${port}`, startedAt, output: () => err };
}

/** Milliseconds from spawn until `path` answers 200, polled every 5 ms. */
async function until200(p: Proc, path: string, timeoutMs = 60_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (p.child.exitCode !== null) throw new Error(`${path}: the process exited with ${p.child.exitCode}: ${p.output()}`);
    const ok = await fetch(p.base + path).then(
      async (r) => (await r.arrayBuffer(), r.ok),
      () => false,
    );
    if (ok) return performance.now() - p.startedAt;
    if (performance.now() > deadline) throw new Error(`${path} not 200 within ${timeoutMs} ms: ${p.output()}`);
    await sleep(5);
  }
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 40_000);
  await exited;
  clearTimeout(timer);
}

function rpcOf(base: string, token: string) {
  return async <T>(method: string, params: object = {}): Promise<T> => {
    const res = await fetch(`${base}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = (await res.json()) as { result?: T; error?: unknown };
    if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
    return body.result as T;
  };
}

interface Status {
  readonly converged: boolean;
  readonly instances: readonly unknown[];
}

async function converged(rpc: ReturnType<typeof rpcOf>, id: string, size: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await rpc<Status>('group.describe', { id });
    if (s.converged && s.instances.length === size) return;
    if (Date.now() > deadline) throw new Error(`group ${id} did not converge at ${size} within ${timeoutMs} ms (${s.instances.length} instances)`);
    await sleep(100);
  }
}

/**
 * Leaves the engine's store as it was: `group.free` forgets the group at once (its machines are the simulator's, in
 * the process about to stop, or moto's, reset next round), where a destroy could be held up by the machines.
 */
async function forget(rpc: ReturnType<typeof rpcOf>, id: string): Promise<void> {
  await rpc('group.free', { id });
  if ((await rpc<{ id: string }[]>('group.list')).some((g) => g.id === id)) throw new Error(`group ${id} still listed after group.free`);
}

/** 8 clients calling for `durationS`; samples RSS every 50 ms meanwhile. */
async function describeLoad(p: Proc, body: string, token: string): Promise<{ rps: number; errors: number; sampled: number; anon: number }> {
  let sampled = 0;
  let anon = 0;
  const sampler = setInterval(() => {
    const m = memoryOf(p.child.pid!);
    sampled = Math.max(sampled, m.rss);
    anon = Math.max(anon, m.anon);
  }, 50);
  try {
    const r = await autocannon({
      url: `${p.base}/rpc`,
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      connections: CLIENTS,
      duration: durationS,
    });
    return { rps: r.requests.average, errors: r.errors + r.non2xx + r.timeouts, sampled, anon };
  } finally {
    clearInterval(sampler);
  }
}

interface CapstanRound {
  healthz: number;
  readyz: number;
  idle: number;
  idleAnon: number;
  at1000: number;
  at1000Anon: number;
  peak: number;
  /** The highest RssAnon sampled under load. */
  peakAnon: number;
  rps: number;
  errors: number;
  convergeMs: number;
  others: number;
  answer: string;
}

interface CeilingRound {
  healthz: number;
  idle: number;
  idleAnon: number;
  peak: number;
  peakAnon: number;
  rps: number;
  errors: number;
}

interface AwsRound {
  idle: number;
  settled: number;
  settledAnon: number;
  peak: number;
  peakAnon: number;
  convergeMs: number;
}

function serveEnv(dockerHost: string, tokenFile: string, port: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DOCKER_HOST: dockerHost,
    CAPSTAN_LISTEN: `127.0.0.1:${port}`,
    CAPSTAN_TOKEN_FILE: tokenFile,
    CAPSTAN_ENABLE_SIMULATOR: '1',
    CAPSTAN_LOG_LEVEL: 'info',
    ...extra,
  };
}

async function capstanRound(dockerHost: string, tokenFile: string, token: string): Promise<CapstanRound> {
  const port = await freePort();
  const p = start([CLI, 'serve'], serveEnv(dockerHost, tokenFile, port), port);
  const rpc = rpcOf(p.base, token);
  const id = `bench-serve-${randomBytes(3).toString('hex')}`;
  let committed = false;
  try {
    const healthz = await until200(p, '/healthz');
    const readyz = await until200(p, '/readyz');
    await sleep(SETTLE_MS);
    const { rss: idle, anon: idleAnon } = memoryOf(p.child.pid!);
    const others = (await rpc<unknown[]>('group.list')).length;
    const t0 = performance.now();
    const spec = { id, allocation: { size: SIZE }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } };
    await rpc('group.commit', { spec });
    committed = true;
    await converged(rpc, id, SIZE);
    const convergeMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    const { rss: at1000, anon: at1000Anon } = memoryOf(p.child.pid!);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'group.describe', params: { id } });
    const answer = await (await fetch(`${p.base}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body })).text();
    const load = await describeLoad(p, body, token);
    const peak = Math.max(memoryOf(p.child.pid!).peak, load.sampled);
    return { healthz, readyz, idle, idleAnon, at1000, at1000Anon, peak, peakAnon: load.anon, rps: load.rps, errors: load.errors, convergeMs, others, answer };
  } finally {
    if (committed) await forget(rpc, id).catch((err: unknown) => console.error(`bench: could not free ${id}, remove its Swarm configs capstan.group.${id}.v*: ${String(err)}`));
    await stop(p);
  }
}

async function ceilingRound(answerFile: string): Promise<CeilingRound> {
  const port = await freePort();
  const p = start([CEILING], { PATH: process.env.PATH, BENCH_PORT: String(port), BENCH_ANSWER_FILE: answerFile }, port);
  try {
    const healthz = await until200(p, '/healthz');
    await sleep(SETTLE_MS);
    const { rss: idle, anon: idleAnon } = memoryOf(p.child.pid!);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'group.describe', params: { id: 'x' } });
    const load = await describeLoad(p, body, 'none');
    return { healthz, idle, idleAnon, peak: Math.max(memoryOf(p.child.pid!).peak, load.sampled), peakAnon: load.anon, rps: load.rps, errors: load.errors };
  } finally {
    await stop(p);
  }
}

async function awsRound(dockerHost: string, tokenFile: string, token: string, endpoint: string, subnetIds: string[]): Promise<AwsRound> {
  const port = await freePort();
  const p = start(
    [CLI, 'serve'],
    serveEnv(dockerHost, tokenFile, port, {
      CAPSTAN_ALLOW_ENDPOINTS: endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    }),
    port,
  );
  const rpc = rpcOf(p.base, token);
  const id = `bench-aws-${randomBytes(3).toString('hex')}`;
  let committed = false;
  try {
    await until200(p, '/readyz');
    await sleep(SETTLE_MS);
    const idle = memoryOf(p.child.pid!).rss;
    const t0 = performance.now();
    const properties = { region: 'us-east-1', endpoint, subnetIds, launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } };
    await rpc('group.commit', { spec: { id, allocation: { size: awsSize }, instance: { provider: 'aws', properties }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } } });
    committed = true;
    await converged(rpc, id, awsSize);
    const convergeMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    const m = memoryOf(p.child.pid!);
    const load = await describeLoad(p, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'group.describe', params: { id } }), token);
    return { idle, settled: m.rss, settledAnon: m.anon, peak: Math.max(memoryOf(p.child.pid!).peak, load.sampled), peakAnon: load.anon, convergeMs };
  } finally {
    if (committed) await forget(rpc, id).catch((err: unknown) => console.error(`bench: could not free ${id}, remove its Swarm configs capstan.group.${id}.v*: ${String(err)}`));
    await stop(p);
  }
}

/** Median and range, formatted. */
function stat(xs: readonly number[], unit: string, scale = 1, digits = 0): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number) => (x * scale).toFixed(digits);
  const median = s[Math.floor(s.length / 2)]!;
  return s.length > 1 ? `${f(median)} ${unit} (${f(s[0]!)}-${f(s.at(-1)!)})` : `${f(median)} ${unit}`;
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

export async function benchServe(): Promise<void> {
  const dockerHost = process.env.BENCH_DOCKER_HOST ?? execFileSync('bash', [join(TOP, 'test/support/engine.sh'), 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'capstan-bench-serve-'));
  const token = randomBytes(16).toString('hex');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, token);
  const answerFile = join(dir, 'describe.json');
  const loadBefore = load();
  const capstan: CapstanRound[] = [];
  const ceiling: CeilingRound[] = [];
  const aws: AwsRound[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const c = await capstanRound(dockerHost, tokenFile, token);
      capstan.push(c);
      writeFileSync(answerFile, c.answer);
      ceiling.push(await ceilingRound(answerFile));
    }
    if (process.env.BENCH_AWS !== '0') {
      // Imported here: the moto helpers load the AWS SDK into this (the bench's) process, not into Capstan's.
      const { createSubnets, startMoto, useFakeCredentials } = await import('../test/support/moto.js');
      useFakeCredentials();
      const moto = await startMoto();
      try {
        for (let i = 0; i < rounds; i++) {
          await moto.reset();
          aws.push(await awsRound(dockerHost, tokenFile, token, moto.endpoint, await createSubnets(moto.endpoint, 3)));
        }
      } finally {
        await moto.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const col = <T>(rows: readonly T[], key: keyof T) => rows.map((r) => r[key] as number);
  /** RSS and its anonymous part. */
  const mem = <T>(rows: readonly T[], rss: keyof T, anon: keyof T) => `${stat(col(rows, rss), 'MB')}; anon ${stat(col(rows, anon), 'MB')}`;
  const rowsOut: [string, string, string, string][] = [
    ['spawn to API answering (/healthz)', stat(col(capstan, 'healthz'), 's', 1 / 1000, 2), stat(col(ceiling, 'healthz'), 's', 1 / 1000, 2), '< 0.5 s'],
    ['spawn to ready (/readyz: specs loaded, leader known)', stat(col(capstan, 'readyz'), 's', 1 / 1000, 2), '-', '-'],
    ['RSS idle, no group', mem(capstan, 'idle', 'idleAnon'), mem(ceiling, 'idle', 'idleAnon'), '< 80 MB'],
    [`RSS at ${SIZE.toLocaleString('en-US')} simulator instances (settled)`, mem(capstan, 'at1000', 'at1000Anon'), '-', '< 120 MB'],
    [`peak RSS (VmHWM), ${CLIENTS} clients calling group.describe for ${durationS} s`, mem(capstan, 'peak', 'peakAnon'), mem(ceiling, 'peak', 'peakAnon'), '< 150 MB'],
    [`group.describe of ${SIZE.toLocaleString('en-US')}, ${CLIENTS} clients`, stat(col(capstan, 'rps'), 'req/s'), stat(col(ceiling, 'rps'), 'req/s'), '-'],
    [`commit of ${SIZE.toLocaleString('en-US')} to converged (over the API, polled every 100 ms)`, stat(col(capstan, 'convergeMs'), 's', 1 / 1000, 2), '-', '-'],
  ];
  if (aws.length) {
    rowsOut.push(
      [`aws group of ${awsSize} on moto: RSS before its commit (SDK not loaded)`, stat(col(aws, 'idle'), 'MB'), '-', '-'],
      [`aws group of ${awsSize} on moto: RSS settled`, mem(aws, 'settled', 'settledAnon'), '-', 'say what it costs'],
      [`aws group of ${awsSize} on moto: peak RSS (VmHWM), ${CLIENTS} clients calling group.describe for ${durationS} s`, mem(aws, 'peak', 'peakAnon'), '-', '-'],
      [`aws group of ${awsSize} on moto: commit to converged`, stat(col(aws, 'convergeMs'), 's', 1 / 1000, 2), '-', '-'],
    );
  }
  console.log(`\n## A replica: start-up and memory (capstan serve on the tests' engine; ceiling: bare fastify)\n`);
  console.log(`Median (range) of ${rounds} alternating rounds, fresh processes, node ${process.version}; MB = MiB; anon = RssAnon (peak: the highest sampled under load).`);
  console.log(`Load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}.${process.env.BENCH_NODE_OPTIONS ? ` NODE_OPTIONS=${process.env.BENCH_NODE_OPTIONS}.` : ''}\n`);
  console.log('| figure | capstan | ceiling | target |');
  console.log('|---|---:|---:|---|');
  for (const [name, c, b, target] of rowsOut) console.log(`| ${name} | ${c} | ${b} | ${target} |`);
  const errors = capstan.reduce((n, r) => n + r.errors, 0) + ceiling.reduce((n, r) => n + r.errors, 0);
  if (errors) console.log(`\n${errors} failed requests under load.`);
  const others = Math.max(...capstan.map((r) => r.others));
  if (others) console.log(`\nNote: the engine's store held ${others} other group(s) while measuring (other tests?); Capstan managed them too.`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchServe();
