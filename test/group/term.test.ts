// Loading until loaded: on gaining leadership (a real Leadership on the tests' engine) the specs are read from a
// real Swarm store whose first reads fail, as they do right after an election; the leader is not ready and says why
// until they load, then applies every group and starts its followers.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type Docker from 'dockerode';
import { Terms } from '../../src/group/term.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Leadership } from '../../src/swarm/leader.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';
import type { Plugins } from '../../src/spi/index.js';
import { RecordingController } from '../support/recording-controller.js';
import { engine } from '../support/engine.js';
import { until } from '../support/until.js';

const docker = engine();
const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
const parse = (raw: unknown) => validateSpec(raw, plugins);
const id = `t-term-${randomBytes(3).toString('hex')}`;
const good = new SwarmSpecStore({ docker, parse, logger: silentLogger });
t.teardown(() => good.remove(id));
await good.commit(parse({ id, allocation: { size: 2 }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} } }), 0);

/** The engine, except that its first `failures` config listings fail like a Swarm mid-election. */
function flaky(failures: number): Docker {
  let left = failures;
  return new Proxy(docker, {
    get(target, key, receiver) {
      if (key === 'listConfigs') return async (...args: unknown[]) => {
        if (left-- > 0) throw new Error('rpc error: code = Unknown desc = The swarm does not have a leader');
        return target.listConfigs(...(args as [never]));
      };
      const v = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}


t.test('specs that fail to load are retried until loaded; until then the leader says why', async (t) => {
  const store = new SwarmSpecStore({ docker: flaky(3), parse, logger: silentLogger });
  const controller = new RecordingController();
  const started: string[] = [];
  const leadership = new Leadership({ docker, logger: silentLogger, pollMs: 500, timeoutMs: 3000 });
  const terms = new Terms({ leadership, store, controller, followers: [{ start: () => started.push('start'), stop: () => started.push('stop') }], logger: silentLogger, backoff: { baseMs: 50, maxMs: 200 } });
  const reasons = new Set<string>();
  const watch = setInterval(() => terms.loading() && reasons.add(terms.loading()!), 5);
  t.teardown(() => clearInterval(watch));
  await leadership.start();
  t.ok(leadership.leading);
  await until('the group applied', () => controller.calls.some((c) => c.op === 'apply' && c.id === id));
  t.ok([...reasons].some((r) => /loading group specs failed \d time\(s\): .*does not have a leader/.test(r)), `the reason was told: ${[...reasons].join(' | ')}`);
  t.equal(terms.loading(), undefined, 'loaded: acting');
  t.same(started, ['start'], 'the followers started once the specs were in');
  leadership.stop();
  t.same(started, ['start', 'stop'], 'and stopped with the term');
});

t.test('a term that ends while loading applies nothing', async (t) => {
  const store = new SwarmSpecStore({ docker: flaky(1000), parse, logger: silentLogger });
  const controller = new RecordingController();
  const leadership = new Leadership({ docker, logger: silentLogger, pollMs: 500, timeoutMs: 3000 });
  const terms = new Terms({ leadership, store, controller, logger: silentLogger, backoff: { baseMs: 50, maxMs: 100 } });
  await leadership.start();
  await until('a failed load', () => /failed/.test(terms.loading() ?? ''));
  leadership.stop();
  await new Promise((r) => setTimeout(r, 300));
  t.same(controller.calls.filter((c) => c.op === 'apply'), [], 'nothing applied');
  t.equal(terms.loading(), undefined);
});

t.test('an acting leader reads the store again and applies a version it missed (a call whose answer was lost)', async (t) => {
  const controller = new RecordingController();
  const leadership = new Leadership({ docker, logger: silentLogger, pollMs: 500, timeoutMs: 3000 });
  new Terms({ leadership, store: good, controller, logger: silentLogger, resyncMs: 200 });
  await leadership.start();
  t.teardown(() => leadership.stop());
  await until('the group applied', () => controller.calls.some((c) => c.op === 'apply' && c.id === id));
  controller.statuses.set(id, { id, version: 1 } as never);
  const missed = await good.commit((await good.get(id))!.spec, 1);
  await until('the missed version applied', () => controller.calls.some((c) => c.op === 'apply' && c.id === id && c.arg === missed.version));
  t.pass(`version ${missed.version}, stored behind the controller's back, was applied by the resync`);
});
