import t from 'tap';
import { autoscaleProblems, bytesOf, constraintMisfit, decide, policyOf, preview, type Decision } from '../../src/autoscale/decide.js';
import { createDocker } from '../../src/docker.js';
import { swarmFlavorKinds } from '../../src/flavors/swarm.js';
import { silentLogger } from '../../src/log.js';
import { group, node, state, status, swarmWorker, task } from './fixtures.js';

const ups = (ds: readonly Decision[]) => ds.filter((d) => d.action === 'scale-up');
const downs = (ds: readonly Decision[]) => ds.filter((d) => d.action === 'scale-down');
const why = (ds: readonly Decision[], reason: Decision['reason']) => ds.find((d) => d.action === 'none' && d.reason === reason);

t.test('policy: defaults, memory quantities, problems', async (t) => {
  const p = policyOf(group('web', 1, { autoscale: { scaleUpDelay: undefined } }));
  t.ok(p && 'policy' in p);
  if (p && 'policy' in p) {
    t.equal(p.policy.enabled, true);
    t.equal(p.policy.cooldown, '1m');
    t.same(p.policy.platform, { os: 'linux', architecture: 'x86_64' });
  }
  t.equal(policyOf({ ...group('web', 1), autoscale: undefined }), undefined, 'no section: not autoscaled');
  const bad = policyOf(group('web', 1, { autoscale: { cpus: 0, memory: '2 gigs' } }));
  t.match(bad, { problem: /cpus.*memory|memory.*cpus/s });
  t.match(policyOf({ ...group('web', 1), allocation: { logicalIds: ['a'] } }), { problem: /logicalIds/ });
  t.match(autoscaleProblems(group('web', 1, { kind: 'swarm-manager' })), [{ path: '/autoscale', message: /only swarm-worker groups/ }], 'a manager group must stay odd');
  t.same(autoscaleProblems({ ...group('web', 1), autoscale: undefined }), []);
  t.match(autoscaleProblems(group('web', 1, { autoscale: { labels: { pool: 'batch' } } })), [{ path: '/autoscale/labels', message: /nodeLabels/ }], 'node labels nothing would put on a machine');
  t.same(autoscaleProblems(group('web', 1, { autoscale: { labels: {} } })), [], 'none is no promise');
  t.equal(bytesOf('2GiB'), 2 * 2 ** 30);
  t.equal(bytesOf('1.5GB'), 1.5e9);
  t.equal(bytesOf(512), 512);
  t.throws(() => bytesOf('2gb'));
});

t.test('constraints: swarmkit forms on a new machine', async (t) => {
  const m = { role: 'worker' as const, labels: { pool: 'GPU' }, engineLabels: { zone: 'a' }, os: 'linux', architecture: 'x86_64' };
  t.equal(constraintMisfit('node.labels.pool==gpu', m), undefined, 'values compare case-insensitively');
  t.match(constraintMisfit('node.labels.pool!=gpu', m), /not met/);
  t.equal(constraintMisfit('node.labels.disk!=ssd', m), undefined, 'a missing label is ""');
  t.match(constraintMisfit('node.labels.disk==ssd', m), /not met/);
  t.equal(constraintMisfit(' engine.labels.zone == a ', m), undefined);
  t.equal(constraintMisfit('node.role==worker', m), undefined);
  t.match(constraintMisfit('node.role==manager', m), /not met/);
  t.equal(constraintMisfit('node.platform.os==linux', m), undefined);
  t.equal(constraintMisfit('node.platform.arch==X86_64', m), undefined);
  t.match(constraintMisfit('node.platform.arch==amd64', m), /not met/, 'constraints compare literally, as swarmkit does');
  t.match(constraintMisfit('node.platform.os!=linux', m), /not met/);
  t.match(constraintMisfit('node.hostname==db-1', m), /names particular nodes/);
  t.match(constraintMisfit('node.ip==10.0.0.1', m), /names particular nodes/);
  t.equal(constraintMisfit('NODE.Role==WORKER', m), undefined, 'key names are case-insensitive');
  t.match(constraintMisfit('node.labels.POOL==gpu', m), /not met/, 'label names are not');
  t.equal(constraintMisfit('node.id!=abc', m), undefined);
  t.match(constraintMisfit('node.labels.pool=gpu', m), /not of the form/);
  t.match(constraintMisfit('node.weather==sunny', m), /does not understand/);
});

