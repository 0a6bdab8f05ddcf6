// Scale-in on real machines (docker provider, swarm-worker flavor, the controller and the group service): of three
// workers, the newest runs two tasks, one is empty and one is empty and labelled capstan.protect=true. group.scaleDown
// removes the empty one (least-busy), then the busy one: the protected node stays, though it runs nothing.
import t from 'tap';
import type { SwarmNode } from '../../src/flavors/swarm.js';
import { engineHost } from '../support/engine.js';
import { until } from '../support/until.js';
import { swarmGroupRig } from '../support/swarm-group.js';

const { docker, id, work, managerAddr, controller, service, validate } = await swarmGroupRig(t, 't-in');

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
