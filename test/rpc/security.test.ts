// The API's closed door and its documented error codes (issue 12, items 1, 2, 4 and 8): what a caller without the
// token learns, the bound on a batch's answers, request and idle timeouts, the operator's largest group and
// allowlists as invalid params located by path (refused before any request leaves), outOfBounds whichever method,
// and providerFailure with the provider's own code. No Docker engine: providers talk to local fakes.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { ErrorCode, markProviderFailure } from '../../src/errors.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { Controller } from '../../src/group/controller.js';
import { maxGroupSize, validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { SimulatedCloud, simulatorProviderKind } from '../../src/providers/simulator/index.js';
import type { OperatorAllow } from '../../src/providers/allow.js';
import type { Plugins } from '../../src/spi/index.js';
import { convergedStatus } from '../support/recording-controller.js';
import { spec, startServer, testValidate } from './harness.js';

const req = (method: string, params?: unknown, id: number | undefined = 1) => ({ jsonrpc: '2.0', method, ...(params !== undefined && { params }), ...(id !== undefined && { id }) });
const auth = { authorization: `Bearer test-token-7f3a9c1e5b2d4f6a8c0e` };

t.test('without the token manager.status shows leadership and version only; with it, store problems too', async (t) => {
  const bad = { id: 'web', version: 4, config: 'capstan.group.web.v4', configId: 'x1', message: 'invalid spec', problems: [{ path: '/instance/properties/endpoint', message: 'https://secret.example' }] };
  const h = await startServer(t, { storeProblems: () => [bad], loading: () => 'loading: Swarm said no' });
  const open = (await h.post(JSON.stringify(req('manager.status')))).body.result;
  t.same(open, { nodeId: 'node-a', leading: true, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', since: h.lead.status.since, version: '0.1.0' });
  t.notMatch(JSON.stringify(open), /secret|web|Swarm said/, 'nothing about groups, the store or errors');
  const wrong = (await h.post(JSON.stringify(req('manager.status')), { authorization: 'Bearer nope' })).body.result;
  t.notOk('storeProblems' in wrong, 'a wrong token is no token');
  const full = (await h.call('manager.status')).result;
  t.same(full.storeProblems, [bad]);
  t.equal(full.loading, 'loading: Swarm said no');
  t.type(full.uptimeSeconds, 'number');
});

t.test("a batch's answers are bounded: the call that goes over is answered tooLarge, the rest are not run", async (t) => {
  const h = await startServer(t, { maxBatchResponseBytes: 3000 });
  await h.call('group.commit', { spec: spec('a', 3) });
  h.controller.statuses.set('a', convergedStatus('a', 1, 8));
  const one = (await h.post(JSON.stringify([req('group.describe', { id: 'a' }, 1)]), auth)).text.length;
  t.ok(one > 1000 && one < 1500, `one describe is ${one} bytes`);
  const writes = h.store.writes.length;
  const batch = [req('group.describe', { id: 'a' }, 1), req('group.describe', { id: 'a' }, 2), req('group.describe', { id: 'a' }, 3), req('group.commit', { spec: spec('b', 1) }, 4), { jsonrpc: '2.0', method: 'group.list' }, { nope: true }];
  const res = await h.post(JSON.stringify(batch), auth);
  t.equal(res.status, 200);
  t.same(res.body.map((r: { id: unknown }) => r.id), [1, 2, 3, 4, null], 'every call answered in order, the notification not');
  t.ok(res.body[0].result && res.body[1].result, 'what fits is answered');
  t.match(res.body[2].error, { code: ErrorCode.tooLarge, data: { limit: 3000, ran: true } });
  t.match(res.body[3].error, { code: ErrorCode.tooLarge, data: { limit: 3000, ran: false } });
  t.equal(res.body[4].error.code, -32600, 'an invalid entry is still answered as invalid');
  t.equal(h.store.writes.length, writes, 'the commit after the limit did not run');
  t.ok(res.text.length < 3000 + 600, `${res.text.length} bytes in all`);
});

t.test('a batch of 100 rpc.discover: the whole document for a token holder, a small answer for anyone else', async (t) => {
  const h = await startServer(t);
  const body = JSON.stringify(Array.from({ length: 100 }, (_, i) => req('rpc.discover', {}, i)));
  const open = await h.post(body);
  t.equal(open.body.length, 100, 'every call answered');
  const answered = open.body.filter((r: { result?: unknown }) => r.result).length;
  t.ok(answered >= 1 && answered < 10, `${answered} documents`);
  t.ok(open.text.length <= 64 * 1024 + 100 * 200, `${open.text.length} bytes for ${body.length} sent without a token`);
  const full = await h.post(body, auth);
  t.equal(full.body.filter((r: { result?: unknown }) => r.result).length, 100, `${full.text.length} bytes with the token`);
});

/** Resolves with the milliseconds until the server closes a raw connection on which `send` was written. */
function closedAfter(port: number, send: string, then?: (data: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let t0 = Date.now();
    let got = '';
    socket.on('data', (d) => {
      got += String(d);
      if (then && got.includes('\r\n\r\n')) {
        then(got);
        t0 = Date.now();
        then = undefined;
      }
    });
    socket.on('close', () => resolve(Date.now() - t0));
    socket.on('error', reject);
    socket.write(send);
    setTimeout(() => reject(new Error('the server kept the connection open')), 8000).unref();
  });
}

t.test('request and idle timeouts: a slow request and an idle connection are closed', async (t) => {
  const h = await startServer(t, { requestTimeoutMs: 400, idleTimeoutMs: 300 });
  const slow = await closedAfter(h.port, 'POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"jsonrpc":');
  t.ok(slow >= 300 && slow < 4000, `a request still arriving after 400 ms: closed after ${slow} ms`);
  const headers = await closedAfter(h.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
  t.ok(headers < 4000, `headers never finished: closed after ${headers} ms`);
  let answer = '';
  const idle = await closedAfter(h.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', (d) => (answer = d));
  t.match(answer, /^HTTP\/1.1 200/);
  t.ok(idle >= 200 && idle < 4000, `idle after its answer: closed after ${idle} ms`);
  t.equal((await h.call('group.list')).result.length, 0, 'a normal call is unaffected');
});

t.test("the operator's largest group: invalid params at the size's path, on commit and scale", async (t) => {
  const plugins: Plugins = { providers: new Map([['aws', { name: 'aws', schema: { type: 'object' }, create: () => { throw new Error('not run'); } }]]), flavors: new Map([['swarm-worker', vanillaFlavorKind]]), checks: [maxGroupSize(5)] };
  const h = await startServer(t, { validate: (raw) => validateSpec(raw, plugins) });
  const over = await h.fail('group.commit', { spec: spec('a', 6, { bounds: { min: 0, max: 100 } }) });
  t.equal(over.code, ErrorCode.invalidParams);
  t.match(over.data.problems, [{ path: '/spec/allocation', message: /size 6 is above the largest group this service manages, 5/ }]);
  const ids = await h.fail('group.commit', { spec: spec('a', 0, { bounds: undefined, allocation: { logicalIds: ['1', '2', '3', '4', '5', '6'] } }), pretend: true });
  t.match(ids, { code: ErrorCode.invalidParams, data: { problems: [{ path: '/spec/allocation' }] } }, 'logical ids count, and pretend is refused alike');
  t.same(h.store.writes, []);
  t.same(h.controller.calls.filter((c) => c.op === 'preview'), [], 'nothing was previewed');

  await h.call('group.commit', { spec: spec('a', 5, { bounds: { min: 0, max: 100 } }) });
  t.match(await h.fail('group.scale', { id: 'a', size: 6 }), { code: ErrorCode.invalidParams, data: { problems: [{ path: '/size', message: /above the largest group/ }] } });
  t.match(await h.fail('group.scaleUp', { id: 'a' }), { code: ErrorCode.invalidParams, data: { problems: [{ path: '/count' }] } });
  t.same(h.store.writes, ['commit a v1']);
});

t.test('a size outside the bounds is outOfBounds (-32004) whichever method, with {size, min, max}', async (t) => {
  const h = await startServer(t);
  t.match(await h.fail('group.commit', { spec: spec('a', 11) }), { code: ErrorCode.outOfBounds, data: { size: 11, min: 1, max: 10 } });
  t.match(await h.fail('group.commit', { spec: spec('a', 0), pretend: true }), { code: ErrorCode.outOfBounds, data: { size: 0, min: 1, max: 10 } });
  t.same(h.store.writes, []);
  await h.call('group.commit', { spec: spec('a', 3) });
  t.match(await h.fail('group.scale', { id: 'a', size: 11 }), { code: ErrorCode.outOfBounds, data: { size: 11, min: 1, max: 10 } });
  t.match(await h.fail('group.scaleDown', { id: 'a', count: 3 }), { code: ErrorCode.outOfBounds, data: { size: 0 } });
  t.match(await h.fail('group.commit', { spec: spec('a', 11, { update: { maxSurge: 0, maxUnavailable: 0 } }) }), { code: ErrorCode.invalidParams }, 'with other problems too: invalid params listing them all');
  t.same(h.store.writes, ['commit a v1']);
});

/** An HTTP server that answers every request with 500 and counts the requests that reached it. */
async function fakeEndpoint(t: Test): Promise<{ url: string; port: number; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((r, res) => {
    requests.push(r);
    res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'fake endpoint' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, port, requests };
}

/** The API over a real controller and real docker and aws kinds with the operator's `allow`. */
async function withKinds(t: Test, allow: OperatorAllow) {
  process.env.AWS_ACCESS_KEY_ID ??= 'testing';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'testing';
  const plugins: Plugins = {
    providers: new Map([
      ['docker', dockerProviderKind({ logger: silentLogger, allow, timeoutMs: 2000 })],
      ['aws', awsProviderKind({ logger: silentLogger, allow, maxAttempts: 1 })],
    ]),
    flavors: new Map([['swarm-worker', vanillaFlavorKind]]),
  };
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  return startServer(t, { controller, validate: (raw) => validateSpec(raw, plugins) });
}

const dockerAt = (engine: string, more: object = {}) => ({ provider: 'docker', properties: { engine, ...more } });
const awsAt = (endpoint: string) => ({ provider: 'aws', properties: { region: 'us-east-1', endpoint, subnetIds: ['subnet-0a'], launch: { ImageId: 'ami-1' } } });

t.test("engines and endpoints off the operator's list are refused by path before any request leaves", async (t) => {
  const fake = await fakeEndpoint(t);
  const h = await withKinds(t, {});
  for (const pretend of [true, false]) {
    const engine = await h.fail('group.commit', { spec: spec('a', 1, { instance: dockerAt(`tcp://127.0.0.1:${fake.port}`) }), pretend });
    t.match(engine, { code: ErrorCode.invalidParams, data: { problems: [{ path: '/spec/instance/properties/engine', message: /not allowed/ }] } });
    const endpoint = await h.fail('group.commit', { spec: spec('a', 1, { instance: awsAt(fake.url) }), pretend });
    t.match(endpoint, { code: ErrorCode.invalidParams, data: { problems: [{ path: '/spec/instance/properties/endpoint', message: /not allowed/ }] } });
  }
  const privileged = await h.fail('group.commit', { spec: spec('a', 1, { instance: dockerAt('unix:///var/run/docker.sock', { privileged: true, network: 'host', capDrop: [] }) }), pretend: true });
  t.same(
    privileged.data.problems.map((p: { path: string }) => p.path),
    ['/spec/instance/properties/privileged', '/spec/instance/properties/network'],
    'privileged and the host network need the operator (capDrop is moot once privileged)',
  );
  const caps = await h.fail('group.commit', { spec: spec('a', 1, { instance: dockerAt('/var/run/docker.sock', { capDrop: [] }) }), pretend: true });
  t.match(caps.data.problems, [{ path: '/spec/instance/properties/capDrop', message: /grants SYS_RESOURCE/ }]);
  t.equal(fake.requests.length, 0, 'nothing reached the engine or endpoint');
  t.same(h.store.writes, []);
});

t.test('allowed by the operator, the same specs reach their engine and endpoint; a failure there is providerFailure with its code', async (t) => {
  const fake = await fakeEndpoint(t);
  const h = await withKinds(t, { endpoints: [`tcp://127.0.0.1:${fake.port}`, `${fake.url}/`] });
  const engine = await h.fail('group.commit', { spec: spec('a', 1, { instance: dockerAt(`tcp://127.0.0.1:${fake.port}`) }), pretend: true });
  t.match(engine, { code: ErrorCode.providerFailure, message: /docker provider failed \(describe\)/, data: { code: 'HTTP 500', provider: 'docker', operation: 'describe' } });
  const endpoint = await h.fail('group.commit', { spec: spec('a', 1, { instance: awsAt(fake.url) }), pretend: true });
  t.match(endpoint, { code: ErrorCode.providerFailure, data: { provider: 'aws', operation: 'describe', code: /./ } });
  t.ok(fake.requests.length >= 2, `${fake.requests.length} requests reached the fakes`);
  t.same(h.store.writes, [], 'pretend stores nothing');
});

t.test('provider failures are providerFailure (-32006) with the provider code, in every method that asks a provider', async (t) => {
  const cloud = new SimulatedCloud();
  const plugins: Plugins = { providers: new Map([['simulator', simulatorProviderKind(cloud)]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  const h = await startServer(t, { controller, validate: (raw) => validateSpec(raw, plugins) });
  const sim = (failureRate: number) => ({ id: 'web', allocation: { size: 1 }, instance: { provider: 'simulator', properties: { failureRate } }, flavor: { kind: 'vanilla', properties: {} } });
  const expected = { code: ErrorCode.providerFailure, data: { code: 'SimulatedFailure', provider: 'simulator', operation: 'describe' } };
  t.match(await h.fail('group.commit', { spec: sim(1), pretend: true }), expected, 'pretend');
  t.same((await h.call('group.commit', { spec: sim(1) })).result, { id: 'web', version: 1, stored: true }, 'a commit stores without its informative plan');
  t.match(await h.fail('group.destroyInstances', { id: 'web', instanceIds: ['sim-00000'] }), expected, 'destroyInstances');
  t.match(await h.fail('group.destroy', { id: 'web' }), expected, 'destroy');
});

t.test('only errors a provider threw become providerFailure; others stay internal and opaque', async (t) => {
  const h = await startServer(t, { validate: testValidate });
  h.controller.failWith = { op: 'preview', error: Object.assign(new Error('a bug with a secret'), { code: 'EBUG' }) };
  const internal = await h.fail('group.commit', { spec: spec(), pretend: true });
  t.same(internal, { code: -32603, message: 'Internal error' });
  h.controller.failWith = { op: 'preview', error: markProviderFailure(Object.assign(new Error('Request limit exceeded.'), { code: 'RequestLimitExceeded' }), 'aws', 'describe') };
  t.match(await h.fail('group.commit', { spec: spec(), pretend: true }), { code: ErrorCode.providerFailure, data: { code: 'RequestLimitExceeded', provider: 'aws', operation: 'describe' } });
});