t.test('a task pending past scaleUpDelay that fits no node adds one machine', async (t) => {
  const out = decide(state({ pending: [task('t1', { since: 50_000 })] }));
  t.match(ups(out.decisions), [{ group: 'web', count: 1, size: 3, reason: 'pending-tasks', tasks: ['t1'] }]);
  t.match(ups(out.decisions)[0]!.message, /pending for up to 10s/);
});

t.test('two pending tasks that fit one machine add one machine; more add enough for all at once', async (t) => {
  t.match(ups(decide(state({ pending: [task('a', { nanoCpus: 2e9 }), task('b', { nanoCpus: 2e9 })] })).decisions), [{ count: 1, tasks: ['a', 'b'] }]);
  // 3 + 3 + 2 + 1 + 1 CPUs on 4-CPU machines, first-fit decreasing: [3,1] [3,1] [2] = 3 machines.
  const five = [3, 1, 2, 3, 1].map((c, i) => task(`t${i}`, { nanoCpus: c * 1e9 }));
  t.match(ups(decide(state({ pending: five })).decisions), [{ count: 3, size: 5 }]);
  // Memory binds too: three tasks of 3 GiB on 8 GiB machines need two.
  const mem = [1, 2, 3].map((i) => task(`m${i}`, { nanoCpus: 0, memoryBytes: 3 * 2 ** 30 }));
  t.match(ups(decide(state({ pending: mem })).decisions), [{ count: 2 }]);
});

t.test('warm pool: a warm node is not capacity until activated, so a scale-up that activates one adds nothing more', async (t) => {
  const warm = (id: string) => node(id, 'web', { active: false, labels: { 'capstan.warm': 'true' }, reservedNanoCpus: 0, reservedMemoryBytes: 0 });
  const spec = group('web', 2);
  const pending = [task('a')];
  // Size 2, two full active workers and one warm: the task wants a machine; the scale-up will activate the warm one.
  const steady = decide(state({ spec, nodes: [node('n0', 'web'), node('n1', 'web'), warm('w')], pending }));
  t.match(ups(steady.decisions), [{ count: 1, fromPool: 1, size: 3, message: /fit 1 new machine\(s\) of group web \(1 from its warm pool\)/ }]);
  // A pool kept stopped: its node is Down (not ready), and it is still what the scale-up takes first.
  const stopped = decide(state({ spec, nodes: [node('n0', 'web'), node('n1', 'web'), { ...warm('w'), ready: false }], pending }));
  t.match(ups(stopped.decisions), [{ count: 1, fromPool: 1, message: /\(1 from its warm pool\)/ }]);
  const cold = decide(state({ spec, nodes: [node('n0', 'web'), node('n1', 'web')], pending }));
  t.equal(ups(cold.decisions)[0]?.fromPool, undefined, 'no pool: nothing from it');
  // Size 3 committed, the warm node not activated yet: it counts as a machine on its way, nothing more is added.
  const spec3 = group('web', 3);
  const committed = decide({ ...state({ spec: spec3, nodes: [node('n0', 'web'), node('n1', 'web'), warm('w')], pending }), groups: [{ spec: spec3, status: status(spec3, ['n0', 'n1', 'w']), flavor: swarmWorker }] });
  t.same(ups(committed.decisions), [], 'no second machine for the same task');
  t.match(why(committed.decisions, 'booting'), { group: 'web' });
  // A warm node is never an idle worker to remove.
  const idle = decide({ ...state({ spec, nodes: [node('n0', 'web'), node('n1', 'web'), { ...warm('w'), idleSince: 0 }] }), now: 10_000_000 });
  t.same(downs(idle.decisions), []);
});

