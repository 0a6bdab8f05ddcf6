import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { progressOf, run, type CliIo, type DescribeView } from '../../src/cli/main.js';
import type { GroupStatus, SpecVersion } from '../../src/spi/index.js';
import { spec, startServer, token, type Harness } from '../rpc/harness.js';
import { convergedStatus } from '../support/recording-controller.js';

interface Captured extends CliIo {
  out: string;
  err: string;
}

function capture(opts: { tty?: boolean; stdin?: string; env?: Record<string, string> } = {}): Captured {
  const io: Captured = {
    out: '',
    err: '',
    stdout: { write: (s: string) => (io.out += s) },
    stderr: { write: (s: string) => (io.err += s), isTTY: opts.tty ?? false },
    env: opts.env ?? {},
    readStdin: async () => opts.stdin ?? '',
  };
  return io;
}

async function setup(t: Test) {
  const h = await startServer(t);
  const dir = mkdtempSync(join(tmpdir(), 'capstan-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${token}\n`);
  writeFileSync(join(dir, 'wrong'), 'nope');
  const specFile = join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(spec('workers', 3)));
  const cli = async (args: string[], opts: Parameters<typeof capture>[0] = {}) => {
    const io = capture(opts);
    const code = await run(['--url', h.url, '--token-file', tokenFile, ...args], io);
    return { code, out: io.out, err: io.err, json: io.out ? JSON.parse(io.out) : undefined };
  };
  return { h, dir, tokenFile, specFile, cli };
}

t.test('every group command speaks the API and prints JSON', async (t) => {
  const { h, specFile, cli } = await setup(t);
  t.match(await cli(['group', 'commit', specFile, '--pretend']), { code: 0, json: { id: 'workers', version: 0, stored: false } });
  t.match(await cli(['group', 'commit', specFile]), { code: 0, json: { id: 'workers', version: 1, stored: true } });
  t.match(await cli(['group', 'list']), { code: 0, json: [{ id: 'workers', version: 1, size: 3 }] });
  t.match(await cli(['group', 'describe', 'workers']), { code: 0, json: { id: 'workers', version: 1, size: 3, instances: [] } });
  t.match(await cli(['group', 'scale', 'workers', '5']), { code: 0, json: { id: 'workers', version: 2, size: 5 } });
  t.match(await cli(['group', 'scale-up', 'workers']), { code: 0, json: { version: 3, size: 6 } });
  t.match(await cli(['group', 'scale-down', 'workers', '2']), { code: 0, json: { version: 4, size: 4 } });
  h.controller.statuses.set('workers', convergedStatus('workers', 4, 4));
  const victim = h.controller.statuses.get('workers')!.instances[0]!.id;
  t.match(await cli(['group', 'destroy-instances', 'workers', victim]), { code: 0, json: { version: 5, size: 3, destroyed: [victim] } });
  t.match(await cli(['group', 'pause', 'workers']), { code: 0, json: { paused: true } });
  t.match(await cli(['group', 'resume', 'workers']), { code: 0, json: { paused: false } });
  // Pause and resume are versions of their own (same spec); a rollback goes to the last version with another spec.
  t.match(await cli(['group', 'rollback', 'workers', '1']), { code: 0, json: { version: 8, from: 1 } });
  t.match(await cli(['group', 'rollback', 'workers']), { code: 0, json: { version: 9, from: 4 } });
  const history = await cli(['group', 'history', 'workers']);
  t.same(
    history.json.map((v: { changes: string[] }) => v.changes),
    [['created'], ['size 3 -> 5'], ['size 5 -> 6'], ['size 6 -> 4'], ['size 4 -> 3'], ['no changes'], ['no changes'], ['no changes'], ['size 3 -> 4']],
  );
  const destroy = await cli(['group', 'destroy', 'workers']);
  t.equal(destroy.code, 2, 'destroy needs --yes');
  t.match(destroy.err, /--yes/);
  t.match(await cli(['group', 'destroy', 'workers', '--yes']), { code: 0, json: { id: 'workers' } });
  t.match(await cli(['group', 'commit', specFile]), { code: 0 });
  t.match(await cli(['group', 'free', 'workers']), { code: 0, json: { id: 'workers' } });
  t.same((await cli(['group', 'list'])).json, []);
});

t.test('status needs no token; the spec can come from stdin; env supplies url and token file', async (t) => {
  const { h, tokenFile } = await setup(t);
  const io = capture({ env: { CAPSTAN_URL: h.url } });
  t.equal(await run(['status'], io), 0);
  t.match(JSON.parse(io.out), { leading: true, nodeId: 'node-a', version: '0.1.0' });

  const io2 = capture({ env: { CAPSTAN_URL: `${h.url}/rpc`, CAPSTAN_TOKEN_FILE: tokenFile }, stdin: JSON.stringify(spec('from-stdin', 1)) });
  t.equal(await run(['group', 'commit', '-'], io2), 0, io2.err);
  t.match(JSON.parse(io2.out), { id: 'from-stdin', version: 1 });
});

t.test('errors go to stderr with a non-zero exit', async (t) => {
  const { h, dir, specFile, cli } = await setup(t);
  const wrong = capture();
  t.equal(await run(['--url', h.url, '--token-file', join(dir, 'wrong'), 'group', 'list'], wrong), 1);
  t.equal(wrong.out, '');
  t.match(wrong.err, /missing or wrong bearer token \(code -32001\)/);

  writeFileSync(join(dir, 'bad.json'), JSON.stringify(spec('workers', -1)));
  const invalid = await cli(['group', 'commit', join(dir, 'bad.json')]);
  t.equal(invalid.code, 1);
  t.match(invalid.err, /code -32602/);
  t.match(invalid.err, /\/spec\/allocation/);

  writeFileSync(join(dir, 'notjson'), '{');
  t.match(await cli(['group', 'commit', join(dir, 'notjson')]), { code: 1, err: /not JSON/ });
  t.match(await cli(['group', 'describe', 'nope']), { code: 1, err: /no group nope \(code -32002\)/ });
  await cli(['group', 'commit', specFile]);
  t.match(await cli(['group', 'scale', 'workers', '99']), { code: 1, err: /outside the bounds.*\(code -32004\)/ });

  for (const args of [[], ['group'], ['group', 'frobnicate', 'x'], ['group', 'scale', 'workers'], ['group', 'scale', 'workers', 'many'], ['group', 'describe'], ['--bogus', 'status'], ['status', 'extra']]) {
    const res = await cli(args);
    t.equal(res.code, 2, args.join(' '));
    t.match(res.err, /Usage: capstan/);
  }
  const help = capture();
  t.equal(await run(['--help'], help), 0);
  t.match(help.out, /group commit FILE/);

  const down = capture();
  t.equal(await run(['--url', 'http://127.0.0.1:1', 'status'], down), 1);
  t.match(down.err, /cannot reach capstan at http:\/\/127.0.0.1:1\/rpc/);
  t.equal(h.store.writes.length, 1, 'nothing stored by the failed commands');
});

/** Plays a rolling update when the controller is asked to apply: two passes in progress, then converged. */
function rollOnApply(h: Harness, final: (v: SpecVersion) => GroupStatus) {
  const apply = h.controller.apply.bind(h.controller);
  h.controller.apply = (v) => {
    apply(v);
    const size = 'size' in v.spec.allocation ? v.spec.allocation.size : 0;
    const base = convergedStatus(v.id, v.version, size);
    const step = (done: number): GroupStatus => ({
      ...base,
      converged: false,
      instances: base.instances.map((i, n) => (n < done ? i : { ...i, config: 'old', health: n === done ? 'unknown' : 'healthy' })),
      update: { state: 'rolling', total: size, done, failed: 0 },
    });
    h.controller.statuses.set(v.id, step(0));
    setTimeout(() => h.controller.statuses.set(v.id, step(1)), 60);
    setTimeout(() => h.controller.statuses.set(v.id, final(v)), 150);
  };
}

t.test('--watch follows the group until it converges: plain lines when not a TTY', async (t) => {
  const { h, specFile, cli } = await setup(t);
  rollOnApply(h, (v) => convergedStatus(v.id, v.version, 3));
  const res = await cli(['group', 'commit', specFile, '--watch', '--interval', '0.02']);
  t.equal(res.code, 0, res.err);
  t.match(res.json, { id: 'workers', version: 1, stored: true });
  const lines = res.err.trim().split('\n');
  t.same(
    lines,
    ['workers v1: 2/3 serving; update: 0/3 replaced, 3 old', 'workers v1: 2/3 serving; update: 1/3 replaced, 2 old', 'workers v1: 3/3 serving'],
    'one line per change: the members serving whatever their config, the update apart',
  );
  t.notMatch(res.err, /\r|\x1b/);
});

t.test('--watch draws a progress bar on a TTY, and fails when the update does', async (t) => {
  const { h, specFile, cli } = await setup(t);
  await cli(['group', 'commit', specFile]);
  h.controller.statuses.set('workers', convergedStatus('workers', 1, 3));
  rollOnApply(h, (v) => ({ ...convergedStatus(v.id, v.version, 4), converged: false, update: { state: 'failed', total: 4, done: 3, failed: 1, reason: 'i-9 missed its health deadline' } }));
  const res = await cli(['group', 'scale', 'workers', '4', '--watch', '--interval', '0.02'], { tty: true });
  t.equal(res.code, 1);
  t.match(res.err, /\r\x1b\[2K\[#*\.*\] +\d+% workers v2/);
  t.match(res.err, /capstan: update failed: i-9 missed its health deadline/);
  t.equal(res.out, '', 'no result printed when the watch fails');

  const timeout = await cli(['group', 'scale-up', 'workers', '--watch', '--interval', '0.02', '--timeout', '0.05']);
  t.match(timeout, { code: 1, err: /did not converge on version 3 within 0.05s/ });
});

t.test('--watch shows the group as a whole, an update apart, a scale-down as removal', async (t) => {
  const member = (config: string, health = 'healthy') => ({ config, health });
  const view = (size: number, instances: DescribeView['instances'], update: Partial<DescribeView['update']> = {}): DescribeView => ({
    version: 2,
    size,
    converged: false,
    configHash: 'new',
    instances,
    update: { state: 'idle', total: 0, done: 0, failed: 0, ...update },
  });
  const show = (d: DescribeView, start = d.instances.length) => progressOf('workers', 2, d, start);

  const oldServing = view(4, [member('old'), member('old'), member('old'), member('old')], { state: 'rolling', total: 4 });
  t.same(show(oldServing), { line: 'workers v2: 4/4 serving; update: 0/4 replaced, 4 old', fraction: 0 }, 'old members serve: they count');
  const surge = view(4, [member('new'), member('new', 'unknown'), member('old'), member('old'), member('old')], { state: 'rolling', total: 4 });
  t.same(show(surge), { line: 'workers v2: 4/4 serving; update: 1/4 replaced, 1 in flight, 3 old', fraction: 0.25 }, 'a surge is no scale-down');
  const failed = view(2, [member('new', 'unhealthy'), member('old')], { state: 'failed', reason: 'i-9 missed its health deadline' });
  t.match(show(failed).line, /^workers v2: 1\/2 serving; update failed \(i-9 missed its health deadline\): 0\/2 replaced, 1 in flight, 1 old$/);

  const six = Array.from({ length: 6 }, () => member('new'));
  t.same(show(view(2, six)), { line: 'workers v2: 6 serving, removing 4 instances (size 2)', fraction: 0 }, 'a scale-down, not 6/2');
  t.same(show(view(2, six.slice(0, 3)), 6), { line: 'workers v2: 3 serving, removing 1 instance (size 2)', fraction: 0.75 });
  t.same(show(view(2, six.slice(0, 2)), 6), { line: 'workers v2: 2/2 serving', fraction: 1 });

  t.same(show(view(3, [member('new'), member('new', 'unknown')])), { line: 'workers v2: 1/3 serving, 1 starting, 1 to create', fraction: 1 / 3 });
  t.same(show(view(0, [])), { line: 'workers v2: 0/0 serving', fraction: 1 });
  t.match(show({ ...view(3, six.slice(0, 3)), version: 1 }), { line: /\(controller still on v1\)$/, fraction: 0 });

  // A warm pool is beyond the size on purpose: no scale-down, counted apart.
  const warm = { ...member('new'), warm: true };
  t.same(show(view(2, [member('new'), member('new'), warm])), { line: 'workers v2: 2/2 serving; 1 warm', fraction: 1 });
  t.same(show(view(3, [member('new'), member('new'), warm])), { line: 'workers v2: 2/3 serving, 1 to create; 1 warm', fraction: 2 / 3 }, 'a scale-up while the warm one is being activated');
});
