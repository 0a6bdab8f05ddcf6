// What one loop remembers of its members between passes, without I/O: a provider and a flavor that answer from
// maps the test sets. The warm pool's started machines (`startedNow`) read `unknown` and `waking` instead of
// unhealthy until they are healthy or their health deadline passes; nothing else is spared.
import t from 'tap';
import type { Flavor, Health, HealthReport, Instance, InstanceProvider } from '../../src/spi/index.js';
import { Members } from '../../src/group/members.js';
import { TAG } from '../../src/group/identity.js';
import type { Config } from '../../src/group/owners.js';
import { inst, sizedSpec } from './fixtures.js';

const HEALTH_TIMEOUT_MS = 60_000; // sizedSpec's update.healthTimeout

function world() {
  let now = 1_000_000;
  let listed: Instance[] = [];
  const health = new Map<string, Health>();
  const provider = { describe: async () => listed } as unknown as InstanceProvider;
  const flavor = {
    health: async (members: readonly Instance[]) =>
      new Map<string, HealthReport>(members.filter((i) => health.has(i.id)).map((i) => [i.id, { health: health.get(i.id)! }])),
  } as unknown as Flavor;
  const cfg: Config = {
    provider,
    flavor,
    location: 'simulator:',
    version: { id: 'web', version: 1, createdAt: new Date(0).toISOString(), spec: sizedSpec(2) },
    hash: 'h1',
    former: [],
  };
  const members = new Members({ clock: () => now, describeLagMs: 5_000 });
  return {
    members,
    health,
    list: (...ids: string[]) => (listed = ids.map((id) => inst(id, 'h1'))),
    advance: (ms: number) => (now += ms),
    at: () => now,
    seen: async () => new Map((await members.observe(cfg)).map((o) => [o.instance.id, o])),
  };
}

t.test('a started machine reads unknown and waking, not unhealthy, until its health deadline', async (t) => {
  const w = world();
  w.list('woken', 'other');
  w.health.set('woken', 'unhealthy').set('other', 'unhealthy');
  w.members.startedNow(['woken']);
  const tStart = w.at();

  let seen = await w.seen();
  t.match(seen.get('woken'), { health: 'unknown', waking: true }, 'just started: no evidence yet');
  t.notOk(seen.get('woken')?.unhealthySince, 'and no unhealthy clock running');
  t.match(seen.get('other'), { health: 'unhealthy', unhealthySince: tStart }, 'a machine nobody started is unhealthy as reported');
  t.notOk(seen.get('other')?.waking, 'and not waking');

  w.advance(HEALTH_TIMEOUT_MS);
  seen = await w.seen();
  t.match(seen.get('woken'), { health: 'unknown', waking: true }, 'still within healthTimeout (60 s)');

  w.advance(1);
  seen = await w.seen();
  t.match(seen.get('woken'), { health: 'unhealthy', unhealthySince: w.at() }, 'past it: unhealthy, its clock starting now');
  t.notOk(seen.get('woken')?.waking, 'no longer waking');

  w.advance(1_000);
  seen = await w.seen();
  t.match(seen.get('woken'), { health: 'unhealthy', unhealthySince: tStart + HEALTH_TIMEOUT_MS + 1 }, 'the memory is gone: it stays unhealthy from then');
});

t.test('once healthy, a started machine is an ordinary member: a later failure counts at once', async (t) => {
  const w = world();
  w.list('woken');
  w.health.set('woken', 'unknown');
  w.members.startedNow(['woken']);
  t.match((await w.seen()).get('woken'), { health: 'unknown', waking: true }, 'starting');

  w.advance(2_000);
  w.health.set('woken', 'healthy');
  const healthy = (await w.seen()).get('woken');
  t.match(healthy, { health: 'healthy', healthySince: w.at() }, 'healthy 2 s after its start');
  t.notOk(healthy?.waking, 'not waking once healthy');

  w.advance(2_000);
  w.health.set('woken', 'unhealthy');
  t.match((await w.seen()).get('woken'), { health: 'unhealthy', unhealthySince: w.at() }, 'then unhealthy is unhealthy, well within healthTimeout of the start');
});

t.test('the memory of a started machine goes with the machine', async (t) => {
  const w = world();
  w.list('woken');
  w.health.set('woken', 'unhealthy');
  w.members.startedNow(['woken']);
  t.match((await w.seen()).get('woken'), { waking: true }, 'waking while listed');

  w.list();
  t.same([...(await w.seen()).keys()], [], 'gone from the listing: no member');

  // The same id listed again (a provider reusing ids) is a new machine as far as the memory goes.
  w.list('woken');
  w.advance(1_000);
  t.match((await w.seen()).get('woken'), { health: 'unhealthy', unhealthySince: w.at() }, 'listed again: unhealthy, not waking');
});

t.test('an untagged machine (a release before the cluster tag) is a member only when the flavor links it to this cluster', async (t) => {
  const tagged = (id: string, cluster?: string): Instance => {
    const i = inst(id, 'h1');
    return { ...i, tags: { ...i.tags, ...(cluster ? { [TAG.cluster]: cluster } : {}) } };
  };
  // Two Swarms' machines on one engine: A's tagged and untagged ones, B's tagged and untagged ones.
  const listed = [tagged('a-new', 'A'), tagged('a-old'), tagged('b-new', 'B'), tagged('b-old')];
  const links = new Set(['a-new', 'a-old']); // what A's Swarm has as nodes
  const provider = { describe: async () => listed } as unknown as InstanceProvider;
  const flavor = {
    health: async (members: readonly Instance[]) => new Map<string, HealthReport>(members.map((i) => [i.id, links.has(i.id) ? { health: 'healthy', link: `n-${i.id}` } : { health: 'unknown' }])),
  } as unknown as Flavor;
  const cfg: Config = { provider, flavor, location: 'simulator:', version: { id: 'web', version: 1, createdAt: new Date(0).toISOString(), spec: sizedSpec(2) }, hash: 'h1', former: [] };
  const members = new Members({ clock: () => 1_000_000, describeLagMs: 5_000, clusterId: 'A' });

  const ids = (list: readonly { instance: Instance }[] | readonly Instance[]) => list.map((x) => ('instance' in x ? x.instance.id : x.id)).sort();
  const observed = await members.observe(cfg);
  t.same(ids(observed), ['a-new', 'a-old'], 'the planner sees A\'s tagged machine and the untagged one A\'s Swarm links');
  t.same(ids(members.list), ['a-new', 'a-old'], 'and nothing else is a member to act on');
  t.same(ids(members.adopt), ['a-old'], 'the linked untagged machine is adopted (to be tagged)');
  t.same(ids(members.unclaimed), ['b-old'], 'B\'s untagged machine is left alone, named for the operator');

  links.delete('a-old'); // its node removed from the Swarm: no evidence any more
  t.same(ids(await members.observe(cfg)), ['a-new'], 'unlinked, it is no member: never drained or destroyed by A');
  t.same(ids(members.unclaimed), ['a-old', 'b-old']);
  t.same(members.adopt, []);
});
