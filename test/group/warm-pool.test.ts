// A warm pool on real machines (docker provider, swarm-worker flavor, the controller and the group service): a group
// of size 1 with warm.size 1 runs two joined machines, one drained for the pool. A task that needs a second node is
// pending; group.scaleUp activates the warm node (same node id) and the task runs there, while one new machine is
// launched and joins the pool. Timings are printed as comments (a cold machine's join time, for comparison).
import t from 'tap';
import type { SwarmNode } from '../../src/flavors/swarm.js';
import { engineHost } from '../support/engine.js';
import { until } from '../support/until.js';
import { swarmGroupRig } from '../support/swarm-group.js';

const { docker, id, work, managerAddr, controller, service, validate } = await swarmGroupRig(t, 't-warm');

const machines = async () => (await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } })).map((c) => c.Id);
const status = () => controller.status(id);
const warmLinks = () => (status()?.instances ?? []).filter((i) => i.warm).map((i) => i.link!);
const activeLinks = () => (status()?.instances ?? []).filter((i) => !i.warm && i.link).map((i) => i.link!);
const nodeOf = async (nodeId: string) => (await docker.getNode(nodeId).inspect()) as SwarmNode;
const running = async () =>
  ((await docker.listTasks({ filters: { service: [work], 'desired-state': ['running'] } })) as { NodeID?: string; Status: { State: string } }[]).filter((x) => x.Status.State === 'running');

t.test('a scale-up of 1 activates the warm node and refills the pool with one new machine', async (t) => {
  await service.commit(
    validate({
      id,
      allocation: { size: 1 },
      warm: { size: 1 },
      instance: { provider: 'docker', properties: { engine: engineHost(), network: id } },
      flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '20s' } },
      update: { healthyFor: '0s' },
    }),
  );
  await until('1 active and 1 warm member', async () => status()?.converged === true && warmLinks().length === 1 && activeLinks().length === 1, 180_000);
  const [warm] = warmLinks();
  const [active] = activeLinks();
  const node = await nodeOf(warm!);
  t.equal(node.Spec.Availability, 'drain', 'the warm node is drained: Swarm schedules nothing there');
  t.equal(node.Spec.Labels?.['capstan.warm'], 'true');
  t.equal((await machines()).length, 2);

  // One task per node, two replicas: the second waits for a node, as a task does for a scale-up.
  await docker.createService({
    Name: work,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '3600'], Init: true },
      Placement: { Constraints: [`engine.labels.capstan.group==${id}`], MaxReplicas: 1 },
      RestartPolicy: { Condition: 'any', Delay: 0 },
    },
    Mode: { Replicated: { Replicas: 2 } },
  });
  await until('one task running, one pending', async () => (await running()).length === 1, 60_000);
  t.same((await running()).map((x) => x.NodeID), [active], 'nothing runs on the warm node');

  const before = new Set(await machines());
  const t0 = Date.now();
  await service.scaleUp(id);
  await until('the warm node to be active', async () => (await nodeOf(warm!)).Spec.Availability === 'active', 30_000);
  const activated = Date.now() - t0;
  await until('the pending task to run on it', async () => (await running()).some((x) => x.NodeID === warm), 30_000);
  const placed = Date.now() - t0;
  t.comment(`warm: scaleUp -> node active ${activated} ms, -> pending task running ${placed} ms`);
  t.notOk((await nodeOf(warm!)).Spec.Labels?.['capstan.warm'], 'out of the pool');

  await until('the pool refilled', async () => status()?.converged === true && warmLinks().length === 1 && activeLinks().length === 2, 180_000);
  const refill = warmLinks()[0]!;
  t.comment(`cold: the refill machine launched by the same scaleUp joined the pool ${Date.now() - t0} ms after it`);
  t.not(refill, warm, 'a new node is warm');
  t.not(refill, active);
  t.same(activeLinks().sort(), [active, warm].sort(), 'the same node id that was warm now serves');
  const after = await machines();
  t.equal(after.length, 3, 'three machines');
  t.equal(after.filter((m) => !before.has(m)).length, 1, 'one machine launched by the scale-up: nothing twice');
  t.equal((await nodeOf(refill)).Spec.Availability, 'drain');

  // Cold, for comparison: the pool emptied (its member goes, the active ones stay), a third task pending, a scale-up.
  await service.commit(
    validate({
      id,
      allocation: { size: 2 },
      warm: { size: 0 },
      instance: { provider: 'docker', properties: { engine: engineHost(), network: id } },
      flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '20s' } },
      update: { healthyFor: '0s' },
    }),
  );
  await until('the pool emptied', async () => status()?.converged === true && status()!.instances.length === 2 && warmLinks().length === 0, 60_000);
  t.same(activeLinks().sort(), [active, warm].sort(), 'the warm member went, the active ones stayed');
  await docker.getService(work).update({ ...(await docker.getService(work).inspect()).Spec, version: (await docker.getService(work).inspect()).Version.Index, Mode: { Replicated: { Replicas: 3 } } });
  await until('two running, one pending', async () => (await running()).length === 2 && (await docker.listTasks({ filters: { service: [work], 'desired-state': ['running'] } })).length === 3, 30_000);
  const c0 = Date.now();
  await service.scaleUp(id);
  await until('the third task to run on a new machine', async () => (await running()).length === 3, 120_000);
  t.comment(`cold: scaleUp -> pending task running on a new machine ${Date.now() - c0} ms`);
});

