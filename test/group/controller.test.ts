import t from 'tap';
import { pino } from 'pino';
import { Controller } from '../../src/group/controller.js';
import { validateSpec } from '../../src/group/spec.js';
import { configHash } from '../../src/group/identity.js';
import { silentLogger } from '../../src/log.js';
import { SimulatedCloud, simulatorProviderKind, type SimulatorOptions } from '../../src/providers/simulator/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import type { GroupSpec, Plugins, SpecVersion } from '../../src/spi/index.js';
import { pickyFlavorKind } from './fixtures.js';

/** A fake clock the controller and the simulated cloud share, so describe lag and health timing are exact. */
function world(options: SimulatorOptions = {}) {
  let now = 1_000_000;
  const clock = () => now;
  const cloud = new SimulatedCloud(options, clock);
  const sim = simulatorProviderKind(cloud);
  return { cloud, sim, clock, advance: (ms: number) => (now += ms) };
}

const picky = pickyFlavorKind;

function setup(options: SimulatorOptions = {}, extra: Partial<ConstructorParameters<typeof Controller>[0]> = {}) {
  const w = world(options);
  const plugins: Plugins = { providers: new Map([['simulator', w.sim]]), flavors: new Map([['vanilla', vanillaFlavorKind], ['picky', picky]]) };
  const make = () => new Controller({ plugins, logger: silentLogger, clock: w.clock, intervalMs: 3_600_000, busyMs: 3_600_000, backoff: { baseMs: 3_600_000, maxMs: 3_600_000 }, ...extra });
  let version = 0;
  const commit = (raw: object): SpecVersion => ({ id: 'web', version: ++version, createdAt: '', spec: validateSpec(raw, plugins) });
  return { ...w, plugins, make, commit };
}

const base = (size: number, properties: object = {}, update: object = {}): object => ({
  id: 'web',
  allocation: { size },
  instance: { provider: 'simulator', properties },
  flavor: { kind: 'vanilla', properties: { init: 'echo hello' } },
  update: { healthyFor: '0s', healthTimeout: '60s', ...update },
});

async function settle(c: Controller, advance: (ms: number) => void, passes = 30) {
  for (let i = 0; i < passes; i++) {
    const p = await c.reconcile('web');
    if (p?.converged) return i + 1;
    advance(1000);
  }
  return Infinity;
}

t.test('scale 0 -> 10 -> 3 on the simulator, in batches, with boot scripts applied', async (t) => {
  const s = setup({ maxBatch: 4 });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(10, { maxBatch: 4 })));
  t.ok((await settle(c, s.advance)) <= 3);
  t.equal(s.cloud.list().length, 10);
  t.equal(s.cloud.calls.provision, 3, 'ceil(10 / 4) provision calls');
  t.equal(s.cloud.initOf(s.cloud.list()[0]!.id), 'echo hello');
  c.apply(s.commit(base(3, { maxBatch: 4 })));
  await settle(c, s.advance);
  t.equal(s.cloud.list().length, 3);
  const st = c.status('web')!;
  t.equal(st.converged, true);
  t.equal(st.instances.length, 3);
  t.equal(st.version, 2);
});

t.test('describe lag: an instance the provider does not list yet is never launched twice', async (t) => {
  const s = setup({ describeLagMs: 30_000 });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(5, { describeLagMs: 30_000 })));
  for (let i = 0; i < 10; i++) {
    await c.reconcile('web');
    s.advance(5000);
  }
  t.equal(s.cloud.machines.size, 5, 'five machines exist, not more');
  t.equal(s.cloud.calls.provision, 1);
});

t.test('provider faults: backoff and retries converge without extra instances', async (t) => {
  const s = setup({ failureRate: 0.4, seed: 7 });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(8, { failureRate: 0.4, maxBatch: 2 })));
  t.ok(Number.isFinite(await settle(c, s.advance, 80)), 'converged');
  t.equal(s.cloud.list().length, 8);
  t.ok(s.cloud.calls.provision > 4, 'failed calls were retried');
});

