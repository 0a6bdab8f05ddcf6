// Fencing on a real engine: when this replica stops leading, work in flight stops at its next write. Leadership
// (watching the tests' engine) is wired to the controller as src/main.ts wires it; every write call the provider and
// the flavor receive is recorded with the time it started.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Leadership } from '../../src/swarm/leader.js';
import type { FlavorKind, Plugins, ProviderKind, SpecVersion } from '../../src/spi/index.js';
import { engine, engineHost } from '../support/engine.js';
import { until } from '../support/until.js';

const docker = engine();
const group = `t-fence-${randomBytes(3).toString('hex')}`;
t.teardown(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
});

interface Write {
  readonly op: string;
  readonly at: number;
}
const writes: Write[] = [];
const record = (op: string) => writes.push({ op, at: Date.now() });

/** The docker provider, one machine per call, its writes recorded. */
const inner = dockerProviderKind({ logger: silentLogger, maxBatch: 1, concurrency: 1, allow: { endpoints: [engineHost()] } });
const provider: ProviderKind = {
  ...inner,
  create(properties) {
    const p = inner.create(properties);
    return {
      maxBatch: 1,
      describe: (tags) => p.describe(tags),
      provision: async (specs, intent) => (record('provision'), p.provision(specs, intent)),
      destroy: async (ids) => (record('destroy'), p.destroy(ids)),
    };
  },
};
/** vanilla, whose drain takes a while (like a Swarm drain) and whose writes are recorded. */
const flavor: FlavorKind = {
  ...vanillaFlavorKind,
  create(properties) {
    const f = vanillaFlavorKind.create(properties);
    return {
      ...f,
      drain: async (i) => {
        record('drain');
        await new Promise((r) => setTimeout(r, 1500));
        return f.drain(i);
      },
      destroyed: async (i) => (record('destroyed'), f.destroyed(i)),
    };
  },
};
const plugins: Plugins = { providers: new Map([['docker', provider]]), flavors: new Map([['vanilla', flavor]]) };
let version = 0;
const commit = (size: number): SpecVersion => ({
  id: group,
  version: ++version,
  createdAt: '',
  spec: validateSpec(
    {
      id: group,
      allocation: { size },
      instance: { provider: 'docker', properties: { engine: engineHost(), memory: '256m' } },
      flavor: { kind: 'vanilla', properties: {} },
      update: { healthyFor: '0s' },
    },
    plugins,
  ),
});

/** One leadership term on the real engine, wired to a controller the way src/main.ts wires them. */
async function term() {
  const controller = new Controller({ plugins, logger: silentLogger, concurrency: 1, busyMs: 100, intervalMs: 100 });
  // A check that the shared engine, slowed by the test files beside this one, does not answer in `timeoutMs` ends
  // the term as any doubt does: generous here, since these tests stand down on purpose (leadership.stop()).
  const leadership = new Leadership({ docker, logger: silentLogger, pollMs: 200, timeoutMs: 15_000 });
  let stoodDown = Infinity;
  let stopping: Promise<unknown> = Promise.resolve();
  leadership.onChange((leading) => {
    if (!leading) {
      stoodDown = Date.now();
      stopping = controller.stop();
    }
  });
  await leadership.start();
  return { controller, leadership, stoodDown: () => stoodDown, settled: () => stopping };
}

const machines = async () => (await docker.listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } })).map((c) => c.Id).sort();

t.test('standing down during a batch provision: no provision starts after it', async (t) => {
  const a = await term();
  t.ok(a.leadership.leading, 'the tests\' engine is a one-manager Swarm: this replica leads');
  a.controller.apply(commit(4));
  await until('the first provision call', () => writes.some((w) => w.op === 'provision'));
  a.leadership.stop();
  const at = a.stoodDown();
  await new Promise((r) => setTimeout(r, 4000));
  const late = writes.filter((w) => w.at > at);
  t.same(late, [], 'no write started after stand-down');
  t.ok((await machines()).length < 4, `the stood-down term did not finish the batch (${(await machines()).length} of 4 made)`);

  // The next term carries on from what exists: exactly 4, none twice.
  const b = await term();
  t.teardown(() => b.leadership.stop());
  const made = await machines();
  b.controller.apply(commit(4));
  await until('4 machines', async () => (await machines()).length === 4 && b.controller.status(group)?.converged === true);
  const after = await machines();
  t.ok(made.every((id) => after.includes(id)), 'the machines the first term made were kept');
  await b.controller.stop();
});

t.test('standing down during a drain: nothing is destroyed after it', async (t) => {
  const a = await term();
  a.controller.apply(commit(4));
  await until('4 machines settled', async () => (await machines()).length === 4 && a.controller.status(group)?.converged === true);
  const before = await machines();
  writes.length = 0;
  a.controller.apply(commit(0));
  await until('the first drain, or the term ending on its own', () => writes.some((w) => w.op === 'drain') || a.stoodDown() < Infinity, 60_000);
  t.equal(a.stoodDown(), Infinity, 'the term was still leading when the drain began (no doubt from a slow engine ended it)');
  a.leadership.stop();
  const at = a.stoodDown();
  // What SIGTERM waits for: the drain in flight reaches its end (a safe point), then nothing more happens.
  await a.settled();
  const settledAfter = Date.now() - at;
  t.ok(settledAfter < 5000, `work in flight settled ${settledAfter} ms after stand-down (the drain takes 1.5 s)`);
  await new Promise((r) => setTimeout(r, 3000));
  t.same(writes.filter((w) => w.at > at), [], 'no write started after stand-down');
  t.same(writes.filter((w) => w.op === 'destroy'), [], 'the drained machine was not destroyed by the stood-down term');
  t.same(await machines(), before, 'every machine is still there');
});