t.test('a task whose constraint no group meets scales nothing and says why', async (t) => {
  const out = decide(state({ pending: [task('gpu', { constraints: ['node.labels.pool==gpu'] })] }));
  t.same(ups(out.decisions), []);
  const d = why(out.decisions, 'no-fitting-group');
  t.match(d, { group: '', tasks: ['gpu'] });
  t.match(d?.message, /gpu \(svc-gpu\), "no suitable node \(insufficient resources on 1 node\)": group web: constraint "node\.labels\.pool==gpu" is not met/, "Swarm's word, then Capstan's");
  const big = decide(state({ pending: [task('big', { nanoCpus: 64e9 })] }));
  t.match(why(big.decisions, 'no-fitting-group')?.message, /reserves 64 CPUs, 4 are free/);
  const arm = decide(state({ pending: [task('arm', { platforms: [{ os: 'linux', architecture: 'arm64' }] })] }));
  t.match(why(arm.decisions, 'no-fitting-group')?.message, /platforms \(linux\/arm64\) exclude linux\/x86_64/);
  t.match(ups(decide(state({ pending: [task('amd', { platforms: [{ os: 'linux', architecture: 'amd64' }] })] })).decisions), [{ count: 1 }], 'an amd64 image runs on x86_64');
  const odd = decide(state({ pending: [task('odd', { constraints: ['node.weather==sunny'] })] }));
  t.match(why(odd.decisions, 'no-fitting-group')?.message, /does not understand/);
  const generic = decide(state({ pending: [task('g', { genericResources: true })] }));
  t.match(why(generic.decisions, 'no-fitting-group')?.message, /generic resources/);
});

t.test('the group whose machines fit is chosen; labels come from the swarm flavor', async (t) => {
  const web = group('web', 1);
  const gpu = group('gpu', 0, { autoscale: { cpus: 8, memory: '32GiB' }, nodeLabels: { pool: 'gpu' } });
  const groups = [{ spec: gpu, status: status(gpu, []), flavor: swarmWorker }, { spec: web, status: status(web, ['n0']), flavor: swarmWorker }];
  const out = decide(state({ groups, nodes: [node('n0', 'web')], pending: [task('a', { constraints: ['node.labels.pool==gpu'] }), task('b', { constraints: ['engine.labels.zone==a', 'engine.labels.capstan.group==web'] })] }));
  t.match(ups(out.decisions), [{ group: 'gpu', count: 1, tasks: ['a'] }, { group: 'web', count: 1, tasks: ['b'] }]);
  const templated = decide(state({ pending: [task('c', { constraints: ['engine.labels.host==x'] })] }));
  t.same(ups(templated.decisions), [], 'a templated flavor label is unknown before boot');
  const roles = decide(state({ pending: [task('w', { constraints: ['node.role==worker'] }), task('m', { constraints: ['node.role==manager'] })] }));
  t.match(ups(roles.decisions), [{ group: 'web', tasks: ['w'] }], 'machines join as workers');
  t.match(why(roles.decisions, 'no-fitting-group'), { tasks: ['m'] });
});