t.test('a persistent failure shows in status with its code', async (t) => {
  const s = setup({ failureRate: 1 });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(2, { failureRate: 1 })));
  await c.reconcile('web');
  t.match(c.status('web')!.lastError, { operation: 'observe', code: 'SimulatedFailure' });
});

t.test('a lost machine is replaced', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(3)));
  await settle(c, s.advance);
  const victim = s.cloud.list()[1]!.id;
  s.cloud.lose(victim);
  await settle(c, s.advance);
  t.equal(s.cloud.list().length, 3);
  t.notOk(s.cloud.list().some((i) => i.id === victim));
});

t.test('rolling update replaces every instance within surge and unavailability, and survives a restart', async (t) => {
  const s = setup();
  let c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(6, { image: 'v1' }, { maxSurge: 2, maxUnavailable: 1, healthyFor: '5s' })));
  await settle(c, s.advance);
  const v2 = s.commit(base(6, { image: 'v2' }, { maxSurge: 2, maxUnavailable: 1, healthyFor: '5s' }));
  const hash = configHash(v2.spec);
  c.apply(v2);
  let peak = 0;
  for (let i = 0; i < 40; i++) {
    if (i === 3) {
      // Capstan restarts mid-update: a new controller sees only the tags.
      c.stop();
      c = s.make();
      c.apply(v2);
    }
    const p = await c.reconcile('web');
    peak = Math.max(peak, s.cloud.list().length);
    if (p?.converged) break;
    s.advance(1000);
  }
  t.equal(c.status('web')!.converged, true);
  t.ok(s.cloud.list().every((i) => i.tags['capstan.config'] === hash), 'all on the new config');
  t.equal(s.cloud.list().length, 6);
  t.ok(peak <= 8, `never more than size + maxSurge (peak ${peak})`);
});

t.test('an update whose machines never get healthy pauses, and says why', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  const spec = (broken: boolean): GroupSpec => ({ ...(base(3, {}, { healthTimeout: '10s' }) as GroupSpec), flavor: { kind: 'picky', properties: { broken } } });
  c.apply(s.commit(spec(false)));
  await settle(c, s.advance);
  c.apply(s.commit(spec(true)));
  for (let i = 0; i < 20; i++) {
    await c.reconcile('web');
    s.advance(1000);
  }
  const st = c.status('web')!;
  t.equal(st.update.state, 'failed');
  t.match(st.update.reason, /not healthy within 10s/);
  t.ok(s.cloud.list().length <= 4, 'stopped replacing');
  t.ok(s.cloud.list().filter((i) => i.tags['capstan.config'] !== st.configHash).length >= 2, 'old instances kept');
});

t.test('a failed update is reported once, with its version and reason, and stops replacing', async (t) => {
  const reports: [string, number, string][] = [];
  const s = setup({}, { onUpdateFailed: (id, version, reason) => void reports.push([id, version, reason]) });
  const c = s.make();
  t.teardown(() => c.stop());
  const spec = (broken: boolean): GroupSpec => ({ ...(base(2, {}, { healthTimeout: '5s', onFailure: 'rollback' }) as GroupSpec), flavor: { kind: 'picky', properties: { broken } } });
  c.apply(s.commit(spec(false)));
  await settle(c, s.advance);
  c.apply(s.commit(spec(true)));
  for (let i = 0; i < 10; i++) {
    await c.reconcile('web');
    s.advance(1000);
  }
  t.equal(reports.length, 1);
  t.equal(reports[0]![1], 2, 'the version that failed');
  t.match(reports[0]![2], /not healthy/);
});

