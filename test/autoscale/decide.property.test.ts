// Properties of the pure decision over random clusters: bounds hold, packing is sound, nothing is launched twice.
import t from 'tap';
import fc from 'fast-check';
import { bytesOf, decide, policyOf, type AutoscalePolicy, type AutoscaleState, type Decision, type NodeView, type Tried } from '../../src/autoscale/decide.js';
import { durationMs } from '../../src/spi/quantity.js';
import { group, node, status, swarmWorker, task } from './fixtures.js';

const CONSTRAINTS = ['node.labels.pool==gpu', 'node.labels.pool!=gpu', 'node.role==worker', 'node.role==manager', 'engine.labels.zone==a', 'node.platform.os==linux', 'node.hostname==x', 'bogus'];

const groupArb = fc.record({
  size: fc.integer({ min: 0, max: 5 }),
  minBelow: fc.integer({ min: 0, max: 5 }),
  maxAbove: fc.integer({ min: 0, max: 4 }),
  ready: fc.integer({ min: 0, max: 5 }),
  cpus: fc.constantFrom(2, 4, 8),
  memGiB: fc.constantFrom(4, 8, 16),
  gpu: fc.boolean(),
  enabled: fc.boolean(),
  idle: fc.array(fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }), { maxLength: 5 }),
  readyAgo: fc.option(fc.integer({ min: 0, max: 20_000 }), { nil: undefined }),
  lastScaled: fc.option(fc.record({ ago: fc.integer({ min: 0, max: 120_000 }), action: fc.constantFrom('scale-up' as const, 'scale-down' as const) }), { nil: undefined }),
});

const world = fc.record({
  now: fc.integer({ min: 1_000_000, max: 2_000_000 }),
  groups: fc.array(groupArb, { minLength: 1, maxLength: 3 }),
  tasks: fc.array(
    fc.record({
      cpus: fc.integer({ min: 0, max: 9 }),
      memGiB: fc.integer({ min: 0, max: 17 }),
      age: fc.integer({ min: 0, max: 10_000 }),
      constraints: fc.subarray(CONSTRAINTS, { maxLength: 2 }),
    }),
    { maxLength: 10 },
  ),
  // Machines added for pending tasks earlier (task and group by index), some already found not to satisfy them.
  tried: fc.array(fc.record({ task: fc.nat(9), group: fc.nat(2), ago: fc.integer({ min: 0, max: 30_000 }), verdict: fc.boolean() }), { maxLength: 6 }),
});

type World = typeof world extends fc.Arbitrary<infer W> ? W : never;

function build(w: World): AutoscaleState {
  const groups = w.groups.map((g, i) => {
    const id = `g${i}`;
    const spec = group(id, g.size, {
      min: Math.max(0, g.size - g.minBelow),
      max: g.size + g.maxAbove,
      autoscale: { enabled: g.enabled, cpus: g.cpus, memory: `${g.memGiB}GiB` },
      ...(g.gpu ? { nodeLabels: { pool: 'gpu' } } : {}),
    });
    const ready = Math.min(g.ready, g.size);
    const links = Array.from({ length: ready }, (_, n) => `${id}-n${n}`);
    const nodes: NodeView[] = links.map((l, n) => {
      const since = g.idle[n];
      return node(l, id, {
        nanoCpus: g.cpus * 1e9,
        memoryBytes: g.memGiB * 2 ** 30,
        ...(since === undefined ? {} : { idleSince: w.now - since }),
        ...(g.readyAgo === undefined ? {} : { readySince: w.now - g.readyAgo }),
      });
    });
    return { g, spec, status: status(spec, links), nodes };
  });
  return {
    now: w.now,
    groups: groups.map(({ spec, status }) => ({ spec, status, flavor: swarmWorker })),
    nodes: groups.flatMap((g) => g.nodes),
    pending: w.tasks.map((x, i) => task(`t${i}`, { nanoCpus: x.cpus * 1e9, memoryBytes: x.memGiB * 2 ** 30, since: w.now - x.age, constraints: x.constraints })),
    lastScaled: Object.fromEntries(groups.flatMap(({ g, spec }) => (g.lastScaled ? [[spec.id, { at: w.now - g.lastScaled.ago, action: g.lastScaled.action }]] : []))),
    tried: triedOf(w),
  };
}

