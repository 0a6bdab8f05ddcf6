// The web console's browser tests' lab: the real API server in this process (the real group service and controller
// on simulated machines: no Docker) serving the bundled page, and Debian's chromium, headless, driven by
// playwright-core, with the helpers the tests share. Everything started here stops at the end of the test file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Test } from 'tap';
import type { Decision } from '../../src/autoscale/index.js';
import { bundleConsole } from '../../src/console/build.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { simulatorProviderKind } from '../../src/providers/simulator/index.js';
import { groupMethods } from '../../src/rpc/methods.js';
import { createRpcServer } from '../../src/rpc/server.js';
import type { FlavorKind, Plugins, ProviderKind } from '../../src/spi/index.js';
import { MemoryStore } from './memory-store.js';

export const token = 'console-token-4b1d9e7a2c5f8e3d';

type Server = ReturnType<typeof createRpcServer>;

export interface ConsoleLab {
  /** A directory of the test's own (the token file, the bundle), removed at the end. */
  readonly dir: string;
  readonly store: MemoryStore;
  /** What the autoscaler would report: push a decision here (and publish it on the feed) to have it shown. */
  readonly decisions: Decision[];
  /** The server the page is loaded from (`stop` and `start` keep its port). */
  readonly url: string;
  readonly port: number;
  /** Another server of the same service, on `port` (0: any) and under TLS with `tls`; the caller closes it. */
  serve(port?: number, tls?: { cert: Buffer; key: Buffer }): Promise<Server>;
  /** Stops the page's server; `start` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** A JSON-RPC call with the token; throws the error's message. */
  api(method: string, params?: object): Promise<any>;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Every request the browser made, and every console line and page error. */
  readonly requests: { url: string; method: string; headers: Record<string, string>; body: string | null }[];
  readonly consoleLines: string[];
  /** With CAPSTAN_CONSOLE_SCREENSHOTS=DIR, the whole page into DIR/NAME.png. */
  shoot(name: string): Promise<void>;
  text(selector: string): Promise<string>;
  /** The text of a cell (by class) of a group's row in the overview, and waiting for it to be `want`. */
  rowText(id: string, cell: string): Promise<string>;
  waitRow(id: string, cell: string, want: string): Promise<unknown>;
  /** The focused element: its tag, and its aria-label or text. */
  focused(): Promise<string>;
  /** Presses Tab until `matches` says the focused element is the one wanted; fails after `most` presses. */
  tabTo(matches: (f: string) => boolean, most?: number): Promise<string>;
}

/** The lab, with the `simulator` provider and the `vanilla` flavor, plus `providers` and `flavors` of the test's own. */
export async function consoleLab(t: Test, o: { providers?: readonly ProviderKind[]; flavors?: readonly FlavorKind[] } = {}): Promise<ConsoleLab> {
  const dir = mkdtempSync(join(tmpdir(), 'capstan-console-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const assets = join(dir, 'assets');
  await bundleConsole(assets);
  writeFileSync(join(dir, 'token'), token);

  // The chromium of swarm/requirements.sh.
  t.comment(execFileSync('chromium', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());

  // --- the server: the real group service and controller, simulated machines that take a moment to launch ------
  const plugins: Plugins = {
    providers: new Map([['simulator', simulatorProviderKind()], ...(o.providers ?? []).map((k): [string, ProviderKind] => [k.name, k])]),
    flavors: new Map([['vanilla', vanillaFlavorKind], ...(o.flavors ?? []).map((k): [string, FlavorKind] => [k.name, k])]),
  };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const store = new MemoryStore();
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 1000, busyMs: 100 });
  t.teardown(() => controller.stop());
  const service = new GroupService({ store, controller, validate, logger: silentLogger });
  const decisions: Decision[] = [];
  const autoscaler = { lastDecisions: (id: string) => decisions.filter((d) => d.group === id), preview: () => undefined };
  const groups = groupMethods({ service, store, controller, validate, autoscaler });
  const since = new Date(Date.now() - 3_600_000).toISOString();
  const leadership = { status: () => ({ nodeId: 'node-a', leading: true, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', since }) };

  async function serve(port = 0, tls?: { cert: Buffer; key: Buffer }): Promise<Server> {
    const app = createRpcServer({ store, controller, validate, service, groups, autoscaler, leadership, tokenFile: join(dir, 'token'), logger: silentLogger, consoleAssets: assets, events: { heartbeatMs: 1000 }, ...(tls && { tls }) });
    await app.listen({ host: '127.0.0.1', port });
    return app;
  }
  let app = await serve();
  t.teardown(() => app.close());
  const port = (app.server.address() as { port: number }).port;
  const url = `http://127.0.0.1:${port}`;

  async function api(method: string, params: object = {}): Promise<any> {
    const res = await fetch(`${url}/rpc`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
    const body = (await res.json()) as { result?: unknown; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }

  // --- the browser -----------------------------------------------------------------------------------------------
  const profile = mkdtempSync(join(tmpdir(), 'capstan-chromium-'));
  t.teardown(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
    // The HTTPS check's certificate is self-signed.
    ignoreHTTPSErrors: true,
  });
  t.teardown(() => context.close());
  const requests: ConsoleLab['requests'] = [];
  context.on('request', (r) => void requests.push({ url: r.url(), method: r.method(), headers: r.headers(), body: r.postData() }));
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLines: string[] = [];
  page.on('console', (m) => void consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => void consoleLines.push(`pageerror: ${e.message}`));
  // Evaluated by the browser itself (not subject to the page's CSP): counts every violation the page would report.
  await context.addInitScript(() => {
    const w = window as unknown as { violations: string[] };
    w.violations = [];
    document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  const text = (selector: string) => page.locator(selector).first().innerText();
  const focused = () => page.evaluate(() => `${document.activeElement?.tagName} ${document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? ''}`.trim());
  return {
    dir,
    store,
    decisions,
    url,
    port,
    serve,
    stop: () => app.close(),
    start: async () => void (app = await serve(port)),
    api,
    context,
    page,
    requests,
    consoleLines,
    shoot: async (name) => {
      const shots = process.env.CAPSTAN_CONSOLE_SCREENSHOTS;
      if (!shots) return;
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    },
    text,
    rowText: (id, cell) => text(`tr[data-group="${id}"] td.${cell}`),
    waitRow: (id, cell, want) =>
      page.waitForFunction(([id, cell, want]) => document.querySelector(`tr[data-group="${id}"] td.${cell}`)?.textContent === want, [id, cell, want] as const, { timeout: 15_000 }),
    focused,
    tabTo: async (matches, most = 25) => {
      for (let i = 0; i < most; i++) {
        await page.keyboard.press('Tab');
        const f = await focused();
        if (matches(f)) return f;
      }
      throw new Error(`not reached by ${most} Tabs (last: ${await focused()})`);
    },
  };
}
