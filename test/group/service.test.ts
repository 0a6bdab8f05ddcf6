// The group service with the real controller on the simulator: exact operations, operation state that survives a
// new leader, and the automatic rollback. Every assertion names machines by id.
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { configHash } from '../../src/group/identity.js';
import { silentLogger } from '../../src/log.js';
import { SimulatedCloud, simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { CapstanError, InvalidError } from '../../src/errors.js';
import { desiredSize } from '../../src/group/allocation.js';
import type { GroupSpec, Plugins } from '../../src/spi/index.js';
import { pickyFlavorKind } from './fixtures.js';
import { MemoryStore } from '../support/memory-store.js';
import { until } from '../support/until.js';

const picky = pickyFlavorKind;
let cloud: SimulatedCloud;

function setup(store = new MemoryStore()) {
  cloud = new SimulatedCloud();
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind(cloud)]]), flavors: new Map([['vanilla', vanillaFlavorKind], ['picky', picky]]) };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  /** One leadership term: a controller and a service over the shared store and cloud. */
  const lead = () => {
    const controller: Controller = new Controller({
      plugins,
      logger: silentLogger,
      intervalMs: 20,
      busyMs: 20,
      backoff: { baseMs: 20, maxMs: 50 },
      onUpdateFailed: (id, v, reason) => void service.updateFailed(id, v, reason),
    });
    const service: GroupService = new GroupService({ store, controller, validate, logger: silentLogger, pollMs: 10, removalWaitMs: 5000 });
    return { controller, service };
  };
  return { store, validate, lead };
}

const spec = (size: number, flavor: object = { kind: 'vanilla', properties: {} }, update: object = {}): object => ({
  id: 'web',
  allocation: { size },
  bounds: { min: 0, max: 10 },
  instance: { provider: 'simulator', properties: {} },
  flavor,
  update: { healthyFor: '0s', healthTimeout: '300ms', maxSurge: 1, maxUnavailable: 1, ...update },
});

const ids = () => cloud.list().map((i) => i.id).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('destroyInstances removes exactly the named machine; an immediate retry is a no-op; nothing is launched', async (t) => {
  const { lead, store, validate } = setup();
  const { controller, service } = lead();
  t.teardown(() => controller.stop());
  await service.commit(validate(spec(5)));
  await until('5 machines', () => controller.status('web')?.converged === true && ids().length === 5);
  const before = ids();
  const launched = cloud.calls.provision;
  const [victim, ...rest] = before;
  const [first, retry] = await Promise.all([service.destroyInstances('web', [victim!]), service.destroyInstances('web', [victim!])]);
  t.same(first.destroyed, [victim]);
  t.same(retry.destroyed, [victim], 'the retry answers the same');
  t.same(ids(), rest, 'exactly the named machine went; the other four are the same machines');
  t.same((await store.get('web'))!.spec.allocation, { size: 4 }, 'the size dropped by exactly one');
  const again = await service.destroyInstances('web', [victim!]);
  t.equal(again.version.version, first.version.version, 'a later retry stores nothing');
  const unknown = await service.destroyInstances('web', ['sim-nope']).catch((e: unknown) => e);
  t.equal((unknown as CapstanError).kind, 'notFound', 'an id never the group\'s is notFound');
  await sleep(200);
  t.same(ids(), rest, 'still the same four after more passes');
  t.equal(cloud.calls.provision, launched, 'no machine was launched for any of it');
});

t.test('10 scale-downs launch 0 machines', async (t) => {
  const { lead, validate } = setup();
  const { controller, service } = lead();
  t.teardown(() => controller.stop());
  await service.commit(validate(spec(10)));
  await until('10 machines', () => controller.status('web')?.converged === true && ids().length === 10);
  const launched = cloud.calls.provision;
  for (let i = 0; i < 5; i++) {
    await service.scaleDown('web');
    await service.destroyInstances('web', [ids()[0]!]);
  }
  await until('0 machines', () => ids().length === 0 && controller.status('web')?.converged === true);
  t.equal(cloud.calls.provision, launched, 'no launch during any scale-down');
});

