import t from 'tap';
import type { Action, Observed, PlanInput } from '../../src/group/plan-types.js';
import { plan } from '../../src/group/planner.js';
import { inst, logicalSpec, obs, sizedSpec } from './fixtures.js';

const NOW = 1_000_000;
const run = (input: Partial<PlanInput> & Pick<PlanInput, 'spec'>) => plan({ configHash: 'new', observed: [], now: NOW, paused: false, ...input });
const provisions = (as: readonly Action[]) => as.filter((a) => a.kind === 'provision').reduce((n, a) => n + (a.kind === 'provision' ? a.count : 0), 0);
const destroyed = (as: readonly Action[], reason?: string) => as.flatMap((a) => (a.kind === 'destroy' && (!reason || a.reason === reason) ? a.ids : []));

t.test('scale up from nothing provisions the whole size in one action', async (t) => {
  const p = run({ spec: sizedSpec(5) });
  t.same(p.actions, [{ kind: 'provision', count: 5 }]);
  t.equal(p.converged, false);
});

t.test('size 0 is valid and converged when empty', async (t) => {
  const p = run({ spec: sizedSpec(0) });
  t.same(p.actions, []);
  t.equal(p.converged, true);
});

t.test('instances launched but not yet listed count as capacity', async (t) => {
  // The controller passes in-flight instances as observed with unknown health.
  const observed = [obs(inst('a', 'new', { launchedAt: NOW - 1000 }), 'unknown'), obs(inst('b', 'new', { launchedAt: NOW - 1000 }), 'unknown')];
  const p = run({ spec: sizedSpec(3), observed });
  t.same(p.actions, [{ kind: 'provision', count: 1 }]);
});

t.test('scale down: unhealthy first, then outdated, then newest; Capstan host last', async (t) => {
  const observed = [
    obs(inst('self', 'new', { launchedAt: 900 })),
    obs(inst('newest', 'new', { launchedAt: 800 })),
    obs(inst('older', 'new', { launchedAt: 100 })),
    obs(inst('outdated', 'old', { launchedAt: 50 })),
    obs(inst('sick', 'new', { launchedAt: 10 }), 'unhealthy'),
  ];
  // No surge: an outdated instance would otherwise make room for one extra during the update.
  const update = { maxUnavailable: 1, maxSurge: 0, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } as const;
  const order = [1, 2, 3, 4].map((size) => destroyed(run({ spec: sizedSpec(5 - size, { update }), observed, selfInstanceId: 'self' }).actions, 'scale-down'));
  t.same(order[0], ['sick']);
  t.same(order[1], ['sick', 'outdated']);
  t.same(order[2], ['sick', 'outdated', 'newest']);
  t.same(order[3], ['sick', 'outdated', 'newest', 'older']);
});

t.test('changing only size, bounds or update policy replaces nothing', async (t) => {
  const observed = ['a', 'b', 'c'].map((id) => obs(inst(id, 'new')));
  const p = run({ spec: sizedSpec(3, { bounds: { max: 9 }, update: { maxUnavailable: '50%', maxSurge: 0, healthTimeout: '1m', healthyFor: '1s', onFailure: 'rollback' } }), observed });
  t.same(p.actions, []);
  t.equal(p.converged, true);
  t.equal(p.update.state, 'idle');
});

t.test('rolling update with surge 1, unavailable 0 creates first, then replaces one at a time', async (t) => {
  const spec = sizedSpec(3, { update: { maxUnavailable: 0, maxSurge: 1, healthTimeout: '60s', healthyFor: '10s', onFailure: 'pause' } });
  const old = ['a', 'b', 'c'].map((id) => obs(inst(id, 'old')));
  let p = run({ spec, observed: old });
  t.same(p.actions, [{ kind: 'provision', count: 1 }]);
  t.equal(p.update.state, 'rolling');
  // New one up but not healthy for long enough: nothing goes.
  const fresh = obs(inst('n1', 'new', { launchedAt: NOW - 5000 }), 'healthy', NOW - 5000);
  p = run({ spec, observed: [...old, fresh] });
  t.same(p.actions, []);
  // Healthy for healthyFor: one old goes.
  p = run({ spec, observed: [...old, obs(inst('n1', 'new'), 'healthy', NOW - 10_000)] });
  t.same(destroyed(p.actions, 'update').length, 1);
  t.equal(provisions(p.actions), 0);
  t.equal(p.update.done, 1);
});

