// The web console in a real browser (issue 17): Debian's chromium, headless, driven by playwright-core, against the
// real API server in this process (the real group service and controller on simulated machines: no Docker). The
// page shows nothing of the cluster without the token and refuses a wrong one; it lists the groups with their
// figures; changes made through the API appear without a reload (the /events stream); a loss of the stream is shown,
// and so is its return after the server restarts; scale, pause, resume and roll back go through confirmations that
// show the API's pretend plan (the scale by keyboard alone); the Content-Security-Policy is sent and nothing breaks
// it; the token stays out of localStorage, cookies and every URL; the page works over HTTPS too.
// CAPSTAN_CONSOLE_SCREENSHOTS=test/console/screenshots retakes the README's screenshots (overview, a group mid-update,
// a narrow screen). The lab (server and browser) is test/support/console-harness.ts; the warm pool's marks are in
// browser-warm.test.ts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Decision } from '../../src/autoscale/index.js';
import { feed } from '../../src/feed.js';
import { consoleLab, token } from '../support/console-harness.js';
import { until } from '../support/until.js';

const lab = await consoleLab(t);
const { api, context, page, requests, consoleLines, store, decisions, dir, url, shoot, text, rowText, waitRow, focused, tabTo } = lab;

const workers = { id: 'workers', allocation: { size: 2 }, instance: { provider: 'simulator', properties: { latencyMs: 150 } }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } };
await api('group.commit', { spec: workers });
await api('group.commit', { spec: { ...workers, id: 'edge', allocation: { size: 1 } } });
await until('both groups converged', async () => (await api('group.list')).every((g: { converged: boolean }) => g.converged), 20_000);

t.test('without the token: a sign-in and nothing of the cluster; a wrong token is refused', async (t) => {
  const res = await page.goto(url);
  const csp = res?.headers()['content-security-policy'] ?? '';
  t.match(csp, /default-src 'self'/, 'CSP header');
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no inline script or style allowed');
  t.equal(res?.headers()['x-content-type-options'], 'nosniff');
  await page.getByLabel('API token').waitFor();
  t.same(await page.evaluate(() => [document.querySelectorAll('script:not([src])').length, document.querySelectorAll('style, [style]').length]), [0, 0], 'no inline script or style in the page');
  const body = await page.locator('body').innerText();
  t.notMatch(body, /workers|edge|node-a|machine/, 'nothing of the cluster shown');
  t.notOk(requests.some((r) => r.body?.includes('group.')), 'no group call made before signing in');

  await page.getByLabel('API token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token was refused.').waitFor();
  t.pass('wrong token refused');
  t.notMatch(await page.locator('body').innerText(), /workers|edge/, 'still nothing shown');
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
  t.equal(await page.evaluate(() => fetch('/events').then((r) => r.status)), 401, '/events without the token: 401');
});

t.test('with the token: every group with its figures, the leader and the live stream', async (t) => {
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitRow('workers', 'serving', '2 of 2 machines');
  t.same([await rowText('workers', 'version'), await rowText('workers', 'size'), await rowText('workers', 'converged'), await rowText('workers', 'update')], ['version 1', '2 machines', 'yes', 'no update rolling']);
  t.equal(await rowText('edge', 'size'), '1 machine', 'singular unit');
  await page.waitForFunction(() => document.getElementById('stream-state')?.dataset.state === 'live', null, { timeout: 10_000 });
  t.match(await text('#leader'), /Leader: node-a \(this replica\) · since/);
  t.match(await text('#stream-state'), /^Live since /);
  await shoot('overview');
});

t.test('a change made through the API appears without a reload, members arriving as they launch', async (t) => {
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  await api('group.scale', { id: 'workers', size: 4 });
  await waitRow('workers', 'size', '4 machines');
  await waitRow('workers', 'serving', '4 of 4 machines');
  t.pass('size and serving machines followed');
  const d: Decision = { at: Date.now(), group: 'workers', action: 'none', reason: 'idle', message: 'no pending task for 4 machines' };
  decisions.push(d);
  feed.publish({ type: 'autoscale.decision', group: d.group, decision: d, at: new Date(d.at).toISOString() });
  await page.getByText('no pending task for 4 machines').waitFor({ timeout: 10_000 });
  t.pass('an autoscaler decision shows as it happens');
  t.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the same page: no reload');
});