t.test('a paused update stays paused across a new leader, and resume completes it', async (t) => {
  const { lead, validate, store } = setup();
  const term1 = lead();
  await term1.service.commit(validate(spec(4, { kind: 'vanilla', properties: { init: 'v1' } })));
  await until('4 machines', () => term1.controller.status('web')?.converged === true);
  const v1 = ids();
  await term1.service.commit(validate(spec(4, { kind: 'vanilla', properties: { init: 'v2' } }, { maxSurge: 0 })));
  await until('one replaced', () => ids().filter((i) => !v1.includes(i)).length >= 1);
  await term1.service.pause('web');
  await term1.controller.stop();
  const atPause = ids();

  const term2 = lead();
  t.teardown(() => term2.controller.stop());
  for (const v of await store.list()) term2.controller.apply(v);
  await sleep(400);
  // Paused, the size is still kept (a machine destroyed just before the pause is made up for), but nothing goes.
  t.ok(atPause.every((i) => ids().includes(i)), 'the new leader destroyed nothing');
  t.ok(ids().length <= 4, 'and made at most what the size needs');
  t.equal(term2.controller.status('web')!.update.state, 'paused');
  await term2.service.resume('web');
  await until('update done', () => term2.controller.status('web')?.converged === true);
  t.equal(ids().filter((i) => v1.includes(i)).length, 0, 'every old machine replaced after resume');
});

t.test("the autoscaler's last action is stored with the version it makes and carried by every later one", async (t) => {
  const { lead, validate, store } = setup();
  const { controller, service } = lead();
  t.teardown(() => controller.stop());
  await service.commit(validate(spec(1)));
  await until('1 machine', () => controller.status('web')?.converged === true);
  const up = { at: 1_000, action: 'scale-up' } as const;
  await service.scaleUp('web', 1, { autoscaled: up });
  t.same((await store.get('web'))?.state?.autoscaled, up, 'stored with the scale-up');
  await service.scale('web', 3);
  await service.pause('web');
  await service.resume('web');
  t.same((await store.get('web'))?.state?.autoscaled, up, 'carried by a scale, a pause and a resume');
  await service.commit(validate(spec(3, { kind: 'vanilla', properties: { init: 'v2' } })));
  t.same((await store.get('web'))?.state?.autoscaled, up, 'and by a commit of new machines');
  await until('3 machines', () => controller.status('web')?.converged === true && ids().length === 3);
  const down = { at: 2_000, action: 'scale-down' } as const;
  const [victim] = ids();
  await service.destroyInstances('web', [victim!], { autoscaled: down });
  t.same((await store.get('web'))?.state?.autoscaled, down, 'a removal by the autoscaler replaces it');
  await service.scaleUp('web');
  t.same((await store.get('web'))?.state?.autoscaled, down, "an operator's scale-up leaves it as it was");
});

t.test('a failed update is stored: a new leader keeps it failed and replaces nothing', async (t) => {
  const { lead, validate, store } = setup();
  const term1 = lead();
  await term1.service.commit(validate(spec(3, { kind: 'picky', properties: { broken: false } }, { maxSurge: 1, maxUnavailable: 0 })));
  await until('3 machines', () => term1.controller.status('web')?.converged === true);
  await term1.service.commit(validate(spec(3, { kind: 'picky', properties: { broken: true } }, { maxSurge: 1, maxUnavailable: 0 })));
  await until('failure stored', () => term1.controller.status('web')?.update.state === 'failed');
  await sleep(100);
  const latest = (await store.get('web'))!;
  t.match(latest.state?.failure, /not healthy within/);
  await term1.controller.stop();
  const atFailure = ids();

  const term2 = lead();
  t.teardown(() => term2.controller.stop());
  for (const v of await store.list()) term2.controller.apply(v);
  await sleep(700);
  t.equal(term2.controller.status('web')!.update.state, 'failed');
  t.same(ids(), atFailure, 'the new leader replaced nothing');
});