t.test('rolling update with unavailable 1, surge 0 removes first', async (t) => {
  const spec = sizedSpec(3, { update: { maxUnavailable: 1, maxSurge: 0, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } });
  const old = ['a', 'b', 'c'].map((id) => obs(inst(id, 'old')));
  const p = run({ spec, observed: old });
  t.equal(provisions(p.actions), 0);
  t.equal(destroyed(p.actions, 'update').length, 1);
});

t.test('percentages resolve against the size', async (t) => {
  const spec = sizedSpec(10, { update: { maxUnavailable: '25%', maxSurge: '25%', healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } });
  const p = run({ spec, observed: Array.from({ length: 10 }, (_, i) => obs(inst(`o${i}`, 'old'))) });
  t.equal(provisions(p.actions), 3); // ceil(2.5)
  t.equal(destroyed(p.actions, 'update').length, 2); // floor(2.5)
});

t.test('surge never exceeds bounds.max', async (t) => {
  const spec = sizedSpec(3, { bounds: { max: 3 }, update: { maxUnavailable: 1, maxSurge: 2, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } });
  const p = run({ spec, observed: ['a', 'b', 'c'].map((id) => obs(inst(id, 'old'))) });
  t.equal(provisions(p.actions), 0);
  t.equal(destroyed(p.actions).length, 1);
});

t.test('a new instance not healthy within healthTimeout fails the update and stops replacing', async (t) => {
  const spec = sizedSpec(3, { update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } });
  const observed = [...['a', 'b', 'c'].map((id) => obs(inst(id, 'old'))), obs(inst('n1', 'new', { launchedAt: NOW - 61_000 }), 'unknown')];
  const p = run({ spec, observed });
  t.match(p.failure, /not healthy within 60s: n1/);
  t.equal(p.update.state, 'failed');
  t.equal(p.update.failed, 1);
  t.same(destroyed(p.actions), []);
  t.equal(provisions(p.actions), 0);
});

t.test('paused: no replacements, but lost instances are still replaced', async (t) => {
  const spec = sizedSpec(3);
  const p = run({ spec, observed: ['a', 'b'].map((id) => obs(inst(id, 'old'))), paused: true });
  t.same(p.actions, [{ kind: 'provision', count: 1 }]);
  t.equal(p.update.state, 'paused');
});

t.test('an instance that went bad after its deadline is repaired when no update runs', async (t) => {
  const observed = [obs(inst('a', 'new')), obs(inst('b', 'new', { launchedAt: NOW - 120_000 }), 'unhealthy')];
  const p = run({ spec: sizedSpec(2), observed });
  t.same(destroyed(p.actions, 'repair'), ['b']);
});

t.test('an instance that never became healthy by its deadline is replaced, one not yet due is kept', async (t) => {
  const observed = [
    obs(inst('a', 'new')),
    obs(inst('never', 'new', { launchedAt: NOW - 61_000 }), 'unknown'),
    obs(inst('booting', 'new', { launchedAt: NOW - 30_000 }), 'unknown'),
  ];
  const p = run({ spec: sizedSpec(3), observed });
  t.same(destroyed(p.actions, 'repair'), ['never']);
});

t.test('logical ids: missing created, unknown removed, duplicates collapsed', async (t) => {
  const observed = [
    obs(inst('x1', 'new', { logicalId: '10.0.0.1' })),
    obs(inst('x1b', 'new', { logicalId: '10.0.0.1', launchedAt: 5 }), 'unknown'),
    obs(inst('stray', 'new', { logicalId: '10.0.0.9' })),
    obs(inst('untagged', 'new')),
  ];
  const p = run({ spec: logicalSpec(['10.0.0.1', '10.0.0.2', '10.0.0.3']), observed });
  t.same(destroyed(p.actions, 'unknown-id').sort(), ['stray', 'untagged']);
  t.same(destroyed(p.actions, 'duplicate'), ['x1b']);
  t.same(p.actions.find((a) => a.kind === 'provision'), { kind: 'provision', count: 2, logicalIds: ['10.0.0.2', '10.0.0.3'] });
});

