// What the web console reads from the API beyond what the CLI prints: group.history carries each version's spec (a
// confirmation's pretend commit starts from it), and group.describe says when each machine was launched (its age).
// The real controller on simulated machines: no Docker.
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { startServer } from '../rpc/harness.js';
import { until } from '../support/until.js';

t.test('history has each version\'s spec; describe has launch times', async (t) => {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 1000, busyMs: 50 });
  t.teardown(() => controller.stop());
  const h = await startServer(t, { controller, validate });
  const spec = { id: 'web', allocation: { size: 2 }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } };
  const before = Date.now();
  await h.call('group.commit', { spec });
  await controller.reconcile('web');
  await h.call('group.scale', { id: 'web', size: 3 });

  const history = (await h.call('group.history', { id: 'web' })).result as { version: number; spec: { allocation: object; update: object } }[];
  t.same(history.map((v) => v.spec.allocation), [{ size: 2 }, { size: 3 }], 'each version with its spec');
  t.same(history[0]!.spec, validate(spec), 'as stored, defaults filled in');
  await until('3 machines', async () => (await h.call('group.describe', { id: 'web' })).result.converged, 10_000);
  const pretend = (await h.call('group.commit', { spec: { ...history[1]!.spec, allocation: { size: 5 } }, pretend: true })).result;
  t.same(pretend.plan, { create: 2, createLogicalIds: [], destroy: [], replace: [] }, 'a pretend commit made from it says what would happen');

  const described = (await h.call('group.describe', { id: 'web' })).result as { instances: { launchedAt?: string }[] };
  t.equal(described.instances.length, 3);
  for (const i of described.instances) t.ok(i.launchedAt && Date.parse(i.launchedAt) >= before - 1000 && Date.parse(i.launchedAt) <= Date.now(), `launched at ${i.launchedAt}`);
});