/** w.tried as AutoscaleState.tried, for the tasks and groups that exist. */
function triedOf(w: World): Record<string, Record<string, Tried>> {
  const out: Record<string, Record<string, Tried>> = {};
  for (const x of w.tried) {
    if (x.task >= w.tasks.length || x.group >= w.groups.length) continue;
    (out[`t${x.task}`] ??= {})[`g${x.group}`] = { at: w.now - x.ago, ...(x.verdict ? { verdict: 'it did not fit' } : {}) };
  }
  return out;
}

const specOf = (s: AutoscaleState, id: string) => s.groups.find((g) => g.spec.id === id)!.spec;
const sizeOf = (s: AutoscaleState, id: string) => (specOf(s, id).allocation as { size: number }).size;

t.test('bounds always hold; one action of each kind per group; sizes follow counts', async (t) => {
  const seen = new Map<string, number>();
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      const ds = decide(s).decisions;
      for (const d of ds) seen.set(`${d.action}/${d.reason}`, (seen.get(`${d.action}/${d.reason}`) ?? 0) + 1);
      for (const d of ds.filter((d) => d.action !== 'none')) {
        const spec = specOf(s, d.group);
        const size = sizeOf(s, d.group);
        if (d.action === 'scale-up') {
          if (!(d.count! > 0 && d.size === size + d.count! && d.size! <= (spec.bounds?.max ?? Infinity))) throw new Error(`bad scale-up ${JSON.stringify(d)}`);
        } else if (!(d.size === size - 1 && d.size >= (spec.bounds?.min ?? 0))) throw new Error(`bad scale-down ${JSON.stringify(d)}`);
      }
      const keys = ds.filter((d) => d.action !== 'none').map((d) => `${d.group}/${d.action}`);
      if (new Set(keys).size !== keys.length) throw new Error(`two actions of a kind: ${keys.join(',')}`);
      if (ds.some((d) => d.action === 'scale-up') && ds.some((d) => d.action === 'scale-down')) throw new Error('scale-down during a scale-up');
    }),
    { numRuns: 2000 },
  );
  // The random clusters exercise every kind of decision, so the properties are not vacuous.
  for (const kind of ['scale-up/pending-tasks', 'scale-down/idle', 'none/bounds', 'none/cooldown', 'none/booting', 'none/delay', 'none/no-fitting-group', 'none/scale-up-pending']) {
    t.ok((seen.get(kind) ?? 0) > 10, `${kind}: ${seen.get(kind) ?? 0} times`);
  }
});