t.test('logical ids: never more than one member replaced at a time', async (t) => {
  const ids = ['m1', 'm2', 'm3'];
  const spec = logicalSpec(ids);
  let p = run({ spec, observed: ids.map((id) => obs(inst(id, 'old', { logicalId: id }))) });
  t.equal(destroyed(p.actions, 'update').length, 1);
  // One replaced and not yet available: the others wait.
  const observed = [obs(inst('m1n', 'new', { logicalId: 'm1', launchedAt: NOW - 1000 }), 'unknown'), ...['m2', 'm3'].map((id) => obs(inst(id, 'old', { logicalId: id })))];
  p = run({ spec, observed });
  t.same(p.actions, []);
  // One missing: it is created, nothing else replaced.
  p = run({ spec, observed: ['m2', 'm3'].map((id) => obs(inst(id, 'old', { logicalId: id }))) });
  t.same(p.actions, [{ kind: 'provision', count: 1, logicalIds: ['m1'] }]);
});

t.test('update progress counts done and total', async (t) => {
  const spec = sizedSpec(2, { update: { maxUnavailable: 1, maxSurge: 0, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } });
  const p = run({ spec, observed: [obs(inst('a', 'old')), obs(inst('b', 'new'), 'healthy', NOW)] });
  t.match(p.update, { state: 'rolling', total: 2, done: 1, failed: 0 });
});

t.test('scaleIn least-busy (the default): fewest tasks first, then newest; unhealthy and named still first', async (t) => {
  const observed = [
    { ...obs(inst('busy-new', 'new', { launchedAt: 900 })), tasks: 5 },
    { ...obs(inst('empty-old', 'new', { launchedAt: 100 })), tasks: 0 },
    { ...obs(inst('empty-new', 'new', { launchedAt: 800 })), tasks: 0 },
    { ...obs(inst('one', 'new', { launchedAt: 50 })), tasks: 1 },
    { ...obs(inst('sick', 'new', { launchedAt: 10 }), 'unhealthy'), tasks: 9 },
  ];
  const down = (size: number, over: Partial<PlanInput> = {}, scaleIn?: 'least-busy' | 'newest' | 'oldest') =>
    destroyed(run({ spec: sizedSpec(size, scaleIn ? { scaleIn } : {}), observed, ...over }).actions, 'scale-down');
  t.same(down(4), ['sick']);
  t.same(down(2), ['sick', 'empty-new', 'empty-old']);
  t.same(down(1), ['sick', 'empty-new', 'empty-old', 'one']);
  t.same(down(3, { removing: ['busy-new'] }), ['busy-new', 'sick'], 'a named removal goes first, then the unhealthy');
  t.same(down(2, {}, 'newest'), ['sick', 'busy-new', 'empty-new']);
  t.same(down(2, {}, 'oldest'), ['sick', 'one', 'empty-old']);
  t.same(down(2, { selfInstanceId: 'empty-new' }), ['sick', 'empty-old', 'one'], 'the Capstan host last');
});

t.test('a protected member is never chosen by scale-in; updates replace it, last', async (t) => {
  const observed = [
    { ...obs(inst('keep', 'new', { launchedAt: 900 })), tasks: 0, protected: true },
    { ...obs(inst('busy', 'new', { launchedAt: 100 })), tasks: 4 },
    { ...obs(inst('idle', 'new', { launchedAt: 50 })), tasks: 1 },
  ];
  t.same(destroyed(run({ spec: sizedSpec(2), observed }).actions, 'scale-down'), ['idle']);
  t.same(destroyed(run({ spec: sizedSpec(1), observed }).actions, 'scale-down'), ['idle', 'busy']);
  const none = run({ spec: sizedSpec(0), observed });
  t.same(destroyed(none.actions, 'scale-down'), ['idle', 'busy'], 'the group stays above its size rather than lose it');
  t.equal(none.converged, false);
  // An unhealthy protected member is not scaled in either (repair may still replace it).
  const sick = [{ ...obs(inst('keep', 'new', { launchedAt: 900 }), 'unhealthy'), protected: true }, obs(inst('ok', 'new'))];
  t.same(destroyed(run({ spec: sizedSpec(1), observed: sick }).actions, 'scale-down'), ['ok']);
  // A rolling update (no surge, one at a time) takes the protected member after every other outdated one.
  const update = { maxUnavailable: 1, maxSurge: 0, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } as const;
  const old = observed.map((o) => ({ ...o, instance: { ...o.instance, tags: { ...o.instance.tags, 'capstan.config': 'old' } } }));
  t.same(destroyed(run({ spec: sizedSpec(3, { update }), observed: old }).actions, 'update'), ['idle']);
  const rest = [old[0]!, obs(inst('n1', 'new')), obs(inst('n2', 'new'))];
  t.same(destroyed(run({ spec: sizedSpec(3, { update }), observed: rest }).actions, 'update'), ['keep'], 'the protected member last');
});