t.test("a new machine's labels are its flavor's answer, not read from the flavor properties", async (t) => {
  // The properties say pool=cpu; the flavor plugin the group names says otherwise, and is believed.
  const spec = group('web', 1, { nodeLabels: { pool: 'cpu' } });
  const asked: unknown[] = [];
  const other = {
    name: 'swarm-worker',
    labels: (properties: unknown, groupId: string) => (asked.push([properties, groupId]), { node: { pool: 'gpu' }, engine: { disk: 'ssd' } }),
  };
  const pending = [task('a', { constraints: ['node.labels.pool==gpu'] }), task('b', { constraints: ['engine.labels.disk==ssd'] }), task('c', { constraints: ['node.labels.pool==cpu'] })];
  const world = (flavor?: typeof other | { name: string }) => state({ spec, groups: [{ spec, status: status(spec, ['n0']), ...(flavor ? { flavor } : {}) }], nodes: [node('n0', 'web')], pending });
  const out = decide(world(other));
  t.match(ups(out.decisions), [{ group: 'web', count: 1, tasks: ['a', 'b'] }]);
  t.match(why(out.decisions, 'no-fitting-group'), { tasks: ['c'] }, 'pool=cpu is in the properties only');
  t.same(asked[0], [spec.flavor.properties, 'web'], "asked with the group's flavor properties and id");
  t.same(ups(decide(world({ name: 'swarm-worker' })).decisions), [], 'a flavor that cannot say: a new machine is counted on for no label');
  t.same(ups(decide(world()).decisions), [], 'no flavor: likewise');
  t.match(ups(decide(world(swarmWorker)).decisions), [{ tasks: ['c'] }], 'the swarm flavor answers with its nodeLabels');
  // No Swarm is asked: a client that never connects will do.
  const [worker] = swarmFlavorKinds({ docker: createDocker('unix:///nonexistent.sock'), logger: silentLogger });
  const properties = { labels: { zone: 'a', host: '{{LINK_ID}}', format: '{{.Swarm.NodeID}}' }, nodeLabels: { pool: 'gpu' } };
  t.same(worker!.labels!(properties, 'web'), { node: { pool: 'gpu' }, engine: { zone: 'a', format: '{{.Swarm.NodeID}}', 'capstan.group': 'web' } }, 'swarm-worker: no value made at boot');
  t.same(worker!.labels!(undefined, 'web'), { node: {}, engine: { 'capstan.group': 'web' } });

  // A preview asks the flavor about the spec about to be committed, also for a group not there yet.
  const base = world(swarmWorker);
  t.match(ups(preview(base, group('web', 1, { nodeLabels: { pool: 'gpu' } })).decisions), [{ group: 'web', tasks: ['a'] }]);
  t.match(ups(preview(base, group('new', 0, { nodeLabels: { pool: 'gpu' } })).decisions), [{ group: 'new', tasks: ['a'] }, { group: 'web', tasks: ['c'] }]);
});

t.test('delay not reached: nothing yet, and when to look again', async (t) => {
  const out = decide(state({ pending: [task('t1', { since: 59_000 })] }));
  t.same(ups(out.decisions), []);
  t.match(why(out.decisions, 'delay'), { group: 'web', tasks: ['t1'] });
  t.equal(out.nextAt, 61_000);
  t.match(ups(decide(state({ now: 61_000, pending: [task('t1', { since: 59_000 })] })).decisions), [{ count: 1 }]);
});

t.test('machines still booting are counted, so nothing is launched twice', async (t) => {
  // Desired 3, two nodes ready: one machine is booting and takes the task.
  const spec = group('web', 3);
  const base = state({ spec, groups: [{ spec, status: status(spec, ['n0', 'n1']), flavor: swarmWorker }], nodes: [node('n0', 'web'), node('n1', 'web')] });
  const one = decide({ ...base, pending: [task('a', { nanoCpus: 3e9 })] });
  t.same(ups(one.decisions), []);
  t.match(why(one.decisions, 'booting'), { group: 'web', tasks: ['a'] });
  const two = decide({ ...base, pending: [task('a', { nanoCpus: 3e9 }), task('b', { nanoCpus: 3e9 })] });
  t.match(ups(two.decisions), [{ count: 1, size: 4, tasks: ['b'] }]);
  // A node that is down is not ready: its machine still counts as booting (or being replaced).
  const down = decide({ ...base, nodes: [node('n0', 'web'), node('n1', 'web', { ready: false })], pending: [task('a', { nanoCpus: 3e9 }), task('b', { nanoCpus: 3e9 })] });
  t.same(ups(down.decisions), []);
});

