// What one loop remembers of its members between passes, without I/O: a provider and a flavor that answer from
// maps the test sets. The warm pool's started machines (`startedNow`) read `unknown` and `waking` instead of
// unhealthy until they are healthy or their health deadline passes; nothing else is spared.
import t from 'tap';
import type { Flavor, Health, HealthReport, Instance, InstanceProvider } from '../../src/spi/index.js';
import { Members } from '../../src/group/members.js';
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