t.test('keyboard only: open a group, scale it through a confirmation with the pretend plan', async (t) => {
  await page.locator('body').focus();
  await tabTo((f) => f === 'BUTTON Open group workers');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Group workers' }).waitFor();
  t.match(await focused(), /^H2 Group workers/, 'focus moves to the group');
  await page.getByRole('cell', { name: 'scale: size 2 -> 4' }).waitFor();
  t.pass('history says what changed');
  t.equal(await page.locator('table').first().locator('tbody tr').count(), 4, 'its four machines');
  t.match(await page.locator('table').first().innerText(), /healthy[\s\S]*\(current\)[\s\S]*seconds?/, 'health, config and age with its unit');

  await tabTo((f) => f.startsWith('INPUT'));
  await page.keyboard.press('Control+A');
  await page.keyboard.type('5');
  await tabTo((f) => f === 'BUTTON Scale…');
  const before = requests.length;
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await dialog.getByText('create 1 machine').waitFor();
  t.match(await dialog.innerText(), /Scale workers to 5 machines\?[\s\S]*pretend plan[\s\S]*create 1 machine[\s\S]*destroy no machine[\s\S]*replace no machine/);
  const pretend = requests.slice(before).find((r) => r.body?.includes('"pretend":true'));
  t.match(JSON.parse(pretend?.body ?? '{}'), { method: 'group.commit', params: { pretend: true, spec: { id: 'workers', allocation: { size: 5 } } } }, 'the plan is the API\'s pretend commit');
  t.equal((await store.get('workers'))?.version, 2, 'nothing stored yet');
  await tabTo((f) => f === 'BUTTON Scale to 5 machines');
  await page.keyboard.press('Enter');
  await page.getByText('workers: version 3 stored, size 5 machines.').waitFor();
  t.same((await store.get('workers'))?.spec.allocation, { size: 5 }, 'scaled through the API');
  t.ok(requests.slice(before).some((r) => r.body?.includes('"method":"group.scale"')), 'by group.scale');
  t.equal(await page.getByRole('dialog').count(), 0, 'the confirmation closed');
  t.equal(await focused(), 'BUTTON Scale…', 'the focus is back on the control that opened it');
  await page.waitForFunction(() => /5 of 5 machines healthy/.test(document.querySelector('.facts')?.textContent ?? ''), null, { timeout: 15_000 });
});

