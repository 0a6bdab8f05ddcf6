import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  GROUP_LABEL,
  LINK_TAG,
  assessNodes,
  quorumRefusal,
  swarmFlavorKinds,
  type SwarmNode,
} from '../../src/flavors/swarm.js';
import { CapstanError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import type { Instance } from '../../src/spi/index.js';
import { createDocker } from '../../src/docker.js';
import { engine, engineHost } from '../support/engine.js';

const docker = engine();
const group = `t-swarm-${randomBytes(3).toString('hex')}`;
const [workerKind, managerKind] = swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200 });
const service = `${group}-sleep`;
// The machines get a network of their own, like a subnet of a real cloud, and reach the manager at the host's
// address there: nothing in this file then depends on the engine's default bridge.
await docker.createNetwork({ Name: group, Labels: { 'capstan.test': group } });
const managerAddr = `${(await docker.getNetwork(group).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;
const provider = dockerProviderKind({ logger: silentLogger }).create({ engine: engineHost(), network: group });

t.teardown(async () => {
  await docker.getService(service).remove().catch(() => undefined);
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  for (const node of (await docker.listNodes()) as SwarmNode[]) {
    if (node.Description?.Engine?.Labels?.[GROUP_LABEL] === group) await docker.getNode(node.ID).remove({ force: true }).catch(() => undefined);
  }
  await docker.getNetwork(group).remove();
});

/** Extra engine labels whose values a shell, awk, printf or JSON could take for syntax: the engine carries them as given. */
const HOSTILE_LABELS: Record<string, string> = {
  'capstan-test': '{{GROUP_ID}}',
  quotes: `it's "quoted" '\\''`,
  backslashes: 'a\\b \\\\c \\n \\u0041 \\',
  substitution: '$(touch /tmp/capstan-pwned) ${HOME} `id` $((1+1))',
  newlines: 'line 1\nline 2\ttab',
  punctuation: ';|&<>(){}[]*?~#! %s %%',
  unicode: 'ünïcødé ✓ 🚀 日本語',
  equals: 'a=b==c',
  json: '{"labels":["x=y"]},]}',
  awk: '& \\& \\1 $0',
  empty: '',
};
/** The engine labels of a machine of the group with HOSTILE_LABELS, as a Swarm node describes them. */
const engineLabels = (link: string): Record<string, string> => ({
  'capstan.instance': link,
  'capstan.group': group,
  ...Object.fromEntries(Object.entries(HOSTILE_LABELS).map(([k, v]) => [k, v.replace('{{GROUP_ID}}', group)])),
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

t.test('validate: schema, template variables, odd manager counts', async (t) => {
  t.equal(workerKind!.name, 'swarm-worker');
  t.equal(managerKind!.name, 'swarm-manager');
  t.same(workerKind!.validate!({ before: 'echo {{GROUP_ID}} {{LOGICAL_ID}} {{ROLE}}', after: 'echo {{JOIN_ADDR}} {{LINK_ID}} {{CONFIG_HASH}}' }, { size: 2 }), []);
  t.match(workerKind!.validate!({ before: 'echo {{TOKEN}}' }, { size: 1 }), [/^\/before: unknown template variable \{\{TOKEN\}\}/]);
  t.match(workerKind!.validate!({ labels: { zone: '{{ZONE}}' } }, { size: 1 }), [/^\/labels\/zone: unknown template variable/]);
  t.match(workerKind!.validate!({ labels: { 'capstan.x': 'y' } }, { size: 1 }), [/^\/labels\/capstan\.x: /]);
  t.match(workerKind!.validate!({ drainTimeout: 'soon' }, { size: 1 }), [/^\/drainTimeout: /]);
  t.match(workerKind!.validate!({ after: 'echo {{LOGICAL_ID}}' }, { logicalIds: ['a b'] }), [/^\/allocation\/logicalIds\/0: /]);
  t.same(managerKind!.validate!({}, { size: 4 }), [], 'the managers\' count is the Swarm\'s, checked by admit');
  t.ok(managerKind!.admit && !workerKind!.admit, 'only managers are admitted against the Swarm');
  t.same(workerKind!.validate!({}, { logicalIds: ['w1', 'w2'] }), [], 'workers may be any number');
  t.same(workerKind!.validate!({ after: "docker info --format '{{.Swarm.NodeID}} {{json .Labels}}'" }, { size: 1 }), [], 'docker templates are not variables');
  t.throws(() => workerKind!.create({ after: '{{NOPE}}' }), /unknown template variable/);
});

t.test('quorum: a demotion or removal must leave a reachable majority of the remaining managers', async (t) => {
  const m = (id: string, reachable = true) => ({ id, reachable });
  t.equal(quorumRefusal([m('a'), m('b'), m('c')], 'a'), undefined);
  t.equal(quorumRefusal([m('a'), m('b')], 'a'), undefined, '2 -> 1 keeps quorum');
  t.equal(quorumRefusal([m('a', false), m('b'), m('c')], 'a'), undefined, 'removing the unreachable one is safe');
  t.match(quorumRefusal([m('a'), m('b'), m('c', false)], 'a'), /1 reachable of 2/);
  t.match(quorumRefusal([m('a'), m('b'), m('c'), m('d', false), m('e', false)], 'a'), /2 reachable of 4/);
  t.match(quorumRefusal([m('a')], 'a'), /last manager/);
  t.equal(quorumRefusal([m('a'), m('b'), m('c')], 'worker'), undefined, 'a worker is not a manager');
});

t.test('health from linked nodes', async (t) => {
  const node = (id: string, state: SwarmNode['Status']['State'], extra: Partial<SwarmNode> = {}): SwarmNode => ({
    ID: id,
    Version: { Index: 1 },
    Spec: { Role: 'worker', Availability: 'active' },
    Status: { State: state },
    ...extra,
  });
  t.same(assessNodes([], 'worker'), { health: 'unknown' });
  t.same(assessNodes([node('n1', 'ready')], 'worker'), { health: 'healthy', link: 'n1' });
  t.same(assessNodes([node('n1', 'down')], 'worker'), { health: 'unhealthy', link: 'n1' });
  t.same(assessNodes([node('n1', 'down'), node('n2', 'ready')], 'worker'), { health: 'healthy', link: 'n2' }, 'an old Down node of a rejoined machine');
  t.equal(assessNodes([node('n1', 'ready'), node('n2', 'ready')], 'worker').health, 'unhealthy', 'joined twice');
  t.equal(assessNodes([node('n1', 'ready', { Spec: { Role: 'worker', Availability: 'drain' } })], 'worker').health, 'unhealthy');
  t.equal(assessNodes([node('n1', 'ready')], 'manager').health, 'unhealthy', 'a manager instance that is no manager');
  const warm = node('n1', 'ready', { Spec: { Role: 'worker', Availability: 'drain', Labels: { 'capstan.warm': 'true' } } });
  t.same(assessNodes([warm], 'worker'), { health: 'healthy', link: 'n1', warm: true }, 'drained for the warm pool: healthy, warm');
  const downWarm = { ...warm, Status: { State: 'down' as const } };
  t.same(assessNodes([downWarm], 'worker'), { health: 'unhealthy', link: 'n1', warm: true }, 'a warm node that is Down while its machine runs (waking, or broken)');
  t.same(assessNodes([downWarm], 'worker', 'stopped'), { health: 'healthy', link: 'n1', warm: true }, 'Down because its machine was stopped for the pool');
  t.same(assessNodes([warm], 'worker', 'stopping'), { health: 'healthy', link: 'n1', warm: true }, 'still Ready while its machine stops');
  t.same(assessNodes([node('n1', 'down')], 'worker', 'stopped'), { health: 'unhealthy', link: 'n1' }, 'a stopped machine outside the pool');
  t.same(assessNodes([node('n1', 'ready', { Spec: { Role: 'worker', Availability: 'active', Labels: { 'capstan.warm': 'true' } } })], 'worker'), { health: 'healthy', link: 'n1' }, 'active: serving, not warm');
  const manager = (reachability: 'reachable' | 'unreachable') =>
    node('m1', 'ready', { Spec: { Role: 'manager', Availability: 'active' }, ManagerStatus: { Reachability: reachability, Addr: '10.0.0.1:2377' } });
  t.equal(assessNodes([manager('reachable')], 'manager').health, 'healthy');
  t.equal(assessNodes([manager('unreachable')], 'manager').health, 'unhealthy');
});

t.test('prepare renders a join script with the right token and a link', async (t) => {
  const swarm = await docker.swarmInspect();
  const ctx = { groupId: group, configHash: 'abc123', logicalId: 'm-1' };
  const after = 'echo "I am {{LOGICAL_ID}} in {{GROUP_ID}}"; docker info --format \'{{.Swarm.NodeID}}\'';
  const manager = await managerKind!.create({ managerAddr: '10.9.9.9', after }).prepare({ tags: { a: 'b' }, init: '' }, ctx);
  t.match(manager.tags, { a: 'b', [LINK_TAG]: /^[0-9a-f-]{36}$/ });
  t.ok(manager.init.includes(`\nCAPSTAN_TOKEN='${swarm.JoinTokens.Manager}'\n`), 'manager token');
  t.ok(manager.init.includes("\nCAPSTAN_JOIN_ADDRS='10.9.9.9:2377'\n"), 'managerAddr overrides, with the default port');
  t.ok(manager.init.includes(`echo "I am m-1 in ${group}"; docker info --format '{{.Swarm.NodeID}}'`), 'templated fragment');
  t.equal(manager.init.split(swarm.JoinTokens.Manager).length, 2, 'the token appears once, in an assignment only');
  const worker = await workerKind!.create({}).prepare({ tags: {}, init: '' }, ctx);
  t.ok(worker.init.includes(`\nCAPSTAN_TOKEN='${swarm.JoinTokens.Worker}'\n`), 'worker token');
  // the address the engine's manager advertises (the tests' engine picks it from its docker0, whatever range that got)
  const leader = ((await docker.listNodes({ filters: JSON.stringify({ role: ['manager'] }) })) as SwarmNode[]).find((n) => n.ManagerStatus?.Leader);
  t.ok(leader?.ManagerStatus?.Addr, 'the engine has a leader with an address');
  t.ok(worker.init.includes(`\nCAPSTAN_JOIN_ADDRS='${leader!.ManagerStatus!.Addr}'\n`), "the manager's advertised address");
  t.not(worker.tags[LINK_TAG], manager.tags[LINK_TAG], 'a new link per instance');
});

t.test('machines join, serve, drain, and leave no nodes behind', async (t) => {
  const flavor = workerKind!.create({
    managerAddr,
    drainTimeout: '40s',
    // An existing daemon.json: the script merges its labels in rather than overwrite it.
    before: `printf '{\\n  "debug": false\\n}\\n' >/etc/docker/daemon.json`,
    labels: HOSTILE_LABELS,
    nodeLabels: { pool: 'batch', 'capstan-test-node': group },
    after: 'echo "joined {{GROUP_ID}} as {{ROLE}}"; tr -d " \\n" </etc/docker/daemon.json; echo',
  });
  const tags = { 'capstan.group': group, 'capstan.config': 'c1' };
  const specs = await Promise.all([0, 1].map(() => flavor.prepare({ tags, init: '' }, { groupId: group, configHash: 'c1' })));
  const t0 = Date.now();
  const instances = await provider.provision(specs, `${group}-1`);
  t.same([...(await flavor.health(instances)).values()].map((h) => h.health), ['unknown', 'unknown'], 'not joined yet');

  const healthy = await until('both machines to join', async () => {
    const reports = await flavor.health(instances);
    return [...reports.values()].every((h) => h.health === 'healthy') ? reports : undefined;
  });
  t.comment(`2 machines Ready in the Swarm ${Date.now() - t0} ms after provision`);
  const nodeIds = instances.map((i) => healthy.get(i.id)!.link!);
  for (const [n, id] of nodeIds.entries()) {
    const node = (await docker.getNode(id).inspect()) as SwarmNode;
    t.equal(node.Description?.Engine?.Labels?.['capstan.instance'], instances[n]!.tags[LINK_TAG], 'the node links to its instance');
    t.same(node.Description?.Engine?.Labels, engineLabels(instances[n]!.tags[LINK_TAG]!), 'exactly the labels given, hostile values too');
  }
  // Each pass puts nodeLabels on the nodes of the group's machines, once, keeping the labels others put there.
  await docker.getNode(nodeIds[0]!).update({ version: ((await docker.getNode(nodeIds[0]!).inspect()) as SwarmNode).Version.Index, Role: 'worker', Availability: 'active', Labels: { 'set-by': 'operator' } });
  await flavor.tidy!(group, instances);
  const labelled = await Promise.all(nodeIds.map(async (id) => ((await docker.getNode(id).inspect()) as SwarmNode)));
  t.same(labelled[0]!.Spec.Labels, { 'set-by': 'operator', pool: 'batch', 'capstan-test-node': group }, 'node labels added to those already there');
  t.same(labelled[1]!.Spec.Labels, { pool: 'batch', 'capstan-test-node': group });
  await flavor.tidy!(group, instances);
  t.same(((await docker.getNode(nodeIds[1]!).inspect()) as SwarmNode).Version.Index, labelled[1]!.Version.Index, 'a node that has them is not updated again');
  const logs = await until('the init script to finish', async () => {
    const text = (await docker.getContainer(instances[0]!.id).logs({ stdout: true, stderr: true })).toString('utf8');
    return text.includes('init exited') ? text : undefined;
  });
  t.match(logs, 'init exited 0');
  t.match(logs, `joined ${group} as worker`, 'the after fragment ran');
  const merged = `{"labels":${JSON.stringify(Object.entries(engineLabels(instances[0]!.tags[LINK_TAG]!)).map(([k, v]) => `${k}=${v}`))},"debug":false}`;
  t.ok(logs.includes(merged.replace(/[ \n]/g, '')), 'the labels merged into the daemon.json there was');
  t.notOk(logs.includes((await docker.swarmInspect()).JoinTokens.Worker), 'the token is not in the logs');

  // A replicated task on one of the machines (the constraint keeps it off the shared manager).
  await docker.createService({
    Name: service,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'], Init: true },
      Placement: { Constraints: [`engine.labels.capstan-test==${group}`] },
      RestartPolicy: { Condition: 'any', Delay: 0 },
    },
    Mode: { Replicated: { Replicas: 1 } },
  });
  const running = async (): Promise<{ NodeID: string }[]> =>
    ((await docker.listTasks({ filters: { service: [service], 'desired-state': ['running'] } })) as { NodeID: string; Status: { State: string } }[]).filter(
      (task) => task.Status.State === 'running',
    );
  const first = await until('the task to run', async () => (await running())[0]);
  const from = nodeIds.indexOf(first.NodeID);
  t.ok(from >= 0, 'the task runs on a machine');
  const [drained, other] = [instances[from]!, instances[1 - from]!];

  const d0 = Date.now();
  await flavor.drain(drained);
  t.comment(`drain took ${Date.now() - d0} ms`);
  const onDrained = (await docker.listTasks({ filters: { node: [first.NodeID] } })) as { Status: { State: string } }[];
  t.notOk(onDrained.some((task) => task.Status.State === 'running'), 'no running task left on the drained node');
  const moved = await until('the task to run elsewhere', async () => (await running())[0], 30_000);
  t.equal(moved.NodeID, nodeIds[1 - from], 'the task moved to the other machine');
  t.equal((await flavor.health([drained])).get(drained.id)?.health, 'unhealthy', 'a drained node no longer counts as healthy');

  await provider.destroy([drained.id]);
  await flavor.destroyed(drained);
  const listed = ((await docker.listNodes()) as SwarmNode[]).map((n) => n.ID);
  t.notOk(listed.includes(nodeIds[from]!), 'destroyed() removed the node');

  // The other machine vanishes without destroyed(): its node goes Down and the orphan cleanup removes it.
  await docker.getService(service).remove();
  await provider.destroy([other.id]);
  const listed2 = async () => ((await docker.listNodes()) as SwarmNode[]).map((n) => n.ID);
  const otherNode = nodeIds[1 - from]!;
  await flavor.tidy!(group, []);
  t.ok((await listed2()).includes(otherNode), 'a node that is not Down yet is kept');
  const down0 = Date.now();
  await until('the node to go Down', async () => (await flavor.health([other])).get(other.id)?.health === 'unhealthy', 60_000);
  t.comment(`node Down ${Date.now() - down0} ms after its machine vanished`);
  await flavor.tidy!(group, [other]);
  t.ok((await listed2()).includes(otherNode), 'a live instance keeps its node');
  await flavor.tidy!('another-group', []);
  t.ok((await listed2()).includes(otherNode), 'other groups are left alone');
  await flavor.tidy!(group, []);
  t.notOk((await listed2()).includes(otherNode), 'the Down node of the vanished machine is removed');
  t.same((await flavor.health([other])).get(other.id), { health: 'unknown' }, 'no node links to it any more');
});

t.test('managers on a private Swarm: join Reachable, quorum refusal, demote on drain and removal', async (t) => {
  // The shared Swarm must keep its single manager: these managers join a Swarm of their own, whose first manager is
  // a machine too, its dockerd reachable over TCP from here.
  const machines = dockerProviderKind({ logger: silentLogger }).create({
    engine: engineHost(),
    network: group,
    env: { DOCKERD_ARGS: '-H tcp://0.0.0.0:2375 --tls=false' },
  });
  const [seed] = await machines.provision(
    [{ tags: { 'capstan.group': group, 'capstan.config': 'seed' }, init: 'docker swarm init --advertise-addr eth0 >/dev/null' }],
    `${group}-seed`,
  );
  const own = createDocker(`tcp://${seed!.address}:2375`, 10_000);
  await until('the private Swarm', async () => {
    const nodes = (await own.listNodes().catch(() => [])) as SwarmNode[];
    return nodes.some((n) => n.Status.State === 'ready' && n.ManagerStatus?.Reachability === 'reachable');
  });
  const [, kind] = swarmFlavorKinds({ docker: own, logger: silentLogger, pollMs: 200 });
  const flavor = kind!.create({ drainTimeout: '10s', labels: HOSTILE_LABELS });
  const specs = await Promise.all(
    ['m2', 'm3'].map((logicalId) => flavor.prepare({ tags: { 'capstan.group': group, 'capstan.config': 'm' }, init: '', logicalId }, { groupId: group, configHash: 'm', logicalId })),
  );
  const [m2, m3] = await machines.provision(specs, `${group}-managers`);
  const t0 = Date.now();
  const healthy = await until('both managers to join', async () => {
    const reports = await flavor.health([m2!, m3!]);
    return [...reports.values()].every((h) => h.health === 'healthy') ? reports : undefined;
  });
  t.comment(`2 managers Ready and Reachable ${Date.now() - t0} ms after provision`);
  for (const m of [m2!, m3!]) {
    const node = (await own.getNode(healthy.get(m.id)!.link!).inspect()) as SwarmNode;
    t.same(node.Description?.Engine?.Labels, engineLabels(m.tags[LINK_TAG]!), 'no daemon.json before: exactly the labels given');
  }
  const managerIds = async (): Promise<string[]> => ((await own.listNodes({ filters: JSON.stringify({ role: ['manager'] }) })) as SwarmNode[]).map((n) => n.ID);
  t.equal((await managerIds()).length, 3);

  // m3 vanishes: demoting m2 now would leave the seed and the unreachable m3, one reachable of two.
  await docker.getContainer(m3!.id).kill();
  const m3Node = healthy.get(m3!.id)!.link!;
  await until('m3 to be unreachable', async () => {
    const node = (await own.getNode(m3Node).inspect()) as SwarmNode;
    return node.ManagerStatus?.Reachability === 'unreachable';
  });
  t.equal((await flavor.health([m3!])).get(m3!.id)?.health, 'unhealthy', 'an unreachable manager is unhealthy');
  const refused = await flavor.drain(m2!).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.ok(refused instanceof CapstanError && refused.kind === 'quorum', 'drain of m2 is refused: quorum');
  t.match((refused as Error).message, /1 reachable of 2/);
  t.ok((await managerIds()).includes(healthy.get(m2!.id)!.link!), 'm2 is still a manager');

  // Removing the vanished m3 is safe (two reachable of two remain); then m2 can go too.
  await machines.destroy([m3!.id]);
  await flavor.destroyed(m3!);
  t.same((await managerIds()).sort(), [healthy.get(m2!.id)!.link!, (await own.info()).Swarm.NodeID].sort(), 'm3 demoted and removed');
  await flavor.drain(m2!);
  const m2Node = (await own.getNode(healthy.get(m2!.id)!.link!).inspect()) as SwarmNode;
  t.equal(m2Node.Spec.Role, 'worker', 'drain demotes a manager');
  t.equal(m2Node.Spec.Availability, 'drain');
  t.equal((await flavor.health([m2!])).get(m2!.id)?.health, 'unhealthy');
  await machines.destroy([m2!.id, seed!.id]);
});

t.test('drain and destroyed of an instance that never joined are no-ops', async (t) => {
  const flavor = workerKind!.create({});
  const ghost: Instance = { id: 'x', tags: { [LINK_TAG]: 'no-such-link' }, state: 'running', launchedAt: Date.now() };
  await flavor.drain(ghost);
  await flavor.destroyed(ghost);
  t.same((await flavor.health([ghost])).get('x'), { health: 'unknown' });
});
