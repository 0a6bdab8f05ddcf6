// GET /events (issue 17 item 3): refused without the token (and with a wrong one), the leader's replica streams its
// feed (group versions as the API stores them, progress, decisions) after a hello that says who leads, keepalives
// keep it alive, a follower relays the leader's stream, a stream ends when its replica stops leading, and the
// server's close ends open streams at once; over HTTPS a follower relays only from a leader presenting this service's
// certificate. The parser the page uses reads every piece. No Docker.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { feed } from '../../src/feed.js';
import { silentLogger } from '../../src/log.js';
import { SseParser, type SseEvent } from '../../src/console/sse.js';
import { createRpcServer } from '../../src/rpc/server.js';
import { spec, startServer, testValidate, token, type Harness } from '../rpc/harness.js';
import { MemoryStore } from '../support/memory-store.js';
import { RecordingController } from '../support/recording-controller.js';
import { until } from '../support/until.js';

interface Opened {
  readonly status: number;
  readonly events: SseEvent[];
  readonly parser: SseParser;
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens /events as the page does (fetch, Authorization header) and collects its events until it ends. */
async function open(t: Test, url: string, auth: string | null = token): Promise<Opened> {
  const abort = new AbortController();
  const res = await fetch(`${url}/events`, { headers: auth === null ? {} : { authorization: `Bearer ${auth}` }, signal: abort.signal });
  const events: SseEvent[] = [];
  const parser = new SseParser();
  let ended: Promise<void> = Promise.resolve();
  if (res.status === 200 && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    ended = (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          events.push(...parser.push(value));
        }
      } catch {
        // aborted
      }
    })();
  } else await res.body?.cancel();
  t.teardown(() => abort.abort());
  return { status: res.status, events, parser, ended, close: () => abort.abort() };
}

const data = (e: SseEvent | undefined) => JSON.parse(e?.data ?? 'null');

t.test('the parser: pieces of any size, CRLF, comments, multi-line data, ids', async (t) => {
  const text = 'retry: 1000\r\nevent: hello\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: keepalive\n\nid: 7\nevent: x\ndata:2\n\ndata: plain\n\n';
  for (const size of [1, 2, 5, text.length]) {
    const p = new SseParser();
    const out: SseEvent[] = [];
    for (let i = 0; i < text.length; i += size) out.push(...p.push(text.slice(i, i + size)));
    t.same(out, [{ event: 'hello', data: '{"a":\n1}' }, { event: 'x', data: '2', id: '7' }, { event: 'message', data: 'plain', id: '7' }], `in pieces of ${size}`);
  }
});

t.test('without the token, or with a wrong one: 401 and no stream', async (t) => {
  const h = await startServer(t);
  for (const auth of [null, 'wrong-token', '']) {
    const s = await open(t, h.url, auth);
    t.equal(s.status, 401, `token ${JSON.stringify(auth)}`);
  }
  const res = await fetch(`${h.url}/events?token=${token}`);
  t.equal(res.status, 401, 'a token in the query string is no token');
  await res.body?.cancel();
});

t.test('the leader streams what happens, after a hello; keepalives come between', async (t) => {
  const h = await startServer(t, { events: { heartbeatMs: 100 } });
  const s = await open(t, h.url);
  t.equal(s.status, 200);
  await until('hello', () => s.events.length >= 1, 5000);
  t.equal(s.events[0]!.event, 'hello');
  t.match(data(s.events[0]), { nodeId: 'node-a', leading: true, leaderNodeId: 'node-a', heartbeatMs: 100 });

  await h.call('group.commit', { spec: spec('workers', 3) });
  await h.call('group.scale', { id: 'workers', size: 4 });
  feed.publish({ type: 'autoscale.decision', group: 'workers', decision: { at: 0, group: 'workers', action: 'none', reason: 'idle', message: 'nothing pending' }, at: new Date().toISOString() });
  await until('3 events', () => s.events.length >= 4, 5000);
  t.same(
    s.events.slice(1).map((e) => [e.event, data(e).group, data(e).version ?? data(e).decision?.reason]),
    [
      ['group.version', 'workers', 1],
      ['group.version', 'workers', 2],
      ['autoscale.decision', 'workers', 'idle'],
    ],
  );
  const lines = s.parser.lines;
  await until('a keepalive', () => s.parser.lines > lines, 5000);
});

