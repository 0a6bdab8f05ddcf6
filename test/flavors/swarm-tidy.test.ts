// Which Swarm nodes tidy removes (src/flavors/swarm-tidy.ts): the rule on its own, then a real node left by an
// interrupted join (a machine killed between its join certificate and its first session) on the tests' engine.
import { randomBytes, X509Certificate } from 'node:crypto';
import t from 'tap';
import { GROUP_LABEL, joiningLaunches, LINK_TAG, staleNodes, swarmFlavorKinds, type SwarmNode } from '../../src/flavors/swarm.js';
import { silentLogger } from '../../src/log.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { engine, engineHost } from '../support/engine.js';
import { demuxLog } from '../support/lab.js';

const docker = engine();
const group = `t-tidy-${randomBytes(3).toString('hex')}`;
await docker.createNetwork({ Name: group, Labels: { 'capstan.test': group } });
const managerAddr = `${(await docker.getNetwork(group).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;
const provider = dockerProviderKind({ logger: silentLogger }).create({ engine: engineHost(), network: group });
const made = new Set<string>();

t.teardown(async () => {
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  for (const id of made) await docker.getNode(id).remove({ force: true }).catch(() => undefined);
  await docker.getNetwork(group).remove();
});

t.test('stale nodes: only those no live machine can be, never Capstan\'s own or a Ready one', async (t) => {
  const now = Date.parse('2026-11-25T10:00:00Z');
  const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();
  const node = (id: string, state: SwarmNode['Status']['State'], over: { hostname?: string; labels?: Record<string, string>; created?: string; manager?: boolean } = {}): SwarmNode => ({
    ID: id,
    Version: { Index: 1 },
    CreatedAt: over.created ?? ago(60),
    Spec: { Role: over.manager ? 'manager' : 'worker', Availability: 'active' },
    Description: { ...(over.hostname ? { Hostname: over.hostname } : {}), Engine: { ...(over.labels ? { Labels: over.labels } : {}) } },
    Status: { State: state },
    ...(over.manager ? { ManagerStatus: { Reachability: 'unreachable' as const, Addr: '10.0.0.9:2377' } } : {}),
  });
  const mine = (link: string, group = 'g') => ({ 'capstan.instance': link, [GROUP_LABEL]: group });
  const nodes = [
    node('self', 'down', { labels: mine('gone') }),
    node('ready-gone', 'ready', { hostname: 'h1', labels: mine('gone') }),
    node('down-gone', 'down', { hostname: 'h2', labels: mine('gone') }),
    node('unknown-gone', 'unknown', { hostname: 'h3', labels: mine('gone') }),
    node('down-live', 'down', { hostname: 'h4', labels: mine('live') }),
    node('down-other-group', 'down', { hostname: 'h5', labels: mine('gone', 'other') }),
    node('ghost-old', 'unknown', { created: ago(10) }),
    node('ghost-down', 'down', { created: ago(10) }),
    node('ghost-young', 'unknown', { created: ago(2) }),
    node('ghost-manager', 'unknown', { created: ago(10), manager: true }),
    node('operator-node', 'down', { hostname: 'ops-1', created: ago(10) }),
    node('labelled-by-operator', 'down', { labels: { zone: 'a' }, created: ago(10) }),
  ];
  const view = { group: 'g', liveLinks: new Set(['live']), unjoined: [] as number[], self: 'self', now, ghostAfterMs: 5 * 60_000 };
  const removed = (v: typeof view) => staleNodes(nodes, v).map((s) => `${s.node.ID}: ${s.reason}`);
  t.same(removed(view), ['down-gone: machine gone', 'ghost-old: interrupted join', 'ghost-down: interrupted join']);
  t.same(removed({ ...view, unjoined: [now - 30 * 60_000] }), ['down-gone: machine gone'], 'a machine launched before the ghosts and not joined yet may be one of them');
  t.same(removed({ ...view, unjoined: [now - 60_000] }), removed(view), 'one launched after them cannot be');
  t.same(removed({ ...view, group: 'other' }), ['down-other-group: machine gone', 'ghost-old: interrupted join', 'ghost-down: interrupted join'], 'labelled nodes only of the group');
  t.same(removed({ ...view, ghostAfterMs: 20 * 60_000 }), ['down-gone: machine gone'], 'ghosts only once older than the age');
  // Which machines may be joining: no node, or only Down ones, and not stopped (a pool kept stopped).
  const machine = (id: string, state: 'running' | 'stopped' | 'stopping', launchedAt: number) => ({ id, state, launchedAt, tags: { [LINK_TAG]: id } });
  const byLink = new Map([
    ['up', [node('n-up', 'ready')]],
    ['down', [node('n-down', 'down')]],
    ['pooled', [node('n-pooled', 'down')]],
  ]);
  const live = [machine('up', 'running', 1), machine('down', 'running', 2), machine('pooled', 'stopped', 3), machine('new', 'running', 4), machine('stopping', 'stopping', 5)];
  t.same(joiningLaunches(live, byLink), [2, 4], 'a machine whose node is Down, and one with none; not the stopped ones');
});

t.test('a node left by an interrupted join goes once stale, not while a machine that may be it has not joined', async (t) => {
  const ghostAfterMs = 8000;
  const flavor = swarmFlavorKinds({ docker, logger: silentLogger, pollMs: 200, ghostAfterMs })[0]!.create({ managerAddr });
  const tags = { 'capstan.group': group, 'capstan.config': 'c1' };
  // A machine of the group that has not joined (yet): it was launched before the ghost, so it might be that node.
  const [waiting] = await provider.provision([{ tags: { ...tags, 'capstan.link': 'waiting' }, init: 'sleep 3600' }], `${group}-waiting`);
  const nodeIds = async () => new Set(((await docker.listNodes()) as SwarmNode[]).map((n) => n.ID));
  const token = (await docker.swarmInspect()).JoinTokens.Worker;
  // The machine begins to join and freezes its dockerd the moment the certificate is on disk: the manager has listed
  // its node by then, and the node's first session (which names it) never comes. It prints the certificate, whose
  // subject names the node: other test files' machines may join at the same moment.
  const cert = '/var/lib/docker/swarm/certificates/swarm-node.crt';
  const init = `docker swarm join --token ${token} ${managerAddr} >/dev/null 2>&1 &\nuntil [ -e ${cert} ]; do :; done\nkill -STOP "$(cat /var/run/docker.pid)"\ncat ${cert}`;
  const [joining] = await provider.provision([{ tags, init }], `${group}-ghost`);
  const nodeOf = async () => {
    const logs = demuxLog((await docker.getContainer(joining!.id).logs({ stdout: true, stderr: true })) as unknown as Buffer).join('\n');
    const pem = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----/.exec(logs)?.[0];
    return pem ? /^CN=(\w+)$/m.exec(new X509Certificate(pem).subject)?.[1] : undefined;
  };
  let ghost: string | undefined;
  for (const end = Date.now() + 60_000; !ghost && Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    const id = await nodeOf();
    if (id && (await nodeIds()).has(id)) ghost = id;
  }
  await docker.getContainer(joining!.id).kill();
  t.ok(ghost, 'the join began');
  made.add(ghost!);
  await provider.destroy([joining!.id]);
  const node = (await docker.getNode(ghost!).inspect()) as SwarmNode;
  t.notOk(node.Description?.Hostname, 'a nameless node');
  t.match(node, { Status: { State: /^(unknown|down)$/ } }, '... Unknown or Down');

  await flavor.tidy!(group, []);
  t.ok((await nodeIds()).has(ghost!), 'kept while young');
  await new Promise((r) => setTimeout(r, ghostAfterMs));
  await flavor.tidy!(group, [waiting!]);
  t.ok((await nodeIds()).has(ghost!), 'kept while a machine launched before it has not joined');
  await provider.destroy([waiting!.id]);
  const self = (await docker.info()).Swarm.NodeID as string;
  await flavor.tidy!(group, []);
  const after = await nodeIds();
  t.notOk(after.has(ghost!), 'removed once stale and no machine can be it');
  t.ok(after.has(self), 'the node Capstan runs on stays');
});
