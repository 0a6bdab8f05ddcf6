import t from 'tap';
import { validateSpec } from '../../src/group/spec.js';
import { configHash } from '../../src/group/identity.js';
import { InvalidError } from '../../src/errors.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import type { FlavorKind, Plugins } from '../../src/spi/index.js';

const odd: FlavorKind = {
  name: 'odd',
  schema: { type: 'object' },
  validate: (_p, allocation) => (allocation.logicalIds && allocation.logicalIds.length % 2 === 0 ? ['needs an odd number of logical ids'] : []),
  create: vanillaFlavorKind.create,
};
const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind], ['odd', odd]]) };

const good = () => ({
  id: 'workers',
  allocation: { size: 3 },
  bounds: { min: 1, max: 10 },
  instance: { provider: 'simulator', properties: { image: 'v1' } },
  flavor: { kind: 'vanilla', properties: { init: 'echo hi' } },
});

function problems(raw: unknown): { path: string; message: string }[] {
  try {
    validateSpec(raw, plugins);
  } catch (e) {
    if (e instanceof InvalidError) return [...e.problems];
    throw e;
  }
  return [];
}

t.test('a good spec gets its defaults', async (t) => {
  const spec = validateSpec(good(), plugins);
  t.same(spec.update, { maxUnavailable: 1, maxSurge: 1, healthTimeout: '5m', healthyFor: '10s', onFailure: 'pause' });
});

t.test('validation never mutates its input', async (t) => {
  const raw = good();
  const copy = JSON.parse(JSON.stringify(raw));
  validateSpec(raw, plugins);
  t.same(raw, copy);
});

const cases: [string, (s: Record<string, any>) => unknown, string, RegExp][] = [
  ['not an object', () => 'hello', '', /must be object/],
  ['missing id', (s) => (delete s.id, s), '', /must have required property 'id'/],
  ['id not a DNS label', (s) => ({ ...s, id: 'Web_1' }), '/id', /must match pattern/],
  ['unknown top-level key', (s) => ({ ...s, colour: 'red' }), '/colour', /unknown key/],
  ['unknown nested key', (s) => ({ ...s, update: { maxSurge: 1, speed: 3 } }), '/update/speed', /unknown key/],
  ['both size and logicalIds', (s) => ({ ...s, allocation: { size: 1, logicalIds: ['a'] } }), '/allocation', /exactly one of "size".*"logicalIds"/],
  ['neither size nor logicalIds', (s) => ({ ...s, allocation: {} }), '/allocation', /exactly one of/],
  ['negative size', (s) => ({ ...s, allocation: { size: -1 } }), '/allocation', /exactly one of/],
  ['duplicate logical ids', (s) => ({ ...s, bounds: undefined, allocation: { logicalIds: ['a', 'a'] } }), '/allocation', /exactly one of/],
  ['min above max', (s) => ({ ...s, bounds: { min: 5, max: 2 }, allocation: { size: 3 } }), '/bounds', /min 5 is above max 2/],
  ['unknown provider', (s) => ({ ...s, instance: { provider: 'gcp' } }), '/instance/provider', /unknown provider "gcp"; known: simulator/],
  ['bad provider properties', (s) => ({ ...s, instance: { provider: 'simulator', properties: { failureRate: 3 } } }), '/instance/properties/failureRate', /must be <= 1/],
  ['unknown flavor', (s) => ({ ...s, flavor: { kind: 'k8s' } }), '/flavor/kind', /unknown flavor "k8s"/],
  ['bad flavor properties', (s) => ({ ...s, flavor: { kind: 'vanilla', properties: { init: 7 } } }), '/flavor/properties/init', /must be string/],
  ['flavor rule across allocation', (s) => ({ ...s, bounds: undefined, allocation: { logicalIds: ['a', 'b'] }, flavor: { kind: 'odd' } }), '/flavor/properties', /odd number/],
  ['bad duration', (s) => ({ ...s, update: { healthTimeout: '5 minutes' } }), '/update/healthTimeout', /must match pattern/],
  ['bad percentage', (s) => ({ ...s, update: { maxSurge: '150%' } }), '/update/maxSurge', /exactly one allowed form/],
  ['no way to update', (s) => ({ ...s, update: { maxSurge: 0, maxUnavailable: 0 } }), '/update', /cannot both be 0/],
  ['bad onFailure', (s) => ({ ...s, update: { onFailure: 'panic' } }), '/update/onFailure', /must be equal to one of the allowed values/],
];

for (const [name, mutate, path, message] of cases) {
  t.test(`refused: ${name}`, async (t) => {
    const found = problems(mutate(good()));
    t.ok(found.some((p) => p.path === path && message.test(p.message)), `${path} ${message} in ${JSON.stringify(found)}`);
  });
}

