// The health model (issue 10): only evidence destroys; `unknown` is no information; the remediation breaker.
import t from 'tap';
import type { Action, Observed, PlanInput } from '../../src/group/plan-types.js';
import { plan } from '../../src/group/planner.js';
import { inst, logicalSpec, sizedSpec } from './fixtures.js';

const NOW = 10_000_000;
const HOUR = 3_600_000;
const run = (input: Partial<PlanInput> & Pick<PlanInput, 'spec'>) => plan({ configHash: 'new', observed: [], now: NOW, paused: false, ...input });
const destroyed = (as: readonly Action[], reason?: string) => as.flatMap((a) => (a.kind === 'destroy' && (!reason || a.reason === reason) ? a.ids : []));
const provisions = (as: readonly Action[]) => as.reduce((n, a) => n + (a.kind === 'provision' ? a.count : 0), 0);

/** A member launched an hour ago that joined the Swarm; what this replica remembers of it is up to the test. */
const member = (id: string, health: Observed['health'], over: Partial<Observed> = {}, config = 'new'): Observed => ({
  instance: inst(id, config, { launchedAt: NOW - HOUR }),
  health,
  joined: true,
  ...over,
});
const ids = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

t.test('right after an election every member reads unknown: nothing is destroyed or launched', async (t) => {
  const observed = ids(6).map((id) => member(id, 'unknown'));
  const p = run({ spec: sizedSpec(6), observed });
  t.same(p.actions, [], 'no action at all');
  t.equal(p.repair.broken, 0, 'unknown is not evidence');
});

t.test('a new leader that has no memory of health destroys nothing for unknown members', async (t) => {
  const observed = ids(4).map((id, i) => member(id, i < 2 ? 'unknown' : 'healthy', i < 2 ? {} : { healthySince: NOW }));
  t.same(run({ spec: sizedSpec(4), observed }).actions, []);
});

t.test('a member that never joined by healthTimeout is still replaced', async (t) => {
  const observed = [member('a', 'healthy', { healthySince: 0 }), { instance: inst('stuck', 'new', { launchedAt: NOW - HOUR }), health: 'unknown' as const }];
  const p = run({ spec: sizedSpec(2), observed });
  t.same(destroyed(p.actions, 'repair'), ['stuck']);
});

t.test('an unhealthy member is repaired only after this replica saw it so for repair.unhealthyFor', async (t) => {
  const spec = sizedSpec(5, { repair: { unhealthyFor: '2m' } });
  const healthy = ids(4).map((id) => member(id, 'healthy', { healthySince: 0 }));
  const sickFor = (ms: number | undefined) => run({ spec, observed: [...healthy, member('sick', 'unhealthy', ms === undefined ? {} : { unhealthySince: NOW - ms })] });
  t.same(destroyed(sickFor(undefined).actions), [], 'never seen unhealthy by this replica (a new leader): not yet');
  t.same(destroyed(sickFor(119_000).actions), [], 'seen for 1m59s: not yet');
  t.same(destroyed(sickFor(120_000).actions, 'repair'), ['sick'], 'seen for 2m: repaired');
});

t.test('the breaker: more than maxUnhealthy unhealthy members at once, nothing is repaired, and the plan says why', async (t) => {
  const spec = sizedSpec(6); // default maxUnhealthy 40%: 2 of 6
  const observed = ids(6).map((id, i) => (i < 3 ? member(id, 'unhealthy', { unhealthySince: 0 }) : member(id, 'healthy', { healthySince: 0 })));
  const p = run({ spec, observed });
  t.same(destroyed(p.actions), [], 'nothing destroyed');
  t.equal(provisions(p.actions), 0, 'nothing launched');
  t.equal(p.repair.broken, 3);
  t.equal(p.repair.limit, 2);
  t.match(p.repair.blocked, /3 of 6 members unhealthy, more than the limit of 2/);
});

t.test('the breaker limit caps how many one pass repairs', async (t) => {
  const spec = sizedSpec(10, { repair: { maxUnhealthy: 3 } });
  const observed = ids(10).map((id, i) => (i < 3 ? member(id, 'unhealthy', { unhealthySince: 0 }) : member(id, 'healthy', { healthySince: 0 })));
  const p = run({ spec, observed, now: NOW });
  t.equal(p.repair.blocked, undefined);
  t.ok(destroyed(p.actions, 'repair').length <= 3);
  t.ok(destroyed(p.actions, 'repair').length >= 1);
});

