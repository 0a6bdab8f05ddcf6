/**
 * Peak memory of a commit of the largest group (issue 12, item 1): in a process of its own, a group.commit of the
 * operator's maximum size over JSON-RPC, on the simulator, until every instance runs, then one group.describe. Prints
 * the peak RSS (the kernel's high-water mark for the whole process) and the RSS before the commit.
 * Alone: `npx tsc -p tsconfig.json && node dist/bench/commit.js [SIZE...]`.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { vanillaFlavorKind } from '../src/flavors/vanilla.js';
import { Controller } from '../src/group/controller.js';
import { maxGroupSize, validateSpec } from '../src/group/spec.js';
import { silentLogger } from '../src/log.js';
import { simulatorProviderKind } from '../src/providers/simulator/index.js';
import { createRpcServer } from '../src/rpc/server.js';
import type { Plugins } from '../src/spi/index.js';
import { MemoryStore } from '../test/support/memory-store.js';

const MiB = 1024 * 1024;

interface Figures {
  readonly size: number;
  readonly beforeMiB: number;
  readonly peakMiB: number;
  readonly convergedMs: number;
  readonly describeBytes: number;
}

/** One commit of `size` with the largest group set to `size`; run in a fresh process, so the peak is this commit's. */
async function commitOnce(size: number): Promise<Figures> {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]), checks: [maxGroupSize(size)] };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const store = new MemoryStore();
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  const app = createRpcServer({ store, controller, validate, leadership: { status: () => ({ leading: true }) }, insecureOpen: true, logger: silentLogger, forwardPort: 0 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/rpc`;
  const rpc = async (method: string, params: object) => {
    const res = await fetch(url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    const text = await res.text();
    const body = JSON.parse(text) as { result?: unknown; error?: unknown };
    if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
    return text;
  };
  global.gc?.();
  const beforeMiB = process.memoryUsage().rss / MiB;
  const t0 = performance.now();
  const spec = { id: 'bench', allocation: { size }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } };
  await rpc('group.commit', { spec });
  while (!(await controller.reconcile('bench'))?.converged);
  const convergedMs = performance.now() - t0;
  const describeBytes = (await rpc('group.describe', { id: 'bench' })).length;
  await controller.stop();
  await app.close();
  // maxRSS is in KiB.
  return { size, beforeMiB, peakMiB: process.resourceUsage().maxRSS / 1024, convergedMs, describeBytes };
}

export async function benchCommit(sizes: readonly number[] = [1000, 5000]): Promise<void> {
  console.log('\n## Commit of the largest group (simulator, vanilla flavor; a fresh process each)\n');
  console.log('| size (= CAPSTAN_MAX_GROUP_SIZE) | RSS before | peak RSS | commit to converged | group.describe body |');
  console.log('|---:|---:|---:|---:|---:|');
  for (const size of sizes) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', String(size)], { encoding: 'utf8' });
    const f = JSON.parse(out) as Figures;
    console.log(`| ${f.size} | ${f.beforeMiB.toFixed(0)} MiB | ${f.peakMiB.toFixed(0)} MiB | ${f.convergedMs.toFixed(0)} ms | ${(f.describeBytes / 1024).toFixed(0)} KiB |`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  if (process.argv[2] === '--one') process.stdout.write(JSON.stringify(await commitOnce(Number(process.argv[3]))));
  else await benchCommit(process.argv.length > 2 ? process.argv.slice(2).map(Number) : undefined);
}
