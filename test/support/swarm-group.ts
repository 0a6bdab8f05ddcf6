// A swarm-worker group on real machines for one test file: the docker provider on the tests' engine, the Swarm
// flavors, a controller and the group service over a memory store; a network of the file's own; teardown removes
// the service `work`, the machines, their nodes and the network.
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { GROUP_LABEL, swarmFlavorKinds, type SwarmNode } from '../../src/flavors/swarm.js';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { MemoryStore } from './memory-store.js';
import { engine, engineHost } from './engine.js';

export async function swarmGroupRig(t: Test, prefix: string) {
  const docker = engine();
  const id = `${prefix}-${randomBytes(3).toString('hex')}`;
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
  return { docker, id, work, managerAddr, plugins, validate, controller, service };
}