t.test('logical ids: one instance per id; a version stored paused replaces nothing until a version without it', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  const spec = (image: string) => ({ ...base(0, { image }), allocation: { logicalIds: ['a', 'b', 'c'] } });
  c.apply(s.commit(spec('v1')));
  await settle(c, s.advance);
  const before = s.cloud.list().map((i) => i.id).sort();
  t.same(s.cloud.list().map((i) => i.tags['capstan.logical-id']).sort(), ['a', 'b', 'c']);
  c.apply({ ...s.commit(spec('v2')), state: { paused: true } });
  for (let i = 0; i < 5; i++) {
    await c.reconcile('web');
    s.advance(1000);
  }
  t.equal(c.status('web')!.update.state, 'paused');
  t.same(s.cloud.list().map((i) => i.id).sort(), before, 'the same machines, none replaced');
  c.apply(s.commit(spec('v2')));
  t.ok(Number.isFinite(await settle(c, s.advance, 40)));
  t.same(s.cloud.list().map((i) => i.tags['capstan.logical-id']).sort(), ['a', 'b', 'c']);
});

t.test('versions only move forward: an older version arriving late is ignored', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  const v1 = s.commit(base(1));
  const v2 = s.commit(base(3));
  c.apply(v2);
  c.apply(v1);
  await settle(c, s.advance);
  t.equal(c.status('web')!.version, 2);
  t.equal(s.cloud.list().length, 3);
});

t.test('destroy drains and destroys every instance and forgets the group', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(3)));
  await settle(c, s.advance);
  await c.destroy('web');
  t.equal(s.cloud.list().length, 0);
  t.equal(c.status('web'), undefined);
});

t.test('preview shows what a commit would do, changing nothing', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(2, { image: 'v1' })));
  await settle(c, s.advance);
  const preview = await c.preview(validateSpec(base(4, { image: 'v2' }), s.plugins));
  t.equal(preview.create, 4, 'two more and two replacements');
  t.equal(preview.replace.length, 2);
  t.same(preview.destroy, []);
  t.equal(s.cloud.list().length, 2);
});

t.test('a health change wakes every group soon, without waiting for the interval', async (t) => {
  const s = setup();
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(2)));
  await settle(c, s.advance);
  s.cloud.lose(s.cloud.list()[0]!.id);
  c.healthChanged();
  await new Promise((r) => setTimeout(r, 600));
  t.equal(s.cloud.list().length, 2, 'the lost machine was replaced by a pass the event triggered');
});

t.test('progress of a scale-up is logged as it moves, once per change', async (t) => {
  const lines: { event?: string; instances?: number; converged?: boolean; msg: string }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const s = setup({}, { logger });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(3)));
  await settle(c, s.advance);
  await c.reconcile('web');
  const progress = lines.filter((l) => l.event === 'group.progress');
  t.same(progress.map((l) => [l.instances, l.converged]), [[0, false], [3, true]], 'from nothing to converged, no repeats');
  t.match(progress.at(-1)!.msg, /web v1: 3\/3 healthy, 3 instances, converged/);
});

t.test('instances show in the status as soon as the provider returns them, and go when destroyed, not a pass later', async (t) => {
  const s = setup({ maxBatch: 4, describeLagMs: 3_600_000 });
  const c = s.make();
  t.teardown(() => c.stop());
  c.apply(s.commit(base(10, { maxBatch: 4 })));
  await c.reconcile('web');
  const made = s.cloud.list().map((i) => i.id).sort();
  t.equal(made.length, 10, 'one pass made 10');
  t.same(c.status('web')!.instances.map((i) => i.id).sort(), made, 'all 10 in the status after the pass that made them (describe does not list them yet)');
  t.ok(c.status('web')!.instances.every((i) => i.health === 'unknown'), 'health unknown until observed');
  c.apply(s.commit(base(3, { maxBatch: 4 })));
  await c.reconcile('web');
  const left = s.cloud.list().map((i) => i.id).sort();
  t.equal(left.length, 3);
  t.same(c.status('web')!.instances.map((i) => i.id).sort(), left, 'the 7 destroyed are gone from the status at once');
});
