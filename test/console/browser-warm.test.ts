// The web console's warm pool and protected members in a real browser (issue 16): the same lab as browser.test.ts
// (test/support/console-harness.ts). A group with a warm pool, on a stand-in of swarm-worker that keeps one (it
// reports the members it put in the pool warm, and the first member it saw protected, as a node labelled
// capstan.protect=true), shows which of its machines is in the pool and which is protected, by machine id; the
// overview counts the warm member apart from those serving; a stopped warm machine shows the provider's state as it
// is; a scale-up's confirmation says which warm machine it activates, and once it is done the marks follow the
// members live: the activated machine loses its mark and the refill becomes the warm one.
import t from 'tap';
import type { FlavorKind, HealthReport, InstanceProvider, ProviderKind } from '../../src/spi/index.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { consoleLab, token } from '../support/console-harness.js';
import { until } from '../support/until.js';

/** Members in the warm pool, the member protected, and machines the provider reports stopped. */
const warm = new Set<string>();
let protectedId: string | undefined;
const stopped = new Set<string>();

/** swarm-worker's stand-in: no Swarm, but a warm pool, and protection by the first member seen. */
const pooledWorker: FlavorKind = {
  name: 'pooled-worker',
  schema: { type: 'object' },
  warm: true,
  create: () => ({
    prepare: async (spec) => spec,
    health: async (instances) => {
      protectedId ??= [...instances].sort((a, b) => (a.id < b.id ? -1 : 1))[0]?.id;
      const report = (id: string, running: boolean): HealthReport => ({
        health: running || warm.has(id) ? 'healthy' : 'unknown',
        link: `node-${id}`,
        ...(warm.has(id) ? { warm: true } : {}),
        ...(id === protectedId ? { protected: true } : {}),
      });
      return new Map(instances.map((i) => [i.id, report(i.id, i.state === 'running')]));
    },
    drain: async () => {},
    standby: async (i, toWarm) => void (toWarm ? warm.add(i.id) : warm.delete(i.id)),
    destroyed: async (i) => void warm.delete(i.id),
  }),
};

/**
 * Simulated machines, those in `stopped` described as a provider describes a stopped machine. It can neither stop nor
 * start one: only the test does, so the state shown is the one the test set, whatever the controller makes of it.
 */
const sim = simulatorProviderKind();
const parking: ProviderKind = {
  name: 'parking',
  schema: sim.schema,
  create(properties): InstanceProvider {
    const inner = sim.create(properties);
    return {
      maxBatch: inner.maxBatch,
      provision: (specs, intent) => inner.provision(specs, intent),
      destroy: (ids) => inner.destroy(ids),
      describe: async (tags) => (await inner.describe(tags)).map((i) => (stopped.has(i.id) ? { ...i, state: 'stopped' } : i)),
    };
  },
};

const lab = await consoleLab(t, { providers: [parking], flavors: [pooledWorker] });
const { api, page, url, waitRow, rowText } = lab;

const pool = { id: 'pool', allocation: { size: 2 }, warm: { size: 1 }, instance: { provider: 'parking', properties: { latencyMs: 100 } }, flavor: { kind: 'pooled-worker', properties: {} }, update: { healthyFor: '0s' } };
await api('group.commit', { spec: pool });
await api('group.commit', { spec: { id: 'plain', allocation: { size: 1 }, instance: { provider: 'simulator', properties: {} }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } } });
type Described = { instances: { id: string; state: string; health: string; warm?: boolean; protected?: boolean }[] };
const describe = (): Promise<Described> => api('group.describe', { id: 'pool' });
// Not by `converged`: the API counts a group with a pool converged only when its members are as many as its size.
await until('pool: 3 members, 1 of them warm, all healthy', async () => {
  const d = await describe();
  return d.instances.length === 3 && d.instances.every((i) => i.health === 'healthy') && warm.size === 1 && d.instances.filter((i) => i.warm).length === 1;
}, 20_000);
await until('plain converged', async () => (await api('group.describe', { id: 'plain' })).converged, 20_000);

/** Each machine row of the open group: its marks and its provider state (the last cell), by machine id. */
const machineRows = () =>
  page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('tr[data-machine]')].map((tr) => [
        tr.getAttribute('data-machine'),
        { marks: [...tr.querySelectorAll('.mark')].map((m) => m.textContent), state: tr.lastElementChild?.textContent },
      ]),
    ),
  );
