// Cluster identity (issue 10, item 4). Two Swarms, each with its own Controller and a group `workers`, share ONE
// moto_server (aws provider) and ONE infrastructure engine (docker provider on the tests' engine). Swarm A is the
// tests' engine; Swarm B is a docker-in-docker machine on it that ran `docker swarm init`: two real cluster ids.
// Every assertion is about which instances, by id, not how many.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Controller } from '../../src/group/controller.js';
import { configHash, groupTags, TAG } from '../../src/group/identity.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import type { FlavorKind, GroupSpec, HealthReport, InstanceProvider, Plugins } from '../../src/spi/index.js';
import { engine, engineHost } from '../support/engine.js';
import { createSubnets, startMoto, useFakeCredentials } from '../support/moto.js';

const GROUP = 'workers';
const docker = engine();
const host = engineHost();
const tag = `t-clusters-${randomBytes(3).toString('hex')}`;
// The machines of this file live on a network of their own: teardown finds them by it, whatever their tags say.
await docker.createNetwork({ Name: tag, Labels: { 'capstan.test': tag } });
useFakeCredentials();
const moto = await startMoto();
const ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint });
const subnetIds = await createSubnets(moto.endpoint, 2);

const controllers: Controller[] = [];
t.teardown(async () => {
  await Promise.all(controllers.map((c) => c.stop()));
  const left = await docker.listContainers({ all: true, filters: { network: [tag] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  await docker.getNetwork(tag).remove();
  ec2.destroy();
  await moto.stop();
});

const dockerKind = dockerProviderKind({ logger: silentLogger, allow: { endpoints: [host] } });
const plugins: Plugins = {
  providers: new Map([
    ['aws', awsProviderKind({ logger: silentLogger, allow: { endpoints: [moto.endpoint] } })],
    ['docker', dockerKind],
  ]),
  flavors: new Map([
    ['vanilla', vanillaFlavorKind],
    ['member', memberFlavor(undefined)],
  ]),
};

/**
 * Each Swarm's membership as a swarm flavor reads it (a machine's node, found by its engine label), simulated: the
 * flavor of cluster C links the machines it made (tagged C) and those in `joined[C]`, and nothing else. The providers
 * are real; only a Swarm's node list is not.
 */
const joined = new Map<string, ReadonlySet<string>>();
function memberFlavor(cluster: string | undefined): FlavorKind {
  return {
    name: 'member',
    schema: { type: 'object' },
    create: () => ({
      prepare: async (spec) => spec,
      health: async (instances) =>
        new Map(
          instances.map((i): [string, HealthReport] => {
            const member = cluster !== undefined && (i.tags[TAG.cluster] === cluster || joined.get(cluster)?.has(i.id));
            return [i.id, member ? { health: 'healthy', link: `node-of-${i.id}` } : { health: 'unknown' }];
          }),
        ),
      drain: async () => {},
      destroyed: async () => {},
    }),
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Swarm A: the tests' engine. Swarm B: a machine on it that initialises a Swarm of its own and prints its id.
const clusterA = ((await docker.info()) as { Swarm?: { Cluster?: { ID?: string } } }).Swarm?.Cluster?.ID ?? '';
const bStarted = Date.now();
const swarmB = dockerKind.create({ engine: host, network: tag, memory: '512m' });
const [machineB] = await swarmB.provision(
  [
    {
      tags: { [TAG.group]: `${tag}-swarm-b` },
      init: '#!/bin/sh\nset -e\ndocker swarm init --advertise-addr eth0 >/dev/null\necho "cluster-id=$(docker info --format "{{.Swarm.Cluster.ID}}")"\n',
    },
  ],
  'swarm-b',
);
const clusterB = await until('the second Swarm', async () => {
  const logs = (await docker.getContainer(machineB!.id).logs({ stdout: true, stderr: true })).toString('utf8');
  return /cluster-id=([a-z0-9]{25})/.exec(logs)?.[1];
});
t.comment(`cluster ids: A ${clusterA} (the tests' engine), B ${clusterB} (a swarm-mode machine, ready in ${Date.now() - bStarted} ms)`);

/** One infrastructure both Swarms use: how its spec looks, and what it holds, read around Capstan. */
interface Infra {
  readonly name: string;
  spec(size: number, id?: string, flavor?: string): GroupSpec;
  /** Live instance ids of group `id` by their capstan.cluster tag ('' when untagged). */
  byCluster(id?: string): Promise<Map<string, string[]>>;
  provider(): InstanceProvider;
}

const specOf = (id: string, size: number, instance: GroupSpec['instance'], flavor = 'vanilla'): GroupSpec =>
  validateSpec(
    {
      id,
      allocation: { size },
      instance,
      flavor: { kind: flavor, properties: flavor === 'vanilla' ? { init: '#!/bin/sh\necho up\n' } : {} },
      update: { maxSurge: 1, maxUnavailable: 1, healthyFor: '0s' },
    },
    plugins,
  );

const group = (tags: Record<string, string>, id: string): Map<string, string[]> => new Map([[tags[TAG.cluster] ?? '', [id]]]);
const merge = (maps: Map<string, string[]>[]): Map<string, string[]> => {
  const out = new Map<string, string[]>();
  for (const m of maps) for (const [k, v] of m) out.set(k, [...(out.get(k) ?? []), ...v].sort());
  return out;
};

const aws: Infra = {
  name: 'aws (one moto_server)',
  spec: (size, id = GROUP, flavor?) =>
    specOf(id, size, { provider: 'aws', properties: { region: 'us-east-1', endpoint: moto.endpoint, subnetIds, launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } } }, flavor),
  async byCluster(id = GROUP) {
    const out = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG.group}`, Values: [id] }, { Name: 'instance-state-name', Values: ['pending', 'running'] }] }),
    );
    const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    return merge(instances.map((i) => group(Object.fromEntries((i.Tags ?? []).map((x) => [x.Key!, x.Value!])), i.InstanceId!)));
  },
  provider: () => plugins.providers.get('aws')!.create(aws.spec(0).instance.properties),
};

const dockerInfra: Infra = {
  name: 'docker (one infrastructure engine)',
  spec: (size, id = GROUP, flavor?) => specOf(id, size, { provider: 'docker', properties: { engine: host, network: tag, memory: '256m' } }, flavor),
  async byCluster(id = GROUP) {
    const list = await docker.listContainers({ all: true, filters: { network: [tag], label: [`${TAG.group}=${id}`] } });
    return merge(list.filter((c) => c.State === 'running').map((c) => group(c.Labels ?? {}, c.Id)));
  },
  provider: () => plugins.providers.get('docker')!.create(dockerInfra.spec(0).instance.properties),
};

/** A Swarm's Capstan as src/main.ts makes it: a Controller with the Swarm's cluster id (none: an older release). */
function capstan(clusterId: string | undefined): Controller {
  const own = { ...plugins, flavors: new Map([...plugins.flavors, ['member', memberFlavor(clusterId)]]) };
  const c = new Controller({ plugins: own, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000, ...(clusterId ? { clusterId } : {}) });
  controllers.push(c);
  swarmOf.set(c, clusterId ?? 'older release');
  return c;
}

/** Each Swarm numbers its own versions (two fresh installations both commit version 1), in its own store. */
const swarmOf = new Map<Controller, string>();
const stored = new Map<string, { version: number; spec: GroupSpec }>();
const commit = (c: Controller, spec: GroupSpec): void => {
  const key = `${swarmOf.get(c)}/${spec.id}`;
  const version = (stored.get(key)?.version ?? 0) + 1;
  stored.set(key, { version, spec });
  c.apply({ id: spec.id, version, createdAt: '', spec });
};
/** What a Capstan does on gaining leadership: applies the version in force, as stored. */
const load = (c: Controller, id: string): void => {
  const { version, spec } = stored.get(`${swarmOf.get(c)}/${id}`)!;
  c.apply({ id, version, createdAt: '', spec });
};

/** Passes until converged; returns the member ids Capstan reports. */
async function converge(c: Controller, id = GROUP): Promise<string[]> {
  for (let pass = 1; pass <= 40; pass++) {
    const p = await c.reconcile(id);
    if (p?.converged) return memberIds(c, id);
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`not converged: ${JSON.stringify(c.status(id))}`);
}
const memberIds = (c: Controller, id = GROUP): string[] => c.status(id)!.instances.map((i) => i.id).sort();

async function scenario(t: Test, infra: Infra): Promise<void> {
  const shown = (cluster: string) => (cluster === clusterA ? 'A' : cluster === clusterB ? 'B' : cluster || 'untagged');
  /** Each Swarm's machines, from the infrastructure itself: exactly `ids` of A and B, nothing else in the group. */
  const truth = async (want: { a: string[]; b: string[] }, when: string) => {
    const seen = await infra.byCluster();
    t.same(
      Object.fromEntries([...seen].map(([k, v]) => [shown(k), v])),
      { A: want.a, B: want.b },
      `${when}: the infrastructure holds exactly A's and B's machines, each tagged with its own cluster`,
    );
  };

  let a = capstan(clusterA);
  let b = capstan(clusterB);
  // Both Swarms commit the same group at the same moment, as two fresh installations would.
  commit(a, infra.spec(3));
  commit(b, infra.spec(2));
  const [a0, b0] = await Promise.all([converge(a), converge(b)]);
  t.equal(a0.length, 3, 'A keeps exactly its size');
  t.equal(b0.length, 2, 'B keeps exactly its size');
  t.same(a0.filter((id) => b0.includes(id)), [], 'no machine is both Swarms\'');
  await truth({ a: a0, b: b0 }, 'after converging');

  for (let pass = 0; pass < 3; pass++) {
    const [pa, pb] = await Promise.all([a.reconcile(GROUP), b.reconcile(GROUP)]);
    t.ok(pa?.converged && pb?.converged && pa.actions.length === 0 && pb.actions.length === 0, `pass ${pass + 1}: both converged, nothing to do`);
  }
  t.same(memberIds(a), a0, 'A\'s ids unchanged after several passes');
  t.same(memberIds(b), b0, 'B\'s ids unchanged after several passes');

  commit(b, infra.spec(4));
  const bUp = await converge(b);
  t.equal(bUp.length, 4);
  t.same(bUp.filter((id) => b0.includes(id)), b0, 'B scaled up around its own machines');
  t.ok((await a.reconcile(GROUP))?.converged, 'A unmoved by B\'s scale-up');
  t.same(memberIds(a), a0, 'A\'s ids unchanged after B scaled up');
  await truth({ a: a0, b: bUp }, 'after B scaled up');

  commit(b, infra.spec(1));
  const bDown = await converge(b);
  t.equal(bDown.length, 1);
  t.ok(bUp.includes(bDown[0]!), 'B scaled down within its own machines');
  t.ok((await a.reconcile(GROUP))?.converged);
  t.same(memberIds(a), a0, 'A\'s ids unchanged after B scaled down');
  await truth({ a: a0, b: bDown }, 'after B scaled down');

  commit(a, infra.spec(2));
  const aDown = await converge(a);
  t.equal(aDown.length, 2);
  t.ok(aDown.every((id) => a0.includes(id)), 'A scaled down within its own machines');
  t.ok((await b.reconcile(GROUP))?.converged);
  t.same(memberIds(b), bDown, 'B\'s ids unchanged after A scaled down');
  await truth({ a: aDown, b: bDown }, 'after A scaled down');

  // A restart of both (a new leader, a new process): new Controllers read everything back from the tags.
  await Promise.all([a.stop(), b.stop()]);
  a = capstan(clusterA);
  b = capstan(clusterB);
  load(a, GROUP);
  load(b, GROUP);
  t.same(await converge(a), aDown, 'A\'s ids unchanged after a restart');
  t.same(await converge(b), bDown, 'B\'s ids unchanged after a restart');
  for (let pass = 0; pass < 2; pass++) await Promise.all([a.reconcile(GROUP), b.reconcile(GROUP)]);
  t.same(memberIds(a), aDown);
  t.same(memberIds(b), bDown);
  await truth({ a: aDown, b: bDown }, 'after a restart');
  await Promise.all([a.stop(), b.stop()]);
}

/**
 * A provisioning decision is named by the loop's term (the millisecond it started), the version, the members seen
 * and the spec: two Swarms starting the same group in the same millisecond, both at version 1 with nothing yet,
 * make the same decision. A provider finding the other's launches of that decision must not hand them over.
 */
async function sameMillisecond(t: Test, infra: Infra): Promise<void> {
  const id = `${GROUP}-same-ms`;
  const a = capstan(clusterA);
  const b = capstan(clusterB);
  const now = Date.now;
  const at = now();
  const startedAt = (c: Controller, size: number) => {
    // Only the loop's start is pinned (it reads the clock once, when the group is applied).
    Date.now = () => at;
    try {
      commit(c, infra.spec(size, id));
    } finally {
      Date.now = now;
    }
  };
  startedAt(a, 2);
  const mine = await converge(a, id);
  startedAt(b, 2);
  const theirs = await converge(b, id);
  t.equal(theirs.length, 2);
  t.same(theirs.filter((i) => mine.includes(i)), [], 'B launched its own machines, not A\'s launches of the same decision');
  t.same(await converge(a, id), mine, 'A\'s ids unchanged');
  const seen = await infra.byCluster(id);
  t.same(seen.get(clusterA), mine);
  t.same(seen.get(clusterB), theirs);
  await Promise.all([a.stop(), b.stop()]);
}

/** Machines of group `spec.id` as a release before the cluster tag made them: group and config tags, no cluster. */
async function olderRelease(infra: Infra, spec: GroupSpec, count: number): Promise<string[]> {
  const specs = Array.from({ length: count }, () => ({ tags: groupTags(spec, configHash(spec)), init: '' }));
  return (await infra.provider().provision(specs, `older-${randomBytes(4).toString('hex')}`)).map((i) => i.id).sort();
}

async function adoption(t: Test, infra: Infra): Promise<void> {
  const canTag = infra.provider().tag !== undefined;
  const live = async (id: string) => [...(await infra.byCluster(id)).values()].flat().sort();

  // Two Swarms upgraded from a release before the tag, each with two machines of one group on this infrastructure.
  const id = `${GROUP}-legacy`;
  const mineA = await olderRelease(infra, infra.spec(2, id, 'member'), 2);
  const mineB = await olderRelease(infra, infra.spec(2, id, 'member'), 2);
  joined.set(clusterA, new Set(mineA));
  joined.set(clusterB, new Set(mineB));
  let a = capstan(clusterA);
  let b = capstan(clusterB);
  commit(a, infra.spec(2, id, 'member'));
  commit(b, infra.spec(2, id, 'member'));
  const [ca, cb] = await Promise.all([converge(a, id), converge(b, id)]);
  t.same(ca, mineA, 'A adopted exactly the machines its Swarm links, and made none');
  t.same(cb, mineB, 'B adopted exactly the machines its Swarm links, and made none');
  t.same([...(a.status(id)?.unclaimed ?? [])].sort(), mineB, 'A\'s describe names B\'s untagged machines as left alone');
  t.same([...(b.status(id)?.unclaimed ?? [])].sort(), mineA, 'and B\'s names A\'s');
  t.same(await live(id), [...mineA, ...mineB].sort(), 'all four machines live: none destroyed, none made');
  const seen = Object.fromEntries(await infra.byCluster(id));
  if (canTag) t.same(seen, { [clusterA]: mineA, [clusterB]: mineB }, 'each tagged with its own cluster (CreateTags)');
  else t.same(seen, { '': [...mineA, ...mineB].sort() }, 'labels cannot change: all four still untagged, each adopted by its Swarm at each pass');

  // A scales in: only its own machines are candidates, though B's untagged ones are listed alongside.
  commit(a, infra.spec(1, id, 'member'));
  const aDown = await converge(a, id);
  t.equal(aDown.length, 1);
  t.ok(mineA.includes(aDown[0]!), 'A scaled in within its own machines');
  t.same(await converge(b, id), mineB, 'B\'s ids unchanged');
  t.same(await live(id), [...aDown, ...mineB].sort(), 'exactly A\'s remaining machine and B\'s two live');

  // New leaders read the same back.
  await Promise.all([a.stop(), b.stop()]);
  a = capstan(clusterA);
  b = capstan(clusterB);
  load(a, id);
  load(b, id);
  t.same(await converge(a, id), aDown, 'A\'s ids unchanged after a restart');
  t.same(await converge(b, id), mineB, 'B\'s ids unchanged after a restart');
  t.same(await live(id), [...aDown, ...mineB].sort(), 'nothing destroyed or made by the restart');
  await Promise.all([a.stop(), b.stop()]);

  // A flavor that links nothing (vanilla: no cluster to be a member of) gives no evidence: the untagged machine could
  // be any Swarm's, so it is left alone and A makes its own.
  const v = `${GROUP}-vanilla-legacy`;
  const [legacy] = await olderRelease(infra, infra.spec(1, v), 1);
  const a2 = capstan(clusterA);
  commit(a2, infra.spec(1, v));
  const mine = await converge(a2, v);
  t.equal(mine.length, 1, 'A keeps its size');
  t.notOk(mine.includes(legacy!), 'not adopted: nothing shows it is this Swarm\'s');
  await a2.reconcile(v);
  t.same(Object.fromEntries(await infra.byCluster(v)), { '': [legacy], [clusterA]: mine }, 'the untagged machine left running and untagged, A\'s own tagged');
  t.same(memberIds(a2, v), mine, 'and not counted among A\'s members');
  t.same(a2.status(v)?.unclaimed, [legacy], 'describe names it for the operator');
  await a2.stop();
}

t.ok(clusterA && clusterB && clusterA !== clusterB, 'two Swarms with distinct cluster ids');
for (const infra of [aws, dockerInfra]) {
  t.test(`two Swarms on ${infra.name}: each keeps exactly its own machines`, (t) => scenario(t, infra));
  // The docker provider finds a retried decision's containers by their intent label: the decision names the cluster,
  // so two Swarms deciding alike in the same millisecond never take each other's containers.
  t.test(`two Swarms whose loops start in the same millisecond on ${infra.name}`, (t) => sameMillisecond(t, infra));
  t.test(`machines made before the cluster tag on ${infra.name}`, (t) => adoption(t, infra));
}