t.test('a follower relays the leader\'s stream; streams end when leadership moves', async (t) => {
  const leader = await startServer(t, { events: { leadershipCheckMs: 50 } });
  const follower: Harness = await startServer(t, { leading: false, forwardPort: leader.port, events: { leadershipCheckMs: 50 } });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  t.equal((await open(t, follower.url, 'wrong')).status, 401, 'the follower refuses a wrong token itself');

  const relayed = await open(t, follower.url);
  t.equal(relayed.status, 200);
  await until('hello', () => relayed.events.length >= 1, 5000);
  t.match(data(relayed.events[0]), { nodeId: 'node-a', leading: true }, "the leader's own hello");
  await follower.call('group.commit', { spec: spec('relayed', 2) });
  await until('the version', () => relayed.events.some((e) => e.event === 'group.version' && data(e).group === 'relayed'), 5000);
  t.pass('a commit through the follower is seen on its stream');

  const direct = await open(t, leader.url);
  await until('hello', () => direct.events.length >= 1, 5000);
  leader.lead.status = { nodeId: 'node-a', leading: false, leaderNodeId: 'node-c', leaderAddr: '127.0.0.9' };
  await direct.ended;
  t.pass("the leader's stream ended when it stopped leading");
  await relayed.ended;
  t.pass('and with it the relay');

  follower.lead.status = { nodeId: 'node-b', leading: false };
  const none = await fetch(`${follower.url}/events`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(none.status, 503, 'no leader known: 503');
  await none.body?.cancel();
});

t.test("the server's close ends open streams at once (an open API, as CAPSTAN_INSECURE_OPEN=1 runs, streams without a token)", async (t) => {
  const server = createRpcServer({ store: new MemoryStore(), controller: new RecordingController(), validate: testValidate, leadership: { status: () => ({ leading: true }) }, insecureOpen: true, logger: silentLogger });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const s = await open(t, `http://127.0.0.1:${(server.server.address() as { port: number }).port}`, null);
  t.equal(s.status, 200);
  await until('hello', () => s.events.length >= 1, 5000);
  const started = Date.now();
  await server.close();
  await s.ended;
  t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms with a stream open`);
});

/** A self-signed certificate and key (PEM) for CN=capstan, made by openssl as an operator would. */
function selfSigned(t: Test): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'capstan-events-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=capstan', '-keyout', join(dir, 'key'), '-out', join(dir, 'cert')], { stdio: 'ignore' });
  return { cert: readFileSync(join(dir, 'cert')), key: readFileSync(join(dir, 'key')) };
}

/** GET /events over HTTPS trusting `ca`: the status, and the events read until `enough` holds (or 5 s pass). */
function openTls(port: number, ca: Buffer, enough: (events: SseEvent[]) => boolean): Promise<{ status: number; events: SseEvent[] }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet({ host: '127.0.0.1', port, path: '/events', ca, checkServerIdentity: () => undefined, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const events: SseEvent[] = [];
      const parser = new SseParser();
      const finish = () => (clearTimeout(timer), req.destroy(), resolve({ status: res.statusCode ?? 0, events }));
      const timer = setTimeout(finish, 5000);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        events.push(...parser.push(chunk));
        if (enough(events)) finish();
      });
      res.on('end', finish);
    });
    req.on('error', reject);
  });
}

t.test('over HTTPS: a follower relays only from a leader presenting this service\'s certificate', async (t) => {
  const ours = selfSigned(t);
  const leader = await startServer(t, { tls: ours });
  const follower = await startServer(t, { tls: ours, leading: false, forwardPort: leader.port });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  const relayed = openTls(follower.port, ours.cert, (events) => events.some((e) => e.event === 'group.removed'));
  await until('the relay open', () => feed.listeners > 0, 5000);
  feed.publish({ type: 'group.removed', group: 'over-tls', at: new Date().toISOString() });
  const got = await relayed;
  t.equal(got.status, 200);
  t.same(got.events.map((e) => e.event), ['hello', 'group.removed'], 'hello and the event, relayed over TLS');

  const other = selfSigned(t);
  const impostor = await startServer(t, { tls: other });
  const fooled = await startServer(t, { tls: ours, leading: false, forwardPort: impostor.port });
  fooled.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-x', leaderAddr: '127.0.0.1' };
  const refused = await openTls(fooled.port, ours.cert, () => true);
  t.equal(refused.status, 502, 'a leader with another certificate gets nothing: 502');
});