t.test('bounds.max holds; the next fitting group takes the rest', async (t) => {
  const full = decide(state({ spec: group('web', 2, { max: 3 }), pending: [task('a', { nanoCpus: 4e9 }), task('b', { nanoCpus: 4e9 })] }));
  t.match(ups(full.decisions), [{ count: 1, size: 3 }]);
  t.match(why(full.decisions, 'bounds'), { group: 'web', tasks: ['b'], message: /bounds.max 3/ });
  const a = group('a', 1, { max: 1 });
  const b = group('b', 0);
  const spill = decide(state({ groups: [{ spec: a, status: status(a, ['n0']), flavor: swarmWorker }, { spec: b, flavor: swarmWorker }], nodes: [node('n0', 'a')], pending: [task('x')] }));
  t.match(ups(spill.decisions), [{ group: 'b', count: 1 }]);
});

t.test('cooldown: no second scale-up of a group within it, and when it ends', async (t) => {
  const s = state({ pending: [task('a')] });
  const out = decide({ ...s, lastScaled: { web: { at: 30_000, action: 'scale-up' } } });
  t.same(ups(out.decisions), []);
  t.match(why(out.decisions, 'cooldown'), { group: 'web', message: /scaled up 30s ago, cooldown 1m/ });
  t.equal(out.nextAt, 90_000);
  t.match(ups(decide({ ...s, lastScaled: { web: { at: 30_000, action: 'scale-down' } } }).decisions), [{ count: 1 }], 'a removal does not delay needed capacity');
});

t.test('disabled or invalid policies do nothing; invalid ones say why', async (t) => {
  const off = decide(state({ spec: group('web', 2, { autoscale: { enabled: false } }), pending: [task('a')] }));
  t.same(ups(off.decisions), []);
  t.match(why(off.decisions, 'no-fitting-group')?.message, /no group has autoscale enabled/);
  const bad = decide(state({ spec: group('web', 2, { autoscale: { cpus: 'many' } }), pending: [task('a')] }));
  t.match(why(bad.decisions, 'invalid-policy'), { group: 'web', message: /cpus/ });
});

const idleState = (over: { size?: number; min?: number; idleSince?: number; pending?: ReturnType<typeof task>[] } = {}) => {
  const spec = group('web', over.size ?? 2, { ...(over.min === undefined ? {} : { min: over.min }) });
  const nodes = [node('n0', 'web'), node('n1', 'web', { idleSince: over.idleSince ?? 0, reservedNanoCpus: 0, reservedMemoryBytes: 0 })];
  return state({ now: 700_000, spec, groups: [{ spec, status: status(spec, ['n0', 'n1']), flavor: swarmWorker }], nodes, pending: over.pending ?? [] });
};

t.test('scale-down: a worker idle for scaleDownIdle is removed, naming its instance', async (t) => {
  const out = decide(idleState());
  t.match(downs(out.decisions), [{ group: 'web', action: 'scale-down', reason: 'idle', instanceId: 'i-n1', nodeId: 'n1', size: 1 }]);
  const young = decide(idleState({ idleSince: 650_000 }));
  t.same(downs(young.decisions), []);
  t.equal(young.nextAt, 1_250_000, 'looks again when the idle time is reached');
});

