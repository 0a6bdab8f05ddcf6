// Planner and controller figures on the simulator: `npm run bench`. Prints, with the machine's load; asserts nothing.
import { loadavg } from 'node:os';
import { Controller } from '../src/group/controller.js';
import { configHash } from '../src/group/identity.js';
import { plan } from '../src/group/planner.js';
import { validateSpec } from '../src/group/spec.js';
import { silentLogger } from '../src/log.js';
import { vanillaFlavorKind } from '../src/flavors/vanilla.js';
import { SimulatedCloud, simulatorProviderKind } from '../src/providers/simulator/index.js';
import type { Plugins } from '../src/spi/index.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function rig(properties: object, size: number) {
  const cloud = new SimulatedCloud();
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind(cloud)]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const spec = validateSpec({ id: 'bench', allocation: { size }, instance: { provider: 'simulator', properties }, flavor: { kind: 'vanilla' }, update: { healthyFor: '0s' } }, plugins);
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  return { cloud, spec, controller };
}

async function steady(size: number) {
  const { cloud, spec, controller } = rig({ maxBatch: 1000 }, size);
  controller.apply({ id: 'bench', version: 1, createdAt: '', spec });
  while (!(await controller.reconcile('bench'))?.converged);
  const observed = cloud.list().map((instance) => ({ instance, health: 'healthy' as const, healthySince: 0 }));
  const hash = configHash(spec);
  const planMs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    plan({ spec, configHash: hash, observed, now: Date.now(), paused: false });
    planMs.push(performance.now() - t0);
  }
  const passMs: number[] = [];
  const before = { ...cloud.calls };
  const passes = size > 1000 ? 30 : 100;
  for (let i = 0; i < passes; i++) {
    const t0 = performance.now();
    await controller.reconcile('bench');
    passMs.push(performance.now() - t0);
  }
  controller.stop();
  const per = (k: keyof typeof before) => (cloud.calls[k] - before[k]) / passes;
  return { size, plan: median(planMs), pass: median(passMs), calls: `describe ${per('describe')}, provision ${per('provision')}, destroy ${per('destroy')}` };
}

async function scaleUp(size: number, latencyMs: number, maxBatch: number) {
  const { cloud, spec, controller } = rig({ latencyMs, maxBatch }, size);
  const t0 = performance.now();
  controller.apply({ id: 'bench', version: 1, createdAt: '', spec });
  let passes = 0;
  while (!(await controller.reconcile('bench'))?.converged) passes++;
  const wall = performance.now() - t0;
  controller.stop();
  return { wall, passes: passes + 1, provisions: cloud.calls.provision, bound: Math.ceil(size / maxBatch) };
}

export async function benchGroup(): Promise<void> {
  console.log('\n## Planner and controller (simulator provider, vanilla flavor)\n');
  console.log(`A steady pass: observe (describe, health) + plan, and the status and metrics it leaves. Load average (1, 5, 15 min): ${loadavg().map((l) => l.toFixed(2)).join(', ')}.\n`);
  console.log('| instances | plan (median) | pass (median) | target | provider calls per steady pass |');
  console.log('|---:|---:|---:|---:|---|');
  const targets: Record<number, string> = { 1000: '< 2 ms', 10_000: '< 20 ms' };
  for (const size of [1000, 10_000]) {
    const r = await steady(size);
    console.log(`| ${r.size} | ${r.plan.toFixed(2)} ms | ${r.pass.toFixed(2)} ms | ${targets[size]} | ${r.calls} |`);
  }
  const latencyMs = 50;
  const r = await scaleUp(1000, latencyMs, 100);
  console.log(`\nScale-up 0 -> 1000, ${latencyMs} ms provider latency, batches of 100: ${r.wall.toFixed(0)} ms wall, ` +
    `${r.provisions} provision calls (bound ceil(1000/100) = ${r.bound}), converged on pass ${r.passes} ` +
    `(${(r.wall / latencyMs).toFixed(1)} provider latencies).`);
}

if (import.meta.url === `file://${process.argv[1]}`) await benchGroup();