t.test('a size outside the bounds, and nothing else wrong, is outOfBounds (as group.scale answers); with other problems, invalid', async (t) => {
  t.throws(() => validateSpec({ ...good(), allocation: { size: 11 } }, plugins), { kind: 'outOfBounds', message: /size 11 is above bounds.max 10/, data: { size: 11, min: 1, max: 10 } });
  t.throws(() => validateSpec({ ...good(), allocation: { size: 0 } }, plugins), { kind: 'outOfBounds', message: /size 0 is below bounds.min 1/, data: { size: 0, min: 1, max: 10 } });
  t.throws(() => validateSpec({ ...good(), bounds: { max: 1 }, allocation: { logicalIds: ['a', 'b'] } }, plugins), { kind: 'outOfBounds', message: /size 2 is above bounds.max 1/, data: { size: 2, min: 0, max: 1 } });
  const mixed = problems({ ...good(), allocation: { size: 11 }, update: { maxSurge: 0, maxUnavailable: 0 } });
  t.ok(mixed.some((p) => p.path === '/allocation' && /above bounds.max 10/.test(p.message)), JSON.stringify(mixed));
  t.ok(mixed.some((p) => p.path === '/update'), 'every problem is listed');
});

t.test('the config hash ignores size, bounds and update policy but not the machine', async (t) => {
  const a = validateSpec(good(), plugins);
  const b = validateSpec({ ...good(), allocation: { size: 7 }, bounds: { max: 20 }, update: { maxSurge: '50%' } }, plugins);
  const c = validateSpec({ ...good(), instance: { provider: 'simulator', properties: { image: 'v2' } } }, plugins);
  const d = validateSpec({ ...good(), flavor: { kind: 'vanilla', properties: { init: 'echo hello' } } }, plugins);
  t.equal(configHash(a), configHash(b));
  t.not(configHash(a), configHash(c));
  t.not(configHash(a), configHash(d));
  // Key order does not matter.
  t.equal(configHash({ instance: { provider: 'x', properties: { a: 1, b: 2 } }, flavor: { kind: 'k', properties: {} } }), configHash({ flavor: { properties: {}, kind: 'k' }, instance: { properties: { b: 2, a: 1 }, provider: 'x' } }));
});

t.test('scaleIn: least-busy, newest or oldest; absent means least-busy and adds nothing to the spec', async (t) => {
  for (const scaleIn of ['least-busy', 'newest', 'oldest']) t.equal(validateSpec({ ...good(), scaleIn }, plugins).scaleIn, scaleIn);
  t.notOk('scaleIn' in validateSpec(good(), plugins));
  t.match(problems({ ...good(), scaleIn: 'busiest' }), [{ path: '/scaleIn', message: /least-busy.*newest.*oldest|must be equal to one of/ }]);
  t.equal(configHash(validateSpec({ ...good(), scaleIn: 'oldest' }, plugins)), configHash(validateSpec(good(), plugins)), 'not part of the config hash: changing it replaces nothing');
});

t.test('warm: a pool of a size, only for a flavor that keeps one (swarm-worker) and a sized group', async (t) => {
  const pooled: Plugins = { ...plugins, flavors: new Map([...plugins.flavors, ['pooled', { ...vanillaFlavorKind, name: 'pooled', warm: true }]]) };
  const pool = (over: object) => validateSpec({ ...good(), flavor: { kind: 'pooled', properties: {} }, ...over }, pooled);
  t.same(pool({ warm: { size: 2 } }).warm, { size: 2 });
  t.notOk('warm' in pool({}));
  const problemsOf = (raw: unknown) => {
    try {
      validateSpec(raw, pooled);
      return [];
    } catch (e) {
      if (e instanceof InvalidError) return [...e.problems];
      throw e;
    }
  };
  t.match(problemsOf({ ...good(), warm: { size: 1 } }), [{ path: '/warm', message: /flavor vanilla keeps no warm pool/ }]);
  t.same(problemsOf({ ...good(), warm: { size: 0 } }), [], 'an empty pool is allowed anywhere');
  t.match(problemsOf({ ...good(), flavor: { kind: 'pooled', properties: {} }, allocation: { logicalIds: ['a'] }, warm: { size: 1 } }), [{ path: '/warm', message: /allocation.size/ }]);
  t.match(problemsOf({ ...good(), warm: { size: -1 } }), [{ path: '/warm/size' }]);
  t.match(problemsOf({ ...good(), warm: { count: 1 } }), [{ path: '/warm' }]);
  t.equal(configHash(pool({ warm: { size: 3 } })), configHash(pool({})), 'not part of the config hash');
  // Kept stopped: only where the provider can stop machines.
  t.same(pool({ warm: { size: 1, state: 'stopped' } }).warm, { size: 1, state: 'stopped' }, 'the simulator can');
  const unstoppable: Plugins = { ...pooled, providers: new Map([...pooled.providers].map(([name, kind]) => [name, { ...kind, stoppable: false }])) };
  const refused = (() => {
    try {
      validateSpec({ ...good(), flavor: { kind: 'pooled', properties: {} }, warm: { size: 1, state: 'stopped' } }, unstoppable);
    } catch (e) {
      return e instanceof InvalidError ? [...e.problems] : e;
    }
  })();
  t.match(refused, [{ path: '/warm/state', message: /cannot stop machines: use state running/ }]);
  t.match(problemsOf({ ...good(), warm: { size: 1, state: 'hibernated' } }), [{ path: '/warm/state' }]);
  t.equal(configHash(pool({ warm: { size: 1, state: 'stopped' } })), configHash(pool({})), 'nor is its state');
});