t.test('rolling update across an election: unknown old members are neither available nor free', async (t) => {
  const spec = sizedSpec(5, { update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '5m', healthyFor: '10s', onFailure: 'pause' } });
  const observed = [
    member('n0', 'unknown'),
    member('n1', 'unknown'),
    ...ids(3, 'o').map((id) => member(id, 'unknown', {}, 'old')),
  ];
  const p = run({ spec, observed });
  t.same(destroyed(p.actions), [], 'no old member goes while health is unknown');
});

t.test('rolling update: an old member with evidence against it is replaced at no cost, healthy ones within budget', async (t) => {
  const spec = sizedSpec(4, { update: { maxUnavailable: 1, maxSurge: 0, healthTimeout: '5m', healthyFor: '10s', onFailure: 'pause' } });
  const observed = [
    member('down', 'unhealthy', { unhealthySince: NOW }, 'old'),
    ...ids(3, 'o').map((id) => member(id, 'healthy', { healthySince: 0 }, 'old')),
  ];
  const gone = destroyed(run({ spec, observed }).actions, 'update');
  t.ok(gone.includes('down'), 'the Down one goes');
  t.equal(gone.filter((id) => id !== 'down').length, 0, 'no healthy one on top: one is already unavailable');
});

t.test('logical ids: no member is replaced while another reads unknown', async (t) => {
  const spec = logicalSpec(['a', 'b', 'c']);
  const observed = [
    { ...member('ia', 'unknown', {}, 'old'), instance: inst('ia', 'old', { launchedAt: 0, logicalId: 'a' }) },
    { ...member('ib', 'healthy', {}, 'old'), instance: inst('ib', 'old', { launchedAt: 0, logicalId: 'b' }) },
    { ...member('ic', 'unknown', {}, 'old'), instance: inst('ic', 'old', { launchedAt: 0, logicalId: 'c' }) },
  ];
  t.same(destroyed(run({ spec, observed }).actions), []);
});

t.test('named removals go first when the size drops', async (t) => {
  const observed = ids(5).map((id) => member(id, 'healthy', { healthySince: 0 }));
  const p = run({ spec: sizedSpec(4), observed, removing: ['m2'] });
  t.same(destroyed(p.actions, 'scale-down'), ['m2']);
});

t.test('the plan says when it next needs to look: the end of healthyFor, of unhealthyFor, of a deadline', async (t) => {
  const spec = sizedSpec(3, { update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '10s', onFailure: 'pause' }, repair: { unhealthyFor: '2m' } });
  t.equal(run({ spec, observed: [member('a', 'healthy', { healthySince: NOW - 4000 })] }).wakeAt, NOW + 6000, 'a new member available in 6 s');
  t.equal(run({ spec, observed: [member('a', 'unhealthy', { unhealthySince: NOW - 60_000 })] }).wakeAt, NOW + 60_000, 'a repair due in 1 m');
  t.equal(run({ spec, observed: [{ instance: inst('b', 'new', { launchedAt: NOW - 50_000 }), health: 'unknown' }] }).wakeAt, NOW + 10_001, 'a join deadline in 10 s');
  t.equal(run({ spec, observed: [member('a', 'healthy', { healthySince: 0 })] }).wakeAt, undefined, 'nothing due');
});

t.test('given lookMs, the plan says to look again that soon while it waits for an observation, and only then', async (t) => {
  const spec = sizedSpec(3, { update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '10s', onFailure: 'pause' } });
  const up = (id: string, config = 'new') => member(id, 'healthy', { healthySince: 0 }, config);
  const look = (observed: Observed[], over: Partial<PlanInput> = {}) => run({ spec, observed, lookMs: 1000, ...over }).wakeAt;
  t.equal(look([up('a'), up('b'), up('c')]), undefined, 'converged: nothing to look for');
  t.equal(look([up('a'), up('b')]), NOW + 1000, 'acting: what the provision made');
  t.equal(look([up('a'), up('b'), { instance: inst('c', 'new', { launchedAt: NOW - 1000 }), health: 'unknown' }]), NOW + 1000, 'a machine booting');
  t.equal(look([up('a'), up('b'), member('c', 'healthy', { healthySince: NOW - 9500 })]), NOW + 500, 'a time sooner than the look comes first');
  t.equal(look([up('a', 'old'), up('b', 'old'), up('c', 'old')], { paused: true }), undefined, 'a paused update with nothing to do: no poll');
});