const standbys = (as: readonly Action[]) => {
  const s = as.find((a) => a.kind === 'standby');
  return s && s.kind === 'standby' ? { warm: [...s.warm], active: [...s.active] } : { warm: [], active: [] };
};

t.test('warm pool: made beyond the size, the idle newest member put in it once every machine has joined', async (t) => {
  const spec = sizedSpec(2, { warm: { size: 1 } });
  t.same(run({ spec }).actions, [{ kind: 'provision', count: 3 }], 'size + pool launched at once');
  const booting = (id: string) => obs(inst(id, 'new', { launchedAt: NOW - 1000 }), 'unknown');
  const joined = (id: string, launchedAt: number, tasks: number) => ({ ...obs(inst(id, 'new', { launchedAt })), tasks });
  t.same(run({ spec, observed: [joined('a', 10, 1), joined('b', 20, 0), booting('c')] }).actions, [], 'a machine still joining will be the warm one');
  const all = run({ spec, observed: [joined('a', 10, 1), joined('b', 20, 0), joined('c', 30, 2)] });
  t.same(all.actions, [{ kind: 'standby', warm: ['b'], active: [], stop: [], start: [] }], 'the one with the fewest tasks');
  t.equal(all.converged, false);
  const steady = run({ spec, observed: [joined('a', 10, 1), { ...joined('b', 20, 0), warm: true }, joined('c', 30, 2)] });
  t.same(steady.actions, []);
  t.equal(steady.converged, true);
  t.equal(steady.update.total, 3, 'the pool is part of the group');
});

t.test('warm pool: a scale-up activates warm members first and refills the pool, launching nothing twice', async (t) => {
  const spec = sizedSpec(3, { warm: { size: 1 } });
  const a = obs(inst('a', 'new', { launchedAt: 10 }));
  const b = obs(inst('b', 'new', { launchedAt: 20 }));
  const w = { ...obs(inst('w', 'new', { launchedAt: 30 })), warm: true };
  let p = run({ spec, observed: [a, b, w] });
  t.same(provisions(p.actions), 1, 'one to refill the pool');
  t.same(standbys(p.actions), { warm: [], active: ['w'] }, 'the warm one activated in the same pass');
  // The activation not observed yet, the refill launched and booting: nothing more.
  const n = obs(inst('n', 'new', { launchedAt: NOW - 500 }), 'unknown');
  p = run({ spec, observed: [a, b, w, n] });
  t.same(p.actions, [], 'no second launch, no second activation');
  // Activated; the refill is still joining: it will be the warm one.
  p = run({ spec, observed: [a, b, { ...w, warm: false }, n] });
  t.same(p.actions, []);
  p = run({ spec, observed: [a, b, { ...w, warm: false }, { ...obs(inst('n', 'new', { launchedAt: NOW - 500 })), tasks: 0 }] });
  t.same(p.actions, [{ kind: 'standby', warm: ['n'], active: [], stop: [], start: [] }], 'the refill joins the pool');
  // A scale-up of 2 with one warm member: it is activated, and two are launched (one to serve, one for the pool).
  const two = run({ spec: sizedSpec(4, { warm: { size: 1 } }), observed: [a, b, w] });
  t.same(standbys(two.actions).active, ['w']);
  t.equal(provisions(two.actions), 2, 'one more active and the refill');
});

