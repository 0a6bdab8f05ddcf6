import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createRpcServer, parseListen } from '../../src/rpc/server.js';
import { MemoryStore } from '../support/memory-store.js';
import { RecordingController } from '../support/recording-controller.js';
import { spec, startServer, testValidate, token } from './harness.js';

const auth = { authorization: `Bearer ${token}` };
const req = (method: string, params?: unknown, id: unknown = 1) => ({ jsonrpc: '2.0', id, method, ...(params !== undefined && { params }) });

t.test('malformed JSON is a parse error with id null', async (t) => {
  const h = await startServer(t);
  for (const body of ['{', '', 'nul', '{"jsonrpc":"2.0","method":"group.list","id":1', '\u0000', '[1,]']) {
    const res = await h.post(body, auth);
    t.equal(res.status, 200, JSON.stringify(body));
    t.same(res.body, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
  }
});

t.test('a request that is not JSON-RPC is an invalid request', async (t) => {
  const h = await startServer(t);
  const cases: [unknown, unknown][] = [
    [1, null],
    ['x', null],
    [null, null],
    [{}, null],
    [{ jsonrpc: '1.0', method: 'group.list', id: 4 }, 4],
    [{ jsonrpc: '2.0', id: 5 }, 5],
    [{ jsonrpc: '2.0', method: 7, id: 6 }, 6],
    [{ jsonrpc: '2.0', method: 'group.list', id: { a: 1 } }, null],
    [{ jsonrpc: '2.0', method: 'group.list', id: 8, params: 'x' }, 8],
    [{ jsonrpc: '2.0', method: 'group.list', id: 9, params: null }, 9],
    [{ jsonrpc: '2.0', method: 'group.list', id: 10, result: 1 }, 10],
  ];
  for (const [body, id] of cases) {
    const res = await h.post(JSON.stringify(body), auth);
    t.same(res.body, { jsonrpc: '2.0', id, error: { code: -32600, message: 'Invalid Request' } }, JSON.stringify(body));
  }
  const empty = await h.post('[]', auth);
  t.same(empty.body, { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request' } }, 'an empty batch is one error, not an array');
});

t.test('an unknown method is -32601, even without a token', async (t) => {
  const h = await startServer(t);
  for (const method of ['group.nope', '', 'constructor', '__proto__', 'toString']) {
    const res = await h.post(JSON.stringify(req(method)));
    t.same(res.body?.error, { code: -32601, message: 'Method not found' }, method);
  }
});

t.test('wrong params are -32602 with ajv errors and paths in data', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const cases: [string, unknown, string][] = [
    ['group.scale', { id: 'workers', size: 'five' }, '/size'],
    ['group.scale', { id: 'workers' }, ''],
    ['group.scale', { id: 'workers', size: 2, extra: true }, '/extra'],
    ['group.scale', [1, 2], ''],
    ['group.describe', { id: 'UPPER' }, '/id'],
    ['group.destroyInstances', { id: 'workers', instanceIds: [] }, '/instanceIds'],
    ['group.destroyInstances', { id: 'workers', instanceIds: ['a', 'a'] }, '/instanceIds'],
    ['group.commit', { spec: 'text' }, '/spec'],
    ['group.commit', { spec: spec(), pretend: 'yes' }, '/pretend'],
    ['group.rollback', { id: 'workers', version: 0 }, '/version'],
    ['group.list', { all: true }, '/all'],
    ['manager.status', { x: 1 }, '/x'],
    ['group.commit', { spec: JSON.parse('{"a":'.repeat(200) + '1' + '}'.repeat(200)) }, ''],
  ];
  for (const [method, params, path] of cases) {
    const error = await h.fail(method, params);
    t.equal(error.code, -32602, `${method} ${JSON.stringify(params)}`);
    t.ok(error.data.problems.some((p: { path: string }) => p.path === path), `${JSON.stringify(error.data.problems)} names ${path}`);
    t.ok(error.data.errors.every((e: { instancePath: unknown; keyword: unknown }) => typeof e.instancePath === 'string' && typeof e.keyword === 'string'));
  }
  t.same(h.store.writes, ['commit workers v1'], 'nothing changed');
});

t.test('a body over 1 MiB is refused with a JSON-RPC error and HTTP 413', async (t) => {
  const h = await startServer(t);
  const huge = JSON.stringify(req('group.commit', { spec: { ...spec(), flavor: { kind: 'x', properties: { pad: 'x'.repeat(1024 * 1024) } } } }));
  const res = await h.post(huge, auth);
  t.equal(res.status, 413);
  t.same(res.body, { jsonrpc: '2.0', id: null, error: { code: ErrorCode.tooLarge, message: 'request body over 1048576 bytes' } });
  t.same(h.store.writes, []);

  // Without a content-length: the limit holds while the body streams in.
  const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < 32) controller.enqueue(chunk);
      else controller.close();
    },
  });
  const chunked = await fetch(`${h.url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: stream, duplex: 'half' } as RequestInit);
  t.equal(chunked.status, 413);
  t.equal((await chunked.json()).error.code, ErrorCode.tooLarge);
  t.equal((await h.call('group.list')).result.length, 0, 'the server still answers');
});

t.test('a batch over 100 calls is refused as a whole', async (t) => {
  const h = await startServer(t);
  const res = await h.post(JSON.stringify(Array.from({ length: 101 }, (_, i) => req('group.list', {}, i))), auth);
  t.equal(res.body.error.code, ErrorCode.tooLarge);
});

t.test('every method but rpc.discover and manager.status needs the token', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  for (const authorization of [undefined, 'Bearer wrong', `Bearer ${token}x`, `Basic ${token}`, token, 'Bearer', `Bearer ${token.slice(0, -1)}`]) {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    for (const [method, params] of [
      ['group.list', {}],
      ['group.describe', { id: 'workers' }],
      ['group.scale', { id: 'workers', size: 5 }],
      ['group.destroy', { id: 'workers' }],
      ['group.scale', { id: 'workers', size: 'bad' }],
    ] as const) {
      const res = await h.post(JSON.stringify(req(method, params)), headers);
      t.same(res.body, { jsonrpc: '2.0', id: 1, error: { code: ErrorCode.unauthorized, message: 'missing or wrong bearer token' } }, `${method} with ${authorization}`);
    }
    t.equal((await h.post(JSON.stringify(req('manager.status')), headers)).body.result.leading, true);
  }
  t.ok((await h.post(JSON.stringify(req('group.list')), { authorization: `bearer   ${token}` })).body.result, 'the scheme is case-insensitive');
  t.same(h.store.writes, ['commit workers v1'], 'nothing changed');
  t.notMatch(h.logs(), token, 'the token is never logged');
});

t.test('batches: each call answered on its own, unauthorized ones each get their error, notifications none', async (t) => {
  const h = await startServer(t);
  await h.call('group.commit', { spec: spec() });
  const batch = [
    req('group.scale', { id: 'workers', size: 4 }, 'a'),
    { jsonrpc: '2.0', method: 'group.scaleUp', params: { id: 'workers' } },
    req('group.describe', { id: 'workers' }, 'b'),
    req('group.nope', {}, 'c'),
    { foo: 1 },
    req('group.scale', { id: 'workers', size: 'x' }, 'd'),
  ];
  const res = await h.post(JSON.stringify(batch), auth);
  t.equal(res.status, 200);
  t.same(res.body, [
    { jsonrpc: '2.0', id: 'a', result: { id: 'workers', version: 2, size: 4, changed: true } },
    { jsonrpc: '2.0', id: 'b', result: { id: 'workers', version: 3, size: 5, converged: false, instances: [], update: { state: 'idle', total: 0, done: 0, failed: 0 } } },
    { jsonrpc: '2.0', id: 'c', error: { code: -32601, message: 'Method not found' } },
    { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request' } },
    res.body[4],
  ]);
  t.equal(res.body[4].error.code, -32602);

  const single = await h.post(JSON.stringify([req('group.list', {}, 7)]), auth);
  t.same(single.body, [{ jsonrpc: '2.0', id: 7, result: [{ id: 'workers', version: 3, size: 5, instances: 0, converged: false }] }], 'a batch of one answers with an array of one');

  const mixed = await h.post(JSON.stringify([req('group.list', {}, 1), req('manager.status', {}, 2), req('group.scale', { id: 'workers', size: 9 }, 3)]));
  t.same(
    mixed.body.map((r: { id: number; error?: { code: number } }) => [r.id, r.error?.code ?? 'ok']),
    [
      [1, ErrorCode.unauthorized],
      [2, 'ok'],
      [3, ErrorCode.unauthorized],
    ],
  );

  const notes = await h.post(JSON.stringify([{ jsonrpc: '2.0', method: 'group.scaleUp', params: { id: 'workers' } }, { jsonrpc: '2.0', method: 'group.nope' }]), auth);
  t.equal(notes.status, 204, 'only notifications: no body');
  t.equal(notes.text, '');
  const note = await h.post(JSON.stringify({ jsonrpc: '2.0', method: 'group.scaleUp', params: { id: 'workers' } }), auth);
  t.equal(note.status, 204);
  t.equal((await h.store.get('workers'))?.spec.allocation && (await h.call('group.describe', { id: 'workers' })).result.size, 7, 'notifications ran');
});

t.test('any content type, or none, is read as JSON', async (t) => {
  const h = await startServer(t);
  for (const type of ['text/plain', 'application/json-rpc', 'application/octet-stream']) {
    const res = await h.post(JSON.stringify(req('manager.status')), { 'content-type': type });
    t.equal(res.body.result.leading, true, type);
  }
  const res = await fetch(`${h.url}/rpc`, { method: 'POST', body: new Blob([JSON.stringify(req('manager.status'))]) });
  t.equal((await res.json()).result.leading, true, 'no content type');
});

t.test('healthz, readyz and metrics', async (t) => {
  let ready = false;
  const h = await startServer(t, { ready: async () => ready });
  t.same(await (await fetch(`${h.url}/healthz`)).json(), { status: 'ok' });
  t.equal((await fetch(`${h.url}/readyz`)).status, 503);
  ready = true;
  const res = await fetch(`${h.url}/readyz`);
  t.equal(res.status, 200);
  t.same(await res.json(), { ready: true });
  await h.call('group.list');
  const metrics = await (await fetch(`${h.url}/metrics`)).text();
  t.match(metrics, /capstan_rpc_calls_total\{method="group.list",outcome="ok"\} \d+/);
  t.match(metrics, /capstan_group_size/);

  const broken = await startServer(t, { ready: () => Promise.reject(new Error('docker down')) });
  t.equal((await fetch(`${broken.url}/readyz`)).status, 503);
});

t.test('the factory refuses to start without a token unless told to run open', async (t) => {
  const base = { store: new MemoryStore(), controller: new RecordingController(), validate: testValidate, leadership: { status: () => ({ leading: true }) }, logger: silentLogger };
  const saved = { file: process.env.CAPSTAN_TOKEN_FILE, open: process.env.CAPSTAN_INSECURE_OPEN };
  delete process.env.CAPSTAN_TOKEN_FILE;
  delete process.env.CAPSTAN_INSECURE_OPEN;
  t.teardown(() => Object.assign(process.env, saved.file && { CAPSTAN_TOKEN_FILE: saved.file }, saved.open && { CAPSTAN_INSECURE_OPEN: saved.open }));

  t.throws(() => createRpcServer(base), /CAPSTAN_TOKEN_FILE/);
  const dir = t.testdir({ empty: '\n' });
  t.throws(() => createRpcServer({ ...base, tokenFile: join(dir, 'empty') }), /empty/);
  t.throws(() => createRpcServer({ ...base, tokenFile: join(dir, 'missing') }), /ENOENT/);

  const h = await startServer(t, { tokenFile: undefined, insecureOpen: true });
  t.match(h.logs(), /"level":40.*INSECURE/, 'a loud warning');
  t.same((await h.call('group.list', {}, null)).result, [], 'open: no token needed');

  process.env.CAPSTAN_INSECURE_OPEN = '1';
  const viaEnv = createRpcServer(base);
  t.ok(viaEnv);
  await viaEnv.close();
  delete process.env.CAPSTAN_INSECURE_OPEN;

  // The token file wins over an open request.
  writeFileSync(join(dir, 'token'), 'tok');
  const both = await startServer(t, { tokenFile: join(dir, 'token'), insecureOpen: true });
  t.equal((await both.fail('group.list', {}, null)).code, ErrorCode.unauthorized);
});

t.test('CAPSTAN_LISTEN', async (t) => {
  t.same(parseListen(undefined), { host: '0.0.0.0', port: 8640 });
  t.same(parseListen('127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 });
  t.same(parseListen(':9001'), { host: '0.0.0.0', port: 9001 });
  t.same(parseListen('[::]:9002'), { host: '::', port: 9002 });
  t.same(parseListen('localhost'), { host: 'localhost', port: 8640 });
  t.throws(() => parseListen('1.2.3.4:99999'));
  t.throws(() => parseListen('a:b:c'));
});