t.test('scale-down: never below min, never while a scale-up is pending, respects cooldown', async (t) => {
  const atMin = decide(idleState({ min: 2 }));
  t.same(downs(atMin.decisions), []);
  t.match(why(atMin.decisions, 'bounds'), { nodeId: 'n1', message: /bounds.min 2/ });
  const wanted = decide(idleState({ pending: [task('a', { constraints: ['node.hostname!=host-n1'], since: 699_000 })] }));
  t.same(downs(wanted.decisions), []);
  t.match(why(wanted.decisions, 'scale-up-pending'), { group: 'web' });
  const booting = decide(idleState({ size: 3 }));
  t.same(downs(booting.decisions), [], 'a booting machine means a scale-up is under way');
  const cool = decide({ ...idleState(), lastScaled: { web: { at: 690_000, action: 'scale-down' } } });
  t.same(downs(cool.decisions), []);
  t.match(why(cool.decisions, 'cooldown'), { nodeId: 'n1' });
  t.equal(cool.nextAt, 750_000);
  const unfit = decide(idleState({ pending: [task('gpu', { constraints: ['node.labels.pool==gpu'] })] }));
  t.match(downs(unfit.decisions), [{ nodeId: 'n1' }], 'a task no group could ever run does not pin idle workers');
});

t.test('scale-down: managers, unlinked, drained nodes, nodes a pending task could use, groups converging stay', async (t) => {
  const s = idleState();
  const manager = decide({ ...s, nodes: [node('n0', 'web'), node('n1', 'web', { idleSince: 0, role: 'manager', reservedNanoCpus: 0 })] });
  t.same(downs(manager.decisions), []);
  const unlinked = decide({ ...s, nodes: [node('n0', 'web'), node('n9', 'web', { idleSince: 0 })] });
  t.same(downs(unlinked.decisions), [], 'no instance is known for the node');
  // A task Swarm has not placed yet but that n1 could run (it names n1): n1 has work coming.
  const needed = decide({ ...s, pending: [task('pin', { constraints: ['node.hostname==host-n1'] })] });
  t.same(downs(needed.decisions), []);
  const drained = decide({ ...s, nodes: [node('n0', 'web'), node('n1', 'web', { idleSince: 0, active: false })] });
  t.same(downs(drained.decisions), [], 'an operator drained it: not the autoscaler\'s');
  const rolling = decide({ ...s, groups: [{ ...s.groups[0]!, status: { ...s.groups[0]!.status!, converged: false } }] });
  t.same(downs(rolling.decisions), []);
  t.match(why(rolling.decisions, 'converging'), { nodeId: 'n1' });
  const twoIdle = decide({ ...s, nodes: [node('n0', 'web', { idleSince: 10, reservedNanoCpus: 0 }), node('n1', 'web', { idleSince: 0, reservedNanoCpus: 0 })] });
  t.match(downs(twoIdle.decisions), [{ nodeId: 'n1' }], 'one at a time, the longest idle first');
});

t.test('scale-down: never a protected node; scaleIn newest or oldest by launch time', async (t) => {
  const s = idleState();
  const idle = (id: string, over: Partial<Parameters<typeof node>[2]> = {}) => node(id, 'web', { idleSince: 0, reservedNanoCpus: 0, reservedMemoryBytes: 0, ...over });
  const kept = decide({ ...s, nodes: [node('n0', 'web'), idle('n1', { labels: { 'capstan.protect': 'true' } })] });
  t.same(downs(kept.decisions), [], 'a node labelled capstan.protect=true is never chosen');
  // Two workers idle as long: least-busy (the default) and newest take the newest, oldest the oldest.
  const g = s.groups[0]!;
  const launched = { ...g.status!, instances: g.status!.instances.map((i, n) => ({ ...i, launchedAt: new Date(1000 * (n + 1)).toISOString() })) };
  const two = (scaleIn?: 'least-busy' | 'newest' | 'oldest') =>
    decide({ ...s, groups: [{ ...g, spec: { ...g.spec, ...(scaleIn ? { scaleIn } : {}) }, status: launched }], nodes: [idle('n0'), idle('n1')] });
  t.match(downs(two().decisions), [{ nodeId: 'n1' }]);
  t.match(downs(two('newest').decisions), [{ nodeId: 'n1' }]);
  t.match(downs(two('oldest').decisions), [{ nodeId: 'n0' }]);
});

