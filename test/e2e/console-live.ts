// The web console against the real deployment (issue 17): headless chromium (playwright-core, as in
// test/console/browser.test.ts) on the page a real `capstan serve` replica of the self-managed lab serves, the group
// `managers` of 3 real manager machines. A wrong token is refused; signed in, the page lists the group; a scale
// 3 -> 5 made through the page (its confirmation shows the API's pretend plan) shows the machines arriving without a
// reload; pause and resume through the page, confirmed by the API; the replica the page's stream is connected to
// (the leader's) is killed, Swarm starts it again, and the page shows the stream lost and back, then follows a
// scale 5 -> 3 made through the API. It leaves the group at 3 managers, settled.
// CAPSTAN_CONSOLE_SCREENSHOTS=DIR also saves the page mid-scale as DIR/managers-mid-scale.png.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import type { Test } from 'tap';
import { demuxLog, waitFor } from '../support/lab.js';
import { GROUP, settled, type Member, type SelfLab } from './self-lab.js';

const SERVICE = 'capstan_capstan';

/** A command inside a manager machine (its own dockerd), its output lines. */
async function inMachine(lab: SelfLab, m: Member, cmd: string[]): Promise<string[]> {
  const exec = await lab.infra.getContainer(m.id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return demuxLog(Buffer.concat(chunks)).map((l) => l.trim()).filter(Boolean);
}

/** The running Capstan task container on a manager machine. */
const replicaContainer = async (lab: SelfLab, m: Member) =>
  (await inMachine(lab, m, ['docker', 'ps', '-q', '--no-trunc', '--filter', `label=com.docker.swarm.service.name=${SERVICE}`, '--filter', 'status=running'])).filter((l) => /^[0-9a-f]{64}$/.test(l));

export async function consoleLive(t: Test, lab: SelfLab): Promise<void> {
  const token = readFileSync(`${lab.dir}/token`, 'utf8').trim();
  const t0 = Date.now();
  // The page at the leader's replica: its stream is the leader's own feed.
  const members = await lab.members();
  const statuses = await Promise.all(members.map(async (m) => ({ m, s: await lab.rpc<{ leading: boolean; nodeId: string }>(m.ip, 'manager.status') })));
  const home = statuses.find((x) => x.s.leading)?.m;
  if (!home) throw new Error('no replica leads');
  const url = `http://${home.ip}:8640`;
  t.comment(`the page at ${url} (the leader's replica, node ${statuses.find((x) => x.m === home)!.s.nodeId})`);

  const profile = mkdtempSync(join(tmpdir(), 'capstan-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  const errors: string[] = [];
  try {
    const page: Page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => void errors.push(e.message));
    const facts = () => page.locator('.facts').innerText();
    const waitRow = (cell: string, want: string, timeout: number) =>
      page.waitForFunction(([g, cell, want]) => document.querySelector(`tr[data-group="${g}"] td.${cell}`)?.textContent === want, [GROUP, cell, want] as const, { timeout, polling: 250 });
    const streamState = (want: 'live' | 'lost', timeout: number) =>
      page.waitForFunction((want) => document.getElementById('stream-state')?.dataset.state === want, want, { timeout, polling: 100 });
    const history = () => lab.anyRpc<{ version: number; paused?: boolean; note?: string }[]>('group.history', { id: GROUP });

    await t.test('console: a wrong token is refused, the right one shows the group managers, 3 of 3 serving', async (t) => {
      const res = await page.goto(url);
      t.match(res?.headers()['content-security-policy'] ?? '', /default-src 'self'/, 'the real replica serves the page with its CSP');
      await page.getByLabel('API token').waitFor();
      await page.getByLabel('API token').fill('not-the-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('That token was refused.').waitFor({ timeout: 15_000 });
      t.pass('a wrong token is refused');
      t.equal(await page.getByLabel('API token').count(), 1, 'the sign-in stays');
      t.equal(await page.locator('tr[data-group]').count(), 0, 'no group listed');
      t.notMatch(await page.locator('body').innerText(), /managers|Leader/, 'nothing of the cluster shown');
      await page.getByLabel('API token').fill(token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await waitRow('size', '3 machines', 30_000);
      await waitRow('serving', '3 of 3 machines', 30_000);
      t.pass('the group managers: 3 machines, 3 of 3 serving');
      await streamState('live', 30_000);
      t.match(await page.locator('#leader').innerText(), /this replica/, 'the page says this replica leads');
      await page.evaluate(() => ((window as unknown as { marker: number }).marker = 17));
    });

    await t.test('console: scale 3 -> 5 through the page, the members arriving live without a reload', async (t) => {
      await page.getByRole('button', { name: `Open group ${GROUP}` }).click();
      await page.getByRole('heading', { name: `Group ${GROUP}` }).waitFor();
      t.match(await facts(), /3 of 3 machines healthy/, 'the group opened: 3 of 3 machines healthy');
      await page.waitForFunction(() => document.querySelectorAll('table')[0]?.querySelectorAll('tbody tr').length === 3, null, { timeout: 15_000 });
      await page.getByLabel('New size (machines)').fill('5');
      await page.getByRole('button', { name: 'Scale…' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByRole('list', { name: 'Pretend plan' }).waitFor({ timeout: 20_000 });
      const plan = await dialog.innerText();
      t.match(plan, /Scale managers to 5 machines\?[\s\S]*pretend plan[\s\S]*create 2 machines[\s\S]*destroy no machine[\s\S]*replace no machine/, 'the confirmation shows the pretend plan: 2 machines created');
      const before = (await history()).at(-1)!.version;
      // Every figure the page shows from here, sampled by the page itself.
      await page.evaluate(() => {
        const w = window as unknown as { seen: string[] };
        w.seen = [];
        setInterval(() => {
          const s = /(\d+ of \d+ machines?) healthy/.exec(document.querySelector('.facts')?.textContent ?? '')?.[1];
          const rows = document.querySelectorAll('table')[0]?.querySelectorAll('tbody tr').length ?? 0;
          const v = `${s} / ${rows} rows`;
          if (s && w.seen.at(-1) !== v) w.seen.push(v);
        }, 200);
      });
      const tScale = Date.now();
      await dialog.getByRole('button', { name: 'Scale to 5 machines' }).click();
      await page.getByText(`${GROUP}: version ${before + 1} stored, size 5 machines.`).waitFor({ timeout: 30_000 });
      t.equal((await history()).at(-1)?.version, before + 1, 'a new version stored through the API');
      const d = await lab.anyRpc<{ size: number }>('group.describe', { id: GROUP });
      t.equal(d.size, 5, 'group.describe: size 5');
      const shots = process.env.CAPSTAN_CONSOLE_SCREENSHOTS;
      if (shots) {
        mkdirSync(shots, { recursive: true });
        await page.screenshot({ path: join(shots, 'managers-mid-scale.png'), fullPage: true });
      }
      await page.waitForFunction(() => /5 of 5 machines healthy/.test(document.querySelector('.facts')?.textContent ?? '') && document.querySelectorAll('table')[0]?.querySelectorAll('tbody tr').length === 5, null, { timeout: 180_000, polling: 250 });
      t.comment(`MEASURE console_managers_3_to_5_on_page ${Math.round((Date.now() - tScale) / 100) / 10} s`);
      await page.waitForTimeout(500);
      const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
      t.comment(`the page showed, in turn: ${seen.join(' -> ')}`);
      t.ok(seen.some((s) => /^[34] of 5 machines/.test(s)), 'the machines arrived on the page one by one (3 or 4 of 5 serving on the way)');
      t.match(seen.at(-1), /^5 of 5 machines \/ 5 rows$/, 'then 5 of 5 serving, 5 machines listed');
      t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 17, 'the same page: no reload');
      await waitFor('5 managers settled', () => settled(lab, 5), 240_000, 1000);
      t.pass('the API agrees: 5 managers, settled');
    });

    await t.test('console: pause and resume through the page', async (t) => {
      await page.getByRole('button', { name: 'Pause…' }).click();
      await page.getByRole('dialog').getByText('replace no machine').waitFor({ timeout: 20_000 });
      await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
      await page.getByText(/managers: paused \(version \d+\)/).waitFor({ timeout: 20_000 });
      t.equal((await history()).at(-1)?.paused, true, 'the API: paused');
      await page.waitForFunction(() => {
        const b = [...document.querySelectorAll('button')];
        return b.find((x) => x.textContent === 'Pause…')?.disabled === true && b.find((x) => x.textContent === 'Resume…')?.disabled === false;
      }, null, { timeout: 15_000 });
      await page.getByRole('cell', { name: 'pause (paused)' }).first().waitFor({ timeout: 15_000 });
      t.pass('the page shows it paused: pause stored as paused, Pause… off, Resume… on');

      await page.getByRole('button', { name: 'Resume…' }).click();
      await page.getByRole('dialog').getByText('replace no machine').waitFor({ timeout: 20_000 });
      await page.getByRole('dialog').getByRole('button', { name: 'Resume' }).click();
      await page.getByText(/managers: resumed \(version \d+\)/).waitFor({ timeout: 20_000 });
      t.notOk((await history()).at(-1)?.paused, 'the API: not paused');
      await page.waitForFunction(() => {
        const b = [...document.querySelectorAll('button')];
        return b.find((x) => x.textContent === 'Pause…')?.disabled === false && b.find((x) => x.textContent === 'Resume…')?.disabled === true;
      }, null, { timeout: 15_000 });
      t.pass('the page shows it resumed: Pause… on, Resume… off');
      t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 17, 'still the same page');
    });

    await t.test('console: the stream lost when the leader’s replica is killed, back when Swarm restarts it, and following', async (t) => {
      await page.getByRole('button', { name: 'Back to all groups' }).click();
      await waitRow('size', '5 machines', 15_000);
      await streamState('live', 15_000);
      const status = await lab.rpc<{ leading: boolean; nodeId: string }>(home.ip, 'manager.status');
      t.ok(status.leading, `the page's replica (node ${status.nodeId}) leads`);
      const [old, ...more] = await replicaContainer(lab, home);
      t.ok(old && !more.length, `one Capstan task container on that machine (${old?.slice(0, 12)})`);
      await page.evaluate(() => {
        const w = window as unknown as { states: string[] };
        w.states = [];
        setInterval(() => {
          const s = document.getElementById('stream-state')?.dataset.state ?? '';
          if (w.states.at(-1) !== s) w.states.push(s);
        }, 50);
      });
      const tKill = Date.now();
      await inMachine(lab, home, ['docker', 'kill', old!]);
      await streamState('lost', 60_000);
      t.comment(`MEASURE console_stream_lost_after_kill ${Math.round((Date.now() - tKill) / 100) / 10} s`);
      t.match(await page.locator('#stream-state').innerText(), /^Live updates lost at .+; reconnecting…$/, 'the page says the stream is lost');
      await streamState('live', 120_000);
      t.comment(`MEASURE console_stream_back_after_kill ${Math.round((Date.now() - tKill) / 100) / 10} s`);
      t.match(await page.locator('#stream-state').innerText(), /^Live since /, 'and live again');
      const now = await replicaContainer(lab, home);
      t.ok(now.length === 1 && now[0] !== old, `Swarm started a new task container (${now[0]?.slice(0, 12)})`);
      const states = await page.evaluate(() => (window as unknown as { states: string[] }).states);
      t.comment(`the stream's states, in turn: ${states.join(' -> ')}`);
      t.ok(states[0] === 'live' && states.includes('lost') && states.at(-1) === 'live', 'live, then lost, then live again');

      // Following the restarted replica: a scale 5 -> 3 through the API shows on the page.
      await waitFor('the scale 5 -> 3 accepted', () => lab.anyRpc('group.scale', { id: GROUP, size: 3 }).then(() => true), 120_000, 2000);
      const tDown = Date.now();
      await waitRow('size', '3 machines', 30_000);
      await waitRow('serving', '3 of 3 machines', 240_000);
      t.comment(`MEASURE console_managers_5_to_3_on_page ${Math.round((Date.now() - tDown) / 100) / 10} s`);
      t.pass('the page followed the scale down: 3 machines, 3 of 3 serving');
      t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 17, 'the same page from sign-in to here: never reloaded');
      t.same(errors, [], 'no page error');
    });
  } finally {
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
  }
  await waitFor('3 managers settled after the console scenario', () => settled(lab, 3), 300_000, 1000);
  t.comment(`MEASURE console_live ${Math.round((Date.now() - t0) / 100) / 10} s (the whole scenario)`);
}