t.test('warm pool: within bounds.max, kept on scale-down, shrunk first when it gets smaller', async (t) => {
  const a = { ...obs(inst('a', 'new', { launchedAt: 10 })), tasks: 3 };
  const b = { ...obs(inst('b', 'new', { launchedAt: 20 })), tasks: 1 };
  const w1 = { ...obs(inst('w1', 'new', { launchedAt: 30 })), warm: true, tasks: 0 };
  const w2 = { ...obs(inst('w2', 'new', { launchedAt: 40 })), warm: true, tasks: 0 };
  // At bounds.max the pool gives way: a scale-up to max activates a warm member and launches nothing.
  const atMax = run({ spec: sizedSpec(3, { warm: { size: 2 }, bounds: { max: 4 } }), observed: [a, b, w1, w2] });
  t.equal(provisions(atMax.actions), 0);
  t.same(standbys(atMax.actions).active, ['w1'], 'the longest in the pool');
  const full = run({ spec: sizedSpec(4, { warm: { size: 2 }, bounds: { max: 4 } }), observed: [a, b, w1, w2] });
  t.same(standbys(full.actions).active, ['w1', 'w2']);
  t.equal(provisions(full.actions), 0);
  // Scale-down: an active member goes, the pool stays.
  const down = run({ spec: sizedSpec(1, { warm: { size: 2 } }), observed: [a, b, w1, w2] });
  t.same(destroyed(down.actions, 'scale-down'), ['b']);
  t.same(standbys(down.actions), { warm: [], active: [] });
  // A smaller pool: a warm member goes, the active ones stay.
  const smaller = run({ spec: sizedSpec(2, { warm: { size: 1 } }), observed: [a, b, w1, w2] });
  t.same(destroyed(smaller.actions, 'scale-down'), ['w2']);
  const none = run({ spec: sizedSpec(2), observed: [a, b, w1, w2] });
  t.same(destroyed(none.actions, 'scale-down').sort(), ['w1', 'w2'], 'no pool: every warm member goes');
  // An unhealthy warm member still goes first.
  const sick = run({ spec: sizedSpec(1, { warm: { size: 2 } }), observed: [a, b, w1, { ...w2, health: 'unhealthy' as const }] });
  t.same(destroyed(sick.actions, 'scale-down'), ['w2']);
});

t.test('warm pool: rolled by an update like any member; its replacement joins the pool', async (t) => {
  const update = { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '0s', onFailure: 'pause' } as const;
  const spec = sizedSpec(1, { warm: { size: 1 }, update });
  const a = { ...obs(inst('a', 'new', { launchedAt: 10 })), tasks: 2 };
  const w = { ...obs(inst('w', 'old', { launchedAt: 20 })), warm: true, tasks: 0 };
  let p = run({ spec, observed: [a, w] });
  t.equal(p.update.state, 'rolling');
  t.equal(provisions(p.actions), 1, 'a surge machine for the outdated warm member');
  const n = { ...obs(inst('n', 'new', { launchedAt: NOW - 100 })), tasks: 0 };
  p = run({ spec, observed: [a, w, n] });
  t.same(destroyed(p.actions, 'update'), ['w'], 'the outdated warm member replaced');
  t.same(standbys(p.actions), { warm: ['n'], active: [] }, 'its replacement put in the pool');
  p = run({ spec, observed: [a, { ...n, warm: true }] });
  t.equal(p.converged, true);
});

const power = (as: readonly Action[]) => {
  const s = as.find((a) => a.kind === 'standby');
  return s && s.kind === 'standby' ? { stop: [...s.stop], start: [...s.start] } : { stop: [], start: [] };
};
const stopped = (o: Observed): Observed => ({ ...o, instance: { ...o.instance, state: 'stopped' } });

t.test('warm pool kept stopped: a member is stopped once it is in the pool; never an active, protected or own one', async (t) => {
  const spec = sizedSpec(2, { warm: { size: 2, state: 'stopped' } });
  const a = { ...obs(inst('a', 'new', { launchedAt: 10 })), tasks: 1 };
  const b = { ...obs(inst('b', 'new', { launchedAt: 20 })), tasks: 2 };
  const w1 = { ...obs(inst('w1', 'new', { launchedAt: 30 })), warm: true, tasks: 0 };
  const w2 = { ...obs(inst('w2', 'new', { launchedAt: 40 })), warm: true, tasks: 0 };
  // Put in the pool first (drained, labelled), stopped on a later pass: never in the same one.
  const joined = run({ spec, observed: [a, b, { ...w1, warm: false }, w2] });
  t.same(standbys(joined.actions), { warm: ['w1'], active: [] });
  t.same(power(joined.actions), { stop: ['w2'], start: [] }, 'only the member already in the pool is stopped');
  t.same(power(run({ spec, observed: [a, b, w1, w2], selfInstanceId: 'w2' }).actions), { stop: ['w1'], start: [] }, "never Capstan's own machine");
  t.same(power(run({ spec, observed: [a, b, w1, { ...w2, protected: true }] }).actions), { stop: ['w1'], start: [] }, 'never a protected one');
  // Stopped and stopping members of the pool are where they should be; a waking one (its node Down) is left to wake.
  const rest = run({ spec, observed: [a, b, stopped(w1), { ...w2, instance: { ...w2.instance, state: 'stopping' } }] });
  t.same(rest.actions, [], 'nothing to do');
  t.equal(rest.converged, true);
  t.same(run({ spec, observed: [a, b, stopped(w1), { ...w2, health: 'unhealthy' }] }).actions, [], 'a pool member waking or broken is not stopped before it is healthy');
  // The running pool (the default) starts stopped members instead, and stops none.
  const running = run({ spec: sizedSpec(2, { warm: { size: 2 } }), observed: [a, b, stopped(w1), w2] });
  t.same(power(running.actions), { stop: [], start: ['w1'] });
  t.same(standbys(running.actions), { warm: [], active: [] }, 'started, it stays in the pool');
});

