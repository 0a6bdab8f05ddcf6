// The whole loop on the tests' engine with real machines (docker provider, swarm-worker flavor): a task pending for
// want of a node adds a machine, the machine joins and runs it, and once the task is gone the idle worker is removed.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { Autoscaler, type Decision, type GroupView } from '../../src/autoscale/index.js';
import { GROUP_LABEL, swarmFlavorKinds, type SwarmNode } from '../../src/flavors/swarm.js';
import { Controller } from '../../src/group/controller.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { GroupService } from '../../src/group/service.js';
import type { GroupStatus, Instance, Plugins } from '../../src/spi/index.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';
import { engine, engineHost } from '../support/engine.js';
import { group as groupSpec } from './fixtures.js';

const docker = engine();
const id = `as-m-${randomBytes(3).toString('hex')}`;
/** The group of the second test, wired as src/main.ts would. */
const wiredId = `${id}-w`;
/** The group of the third test, whose policy declares what its machines do not offer. */
const unsatId = `${id}-u`;
const service = `${id}-work`;
await docker.createNetwork({ Name: id, Labels: { 'capstan.test': id } });
const managerAddr = `${(await docker.getNetwork(id).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;
const provider = dockerProviderKind({ logger: silentLogger }).create({ engine: engineHost(), network: id });
const worker = swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200 })[0]!;
const flavor = worker.create({ managerAddr, drainTimeout: '20s' });

t.teardown(async () => {
  await docker.getService(service).remove().catch(() => undefined);
  await docker.getService(`${wiredId}-work`).remove().catch(() => undefined);
  await docker.getService(`${unsatId}-work`).remove().catch(() => undefined);
  for (const g of [id, wiredId, unsatId]) {
    const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${g}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  }
  for (const node of (await docker.listNodes()) as SwarmNode[]) {
    const g = node.Description?.Engine?.Labels?.[GROUP_LABEL];
    if (g === id || g === wiredId || g === unsatId) await docker.getNode(node.ID).remove({ force: true }).catch(() => undefined);
  }
  await docker.getNetwork(id).remove();
});

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * What the lead's wiring does through the store and the controller, done with the provider and flavor alone: an
 * autoscaler of one group, whose scale-ups provision machines and removals drain and destroy them.
 */
function direct(t: Test, group: string, autoscale: Record<string, unknown>) {
  let size = 0;
  let status: GroupStatus | undefined;
  const ups: { count: number; at: number }[] = [];
  const removals: { instanceId: string; reason: string; at: number }[] = [];
  const spec = () => groupSpec(group, size, { min: 0, max: 2, autoscale });
  let refreshing = true;
  const refresh = (async () => {
    while (refreshing) {
      const instances = await provider.describe({ 'capstan.group': group });
      const health = await flavor.health(instances);
      status = {
        id: group,
        version: 1,
        size,
        configHash: 'c1',
        instances: instances.map((i) => ({ id: i.id, state: i.state, config: 'c1', health: health.get(i.id)?.health ?? 'unknown', ...(health.get(i.id)?.link ? { link: health.get(i.id)!.link! } : {}) })),
        converged: instances.length === size && [...health.values()].every((h) => h.health === 'healthy'),
        update: { state: 'idle', total: size, done: 0, failed: 0 },
      };
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const autoscaler = new Autoscaler({
    docker,
    logger: silentLogger,
    pollMs: 1000,
    groups: (): GroupView[] => [{ spec: spec(), ...(status ? { status } : {}), flavor: worker }],
    scaleUp: async (_group, count) => {
      ups.push({ count, at: Date.now() });
      size += count;
      const specs = await Promise.all(Array.from({ length: count }, () => flavor.prepare({ tags: { 'capstan.group': group, 'capstan.config': 'c1' }, init: '' }, { groupId: group, configHash: 'c1' })));
      await provider.provision(specs, `${group}-${ups.length}`);
    },
    removeInstance: async (_group, instanceId, reason) => {
      removals.push({ instanceId, reason, at: Date.now() });
      size -= 1;
      const instance = (await provider.describe({ 'capstan.group': group })).find((i: Instance) => i.id === instanceId)!;
      await flavor.drain(instance);
      await provider.destroy([instanceId]);
      await flavor.destroyed(instance);
    },
  });
  autoscaler.start();
  t.teardown(async () => {
    autoscaler.stop();
    refreshing = false;
    await refresh;
  });
  return { autoscaler, ups, removals, status: () => status, size: () => size };
}

t.test('pending task -> one machine -> task runs -> task gone -> the idle worker is removed', async (t) => {
  const { autoscaler, ups, removals, status, size } = direct(t, id, { scaleUpDelay: '0s', scaleDownIdle: '2s', cooldown: '0s', cpus: 1, memory: '512MiB' });
  await until('the first read of the Swarm', () => autoscaler.preview());

  // Only a machine of this group can run it: its engine label capstan.group is set by the swarm flavor.
  const created = await docker.createService({
    Name: service,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'] },
      Resources: { Reservations: { NanoCPUs: 0.5e9 } },
      Placement: { Constraints: [`engine.labels.capstan.group==${id}`] },
    },
    Mode: { Replicated: { Replicas: 1 } },
  });
  const t0 = Date.now();
  await until('a scale-up', () => ups[0]);
  t.comment(`service created -> scale-up call ${ups[0]!.at - t0} ms`);
  const running = await until('the task to run on the new machine', async () => {
    const tasks = (await docker.listTasks({ filters: { service: [created.id], 'desired-state': ['running'] } })) as { NodeID?: string; Status: { State: string } }[];
    return tasks.find((x) => x.Status.State === 'running');
  });
  t.comment(`service created -> task running on the new machine ${Date.now() - t0} ms`);
  const link = status()?.instances.find((i) => i.link === running.NodeID);
  t.ok(link, 'the task runs on the machine the autoscaler added');
  t.same(ups.map((u) => u.count), [1], 'one machine, launched once while it booted');
  t.same(removals, [], 'a busy worker stays');

  await docker.getService(created.id).remove();
  const t1 = Date.now();
  const removal = await until('the idle worker to be removed', () => removals[0]);
  t.comment(`service removed -> removal decision ${removal.at - t1} ms (scaleDownIdle 2s)`);
  t.equal(removal.instanceId, link!.id, 'the decision names the instance of the idle node');
  t.match(removal.reason, /ran only global tasks for/);
  await until('the node to leave the Swarm', async () => (((await docker.listNodes()) as SwarmNode[]).some((n) => n.ID === running.NodeID) ? undefined : true));
  t.equal(size(), 0);
  await new Promise((r) => setTimeout(r, 2000));
  t.same(ups.map((u) => u.count), [1], 'no scale-up after the removal');
  t.equal(removals.length, 1, 'bounds.min 0 reached: nothing more to remove');
  const history = autoscaler.lastDecisions(id).map((d: Decision) => `${d.action}/${d.reason}`);
  t.ok(history.includes('scale-up/pending-tasks') && history.includes('scale-down/idle'), history.join(', '));
});

t.test('wired as in src/main.ts: store commits through the group methods, the controller provisions and destroys', async (t) => {
  const plugins: Plugins = {
    providers: new Map([['docker', dockerProviderKind({ logger: silentLogger, allow: { endpoints: [engineHost()] } })]]),
    flavors: new Map(swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200 }).map((f) => [f.name, f])),
  };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const store = new SwarmSpecStore({ docker, parse: validate, logger: silentLogger });
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 1000, busyMs: 300 });
  t.teardown(async () => {
    controller.stop();
    await store.remove(wiredId).catch(() => undefined);
  });
  const first = await store.commit(
    validate({
      id: wiredId,
      allocation: { size: 0 },
      bounds: { min: 0, max: 2 },
      instance: { provider: 'docker', properties: { engine: engineHost(), network: id } },
      flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '20s' } },
      autoscale: { scaleUpDelay: '0s', scaleDownIdle: '3s', cooldown: '0s', cpus: 1, memory: '512MiB' },
    }),
    0,
  );
  controller.apply(first);

  // The wiring given to the lead, verbatim but for the names.
  const service = new GroupService({ store, controller, validate, logger: silentLogger });
  const autoscaler = new Autoscaler({
    docker,
    logger: silentLogger,
    groups: async () => (await store.list()).map((v) => ({ spec: v.spec, status: controller.status(v.id), flavor: plugins.flavors.get(v.spec.flavor.kind) })),
    scaleUp: async (id, count) => void (await service.scaleUp(id, count)),
    removeInstance: async (id, instanceId) => void (await service.destroyInstances(id, [instanceId])),
  });
  autoscaler.start();
  t.teardown(() => autoscaler.stop());
  await until('the first read of the Swarm', () => autoscaler.preview());

  const created = await docker.createService({
    Name: `${wiredId}-work`,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'] },
      Placement: { Constraints: [`engine.labels.capstan.group==${wiredId}`] },
    },
    Mode: { Replicated: { Replicas: 1 } },
  });
  const t0 = Date.now();
  await until('the task to run on a machine of the group', async () => {
    const tasks = (await docker.listTasks({ filters: { service: [created.id], 'desired-state': ['running'] } })) as { Status: { State: string } }[];
    return tasks.some((x) => x.Status.State === 'running') || undefined;
  });
  t.comment(`wired: service created -> task running on a new machine ${Date.now() - t0} ms`);
  const sizes = async () => (await store.history(wiredId)).map((v) => (v.spec.allocation as { size: number }).size);
  t.same(await sizes(), [0, 1], 'one commit, of one machine');

  await docker.getService(created.id).remove();
  const t1 = Date.now();
  await until('the idle machine to be gone', () => {
    const s = controller.status(wiredId);
    return s && s.size === 0 && s.instances.length === 0 ? true : undefined;
  });
  t.comment(`wired: service removed -> machine destroyed ${Date.now() - t1} ms (scaleDownIdle 3s)`);
  t.same(await sizes(), [0, 1, 0], 'then one commit down, through destroyInstances');
  const history = autoscaler.lastDecisions(wiredId).filter((d) => d.action !== 'none');
  t.match(history, [{ action: 'scale-up', count: 1 }, { action: 'scale-down', reason: 'idle' }]);
});

t.test('a task a new machine does not satisfy after all gets one machine, then a why-not, and no churn', async (t) => {
  // The policy says the machines are riscv64; the machines the docker provider makes here are x86_64.
  const { autoscaler, ups, removals } = direct(t, unsatId, { scaleUpDelay: '0s', scaleDownIdle: '2s', cooldown: '0s', cpus: 1, memory: '512MiB', platform: { architecture: 'riscv64' } });
  await until('the first read of the Swarm', () => autoscaler.preview());
  const created = await docker.createService({
    Name: `${unsatId}-work`,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'] },
      Placement: { Constraints: [`engine.labels.capstan.group==${unsatId}`, 'node.platform.arch==riscv64'] },
    },
    Mode: { Replicated: { Replicas: 1 } },
  });
  const decided = (reason: string) => autoscaler.lastDecisions(unsatId).find((d) => d.reason === reason);
  await until('a scale-up', () => ups[0]);
  const joined = await until('the machine to join', async () => {
    const nodes = (await docker.listNodes()) as SwarmNode[];
    return nodes.find((n) => n.Description?.Engine?.Labels?.[GROUP_LABEL] === unsatId && n.Status.State === 'ready') && Date.now();
  });
  const said = await until('a why-not', () => decided('unsatisfiable'));
  t.comment(`machine ready -> why-not ${Date.now() - joined} ms (the scheduler's grace is 5 s)`);
  const [task] = (await docker.listTasks({ filters: { service: [created.id], 'desired-state': ['running'] } })) as { ID: string; Status: { State: string } }[];
  t.equal(task?.Status.State, 'pending', 'the task is still pending');
  t.match(said, { action: 'none', tasks: [task!.ID] });
  t.match(said!.message, /get no further machine of group .*joined without what it needs: constraint "node\.platform\.arch==riscv64" is not met \(node\.platform\.arch is "x86_64"\)/);
  t.same(ups.map((u) => u.count), [1], 'one machine only');

  // The machine added for it runs nothing: it goes, and the task, still pending, gets no machine again.
  await until('the idle machine to be removed', () => removals[0]);
  await until('its node to leave', async () => (((await docker.listNodes()) as SwarmNode[]).some((n) => n.Description?.Engine?.Labels?.[GROUP_LABEL] === unsatId) ? undefined : true));
  await new Promise((r) => setTimeout(r, 3000));
  t.same(ups.map((u) => u.count), [1], 'still one machine in all');
  t.equal(removals.length, 1);
});
