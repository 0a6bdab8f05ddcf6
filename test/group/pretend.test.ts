// A dry run is dry, on a real engine: a pretend commit that moves a Swarm worker group to another provider changes
// no node, no config, no machine, and calls no provider write; a Down node left behind is not tidied by it either.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { swarmFlavorKinds } from '../../src/flavors/swarm.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';
import type { Plugins, ProviderKind } from '../../src/spi/index.js';
import { engine, engineHost } from '../support/engine.js';
import { until } from '../support/until.js';

const docker = engine();
const id = `t-dry-${randomBytes(3).toString('hex')}`;
await docker.createNetwork({ Name: id, Labels: { 'capstan.test': id } });
const managerAddr = `${(await docker.getNetwork(id).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;

const writes: string[] = [];
const real = dockerProviderKind({ logger: silentLogger, allow: { endpoints: [engineHost()] } });
const recorded: ProviderKind = {
  ...real,
  create(properties) {
    const p = real.create(properties);
    return { ...p, maxBatch: p.maxBatch, describe: (tags) => p.describe(tags), provision: (s, i) => (writes.push('provision'), p.provision(s, i)), destroy: (ids) => (writes.push('destroy'), p.destroy(ids)) };
  },
};
const plugins: Plugins = {
  providers: new Map([['docker', recorded], ['simulator', simulatorProviderKind()]]),
  flavors: new Map(swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200 }).map((f) => [f.name, f] as const)),
};
const validate = (raw: unknown) => validateSpec(raw, plugins);
const store = new SwarmSpecStore({ docker, parse: validate, logger: silentLogger });
const controller = new Controller({ plugins, logger: silentLogger, busyMs: 200, intervalMs: 200 });
const service = new GroupService({ store, controller, validate, logger: silentLogger });

t.teardown(async () => {
  await controller.stop();
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  for (const n of await docker.listNodes()) if (n.Spec?.Labels?.['capstan.test'] === id || n.Description?.Engine?.Labels?.['capstan.group'] === id) await docker.getNode(n.ID).remove({ force: true }).catch(() => undefined);
  await store.remove(id);
  await docker.getNetwork(id).remove().catch(() => undefined);
});

const spec = (provider: 'docker' | 'simulator') =>
  validate({
    id,
    allocation: { size: 1 },
    instance: provider === 'docker' ? { provider, properties: { engine: engineHost(), network: id } } : { provider, properties: {} },
    flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '10s' } },
  });

/**
 * Everything of this group a write could change: its nodes (state, availability, role, labels), its spec's configs,
 * its machines. Only the group's: the engine is shared with the test files running beside this one.
 */
async function world(): Promise<Record<'nodes' | 'configs' | 'machines', string[]>> {
  const ours = (await docker.listNodes()).filter((n) => n.Description?.Engine?.Labels?.['capstan.group'] === id);
  const nodes = ours.map((n) => `${n.ID} ${n.Status?.State} ${n.Spec?.Availability} ${n.Spec?.Role} ${JSON.stringify(n.Spec?.Labels ?? {})}`).sort();
  const configs = (await docker.listConfigs({ filters: { label: [`capstan.group=${id}`] } })).map((c) => `${c.ID} ${c.Version?.Index}`).sort();
  const machines = (await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } })).map((c) => `${c.Id} ${c.State}`).sort();
  return { nodes, configs, machines };
}


t.test('a pretend commit that changes the provider writes nothing anywhere', async (t) => {
  await service.commit(spec('docker'));
  await until('one Ready worker', () => controller.status(id)?.converged === true);
  await controller.stop(); // nothing else acts meanwhile: what changes, the pretend commit changed
  writes.length = 0;
  const before = await world();
  t.same([before.nodes.length, before.configs.length, before.machines.length], [1, 1, 1], 'the group’s node, its spec’s config and its machine are watched');
  const preview = await service.preview(spec('simulator'));
  t.equal(preview.create, 1, 'the preview says a machine would be made elsewhere');
  t.strictSame(await world(), before, 'nodes, configs and machines identical');
  t.same(writes, [], 'no provider write');
});