// The pool kept stopped (warm.state stopped), on the machines the test above left: 3 active, no pool, 3 tasks running.
// One machine is launched for the pool, joins, is drained and then stopped; its Down node is no reason to replace it
// (repair.unhealthyFor is short here, so a wrong verdict would show). A fourth task pending and a scale-up start it
// again: the same machine and node serve the task, and exactly one new machine refills the pool, stopped in turn.
t.test('a pool kept stopped: its machine stopped and kept, then started and activated by a scale-up', async (t) => {
  const spec = (size: number) =>
    validate({
      id,
      allocation: { size },
      warm: { size: 1, state: 'stopped' },
      instance: { provider: 'docker', properties: { engine: engineHost(), network: id } },
      flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '20s' } },
      update: { healthyFor: '0s' },
      repair: { unhealthyFor: '5s' },
    });
  const state = async (machine: string) => (await docker.getContainer(machine).inspect()).State.Status;
  const stoppedWarm = () => (status()?.instances ?? []).filter((i) => i.warm && i.state === 'stopped');
  const active = activeLinks().sort();
  await service.commit(spec(3));
  await until('a warm member, stopped', async () => status()?.converged === true && stoppedWarm().length === 1, 180_000);
  const [pooled] = stoppedWarm();
  t.equal(await state(pooled!.id), 'exited', 'its container is stopped');
  await until('its node to be Down', async () => (await nodeOf(pooled!.link!)).Status.State === 'down', 60_000);
  const node = await nodeOf(pooled!.link!);
  t.equal(node.Spec.Availability, 'drain');
  t.equal(node.Spec.Labels?.['capstan.warm'], 'true');
  t.same(activeLinks().sort(), active, 'the active members are the same');
  // Twice repair.unhealthyFor: a Down node read as evidence would have had the machine replaced by now.
  const kept = new Set(await machines());
  await new Promise((r) => setTimeout(r, 10_000));
  t.same(new Set(await machines()), kept, 'no machine replaced or added while the pooled one is stopped');
  t.equal(status()?.repair?.broken, 0, 'nothing counted broken');
  t.equal(await state(pooled!.id), 'exited', 'still stopped');

  const inspect = await docker.getService(work).inspect();
  await docker.getService(work).update({ ...inspect.Spec, version: inspect.Version.Index, Mode: { Replicated: { Replicas: 4 } } });
  await until('three running, one pending', async () => (await running()).length === 3 && (await docker.listTasks({ filters: { service: [work], 'desired-state': ['running'] } })).length === 4, 30_000);
  const t0 = Date.now();
  await service.scaleUp(id);
  await until('the stopped machine running again', async () => (await state(pooled!.id)) === 'running', 30_000);
  const started = Date.now() - t0;
  await until('the pending task to run on its node', async () => (await running()).some((x) => x.NodeID === pooled!.link), 60_000);
  t.comment(`warm, stopped: scaleUp -> machine started ${started} ms, -> pending task running on it ${Date.now() - t0} ms`);
  const served = await nodeOf(pooled!.link!);
  t.equal(served.Spec.Availability, 'active', 'the same node, active');
  t.notOk(served.Spec.Labels?.['capstan.warm'], 'out of the pool');

  await until('the pool refilled and stopped', async () => status()?.converged === true && stoppedWarm().length === 1 && activeLinks().length === 4, 180_000);
  const after = await machines();
  t.same(after.filter((m) => !kept.has(m)).length, 1, 'one machine launched by the scale-up: nothing twice');
  t.ok([...kept].every((m) => after.includes(m)), 'every machine from before is still there');
  t.not(stoppedWarm()[0]!.id, pooled!.id, 'the new machine is the one in the pool');
  t.same(activeLinks().sort(), [...active, pooled!.link!].sort(), 'the node that was stopped in the pool now serves');
});
