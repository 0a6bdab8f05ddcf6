// Cost of one autoscaling decision on large clusters: it runs on every Swarm event, so it must stay far below the
// 2 s pending-to-scale-up goal. `npm run bench` (once bench/run.ts calls it) or `node dist/bench/autoscale.js`.
// Prints; asserts nothing.
import { pathToFileURL } from 'node:url';
import { decide, type AutoscaleState, type NodeView, type PendingTask } from '../src/autoscale/decide.js';
import { machineLabels, type SwarmFlavorProperties } from '../src/flavors/swarm.js';
import type { GroupSpec } from '../src/spi/index.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function cluster(groups: number, nodesPerGroup: number, pending: number): AutoscaleState {
  const now = 10_000_000;
  const specs: GroupSpec[] = Array.from({ length: groups }, (_, g) => ({
    id: `g${g}`,
    allocation: { size: nodesPerGroup },
    bounds: { max: nodesPerGroup * 2 },
    instance: { provider: 'simulator', properties: {} },
    flavor: { kind: 'swarm-worker', properties: { nodeLabels: { pool: `p${g % 3}` } } },
    update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '5m', healthyFor: '10s', onFailure: 'pause' },
    autoscale: { scaleUpDelay: '1s', cpus: 2 ** (g % 4), memory: `${4 * 2 ** (g % 4)}GiB` },
  }));
  const nodes: NodeView[] = specs.flatMap((s) =>
    Array.from({ length: nodesPerGroup }, (_, i) => ({
      id: `${s.id}-n${i}`,
      role: 'worker' as const,
      ready: true,
      active: true,
      labels: {},
      engineLabels: { 'capstan.group': s.id },
      os: 'linux',
      architecture: 'x86_64',
      nanoCpus: 4e9,
      memoryBytes: 16 * 2 ** 30,
      // Full: were there room, Swarm would have placed the pending tasks.
      reservedNanoCpus: 4e9,
      reservedMemoryBytes: 16 * 2 ** 30,
    })),
  );
  const tasks: PendingTask[] = Array.from({ length: pending }, (_, i) => ({
    id: `t${i}`,
    service: `s${i % 50}`,
    since: now - (i % 3) * 1000,
    nanoCpus: ((i % 8) + 1) * 0.25e9,
    memoryBytes: ((i % 5) + 1) * 2 ** 29,
    constraints: i % 4 === 0 ? [`node.labels.pool==p${i % 3}`] : i % 7 === 0 ? ['node.labels.pool==none'] : [],
    platforms: [],
    error: 'no suitable node (insufficient resources on 1 node)',
  }));
  // The swarm-worker flavor's answer: which labels (here the `pool` node label) a new machine of the group carries.
  const flavor = { name: 'swarm-worker', labels: (p: unknown, id: string) => machineLabels(p as SwarmFlavorProperties, id) };
  const groupsView = specs.map((spec) => ({
    spec,
    flavor,
    status: {
      id: spec.id,
      version: 1,
      size: nodesPerGroup,
      configHash: 'h',
      converged: true,
      update: { state: 'idle' as const, total: nodesPerGroup, done: nodesPerGroup, failed: 0 },
      instances: nodes.filter((n) => n.engineLabels['capstan.group'] === spec.id).map((n) => ({ id: `i-${n.id}`, state: 'running', config: 'h', health: 'healthy', link: n.id })),
    },
  }));
  return { now, groups: groupsView, nodes, pending: tasks };
}

export async function benchAutoscale(): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  for (const [groups, perGroup, pending] of [[3, 10, 10], [10, 100, 500], [20, 100, 5000]] as const) {
    const state = cluster(groups, perGroup, pending);
    const ms: number[] = [];
    let out = decide(state);
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      out = decide(state);
      ms.push(performance.now() - t0);
    }
    const added = out.decisions.filter((d) => d.action === 'scale-up').reduce((a, d) => a + d.count!, 0);
    rows.push({ groups, nodes: groups * perGroup, pending, 'decide ms (median)': Number(median(ms).toFixed(2)), 'machines added': added });
  }
  console.log('autoscale: one decision (pure) with every node full, median of 10');
  console.table(rows);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchAutoscale();
