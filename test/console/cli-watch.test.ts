// `capstan ... --watch` follows the API's event stream (GET /events, as the web console does) instead of polling:
// it reads the group again only when an event names it; against a server without the stream it polls, and with
// --interval it polls as asked. The real controller on simulated machines: no Docker.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { run } from '../../src/cli/main.js';
import { feed } from '../../src/feed.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Controller } from '../../src/group/controller.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { startServer, token } from '../rpc/harness.js';

async function setup(t: Test) {
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind()]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 1000, busyMs: 100 });
  t.teardown(() => controller.stop());
  const h = await startServer(t, { controller, validate: (raw: unknown) => validateSpec(raw, plugins) });
  const dir = mkdtempSync(join(tmpdir(), 'capstan-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token'), token);
  const specFile = (id: string, size: number) => {
    const f = join(dir, `${id}.json`);
    writeFileSync(f, JSON.stringify({ id, allocation: { size }, instance: { provider: 'simulator', properties: { latencyMs: 200 } }, flavor: { kind: 'vanilla', properties: {} }, update: { healthyFor: '0s' } }));
    return f;
  };
  // What the CLI asks for, through the global fetch it uses.
  const asked: string[] = [];
  const real = globalThis.fetch;
  let refuseEvents = false;
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { method?: string }) : undefined;
    asked.push(url.endsWith('/events') ? `events ${new Headers(init?.headers).get('authorization') === `Bearer ${token}` ? 'with token' : 'without token'}` : (body?.method ?? url));
    if (url.endsWith('/events') && refuseEvents) return new Response('not here', { status: 404 });
    return real(input, init);
  }) as typeof fetch;
  t.teardown(() => void (globalThis.fetch = real));
  const cli = async (args: string[]) => {
    let err = '';
    const code = await run(['--url', h.url, '--token-file', join(dir, 'token'), ...args], { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, readStdin: async () => '' });
    return { code, err };
  };
  return { h, cli, specFile, asked, refuse: () => void (refuseEvents = true) };
}

t.test('--watch reads the group again only when the stream says it moved', async (t) => {
  const s = await setup(t);
  let moved = 0;
  t.teardown(feed.subscribe((e) => void (e.group === 'web' && moved++)));
  const res = await s.cli(['group', 'commit', s.specFile('web', 3), '--watch']);
  t.equal(res.code, 0, res.err);
  t.match(res.err, /web v1: 3\/3 serving\n$/);
  t.ok(s.asked.includes('events with token'), 'the stream was opened with the token in its header');
  const describes = s.asked.filter((a) => a === 'group.describe').length;
  t.ok(describes >= 2 && describes <= moved + 1, `${describes} describes for ${moved} events about the group: one first, then one per event at most`);
});

t.test('without the stream it polls; --interval polls as asked', async (t) => {
  const s = await setup(t);
  s.refuse();
  const res = await s.cli(['group', 'commit', s.specFile('web', 2), '--watch', '--timeout', '20']);
  t.equal(res.code, 0, res.err);
  t.match(res.err, /web v1: 2\/2 serving\n$/);
  t.ok(s.asked.includes('events with token'), 'the stream was asked for');

  s.asked.length = 0;
  const polled = await s.cli(['group', 'scale', 'web', '3', '--watch', '--interval', '0.05']);
  t.equal(polled.code, 0, polled.err);
  t.notOk(s.asked.some((a) => a.startsWith('events')), 'with --interval, no stream');
  t.ok(s.asked.filter((a) => a === 'group.describe').length >= 2, 'describes every 50 ms until converged');
});
