import { randomBytes } from 'node:crypto';
import t from 'tap';
import { silentLogger } from '../../src/log.js';
import { providerCalls } from '../../src/metrics.js';
import { dockerProviderKind, MachineNames } from '../../src/providers/docker/index.js';
import { machineConfig } from '../../src/providers/docker/properties.js';
import { DockerInstanceProvider } from '../../src/providers/docker/provider.js';
import type { InstanceSpec } from '../../src/spi/instance.js';
import { engine, engineHost } from '../support/engine.js';

const docker = engine();
const group = `t-docker-${randomBytes(3).toString('hex')}`;
const kind = dockerProviderKind({ logger: silentLogger });
// A network of the machines' own: the address reported must be theirs on it.
await docker.createNetwork({ Name: group, Labels: { 'capstan.test': group } });
const subnet = (await docker.getNetwork(group).inspect()).IPAM!.Config![0]!.Subnet as string;
const properties = { engine: engineHost(), network: group, memory: '256m', env: { CAPSTAN_TEST: group } };
const provider = kind.create(properties);

t.teardown(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  await docker.getNetwork(group).remove();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function logsOf(id: string): Promise<string> {
  return (await docker.getContainer(id).logs({ stdout: true, stderr: true })).toString('utf8');
}

t.test('properties: schema, defaults and refusals', async (t) => {
  t.same(kind.validate!({}), []);
  const trusting = dockerProviderKind({ logger: silentLogger, allow: { endpoints: ['tcp://10.0.0.1:2375'], privileged: true } });
  t.same(trusting.validate!({ engine: 'tcp://10.0.0.1:2375', privileged: true, memory: 1 << 30, network: 'machines' }), [], 'what the operator allows (test/providers/allow.test.ts: what it does not)');
  t.match(kind.validate!({ engine: 'http://x' }), [/^\/engine: /]);
  t.match(kind.validate!({ image: 'a', extra: 1 }), [/^\/extra: unknown key$/]);
  t.match(kind.validate!({ memory: '1m' }), [/^\/memory: /]);
  t.match(kind.validate!({ deviceCgroupRules: ['all'] }), [/^\/deviceCgroupRules\/0: /]);
  t.throws(() => kind.create({ env: { 'A-B': 'x' } }), /invalid docker properties/);
});

t.test('provisions machines, describes them by labels, destroys them', async (t) => {
  const tags = { 'capstan.group': group, 'capstan.config': 'c1' };
  const init = '#!/bin/sh\necho "init ran: $(hostname)"\n';
  const specs: InstanceSpec[] = [
    { tags, init },
    { tags, init, logicalId: 'db-1' },
  ];
  const before = Date.now();
  const started = await provider.provision(specs, 'decision-1');
  t.equal(started.length, 2);
  for (const instance of started) {
    t.equal(instance.state, 'running');
    t.equal(instance.address?.split('.').slice(0, 2).join('.'), subnet.split('.').slice(0, 2).join('.'), `address in ${subnet}`);
    t.ok(instance.launchedAt >= before - 1000 && instance.launchedAt <= Date.now(), 'launchedAt is the container creation time');
    t.equal(instance.tags['capstan.group'], group);
  }
  t.equal(started[1]!.tags['capstan.logical-id'], 'db-1');

  const inspected = await Promise.all(started.map((i) => docker.getContainer(i.id).inspect()));
  for (const i of inspected) {
    t.match(i.Name, new RegExp(`^/capstan-${group}-[0-9a-f]{6}-[0-9a-z]{12}$`));
    t.equal(i.Config.Hostname, i.Name.slice(1), 'the hostname is the name, also with a logical id');
  }
  t.same(inspected[0]!.HostConfig.CapAdd, ['ALL']);
  t.same(inspected[0]!.HostConfig.CapDrop, ['SYS_RESOURCE']);
  t.same(inspected[0]!.HostConfig.MaskedPaths, [], 'systempaths=unconfined');
  t.equal(inspected[0]!.HostConfig.Memory, 256 * 1024 * 1024);
  t.ok(inspected[0]!.Config.Env.includes(`CAPSTAN_TEST=${group}`));
  t.notOk(JSON.stringify(inspected[0]!.Config).includes('init ran'), 'the init script is not in the container config');

  // The machine image runs the copied init script once dockerd is up.
  for (const [n, instance] of started.entries()) {
    await until('init to run', async () => ((await logsOf(instance.id)).includes('init exited 0') ? true : undefined));
    t.match(await logsOf(instance.id), `init ran: ${inspected[n]!.Config.Hostname}`);
  }

  const again = await provider.provision(specs, 'decision-1');
  t.same(again.map((i) => i.id), started.map((i) => i.id), 'a retried decision finds its machines');

  const found = await provider.describe({ 'capstan.group': group });
  t.same(found.map((i) => i.id).sort(), started.map((i) => i.id).sort());
  t.same(await provider.describe({ 'capstan.group': group, 'capstan.config': 'other' }), []);
  t.same((await provider.describe({ 'capstan.group': group, 'capstan.logical-id': 'db-1' })).map((i) => i.id), [started[1]!.id]);

  await docker.getContainer(started[0]!.id).kill();
  const stopped = await provider.describe({ 'capstan.group': group, 'capstan.config': 'c1' });
  t.equal(stopped.find((i) => i.id === started[0]!.id)?.state, 'stopped', 'an exited machine is listed as stopped');

  const volumes = inspected.flatMap((i) => i.Mounts.filter((m) => m.Type === 'volume').map((m) => m.Name!));
  t.equal(volumes.length, 2, 'each machine has its /var/lib/docker volume');
  await provider.destroy(started.map((i) => i.id));
  t.same(await provider.describe({ 'capstan.group': group }), []);
  for (const name of volumes) {
    const gone = await docker.getVolume(name).inspect().then(() => 200, (err: { statusCode?: number }) => err.statusCode);
    t.equal(gone, 404, 'its volume is gone too');
  }
  await provider.destroy([...started.map((i) => i.id), 'no-such-container']);
  t.pass('destroying machines that are gone succeeds');
});

t.test('a machine that cannot start is not left behind; calls are counted', async (t) => {
  const counted = async (): Promise<number> =>
    (await providerCalls.get()).values.filter((v) => v.labels.provider === 'docker').reduce((sum, v) => sum + v.value, 0);
  const calls = await counted();
  // An image whose entrypoint does not exist: create succeeds, start fails.
  const base = await docker.createContainer({ Image: 'capstan/busybox:dev', name: `${group}-base` });
  const image = `capstan/broken-${group}:1`;
  await base.commit({ repo: `capstan/broken-${group}`, tag: '1', changes: 'ENTRYPOINT ["/no/such/entrypoint"]' });
  await base.remove();
  t.teardown(() => docker.getImage(image).remove({ force: true }));
  const broken = kind.create({ ...properties, image });
  await t.rejects(broken.provision([{ tags: { 'capstan.group': group, 'capstan.config': 'c2' }, init: 'true' }], 'decision-2'), /no such file/);
  t.same(await provider.describe({ 'capstan.group': group }), []);
  t.ok((await counted()) > calls, 'docker calls are counted under provider "docker"');
});

t.test('every machine gets a name never used before; a retry takes over only its own decision\'s machine', async (t) => {
  const spec: InstanceSpec = { tags: { 'capstan.group': group, 'capstan.config': 'c3' }, init: '' };
  const nameOf = async (id: string): Promise<{ name: string; hostname: string }> => {
    const info = await docker.getContainer(id).inspect();
    return { name: info.Name.slice(1), hostname: info.Config.Hostname };
  };
  // The same intent every time, as every 0 -> 1 scale-up of a group once had.
  const used = new Set<string>();
  for (let n = 1; n <= 3; n++) {
    const [machine] = await provider.provision([spec], 'zero-to-one');
    const { name, hostname } = await nameOf(machine!.id);
    t.equal(hostname, name, 'the hostname is the name');
    t.notOk(used.has(hostname), `scale-up ${n}: ${hostname} was never used before`);
    used.add(hostname);
    t.same((await provider.provision([spec], 'zero-to-one')).map((i) => i.id), [machine!.id], 'a retry while the machine exists takes it over');
    const elsewhere = dockerProviderKind({ logger: silentLogger }).create(properties);
    t.same((await elsewhere.provision([spec], 'zero-to-one')).map((i) => i.id), [machine!.id], '... also from a process that remembers nothing');
    if (n === 3) {
      await docker.getContainer(machine!.id).kill();
      const [stopped] = await provider.provision([spec], 'zero-to-one');
      t.match(stopped, { id: machine!.id, state: 'stopped' }, 'a stopped machine of the decision is taken over, not doubled');
    }
    await provider.destroy([machine!.id]);
  }

  // A name taken by a container of another decision (forced here): that container is left alone, a fresh name used.
  const names = new MachineNames();
  const direct = new DockerInstanceProvider({ docker, machine: machineConfig(properties), logger: silentLogger, maxBatch: 10, concurrency: 2, names });
  const taken = names.nameFor(spec, 'clash', 0);
  const squatter = await docker.createContainer({ name: taken, Image: 'capstan/busybox:dev', Labels: { 'capstan.group': group, 'capstan.config': 'c3' } });
  t.teardown(() => squatter.remove({ force: true }).catch(() => undefined));
  const [machine] = await direct.provision([spec], 'clash');
  t.not(machine!.id, squatter.id, 'not taken over');
  t.not((await nameOf(machine!.id)).name, taken, 'another name');
  t.equal((await squatter.inspect()).State.Status, 'created', 'the other container is untouched');
  t.same((await direct.provision([spec], 'clash')).map((i) => i.id), [machine!.id], 'and a retry finds the renamed machine');
  await direct.destroy([machine!.id]);
  await squatter.remove({ force: true });
});

t.test('stop and start: a stopped machine is listed as stopped and boots again from its disk, init not run twice', async (t) => {
  const tags = { 'capstan.group': group, 'capstan.config': 'power' };
  const [machine] = await provider.provision([{ tags, init: '#!/bin/sh\necho "init ran"\n' }], 'power-1');
  const id = machine!.id;
  await until('init to run', async () => ((await logsOf(id)).includes('init exited 0') ? true : undefined));
  const state = async () => (await provider.describe(tags)).find((i) => i.id === id)?.state;
  await provider.stop!([id]);
  t.equal(await state(), 'stopped');
  await provider.stop!([id, 'no-such-container']);
  t.pass('stopping again, or a machine that is gone, succeeds');
  await provider.start!([id]);
  t.equal(await state(), 'running');
  await provider.start!([id]);
  t.pass('starting a running machine succeeds');
  await until('the second boot to reach its init step', async () => ((await logsOf(id)).includes('init already ran (exit 0)') ? true : undefined));
  t.equal((await logsOf(id)).match(/init ran:?$/gm)?.length, 1, 'the init script ran once, at first boot');
  t.same((await provider.describe(tags)).map((i) => i.id), [id], 'the same machine');
  await provider.destroy([id]);
});
