// Fuzzed specs (issue 12 item 6): 10,000 random and mutated specs, and hostile JSON (deep nesting, huge strings,
// unusual Unicode, __proto__ and constructor keys), through group.commit over HTTP, pretend and real, with the real
// group service and controller on the simulator. 0 crashes; a refused spec gets -32602 (or -32004 for a size out of
// its bounds) with paths and stores nothing; an accepted one is stored as the next version and managed.
// FUZZ_SEED=<n> replays a run.
import fc from 'fast-check';
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { maxGroupSize, validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import type { Plugins } from '../../src/spi/index.js';
import { startServer, token } from './harness.js';

const plugins: Plugins = {
  providers: new Map([['simulator', simulatorProviderKind()]]),
  flavors: new Map([['vanilla', vanillaFlavorKind]]),
  checks: [maxGroupSize(50)],
};
const validate = (raw: unknown) => validateSpec(raw, plugins);
const base = {
  id: 'fuzz',
  allocation: { size: 2 },
  bounds: { min: 0, max: 10 },
  instance: { provider: 'simulator', properties: {} },
  flavor: { kind: 'vanilla', properties: { init: 'echo hi' } },
  update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '1m', healthyFor: '0s', onFailure: 'pause' },
  repair: { unhealthyFor: '5m', maxUnhealthy: '40%' },
};

const hostileKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', '', '\u0000', '\u202e', '😀', 'a'.repeat(300));
const hostileValue = fc.oneof(
  fc.anything(),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
  fc.nat({ max: 50_000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 1, max: 500 }).map((n) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown),
  // A fresh [] or {} each time: one shared object set at two paths could contain itself (found by FUZZ_SEED=990693139).
  fc.constantFrom(-1, 0, 1.5, 1e300, Number.MAX_SAFE_INTEGER, '5', null, true, [], {}).map((v) => structuredClone(v)),
);
const paths = ['id', 'allocation', 'allocation.size', 'allocation.logicalIds', 'bounds', 'bounds.min', 'bounds.max', 'instance', 'instance.provider', 'instance.properties', 'flavor', 'flavor.kind', 'flavor.properties', 'flavor.properties.init', 'update', 'update.maxSurge', 'update.healthTimeout', 'repair', 'repair.maxUnhealthy', 'autoscale'];

/** The base spec with some fields replaced, deleted, or given hostile neighbours. */
const mutated = fc
  .array(fc.tuple(fc.constantFrom(...paths), fc.constantFrom('set', 'delete', 'key'), hostileValue, hostileKey), { maxLength: 4 })
  .map((edits) => {
    const spec = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
    for (const [path, how, value, key] of edits) {
      const parts = path.split('.');
      let at: Record<string, unknown> = spec;
      for (const p of parts.slice(0, -1)) {
        if (typeof at[p] !== 'object' || at[p] === null) at[p] = {};
        at = at[p] as Record<string, unknown>;
      }
      const last = parts.at(-1)!;
      if (how === 'delete') delete at[last];
      else if (how === 'set') at[last] = value;
      else Object.defineProperty(at, key, { value, enumerable: true, configurable: true, writable: true });
    }
    return JSON.stringify(spec);
  });
const body = fc.oneof({ weight: 8, arbitrary: mutated }, { weight: 1, arbitrary: fc.json().map((j) => j) }, { weight: 1, arbitrary: fc.anything().map((x) => JSON.stringify(x) ?? 'null') });

t.test('10,000 fuzzed specs: no crash, refusals store nothing, acceptances are stored and managed', async (t) => {
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  const h = await startServer(t, { controller, validate });
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  t.comment(`FUZZ_SEED=${seed}`);
  let accepted = 0;
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(body, fc.boolean(), async (spec, pretend) => {
      // Every change of the store is a commit or a remove, counted in its writes: a count, not a snapshot of every
      // version (which grew with each accepted spec, up to 50,000-character values, and made some seeds run for minutes).
      const before = h.store.writes.length;
      const res = await h.post(`{"jsonrpc":"2.0","id":1,"method":"group.commit","params":{"spec":${spec},"pretend":${pretend}}}`, { authorization: `Bearer ${token}` });
      if (res.status !== 200 || (res.body as { id?: unknown })?.id !== 1) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 300)}`);
      const answer = res.body as { result?: { id: string; stored: boolean; version: number }; error?: { code: number; data?: { problems?: { path: string }[] } } };
      if (answer.error) {
        refused++;
        if (answer.error.code !== -32602 && answer.error.code !== -32004) throw new Error(`code ${answer.error.code} for ${spec.slice(0, 300)}`);
        if (answer.error.code === -32602 && !answer.error.data?.problems?.length) throw new Error(`no problems named for ${spec.slice(0, 300)}`);
        if (h.store.writes.length !== before) throw new Error('a refused spec changed the store');
        return;
      }
      accepted++;
      if (pretend) {
        if (answer.result!.stored || h.store.writes.length !== before) throw new Error('a pretend commit stored something');
        return;
      }
      const { id } = answer.result!;
      const stored = await h.store.get(id);
      if (!answer.result!.stored || stored?.version !== answer.result!.version) throw new Error(`stored ${stored?.version}, answered ${answer.result!.version}`);
      if (controller.status(id)?.version !== stored.version) throw new Error('an accepted version is not managed');
    }),
    { numRuns: 10_000, seed },
  );
  t.ok(accepted > 100 && refused > 1000, `both kinds seen: ${accepted} accepted, ${refused} refused`);
  t.equal((await h.call('manager.status', {})).result.leading, true, 'the server still answers');
});
