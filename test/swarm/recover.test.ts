// When manager.recover refuses and what it asks of Docker (the real thing is test/e2e/self-managed.test.ts).
import t from 'tap';
import type Docker from 'dockerode';
import { answers, recoverQuorum } from '../../src/swarm/recover.js';
import { createServer } from 'node:net';

const info = (swarm: object) => ({ Swarm: { LocalNodeState: 'active', ControlAvailable: true, NodeID: 'me', NodeAddr: '10.0.0.1', RemoteManagers: [{ NodeID: 'me', Addr: '10.0.0.1:2377' }, { NodeID: 'a', Addr: '10.0.0.2:2377' }, { NodeID: 'b', Addr: '10.0.0.3:2377' }], ...swarm } });

function engine(swarm: object, leader: boolean) {
  const inits: object[] = [];
  const docker = {
    info: async () => info(swarm),
    listNodes: async () => {
      if (!leader) throw new Error('The swarm does not have a leader');
      return [];
    },
    swarmInit: async (o: object) => void inits.push(o),
  } as unknown as Docker;
  return { docker, inits };
}

t.test('refused on a worker, with a leader, or while another manager answers; nothing re-initialised', async (t) => {
  for (const [what, swarm, leader, answering, message] of [
    ['a worker', { ControlAvailable: false }, false, [], /not a Swarm manager/],
    ['a Swarm with a leader', {}, true, [], /has a leader/],
    ['a manager that answers', {}, false, ['10.0.0.3:2377'], /still answer \(10\.0\.0\.3:2377\)/],
  ] as const) {
    const { docker, inits } = engine(swarm, leader);
    await t.rejects(recoverQuorum(docker, async (a) => (answering as readonly string[]).includes(a)), { message }, what);
    t.same(inits, [], `${what}: no swarm init`);
  }
});

t.test('with no leader and no other manager answering: force-new-cluster from this manager', async (t) => {
  const { docker, inits } = engine({}, false);
  const asked: string[] = [];
  const r = await recoverQuorum(docker, async (a) => (asked.push(a), false));
  t.same(asked.sort(), ['10.0.0.2:2377', '10.0.0.3:2377'], 'every other manager probed, not this one');
  t.same(inits, [{ ForceNewCluster: true, ListenAddr: '0.0.0.0:2377', AdvertiseAddr: '10.0.0.1' }]);
  t.same(r, { nodeId: 'me', advertiseAddr: '10.0.0.1', gaveUp: [{ nodeId: 'a', addr: '10.0.0.2:2377' }, { nodeId: 'b', addr: '10.0.0.3:2377' }] });
});

t.test('answers: a listening port answers, a closed one does not', async (t) => {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as { port: number }).port;
  t.equal(await answers(`127.0.0.1:${port}`, 1000), true);
  server.close();
  await new Promise((r) => server.once('close', r));
  t.equal(await answers(`127.0.0.1:${port}`, 1000), false);
});