t.test('warm pool kept stopped: a scale-up starts and activates stopped members, running ones first, none twice', async (t) => {
  const a = obs(inst('a', 'new', { launchedAt: 10 }));
  const w1 = stopped({ ...obs(inst('w1', 'new', { launchedAt: 30 })), warm: true });
  const w2 = stopped({ ...obs(inst('w2', 'new', { launchedAt: 40 })), warm: true });
  const spec = (size: number) => sizedSpec(size, { warm: { size: 2, state: 'stopped' } });
  let p = run({ spec: spec(2), observed: [a, w1, w2] });
  t.same(standbys(p.actions), { warm: [], active: ['w1'] }, 'the longest in the pool activated...');
  t.same(power(p.actions), { stop: [], start: ['w1'] }, '...after it is started');
  t.equal(provisions(p.actions), 0, 'its refill waits: a new machine could join first and take the task it wakes for');
  // Started and activated, its node still Down: it counts as active (booting), nothing is started twice.
  const waking = { ...w1, warm: false, waking: true, health: 'unknown' as const, instance: { ...w1.instance, state: 'running' as const } };
  p = run({ spec: spec(2), observed: [a, waking, w2] });
  t.same(p.actions, [], 'no second start, no launch while it wakes');
  p = run({ spec: spec(2), observed: [a, { ...waking, waking: false, health: 'healthy' as const }, w2] });
  t.same(p.actions, [{ kind: 'provision', count: 1 }], 'serving: the pool is refilled');
  // A size beyond what the pool gives: the rest is launched at once, only the refill waits.
  p = run({ spec: sizedSpec(4, { warm: { size: 1, state: 'stopped' } }), observed: [a, w1] });
  t.same(power(p.actions).start, ['w1']);
  t.equal(provisions(p.actions), 2, 'two to serve now, the refill later');
  // A warm member running and healthy goes before stopped ones; one started but not yet activated (a new leader after
  // the start) before stopped ones too; a stopping one waits until it can start.
  const ready = { ...obs(inst('r', 'new', { launchedAt: 50 })), warm: true };
  p = run({ spec: sizedSpec(2, { warm: { size: 3, state: 'stopped' } }), observed: [a, w1, w2, ready] });
  t.same(standbys(p.actions).active, ['r']);
  t.same(power(p.actions).start, []);
  const half = { ...ready, health: 'unhealthy' as const };
  p = run({ spec: sizedSpec(3, { warm: { size: 1, state: 'stopped' } }), observed: [a, w1, half] });
  t.same(standbys(p.actions).active, ['r', 'w1']);
  t.same(power(p.actions).start, ['w1']);
  const stopping = { ...w1, instance: { ...w1.instance, state: 'stopping' as const } };
  p = run({ spec: spec(2), observed: [a, stopping] });
  t.same(standbys(p.actions).active, [], 'a stopping machine is not activated yet');
  t.equal(run({ spec: spec(2), observed: [a, stopping], lookMs: 1000 }).wakeAt, NOW + 1000, 'it is looked at again soon');
});

t.test("warm pool: members waking with Down nodes do not open the repair breaker until their repair is due", async (t) => {
  const spec = sizedSpec(3, { warm: { size: 3, state: 'stopped' } });
  const serving = ['a', 'b', 'c'].map((id) => obs(inst(id, 'new', { launchedAt: 10 })));
  const waking = ['w1', 'w2', 'w3'].map((id) => ({ ...obs(inst(id, 'new', { launchedAt: 10 }), 'unhealthy'), warm: true, joined: true, unhealthySince: NOW - 1000 }));
  const p = run({ spec, observed: [...serving, ...waking] });
  t.equal(p.repair.blocked, undefined, '3 waking pool members of a size of 3 do not block repairs');
  t.equal(p.repair.broken, 0);
  const late = waking.map((w) => ({ ...w, unhealthySince: NOW - 10 * 60_000 }));
  t.match(run({ spec, observed: [...serving, ...late] }).repair.blocked, /3 of 6 members unhealthy/, 'once their repair is due, they count');
});
