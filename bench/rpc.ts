// JSON-RPC server figures against the real server on loopback, next to a bare fastify ceiling. Prints; asserts nothing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../src/log.js';
import { createRpcServer } from '../src/rpc/server.js';
import type { GroupSpec } from '../src/spi/index.js';
import { MemoryStore } from '../test/support/memory-store.js';
import { convergedStatus, RecordingController } from '../test/support/recording-controller.js';

const token = 'bench-token-0123456789abcdef';
const durationS = Number(process.env.BENCH_SECONDS ?? 3);
// Server and ceiling are measured in alternating rounds, and medians reported, so that load from elsewhere on the
// machine does not land on one side only.
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = 16;

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  bytes: number;
  errors: number;
}

async function load(url: string, body: string, headers: Record<string, string>): Promise<Figures> {
  const result = await autocannon({ url, method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, connections, duration: durationS, workers: 1 });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    bytes: result.throughput.average / Math.max(result.requests.average, 1),
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

/** Field by field median of several rounds. */
function median(runs: Figures[]): Figures {
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { rps: mid(runs.map((r) => r.rps)), p50: mid(runs.map((r) => r.p50)), p99: mid(runs.map((r) => r.p99)), bytes: mid(runs.map((r) => r.bytes)), errors: runs.reduce((n, r) => n + r.errors, 0) };
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

export async function benchRpc(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'capstan-bench-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, token);
  const store = new MemoryStore();
  const controller = new RecordingController();
  const spec = {
    id: 'big',
    allocation: { size: 1000 },
    instance: { provider: 'aws', properties: {} },
    flavor: { kind: 'swarm-worker', properties: {} },
    update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '5m', healthyFor: '10s', onFailure: 'pause' },
  } satisfies GroupSpec;
  await store.commit(spec, 0);
  // One object per controller pass, as the controller reports it; the server serializes it once.
  controller.statuses.set('big', convergedStatus('big', 1, 1000));
  const app = createRpcServer({
    store,
    controller,
    validate: (raw) => raw as GroupSpec,
    leadership: { status: () => ({ nodeId: 'node-a', leading: true, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', since: new Date().toISOString() }) },
    tokenFile,
    logger: silentLogger,
  });
  const rpcUrl = `${await listen(app)}/rpc`;

  const describeBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'group.describe', params: { id: 'big' } });
  const statusBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'manager.status' });
  const auth = { authorization: `Bearer ${token}` };
  const call = async (body: string, headers: Record<string, string>) => (await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })).text();
  const describeAnswer = await call(describeBody, auth);
  const statusAnswer = await call(statusBody, {});
  if (!describeAnswer.includes('"converged":true') || !statusAnswer.includes('"leading":true')) throw new Error('unexpected answers');

  // The ceiling: fastify doing nothing but sending a body of the same size, already encoded.
  const bare = Fastify({ logger: false });
  const describeBytes = Buffer.from(describeAnswer);
  const statusBytes = Buffer.from(statusAnswer);
  bare.post('/describe', async (_req, reply) => reply.type('application/json; charset=utf-8').send(describeBytes));
  bare.post('/status', async (_req, reply) => reply.type('application/json; charset=utf-8').send(statusBytes));
  const bareUrl = await listen(bare);

  try {
    // Warm both paths (JIT) before measuring.
    await autocannon({ url: rpcUrl, method: 'POST', body: describeBody, headers: { 'content-type': 'application/json', ...auth }, connections, duration: 1 });
    const rows: [string, Figures, Figures, string][] = [];
    const compare = async (name: string, body: string, headers: Record<string, string>, bare: string, target: string) => {
      const server: Figures[] = [];
      const ceiling: Figures[] = [];
      for (let i = 0; i < rounds; i++) {
        server.push(await load(rpcUrl, body, headers));
        ceiling.push(await load(bare, body, {}));
      }
      rows.push([name, median(server), median(ceiling), target]);
    };
    await compare('group.describe (1,000 instances)', describeBody, auth, `${bareUrl}/describe`, '>= 80% of ceiling, p99 < 30 ms');
    await compare('manager.status', statusBody, {}, `${bareUrl}/status`, '>= 10,000 req/s');

    const pad = (s: string, n: number) => s.padEnd(n);
    const num = (n: number) => Math.round(n).toLocaleString('en-US');
    console.log(`\nJSON-RPC server, loopback, ${connections} connections, median of ${rounds} alternating ${durationS}s rounds, node ${process.version}`);
    console.log(pad('call', 34) + pad('body', 10) + pad('req/s', 10) + pad('p50 ms', 8) + pad('p99 ms', 8) + pad('ceiling', 10) + pad('c p99', 7) + pad('ratio', 8) + 'target');
    for (const [name, f, c, target] of rows) {
      console.log(
        pad(name, 34) +
          pad(`${Math.round(f.bytes / 1024)} KiB`, 10) +
          pad(num(f.rps), 10) +
          pad(String(f.p50), 8) +
          pad(String(f.p99), 8) +
          pad(num(c.rps), 10) +
          pad(String(c.p99), 7) +
          pad(`${Math.round((f.rps / c.rps) * 100)}%`, 8) +
          target +
          (f.errors + c.errors ? `  (${f.errors + c.errors} errors)` : ''),
      );
    }
  } finally {
    await app.close();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchRpc();