t.test('automatic rollback: machines of the last good version, the size of now, the failed version named; a conflict is retried', async (t) => {
  const { lead, validate, store } = setup();
  const { controller, service } = lead();
  t.teardown(() => controller.stop());
  const good = { kind: 'picky', properties: { broken: false } };
  const bad = { kind: 'picky', properties: { broken: true } };
  await service.commit(validate(spec(2, good, { onFailure: 'rollback' })));
  await until('2 machines', () => controller.status('web')?.converged === true);
  // One conflict on the rollback's commit, as when another call got there first.
  const commit = store.commit.bind(store);
  let conflicts = 0;
  store.commit = async (s: GroupSpec, expected: number, state) => {
    if (state?.note?.startsWith('rollback') && conflicts++ === 0) throw new CapstanError('conflict', 'another commit got there first');
    return commit(s, expected, state);
  };
  const failed = await service.commit(validate(spec(2, bad, { onFailure: 'rollback' })));
  await service.scale('web', 3);
  await until('rollback applied', () => controller.status('web')?.configHash === configHash(validate(spec(2, good))));
  const latest = (await store.get('web'))!;
  t.equal(conflicts, 2, 'the conflict was retried');
  t.same(latest.spec.allocation, { size: 3 }, 'the size of now, not of the good version');
  t.same(latest.spec.flavor, good, 'the machines of the good version');
  const named = Number(/^rollback: v(\d+) failed/.exec(latest.state?.note ?? '')?.[1]);
  t.ok(named >= failed.version.version && named < latest.version, `the failed version is named: ${latest.state?.note}`);
});

t.test('a commit whose answer is lost after Swarm stored it is applied all the same; a retry applies what is in force', async (t) => {
  const { lead, validate, store } = setup();
  const { controller, service } = lead();
  t.teardown(() => controller.stop());
  await service.commit(validate(spec(2)));
  await until('2 machines', () => controller.status('web')?.converged === true);
  // The store writes the version, then the answer is lost (a Docker deadline, a reset connection).
  const commit = store.commit.bind(store);
  store.commit = async (s, expected, state) => {
    await commit(s, expected, state);
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  };
  const scaled = await service.scale('web', 3);
  t.equal(scaled.version.version, 2, 'the stored version is recognised');
  await until('3 machines', () => controller.status('web')?.version === 2 && ids().length === 3);
  // And when even the read-back fails, a retry (no change to store) still applies the version in force.
  const get = store.get.bind(store);
  let readBackFails = false;
  store.commit = async (s, expected, state) => {
    await commit(s, expected, state);
    readBackFails = true;
    throw new Error('socket hang up');
  };
  store.get = async (id) => {
    if (readBackFails) throw new Error('no answer');
    return get(id);
  };
  await t.rejects(service.scale('web', 4));
  readBackFails = false;
  t.equal(controller.status('web')?.version, 2, 'the lost version is not applied yet');
  const retry = await service.scale('web', 4);
  t.equal(retry.changed, false, 'the retry finds size 4 stored');
  await until('4 machines', () => controller.status('web')?.version === 3 && ids().length === 4);
});

t.test("a commit, scale or destroyInstances the cluster refuses (the flavor's admit) stores nothing and changes no machine", async (t) => {
  const { lead, store, validate } = setup();
  const { controller } = lead();
  t.teardown(() => controller.stop());
  const odd = async (s: GroupSpec) => {
    if (desiredSize(s) % 2 === 0) throw new InvalidError('refused', [{ path: '/allocation/size', message: 'even' }]);
  };
  const service = new GroupService({ store, controller, validate, admit: odd, logger: silentLogger, pollMs: 10 });
  await service.commit(validate(spec(3)));
  await until('3 machines', () => controller.status('web')?.converged === true && ids().length === 3);
  const before = ids();
  const versions = (await store.history('web')).length;
  const refused = async (p: Promise<unknown>) => t.equal(((await p.then(() => undefined, (e: unknown) => e)) as CapstanError | undefined)?.kind, 'invalidParams');
  await refused(service.commit(validate(spec(4))));
  await refused(service.scale('web', 2));
  await refused(service.scaleUp('web'));
  await refused(service.destroyInstances('web', [before[0]!]));
  t.equal((await store.history('web')).length, versions, 'no version stored');
  await sleep(100);
  t.same(ids(), before, 'the same 3 machines');
  t.equal((await service.scale('web', 5)).size, 5, 'an admitted size is stored');
});