const fact = (name: string) => page.locator('.facts dt', { hasText: name }).locator('xpath=following-sibling::dd[1]').innerText();

t.test('a warm member and a protected member are marked as such, by machine id; a stopped one says stopped', async (t) => {
  const [warmId] = [...warm];
  const members = (await describe()).instances;
  const other = members.find((i) => i.id !== warmId && i.id !== protectedId)?.id;
  t.ok(warmId && protectedId && other && warmId !== protectedId, `warm ${warmId}, protected ${protectedId}, neither ${other}`);
  t.same(
    members.filter((i) => i.warm || i.protected).map((i) => [i.id, !!i.warm, !!i.protected]).sort(),
    [[warmId, true, false], [protectedId, false, true]].sort(),
    'group.describe says so too',
  );
  // As a pool kept stopped would be: the provider describes the warm machine stopped.
  stopped.add(warmId!);
  await until('the warm machine described stopped', async () => (await describe()).instances.some((i) => i.id === warmId && i.state === 'stopped'), 10_000);

  await page.goto(url);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitRow('pool', 'serving', '2 of 2 machines, 1 warm');
  t.pass('the overview counts the warm member apart: 2 of 2 machines, 1 warm');
  t.equal(await rowText('plain', 'serving'), '1 of 1 machine', 'a group without a pool says nothing of one');

  await page.getByRole('button', { name: 'Open group pool' }).click();
  await page.getByRole('heading', { name: 'Group pool' }).waitFor();
  await page.locator('.facts dt', { hasText: 'Warm pool' }).waitFor();
  t.equal(await fact('Serving'), '2 of 2 machines healthy');
  t.equal(await fact('Warm pool'), '1 of 1 machine warm');
  t.same(
    await machineRows(),
    {
      [warmId!]: { marks: ['in the warm pool'], state: 'stopped' },
      [protectedId!]: { marks: ['protected from scale-in'], state: 'running' },
      [other!]: { marks: [], state: 'running' },
    },
    'each mark on its own machine\'s row, the provider\'s state as it is',
  );
});

t.test('a scale-up through the page activates the warm machine; the marks follow the members live', async (t) => {
  const [warmId] = [...warm];
  // Running again, so that it can be activated by any controller.
  stopped.delete(warmId!);
  await until('the warm machine described running', async () => (await describe()).instances.some((i) => i.id === warmId && i.state === 'running'), 10_000);
  await page.getByLabel('New size (machines)').fill('3');
  await page.getByRole('button', { name: 'Scale…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText(/activate 1 machine from the warm pool/).waitFor();
  t.match(await dialog.innerText(), new RegExp(`create 1 machine[\\s\\S]*activate 1 machine from the warm pool \\(${warmId}\\)`), 'the pretend plan names the warm machine it activates, and the refill');
  await dialog.getByRole('button', { name: 'Scale to 3 machines' }).click();
  await page.getByText('pool: version 2 stored, size 3 machines.').waitFor();

  await until('a refill warm in its place', () => warm.size === 1 && !warm.has(warmId!), 20_000);
  const [refill] = [...warm];
  await page.waitForFunction((id) => document.querySelector(`tr[data-machine="${id}"] .mark.warm`) !== null, refill, { timeout: 15_000 });
  const rows = await machineRows();
  t.same(rows[warmId!], { marks: [], state: 'running' }, 'the activated machine: started, no longer marked warm');
  t.same(rows[refill!], { marks: ['in the warm pool'], state: 'running' }, 'the refill: the warm one');
  t.same(rows[protectedId!]?.marks, ['protected from scale-in'], 'the protected one still protected');
  t.equal(Object.keys(rows).length, 4, 'four machines: three serving, one warm');
  await page.waitForFunction(() => /3 of 3 machines healthy/.test(document.querySelector('.facts')?.textContent ?? ''), null, { timeout: 15_000 });
  t.pass('3 of 3 machines serving');
});

t.test('a narrow screen: the marks fit; no page error, no CSP violation', async (t) => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForTimeout(100);
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling of the group');
  t.same(await page.evaluate(() => (window as unknown as { violations: string[] }).violations), [], 'no CSP violation');
  t.same(lab.consoleLines.filter((l) => /Content.Security.Policy|Refused to|pageerror/i.test(l)), [], 'no CSP message or page error in the console');
});
