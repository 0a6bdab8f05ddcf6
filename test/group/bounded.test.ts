// Bounded work (issue 12, item 1): the operator's largest group is a validation problem; a stored version over it is
// a store problem, held and reported, never loaded; instance specs are prepared per provider batch, not for the whole
// group up front.
import type Docker from 'dockerode';
import t from 'tap';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Controller } from '../../src/group/controller.js';
import { maxGroupSize, validateSpec } from '../../src/group/spec.js';
import { InvalidError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { SimulatedCloud, simulatorProviderKind } from '../../src/providers/simulator/index.js';
import type { FlavorKind, Plugins } from '../../src/spi/index.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';

const spec = (allocation: object) => ({ id: 'web', allocation, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} } });

t.test('a group above the largest size is invalid at /allocation, by size or by logical ids', async (t) => {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]), checks: [maxGroupSize(3)] };
  t.same(validateSpec(spec({ size: 3 }), plugins).allocation, { size: 3 }, 'the largest is allowed');
  for (const allocation of [{ size: 4 }, { size: 50_000_000 }, { logicalIds: ['a', 'b', 'c', 'd'] }]) {
    const error = t.throws(() => validateSpec(spec(allocation), plugins)) as InvalidError;
    t.ok(error instanceof InvalidError, JSON.stringify(allocation));
    t.match(error.problems, [{ path: '/allocation', message: /above the largest group this service manages, 3/ }]);
  }
  t.throws(() => maxGroupSize(-1), RangeError);
  t.throws(() => maxGroupSize(1.5), RangeError);
});

/** A Swarm config as the engine lists it: one stored version of a group. */
function config(version: number, raw: object): Docker.ConfigInfo {
  return {
    ID: `cfg${version}`,
    Version: { Index: version },
    CreatedAt: new Date(version * 1000).toISOString(),
    UpdatedAt: new Date(version * 1000).toISOString(),
    Spec: {
      Name: `capstan.group.web.v${version}`,
      Labels: { 'capstan.group': 'web', 'capstan.version': String(version), 'capstan.created': new Date(version * 1000).toISOString() },
      Data: Buffer.from(JSON.stringify(raw)).toString('base64'),
    },
  } as Docker.ConfigInfo;
}

/** Just enough of dockerode for the store to read these configs (as the configs were written by an earlier release). */
const engineWith = (configs: Docker.ConfigInfo[]) => ({ listConfigs: async () => configs }) as unknown as Docker;

t.test('a stored version over the largest size is reported and held on load, never applied', async (t) => {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]), checks: [maxGroupSize(1000)] };
  const parse = (raw: unknown) => validateSpec(raw, plugins);

  // The crash: size 50,000,000 stored, then every start loaded it and ran out of heap.
  const alone = new SwarmSpecStore({ docker: engineWith([config(1, spec({ size: 50_000_000 }))]), parse, logger: silentLogger });
  t.same(await alone.list(), [], 'nothing to apply');
  t.match(alone.problems(), [{ id: 'web', version: 1, message: /invalid spec/, problems: [{ path: '/allocation', message: /size 50000000 is above the largest group/ }] }]);

  // Over an older good version: the group is held (not served from v1, which would bring back an old size).
  const store = new SwarmSpecStore({ docker: engineWith([config(1, spec({ size: 10 })), config(2, spec({ size: 50_000_000 }))]), parse, logger: silentLogger });
  t.same(await store.list(), [], 'held until a good commit');
  t.same((await store.history('web')).map((v) => v.version), [1], 'the good version is still in the history');
  t.match(store.problems(), [{ version: 2, problems: [{ path: '/allocation' }] }]);
});

t.test("instance specs are prepared per provider batch: at most concurrency x maxBatch ahead of the provider", async (t) => {
  const cloud = new SimulatedCloud();
  let prepared = 0;
  let ahead = 0;
  const counting: FlavorKind = {
    ...vanillaFlavorKind,
    name: 'vanilla',
    create: (p) => {
      const inner = vanillaFlavorKind.create(p);
      return {
        ...inner,
        prepare: async (s, ctx) => {
          prepared++;
          ahead = Math.max(ahead, prepared - cloud.machines.size);
          return inner.prepare(s, ctx);
        },
      };
    },
  };
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind(cloud)]]), flavors: new Map([['vanilla', counting]]) };
  const controller = new Controller({ plugins, logger: silentLogger, concurrency: 2, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  const s = validateSpec({ ...spec({ size: 95 }), instance: { provider: 'simulator', properties: { maxBatch: 10, latencyMs: 2 } } }, plugins);
  controller.apply({ id: 'web', version: 1, createdAt: '', spec: s });
  await controller.reconcile('web');
  t.equal(cloud.machines.size, 95);
  t.equal(prepared, 95, 'one prepare per instance');
  t.ok(ahead <= 20, `at most 2 batches of 10 prepared ahead of the provider (${ahead})`);
  t.equal(cloud.calls.provision, 10, 'ceil(95 / 10) provision calls');
});
