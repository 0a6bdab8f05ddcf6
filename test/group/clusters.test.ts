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
import type { GroupSpec, InstanceProvider, Plugins } from '../../src/spi/index.js';
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
  flavors: new Map([['vanilla', vanillaFlavorKind]]),
};

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
  spec(size: number, id?: string): GroupSpec;
  /** Live instance ids of group `id` by their capstan.cluster tag ('' when untagged). */
  byCluster(id?: string): Promise<Map<string, string[]>>;
  provider(): InstanceProvider;
}

const specOf = (id: string, size: number, instance: GroupSpec['instance']): GroupSpec =>
  validateSpec(
    {
      id,
      allocation: { size },
      instance,
      flavor: { kind: 'vanilla', properties: { init: '#!/bin/sh\necho up\n' } },
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
  spec: (size, id = GROUP) =>
    specOf(id, size, { provider: 'aws', properties: { region: 'us-east-1', endpoint: moto.endpoint, subnetIds, launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } } }),
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
  spec: (size, id = GROUP) => specOf(id, size, { provider: 'docker', properties: { engine: host, network: tag, memory: '256m' } }),
  async byCluster(id = GROUP) {
    const list = await docker.listContainers({ all: true, filters: { network: [tag], label: [`${TAG.group}=${id}`] } });
    return merge(list.filter((c) => c.State === 'running').map((c) => group(c.Labels ?? {}, c.Id)));
  },
  provider: () => plugins.providers.get('docker')!.create(dockerInfra.spec(0).instance.properties),
};

/** A Swarm's Capstan as src/main.ts makes it: a Controller with the Swarm's cluster id (none: an older release). */
function capstan(clusterId: string | undefined): Controller {
  const c = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000, ...(clusterId ? { clusterId } : {}) });
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

async function adoption(t: Test, infra: Infra): Promise<void> {
  const canTag = infra.provider().tag !== undefined;
  const untagged = async (id: string) => (await infra.byCluster(id)).get('') ?? [];

  // An older release (no cluster id) made the group's only machine.
  const alone = `${GROUP}-legacy`;
  const old = capstan(undefined);
  commit(old, infra.spec(1, alone));
  const [legacy] = await converge(old, alone);
  await old.stop();
  t.same(await untagged(alone), [legacy], 'the older release\'s machine carries no cluster tag');

  // The upgraded release of the only Swarm using the group takes it as its own: nothing made, nothing destroyed.
  const a = capstan(clusterA);
  commit(a, infra.spec(1, alone));
  t.same(await converge(a, alone), [legacy], 'adopted by the only cluster using the group');
  await a.reconcile(alone);
  const seen = await infra.byCluster(alone);
  if (canTag) t.same(Object.fromEntries(seen), { [clusterA]: [legacy] }, 'and tagged with its cluster (CreateTags)');
  else t.same(Object.fromEntries(seen), { '': [legacy] }, 'labels cannot change: still untagged, adopted by the rule at each pass');

  // Another Swarm's machine of the same group turns up (made as B's Capstan makes them).
  const spec = infra.spec(1, alone);
  const [bMachine] = await infra.provider().provision([{ tags: groupTags(spec, configHash(spec), undefined, clusterB), init: '' }], `b-${Date.now()}`);
  const after = await converge(a, alone);
  if (canTag) t.same(after, [legacy], 'once tagged, the adopted machine stays A\'s');
  else {
    t.equal(after.length, 1);
    t.not(after[0], legacy, 'untagged and no longer provably A\'s: A made its own machine instead');
    t.same(await untagged(alone), [legacy], 'and left the untagged one running, untouched');
  }
  t.notOk(after.includes(bMachine!.id), 'B\'s machine is never A\'s');
  t.same((await infra.byCluster(alone)).get(clusterB), [bMachine!.id], 'B\'s machine untouched');
  await a.stop();

  // Another Swarm's machine of the group exists before the upgraded release first looks: the untagged one is left alone.
  const shared = `${GROUP}-shared`;
  const old2 = capstan(undefined);
  commit(old2, infra.spec(1, shared));
  const [legacy2] = await converge(old2, shared);
  await old2.stop();
  const spec2 = infra.spec(1, shared);
  const [bMachine2] = await infra.provider().provision([{ tags: groupTags(spec2, configHash(spec2), undefined, clusterB), init: '' }], `b2-${Date.now()}`);
  const a2 = capstan(clusterA);
  commit(a2, infra.spec(1, shared));
  const mine = await converge(a2, shared);
  t.equal(mine.length, 1, 'A keeps its size');
  t.notOk(mine.includes(legacy2!), 'not adopted when another cluster\'s instance of the group exists');
  t.notOk(mine.includes(bMachine2!.id), 'nor is B\'s machine');
  await a2.reconcile(shared);
  const end = await infra.byCluster(shared);
  t.same(end.get(''), [legacy2], 'the untagged machine is left running and untagged');
  t.same(end.get(clusterB), [bMachine2!.id], 'B\'s machine untouched');
  t.same(end.get(clusterA), mine, 'A\'s own machine carries A\'s tag');
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
