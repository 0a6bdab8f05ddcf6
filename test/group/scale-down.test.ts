// No churn on real machines: 10 scale-downs (group.scaleDown and group.destroyInstances, as operators and the
// autoscaler make them) through the group service launch 0 machines, and every machine left is one that was there.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import type { Plugins, ProviderKind } from '../../src/spi/index.js';
import { MemoryStore } from '../support/memory-store.js';
import { engine, engineHost } from '../support/engine.js';
import { until } from '../support/until.js';

const docker = engine();
const id = `t-down-${randomBytes(3).toString('hex')}`;
t.teardown(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
});

let launched = 0;
const inner = dockerProviderKind({ logger: silentLogger, allow: { endpoints: [engineHost()] } });
const counted: ProviderKind = {
  ...inner,
  create(properties) {
    const p = inner.create(properties);
    return { maxBatch: p.maxBatch, describe: (tags) => p.describe(tags), destroy: (ids) => p.destroy(ids), provision: async (specs, intent) => ((launched += specs.length), p.provision(specs, intent)) };
  },
};
const plugins: Plugins = { providers: new Map([['docker', counted]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
const validate = (raw: unknown) => validateSpec(raw, plugins);
const controller = new Controller({ plugins, logger: silentLogger, busyMs: 100, intervalMs: 500 });
const service = new GroupService({ store: new MemoryStore(), controller, validate, logger: silentLogger, pollMs: 50 });
t.teardown(() => controller.stop());

const machines = async () => (await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } })).map((c) => c.Id).sort();

t.test('10 scale-downs launch 0 machines and remove only machines that were there', async (t) => {
  await service.commit(validate({ id, allocation: { size: 10 }, instance: { provider: 'docker', properties: { engine: engineHost(), memory: '128m' } }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } }));
  await until('10 machines', async () => (await machines()).length === 10 && controller.status(id)?.converged === true);
  const before = await machines();
  const made = launched;
  for (let n = 9; n >= 0; n--) {
    if (n % 2) await service.scaleDown(id);
    else await service.destroyInstances(id, [(await machines())[0]!]);
    await until(`${n} machines`, async () => (await machines()).length === n && controller.status(id)?.converged === true);
    const now = await machines();
    t.ok(now.every((m) => before.includes(m)), `${n} left, all of them machines that were there`);
  }
  t.equal(launched - made, 0, 'no machine launched by any scale-down');
});