t.test('preview: what a spec about to be committed would do', async (t) => {
  const s = state({ pending: [task('a', { nanoCpus: 6e9 })] });
  t.same(ups(preview(s).decisions), []);
  t.match(ups(preview(s, group('web', 2, { autoscale: { cpus: 8 } })).decisions), [{ group: 'web', count: 1 }]);
});

t.test('a node that just joined counts as booting until the scheduler has had its chance', async (t) => {
  // Desired 2, both ready, n1 for 1 s: the scheduler may not have placed the task on it yet.
  const s = state({ nodes: [node('n0', 'web', { readySince: 0 }), node('n1', 'web', { readySince: 59_000, reservedNanoCpus: 0, reservedMemoryBytes: 0 })], pending: [task('a')] });
  const fresh = decide(s);
  t.same(ups(fresh.decisions), []);
  t.match(why(fresh.decisions, 'booting'), { group: 'web', tasks: ['a'], message: /just joined/ });
  t.equal(fresh.nextAt, 64_000);
  const full = decide({ ...s, nodes: [node('n0', 'web'), node('n1', 'web', { readySince: 59_000, reservedNanoCpus: 3.5e9, reservedMemoryBytes: 0 })] });
  t.match(ups(full.decisions), [{ count: 1 }], 'a fresh node without room for the task does not count');
  const other = decide({ ...s, pending: [task('b', { constraints: ['node.hostname!=host-n1'] })] });
  t.match(ups(other.decisions), [{ count: 1 }], 'nor one the task excludes');
});

t.test('a task Swarm leaves pending on a node that fits it as far as Capstan can tell: something unmodeled, no machines', async (t) => {
  // n1 has had its chance (joined 5 s ago or more) and has room: Swarm wants something else (max replicas per node,
  // a host port...). Machines like it would not help, and adding them would go on up to bounds.max.
  const s = state({ nodes: [node('n0', 'web'), node('n1', 'web', { readySince: 55_000, reservedNanoCpus: 0, reservedMemoryBytes: 0 })], pending: [task('a')] });
  const out = decide(s);
  t.same(ups(out.decisions), []);
  t.match(why(out.decisions, 'no-fitting-group'), { tasks: ['a'], message: /Swarm does not place it on node n1, which fits it as far as Capstan can tell/ });
  const drained = decide({ ...s, nodes: [node('n0', 'web'), node('n1', 'web', { active: false, reservedNanoCpus: 0, reservedMemoryBytes: 0 })] });
  t.match(ups(drained.decisions), [{ count: 1 }], 'a drained node is no evidence');
});

t.test('per-node limits: max replicas per node and host ports spread tasks over machines', async (t) => {
  const spread = { 'max replicas of web': 1 };
  const two = decide(state({ pending: [task('a', { limits: spread }), task('b', { limits: spread })] }));
  t.match(ups(two.decisions), [{ count: 2 }], 'one replica per machine: two machines, though one has the room');
  const port = { 'host port tcp/8080': 1 };
  t.match(ups(decide(state({ pending: [task('a', { limits: port }), task('b', { limits: { ...port, 'max replicas of x': 3 } })] })).decisions), [{ count: 2 }]);
  // A settled node with room, but already holding the replica: not evidence against the model, a machine is added.
  const s = state({ nodes: [node('n0', 'web'), node('n1', 'web', { reservedNanoCpus: 0, reservedMemoryBytes: 0, held: spread })], pending: [task('c', { limits: spread })] });
  t.match(ups(decide(s).decisions), [{ count: 1 }]);
  // A machine that just joined and holds the replica does not count as room for it either.
  const fresh = state({ nodes: [node('n0', 'web'), node('n1', 'web', { readySince: 59_000, reservedNanoCpus: 0, reservedMemoryBytes: 0, held: spread })], pending: [task('c', { limits: spread })] });
  t.match(ups(decide(fresh).decisions), [{ count: 1 }]);
});
