// HTTPS (issue 12, item 4): the API over TLS with a self-signed certificate made by openssl, a follower forwarding
// to the leader over TLS with the certificate pinned, and no request (no token) sent to a leader presenting another.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ErrorCode } from '../../src/errors.js';
import { tlsSettings } from '../../src/settings.js';
import { spec, startServer, token } from './harness.js';

/** A self-signed certificate and its key (PEM files) for CN=capstan, as an operator would make one. */
function selfSigned(t: Test, name: string): { certFile: string; keyFile: string; cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'capstan-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=capstan', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

/** Two leaf certificates signed by one CA, each file the leaf then the CA (a chain, as a CA-signed certificate comes). */
function sameCa(t: Test): { a: { cert: Buffer; key: Buffer }; b: { cert: Buffer; key: Buffer } } {
  const ca = selfSigned(t, 'ca');
  const dir = mkdtempSync(join(tmpdir(), 'capstan-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const leaf = (name: string) => {
    const [key, csr, crt] = ['key', 'csr', 'crt'].map((x) => join(dir, `${name}.${x}`)) as [string, string, string];
    execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '1', '-out', crt], { stdio: 'ignore' });
    return { cert: Buffer.concat([readFileSync(crt), ca.cert]), key: readFileSync(key) };
  };
  return { a: leaf('replicas'), b: leaf('someone-else') };
}

/** One JSON-RPC call over HTTPS trusting `ca`; the status and body, or the TLS error. */
function callTls(port: number, ca: Buffer, body: object, auth = true): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/rpc', method: 'POST', ca, checkServerIdentity: () => undefined, headers: auth ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += String(c)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

t.test('tlsSettings: both files or neither', async (t) => {
  const { certFile, keyFile, cert } = selfSigned(t, 'a');
  t.equal(tlsSettings({}), undefined);
  t.same(tlsSettings({ CAPSTAN_TLS_CERT_FILE: certFile, CAPSTAN_TLS_KEY_FILE: keyFile })?.cert, cert);
  t.throws(() => tlsSettings({ CAPSTAN_TLS_CERT_FILE: certFile }), /both CAPSTAN_TLS_CERT_FILE and CAPSTAN_TLS_KEY_FILE/);
});

t.test('the API over HTTPS; plain HTTP on its port gets nothing', async (t) => {
  const a = selfSigned(t, 'a');
  const h = await startServer(t, { tls: { cert: a.cert, key: a.key } });
  const res = await callTls(h.port, a.cert, { jsonrpc: '2.0', id: 1, method: 'group.list' });
  t.same(res.body, { jsonrpc: '2.0', id: 1, result: [] });
  await t.rejects(fetch(`http://127.0.0.1:${h.port}/rpc`, { method: 'POST', body: '{}' }), 'no plain HTTP');
  const other = selfSigned(t, 'other');
  await t.rejects(callTls(h.port, other.cert, { jsonrpc: '2.0', id: 2, method: 'manager.status' }), 'a client trusting another certificate refuses it');
});

t.test('a follower forwards to the leader over TLS, and only to a leader presenting the same certificate', async (t) => {
  const a = selfSigned(t, 'a');
  const leader = await startServer(t, { tls: { cert: a.cert, key: a.key } });
  const follower = await startServer(t, { tls: { cert: a.cert, key: a.key }, forwardPort: leader.port, forwardTimeoutMs: 5000 });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1:2377', since: '2026-01-01T00:00:00.000Z' };
  const commit = await callTls(follower.port, a.cert, { jsonrpc: '2.0', id: 1, method: 'group.commit', params: { spec: spec('workers', 2) } });
  t.match(commit.body.result, { id: 'workers', version: 1, stored: true });
  t.equal((await leader.store.get('workers'))?.version, 1, 'stored by the leader');

  // A server with another certificate where the leader should be: the follower sends it nothing.
  const b = selfSigned(t, 'b');
  const impostor = await startServer(t, { tls: { cert: b.cert, key: b.key } });
  const misled = await startServer(t, { tls: { cert: a.cert, key: a.key }, forwardPort: impostor.port, forwardTimeoutMs: 5000 });
  misled.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-x', leaderAddr: '127.0.0.1', since: '2026-01-01T00:00:00.000Z' };
  const refused = await callTls(misled.port, a.cert, { jsonrpc: '2.0', id: 2, method: 'group.commit', params: { spec: spec('workers', 2) } });
  t.match(refused.body.error, { code: ErrorCode.noLeader, message: /unreachable/ });
  t.same(impostor.store.writes, [], 'the impostor, which would have stored it, got no call');
});

t.test('pinned, not merely verified: a leader with another certificate from the same CA gets nothing either', async (t) => {
  const { a, b } = sameCa(t);
  const impostor = await startServer(t, { tls: b });
  const misled = await startServer(t, { tls: a, forwardPort: impostor.port, forwardTimeoutMs: 5000 });
  misled.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-x', leaderAddr: '127.0.0.1', since: '2026-01-01T00:00:00.000Z' };
  const refused = await callTls(misled.port, a.cert, { jsonrpc: '2.0', id: 1, method: 'group.commit', params: { spec: spec('workers', 2) } });
  t.match(refused.body.error, { code: ErrorCode.noLeader });
  t.same(impostor.store.writes, [], 'no call reached it');
  const leader = await startServer(t, { tls: a });
  const follower = await startServer(t, { tls: a, forwardPort: leader.port, forwardTimeoutMs: 5000 });
  follower.lead.status = { ...misled.lead.status, leaderNodeId: 'node-a' };
  t.match((await callTls(follower.port, a.cert, { jsonrpc: '2.0', id: 2, method: 'group.list' })).body, { result: [] }, 'the same chain is forwarded to');
});
