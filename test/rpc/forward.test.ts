import { createServer } from 'node:http';
import t from 'tap';
import { ErrorCode } from '../../src/errors.js';
import { leaderUrl } from '../../src/rpc/forward.js';
import { spec, startServer, token } from './harness.js';

t.test('a replica that does not lead forwards group calls to the leader and answers discover and status itself', async (t) => {
  const leader = await startServer(t);
  const follower = await startServer(t, { forwardPort: leader.port });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1', since: '2026-01-01T00:00:00.000Z' };

  const commit = await follower.call('group.commit', { spec: spec('workers', 2) });
  t.same(commit.result, { id: 'workers', version: 1, stored: true, plan: { create: 0, createLogicalIds: [], destroy: [], replace: [] } });
  t.equal((await leader.store.get('workers'))?.version, 1, 'stored by the leader');
  t.same(follower.store.writes, [], 'the follower stored nothing');
  t.same(follower.controller.calls, [], 'the follower controller was not asked');

  t.same((await follower.call('group.describe', { id: 'workers' })).result.size, 2);
  t.equal((await follower.fail('group.describe', { id: 'nope' })).code, ErrorCode.notFound, "the leader's errors come back as they are");

  const status = (await follower.call('manager.status', {}, null)).result;
  t.match(status, { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' }, 'status is local');

  const batch = await follower.post(
    JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'group.scale', params: { id: 'workers', size: 3 } },
      { jsonrpc: '2.0', id: 2, method: 'manager.status' },
      { jsonrpc: '2.0', method: 'group.scaleUp', params: { id: 'workers' } },
      { jsonrpc: '2.0', id: 3, method: 'group.list' },
    ]),
    { authorization: `Bearer ${token}` },
  );
  t.same(
    batch.body.map((r: { id: number; result: unknown }) => [r.id, r.result && typeof r.result === 'object' && 'leading' in r.result ? r.result.leading : r.result]),
    [
      [1, { id: 'workers', version: 2, size: 3, changed: true }],
      [2, false],
      [3, [{ id: 'workers', version: 3, size: 4, instances: 0, converged: false }]],
    ],
    'a batch mixes local and forwarded answers in order; the notification was forwarded too',
  );

  t.equal((await follower.fail('group.list', {}, 'wrong')).code, ErrorCode.unauthorized, 'refused before forwarding');
  t.equal((await follower.fail('group.scale', { id: 'workers', size: -1 })).code, ErrorCode.invalidParams, 'checked before forwarding');
  t.equal((await leader.store.get('workers'))?.version, 3);
  t.notMatch(follower.logs() + leader.logs(), token);
});

t.test('the token is passed through: a leader with another token refuses', async (t) => {
  const dir = t.testdir({ other: 'another-token' });
  const leader = await startServer(t, { tokenFile: `${dir}/other` });
  const follower = await startServer(t, { forwardPort: leader.port });
  follower.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  t.equal((await follower.fail('group.list')).code, ErrorCode.unauthorized);
});

t.test('without a leader, or when the leader cannot be reached, group calls fail with noLeader', async (t) => {
  const h = await startServer(t);
  h.lead.status = { nodeId: 'node-b', leading: false };
  const error = await h.fail('group.list');
  t.equal(error.code, ErrorCode.noLeader);
  t.equal((await h.call('manager.status', {}, null)).result.leading, false, 'status still answers');
  t.equal((await h.call('rpc.discover', {}, null)).result.openrpc, '1.2.6');

  // A port nothing listens on.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise((resolve) => closed.close(resolve));
  const unreachable = await startServer(t, { forwardPort: port });
  unreachable.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  const e2 = await unreachable.fail('group.list');
  t.equal(e2.code, ErrorCode.noLeader);
  t.match(e2.message, /node-a.*unreachable/);

  // A leader that never answers: the forward gives up after its timeout.
  const hang = createServer(() => undefined);
  await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    hang.closeAllConnections();
    hang.close();
  });
  const slow = await startServer(t, { forwardPort: (hang.address() as { port: number }).port, forwardTimeoutMs: 200 });
  slow.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  const started = Date.now();
  const e3 = await slow.fail('group.list');
  t.equal(e3.code, ErrorCode.noLeader);
  t.match(e3.message, /no answer within 200 ms/);
  t.ok(Date.now() - started < 2000);
});

t.test('a forwarded call reaching a replica that lost leadership is not forwarded again', async (t) => {
  const a = await startServer(t);
  const b = await startServer(t, { forwardPort: a.port });
  // Each believes the other leads: a forwarding loop if forwarded calls were forwarded again.
  a.lead.status = { nodeId: 'node-a', leading: false, leaderNodeId: 'node-b', leaderAddr: '127.0.0.1' };
  b.lead.status = { nodeId: 'node-b', leading: false, leaderNodeId: 'node-a', leaderAddr: '127.0.0.1' };
  t.equal((await b.fail('group.list')).code, ErrorCode.noLeader);
});

t.test('leader URLs', async (t) => {
  t.equal(leaderUrl('10.0.0.5', 8640), 'http://10.0.0.5:8640/rpc');
  t.equal(leaderUrl('10.0.0.5:2377', 8640), 'http://10.0.0.5:8640/rpc', "Swarm's Raft port is not the API's");
  t.equal(leaderUrl('manager-1', 9000), 'http://manager-1:9000/rpc');
  t.equal(leaderUrl('fd00::5', 8640), 'http://[fd00::5]:8640/rpc');
  t.equal(leaderUrl('[fd00::5]:2377', 8640), 'http://[fd00::5]:8640/rpc');
});