t.test('pause, resume and roll back, each confirmed; a rolling update shows its progress', async (t) => {
  await page.getByRole('button', { name: 'Pause…' }).click();
  await page.getByRole('dialog').getByText('replace no machine').waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
  await page.getByText(/workers: paused \(version 4\)/).waitFor();
  t.equal((await store.get('workers'))?.state?.paused, true, 'paused through the API');

  // A new machine config while paused: the update waits; its progress shows as "0 of 5 replaced" and paused.
  await api('group.commit', { spec: { ...workers, allocation: { size: 5 }, instance: { provider: 'simulator', properties: { latencyMs: 150, generation: 2 } } } });
  await api('group.pause', { id: 'workers' });
  await page.waitForFunction(() => /paused/.test(document.querySelector('.facts')?.textContent ?? ''), null, { timeout: 15_000 });
  t.match(await page.locator('.facts').innerText(), /0 of 5 machines replaced, 5 machines on the old config · paused/);
  t.equal(await page.locator('.facts progress').getAttribute('max'), '5');

  await page.getByRole('button', { name: 'Resume…' }).click();
  await page.getByRole('dialog').getByText(/replace 5 machines on an older config/).waitFor();
  t.pass('the resume shows what the update will do');
  await page.getByRole('dialog').getByRole('button', { name: 'Resume' }).click();
  await page.getByText(/workers: resumed/).waitFor();
  t.equal((await store.get('workers'))?.state?.paused, undefined, 'resumed through the API');
  await page.waitForFunction(() => /[1-4] of 5 machines replaced/.test(document.querySelector('.facts')?.textContent ?? ''), null, { timeout: 20_000 });
  t.pass('the update moves on the page as machines are replaced');
  await shoot('group-mid-update');

  // Roll back: to the last version with another spec (version 4, the first machine config), as group.rollback picks.
  await page.getByRole('button', { name: 'Roll back to version 4…' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText(/replace [1-5] machines? on an older config/).waitFor();
  t.match(await dialog.innerText(), /Roll workers back to version 4\?[\s\S]*pretend plan/, 'the roll back shows its plan');
  await dialog.getByRole('button', { name: 'Roll back to version 4' }).click();
  await page.getByText(/workers: version 8 stored, the spec of version 4\./).waitFor();
  const latest = await store.get('workers');
  t.same([latest?.version, latest?.state?.note], [8, 'rollback to v4'], 'rolled back through group.rollback');
});

t.test('the stream lost when the server stops is shown, and its return when it is back', async (t) => {
  await page.getByRole('button', { name: 'Back to all groups' }).click();
  await lab.stop();
  await page.waitForFunction(() => document.getElementById('stream-state')?.dataset.state === 'lost', null, { timeout: 10_000 });
  t.match(await text('#stream-state'), /^Live updates lost at .+; reconnecting…$/);
  await lab.start();
  await page.waitForFunction(() => document.getElementById('stream-state')?.dataset.state === 'live', null, { timeout: 20_000 });
  t.pass('live again');
  await api('group.scale', { id: 'edge', size: 2 });
  await waitRow('edge', 'size', '2 machines');
  await waitRow('edge', 'serving', '2 of 2 machines');
  t.pass('and following the restarted server');
});

t.test('the token stays in this tab: no localStorage, no cookie, no URL; nothing broke the CSP', async (t) => {
  t.equal(await page.evaluate(() => localStorage.length), 0, 'localStorage empty');
  t.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
  t.same(await context.cookies(), [], 'no cookie in the browser');
  t.equal(await page.evaluate(() => sessionStorage.getItem('capstan.token')), token, 'kept for the session only');
  t.same(requests.filter((r) => r.url.includes(token) || decodeURIComponent(r.url).includes(token)).map((r) => r.url), [], 'in no request URL');
  const events = requests.filter((r) => r.url.endsWith('/events'));
  t.ok(events.length >= 2, `${events.length} stream requests`);
  t.ok(events.every((r) => r.headers.authorization === `Bearer ${token}` || r.headers.authorization === undefined), 'the stream carries the token in its header');
  t.same(requests.filter((r) => !r.url.startsWith(url)).map((r) => r.url), [], 'nothing fetched from elsewhere');
  t.same(await page.evaluate(() => (window as unknown as { violations: string[] }).violations), [], 'no CSP violation');
  t.same(consoleLines.filter((l) => /Content.Security.Policy|Refused to|pageerror/i.test(l)), [], 'no CSP message or page error in the console');
});

t.test('over HTTPS (the TLS option): the same page, signed in and live', async (t) => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=capstan', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
  const tlsApp = await lab.serve(0, { cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')) });
  t.teardown(() => tlsApp.close());
  const tlsUrl = `https://127.0.0.1:${(tlsApp.server.address() as { port: number }).port}`;
  const p = await context.newPage();
  t.teardown(() => p.close());
  const res = await p.goto(tlsUrl);
  t.match(res?.headers()['content-security-policy'] ?? '', /default-src 'self'/);
  await p.getByLabel('API token').fill(token);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.waitForFunction(() => document.querySelector('tr[data-group="workers"] td.size')?.textContent === '5 machines', null, { timeout: 15_000 });
  await p.waitForFunction(() => document.getElementById('stream-state')?.dataset.state === 'live', null, { timeout: 10_000 });
  await api('group.scale', { id: 'edge', size: 1 });
  await p.waitForFunction(() => document.querySelector('tr[data-group="edge"] td.size')?.textContent === '1 machine', null, { timeout: 15_000 });
  t.pass('signed in over HTTPS, the groups listed, a change shown live');
  t.same(await p.evaluate(() => (window as unknown as { violations: string[] }).violations), [], 'no CSP violation');
});

t.test('a narrow screen: nothing wider than the screen; sign out forgets the token', async (t) => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForTimeout(100);
  t.same(await page.evaluate(() => [document.documentElement.scrollWidth <= window.innerWidth, document.documentElement.scrollWidth]), [true, await page.evaluate(() => document.documentElement.scrollWidth)], 'no sideways scrolling of the page');
  await shoot('narrow');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').waitFor();
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'signed out: the token is gone');
  t.notMatch(await page.locator('body').innerText(), /workers|edge/);
});