t.test('packing is sound: every task fits its group, no more machines than tasks, no fewer than the reservations need', async () => {
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      for (const d of decide(s).decisions.filter((d) => d.action === 'scale-up')) {
        const p = policyOf(specOf(s, d.group));
        if (!p || !('policy' in p)) throw new Error('scaled a group without a policy');
        if (!p.policy.enabled) throw new Error('scaled a disabled group');
        const mine = s.pending.filter((x) => d.tasks!.includes(x.id));
        if (mine.length !== d.tasks!.length || d.count! > mine.length) throw new Error(`count ${d.count} for ${mine.length} tasks`);
        const cpu = mine.reduce((a, x) => a + x.nanoCpus, 0);
        const mem = mine.reduce((a, x) => a + x.memoryBytes, 0);
        const need = Math.max(Math.ceil(cpu / (p.policy.cpus * 1e9)), Math.ceil(mem / bytesOf(p.policy.memory)));
        if (d.count! < need) throw new Error(`${d.count} machines for ${cpu / 1e9} CPUs / ${mem} bytes`);
        for (const x of mine) {
          if (s.now - x.since < durationMs(p.policy.scaleUpDelay)) throw new Error(`${x.id} scaled before its delay`);
          if (x.constraints.includes('bogus') || x.constraints.includes('node.hostname==x')) throw new Error(`${x.id} cannot fit a new machine`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

t.test('cooldown is respected', async () => {
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      for (const d of decide(s).decisions.filter((d) => d.action !== 'none')) {
        const last = s.lastScaled?.[d.group];
        const p = policyOf(specOf(s, d.group)) as { policy: AutoscalePolicy };
        const cooling = last && s.now - last.at < durationMs(p.policy.cooldown);
        if (cooling && (d.action === 'scale-down' || last.action === 'scale-up')) throw new Error(`${d.action} of ${d.group} ${s.now - last.at} ms after a ${last.action}`);
      }
    }),
    { numRuns: 2000 },
  );
});

t.test('every due task that fits is placed, or the decision says why not', async () => {
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      const ds = decide(s).decisions;
      const told = new Set(ds.flatMap((d: Decision) => d.tasks ?? []));
      for (const x of s.pending) if (!told.has(x.id)) throw new Error(`${x.id} neither placed nor explained`);
    }),
    { numRuns: 2000 },
  );
});

t.test('a task found not to fit a group\'s machines after all never gets another machine of that group', async () => {
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      const out = decide(s);
      const spent = new Set([...Object.entries(s.tried ?? {}).flatMap(([task, by]) => Object.entries(by).filter(([, x]) => x.verdict).map(([g]) => `${task}/${g}`)), ...(out.unsatisfiable ?? []).map((u) => `${u.task}/${u.group}`)]);
      for (const d of out.decisions) for (const x of d.action === 'scale-up' ? (d.tasks ?? []) : []) if (spent.has(`${x}/${d.group}`)) throw new Error(`${x} got a machine of ${d.group}`);
      for (const u of out.unsatisfiable ?? []) if (!out.decisions.some((d) => d.reason === 'unsatisfiable' && d.group === u.group && d.tasks?.includes(u.task))) throw new Error(`${u.task}: no why-not`);
    }),
    { numRuns: 2000 },
  );
});

t.test('deterministic: the order of groups, nodes and tasks does not matter', async () => {
  fc.assert(
    fc.property(world, (w) => {
      const s = build(w);
      const r = { ...s, groups: [...s.groups].reverse(), nodes: [...s.nodes].reverse(), pending: [...s.pending].reverse() };
      const a = JSON.stringify(decide(s));
      const b = JSON.stringify(decide(r));
      if (a !== b) throw new Error(`${a}\n!=\n${b}`);
    }),
    { numRuns: 1000 },
  );
});

t.test('a protected node (capstan.protect=true) is never scaled in; warm nodes are never scaled in', async () => {
  fc.assert(
    fc.property(world, fc.array(fc.constantFrom('none', 'protect', 'warm'), { maxLength: 15 }), (w, marks) => {
      const s = build(w);
      const marked = s.nodes.map((n, i) => {
        const m = marks[i] ?? 'none';
        return m === 'protect' ? { ...n, labels: { ...n.labels, 'capstan.protect': 'true' } } : m === 'warm' ? { ...n, active: false, labels: { ...n.labels, 'capstan.warm': 'true' } } : n;
      });
      const spared = new Set(marked.filter((n) => n.labels['capstan.protect'] === 'true' || n.labels['capstan.warm'] === 'true').map((n) => n.id));
      for (const d of decide({ ...s, nodes: marked }).decisions) {
        if (d.action === 'scale-down' && spared.has(d.nodeId!)) throw new Error(`scaled in ${d.nodeId}`);
      }
    }),
    { numRuns: 500 },
  );
});
