// Scale-in on real machines (docker provider, swarm-worker flavor, the controller and the group service): of three
// workers, the newest runs two tasks, one is empty and one is empty and labelled capstan.protect=true. group.scaleDown
// removes the empty one (least-busy), then the busy one: the protected node stays, though it runs nothing.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { GROUP_LABEL, swarmFlavorKinds, type SwarmNode } from '../../src/flavors/swarm.js';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { MemoryStore } from '../support/memory-store.js';
import { engine, engineHost } from '../support/engine.js';
import { until } from '../support/until.js';

const docker = engine();
const id = `t-in-${randomBytes(3).toString('hex')}`;
const work = `${id}-work`;
await docker.createNetwork({ Name: id, Labels: { 'capstan.test': id } });
const managerAddr = `${(await docker.getNetwork(id).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;

const plugins: Plugins = {
  providers: new Map([['docker', dockerProviderKind({ logger: silentLogger, allow: { endpoints: [engineHost()] } })]]),
  flavors: new Map(swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200 }).map((f) => [f.name, f])),
};
const validate = (raw: unknown) => validateSpec(raw, plugins);
const controller = new Controller({ plugins, logger: silentLogger, busyMs: 200, intervalMs: 500 });
const service = new GroupService({ store: new MemoryStore(), controller, validate, logger: silentLogger, pollMs: 50 });

t.teardown(async () => {
  controller.stop();
  await docker.getService(work).remove().catch(() => undefined);
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  for (const node of (await docker.listNodes()) as SwarmNode[]) {
    if (node.Description?.Engine?.Labels?.[GROUP_LABEL] === id) await docker.getNode(node.ID).remove({ force: true }).catch(() => undefined);
  }
  await docker.getNetwork(id).remove().catch(() => undefined);
});

const labelNode = async (nodeId: string, labels: Record<string, string>) => {
  const node = (await docker.getNode(nodeId).inspect()) as SwarmNode;
  await docker.getNode(nodeId).update({ version: node.Version.Index, ...node.Spec, Labels: { ...node.Spec.Labels, ...labels } });
};
const links = () => (controller.status(id)?.instances ?? []).map((i) => i.link).filter((l): l is string => l !== undefined);

t.test('least-busy removes the node with fewer tasks; a protected node is kept', async (t) => {
  await service.commit(
    validate({
      id,
      allocation: { size: 3 },
      instance: { provider: 'docker', properties: { engine: engineHost(), network: id } },
      flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '20s' } },
      update: { healthyFor: '0s' },
    }),
  );
  await until('3 Ready workers', async () => controller.status(id)?.converged === true && links().length === 3, 180_000);
  // By launch time, newest first: the newest is what "newest" would remove first; it gets the tasks.
  const byAge = [...controller.status(id)!.instances].sort((a, b) => Date.parse(b.launchedAt ?? '0') - Date.parse(a.launchedAt ?? '0') || (a.id < b.id ? 1 : -1));
  const [busy, guarded, empty] = byAge.map((i) => i.link!);
  await labelNode(busy!, { [`${id}-slot`]: 'busy' });
  await labelNode(guarded!, { 'capstan.protect': 'true' });
  await docker.createService({
    Name: work,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'], Init: true },
      Placement: { Constraints: [`node.labels.${id}-slot==busy`] },
      RestartPolicy: { Condition: 'any', Delay: 0 },
    },
    Mode: { Replicated: { Replicas: 2 } },
  });
  await until(
    'the pass to see 2 tasks on the busy node and the protected one',
    async () => {
      const seen = new Map((controller.status(id)?.instances ?? []).map((i) => [i.link, i]));
      return seen.get(busy)?.tasks === 2 && seen.get(guarded)?.protected === true && seen.get(empty)?.tasks === 0;
    },
    90_000,
  );

  await service.scaleDown(id);
  await until('2 members', async () => controller.status(id)?.converged === true && controller.status(id)!.instances.length === 2, 90_000);
  t.same(links().sort(), [busy, guarded].sort(), `the empty node ${empty} went; the busy ${busy} (2 tasks, newest) stays`);

  await service.scaleDown(id);
  await until('1 member', async () => controller.status(id)?.converged === true && controller.status(id)!.instances.length === 1, 90_000);
  t.same(links(), [guarded], `the protected node ${guarded} stays, though it runs nothing and the busy one ran 2 tasks`);

  // Below the protected member: the group stays at 1 rather than lose it.
  await service.scaleDown(id);
  await new Promise((r) => setTimeout(r, 3000));
  t.same(links(), [guarded], 'size 0 does not remove a protected node');
  t.equal(controller.status(id)?.converged, false, 'and the group says it is not converged');
});
