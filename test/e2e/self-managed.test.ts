// A control plane that manages itself (issue 15): a Swarm whose every manager is a machine Capstan made, grown from
// one seed (`swarm/lab.sh up --self-managed`), each running a Capstan replica; then managers 3 -> 5 -> 3 with a
// sampler every 250 ms proving a leader and a quorum at every moment and no even number at rest. Identity, not
// counts: the seed and the machines that were there stay. The web console in a browser against this deployment is
// ./console-live.ts, run after the first scenario. Part of `npm test`; CAPSTAN_E2E=0 leaves it out.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { sleep, waitFor } from '../support/lab.js';
import { consoleLive } from './console-live.js';
import { GROUP, run, SelfLab, settled, TOP } from './self-lab.js';

/** Samples every 250 ms: a Swarm leader answered, and Raft had a majority of its managers reachable. */
class Quorum {
  readonly samples: { at: number; managers: number; reachable: number; leader: boolean }[] = [];
  /** When each manager machine was last seen running. */
  readonly lastSeen = new Map<string, number>();
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly lab: SelfLab) {
    this.loop = this.run();
  }

  private async run() {
    while (!this.stopped) {
      const t0 = Date.now();
      const members = await this.lab.members().catch(() => []);
      for (const m of members) this.lastSeen.set(m.id, t0);
      for (const m of members) {
        const nodes = await this.lab.nodes(m).catch(() => undefined);
        if (!nodes?.length) continue;
        const managers = nodes.filter((n) => n.reachability !== '');
        this.samples.push({ at: t0, managers: managers.length, reachable: managers.filter((n) => n.reachability === 'Reachable').length, leader: nodes.some((n) => n.leader) });
        break;
      }
      await sleep(Math.max(0, 250 - (Date.now() - t0)));
    }
  }

  async stop() {
    this.stopped = true;
    await this.loop;
  }
}

if (process.env.CAPSTAN_E2E === '0') {
  t.plan(0, 'end-to-end lab tests switched off by CAPSTAN_E2E=0');
} else {
  t.setTimeout(20 * 60_000);
  const lab = new SelfLab();
  const t0 = Date.now();
  t.teardown(() => lab.lab(['down']).then(() => undefined));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void lab.lab(['down']).finally(() => process.exit(130)));
  await lab.lab(['up', '--self-managed']);
  t.comment(`MEASURE self_managed_up ${Math.round((Date.now() - t0) / 100) / 10} s (seed to 3 managers, images included)`);
  const seed = readFileSync(`${lab.dir}/seed`, 'utf8').trim();

  await t.test('a Swarm of 3 grown from one seed: every manager a machine of the group, each running Capstan', async (t) => {
    const three = await waitFor('3 managers', () => settled(lab, 3), 120_000, 1000);
    t.ok(three.some((m) => m.id === seed), `the seed ${seed.slice(0, 12)} is one of the 3 (adopted, not replaced)`);
    const d = await lab.anyRpc<{ instances: { id: string; health: string }[] }>('group.describe', { id: GROUP });
    t.same(d.instances.map((i) => i.id).sort(), three.map((m) => m.id).sort(), 'the group’s instances are exactly the 3 manager machines');
    const nodes = await lab.nodes(three[0]!);
    t.equal(nodes.length, 3, 'the Swarm has exactly these 3 nodes');
    t.ok(nodes.every((n) => n.reachability === 'Reachable' && n.status === 'Ready'), 'all Ready, Reachable managers');
  });

  // The web console on this real deployment (issue 17); it leaves the group at 3 managers, settled.
  await t.test('the web console on the real deployment: sign-in, scale, pause and resume, the stream across a restart', (t) => consoleLive(t, lab));

  await t.test('managers 3 -> 5 -> 3: odd at rest, a leader and a quorum at every sample, the first 3 stay', async (t) => {
    const first = (await lab.members()).map((m) => m.id);
    const even = (await lab.anyRpc('group.scale', { id: GROUP, size: 4 }).then(() => undefined, (e: unknown) => e)) as { code?: number; data?: unknown } | undefined;
    t.equal(even?.code, -32602, 'an even size is refused');
    t.match(JSON.stringify(even?.data), /4 managers.*an even number.*use 3 or 5/, 'with the reason and the sizes that fit');
    t.same((await lab.members()).map((m) => m.id), first, 'and changes nothing');
    const q = new Quorum(lab);
    const tUp = Date.now();
    await lab.anyRpc('group.scale', { id: GROUP, size: 5 });
    const five = await waitFor('5 managers', () => settled(lab, 5), 240_000, 1000);
    t.comment(`MEASURE managers_3_to_5 ${Math.round((Date.now() - tUp) / 100) / 10} s`);
    t.ok(first.every((id) => five.some((m) => m.id === id)), 'the 3 from before are among the 5');
    const tDown = Date.now();
    await lab.anyRpc('group.scale', { id: GROUP, size: 3 });
    const back = await waitFor('3 managers again', () => settled(lab, 3), 240_000, 1000);
    t.comment(`MEASURE managers_5_to_3 ${Math.round((Date.now() - tDown) / 100) / 10} s`);
    await q.stop();
    t.same(back.map((m) => m.id).sort(), [...first].sort(), 'the 2 added are the 2 removed: the first 3 stay');
    t.ok(q.samples.length > 20, `${q.samples.length} samples`);
    const noLeader = q.samples.filter((s) => !s.leader);
    const noQuorum = q.samples.filter((s) => s.reachable <= s.managers / 2);
    t.same(noLeader.map((s) => s.at - tUp), [], 'a Swarm leader at every sample');
    t.same(noQuorum.map((s) => `${s.reachable}/${s.managers}`), [], 'a majority of managers reachable at every sample');
    const nodes = await lab.nodes(back[0]!);
    t.equal(nodes.length, 3, 'the removed managers’ nodes are gone from the Swarm');
  });

  await t.test('a config change rolls all 3 managers one at a time, the leader’s machine last, quorum kept', async (t) => {
    const old = (await lab.members()).map((m) => m.id);
    const spec = JSON.parse(readFileSync(`${lab.dir}/managers.json`, 'utf8'));
    spec.flavor.properties.labels['lab.rev'] = '2';
    const leaderBefore = await lab.anyRpc<{ leaderNodeId: string }>('manager.status');
    const byNode = new Map(await Promise.all((await lab.members()).map(async (m) => [(await lab.rpc<{ nodeId: string }>(m.ip, 'manager.status')).nodeId, m.id] as const)));
    const leaderMachine = byNode.get(leaderBefore.leaderNodeId)!;
    const q = new Quorum(lab);
    const tRoll = Date.now();
    await lab.anyRpc('group.commit', { spec });
    const hash = (await lab.anyRpc<{ configHash: string }>('group.describe', { id: GROUP })).configHash;
    const rolled = await waitFor(
      '3 managers of the new config',
      async () => {
        const m = await settled(lab, 3);
        const d = await lab.anyRpc<{ instances: { config: string }[] }>('group.describe', { id: GROUP });
        return m && d.instances.every((i) => i.config === hash) ? m : undefined;
      },
      300_000,
      1000,
    );
    const rollS = Math.round((Date.now() - tRoll) / 100) / 10;
    await q.stop();
    t.comment(`MEASURE managers_roll_3 ${rollS} s`);
    t.ok(rolled.every((m) => !old.includes(m.id)), 'all 3 machines replaced, the seed and the leader’s among them');
    const leaderAfter = await lab.anyRpc<{ leaderNodeId: string }>('manager.status');
    t.not(leaderAfter.leaderNodeId, leaderBefore.leaderNodeId, 'leadership was handed to a new manager');
    const gone = old.map((id) => ({ id, at: q.lastSeen.get(id) ?? 0 })).sort((a, b) => a.at - b.at);
    t.equal(gone.at(-1)?.id, leaderMachine, `the leader’s machine ${leaderMachine.slice(0, 12)} went last`);
    const noQuorum = q.samples.filter((s) => s.reachable <= s.managers / 2);
    t.same(noQuorum.map((s) => `${s.reachable}/${s.managers}`), [], 'a majority of managers reachable at every sample');
    t.ok(q.samples.every((s) => s.managers === 3 || s.managers === 4), 'never fewer than 3 managers, never more than 4 (one new before one old goes)');
    // No leader only while Raft hands off: the longest stretch without a sample that saw one.
    const seen = q.samples.filter((s) => s.leader).map((s) => s.at);
    const gaps = seen.slice(1).map((at, i) => at - seen[i]!);
    const longest = Math.max(0, ...gaps) / 1000;
    t.comment(`MEASURE managers_roll_longest_without_leader ${longest} s`);
    t.ok(longest < 30, `the longest time without a Swarm leader was ${longest} s (bound 30 s: one election)`);
    const nodes = await lab.nodes(rolled[0]!);
    t.equal(nodes.length, 3, 'the old managers’ nodes are gone from the Swarm');
  });

  await t.test('two of three manager machines destroyed: capstan recover on the survivor, back to 3 managers', async (t) => {
    const members = await lab.members();
    const cli = (url: string) => run(process.execPath, [`${TOP}dist/src/cli/main.js`, 'recover', '--url', url, '--token-file', `${lab.dir}/token`], { env: lab.env, timeout: 60_000 });
    const refused = await cli(`http://${members[0]!.ip}:8640`).then(() => undefined, (e: { stderr?: string }) => e.stderr ?? String(e));
    t.match(refused, /has a leader/, 'refused while the Swarm has a leader');
    const leaderNode = (await lab.anyRpc<{ leaderNodeId: string }>('manager.status')).leaderNodeId;
    const statuses = await Promise.all(members.map(async (m) => ({ m, s: await lab.rpc<{ nodeId: string }>(m.ip, 'manager.status') })));
    // The leader's machine and one more go for good, as in a lost zone; the third survives.
    const leader = statuses.find((x) => x.s.nodeId === leaderNode)!;
    const survivor = statuses.find((x) => x !== leader)!;
    const doomed = statuses.filter((x) => x !== survivor).map((x) => x.m.id);
    const deadNodes = statuses.filter((x) => x !== survivor).map((x) => x.s.nodeId);
    await Promise.all(doomed.map((id) => lab.infra.getContainer(id).remove({ force: true, v: true })));
    await waitFor('the survivor without a leader', async () => ((await lab.nodes(survivor.m).catch(() => [])).length === 0 ? true : undefined), 90_000, 1000);
    const tRecover = Date.now();
    const out = JSON.parse((await cli(`http://${survivor.m.ip}:8640`)).stdout) as { nodeId: string; gaveUp: { nodeId: string }[] };
    t.equal(out.nodeId, survivor.s.nodeId, 'the Swarm re-initialised from the survivor');
    t.equal(out.gaveUp.length, 2, 'the two lost managers given up');
    const back = await waitFor('3 managers after recover', () => settled(lab, 3), 300_000, 1000);
    t.comment(`MEASURE recover_to_3_managers ${Math.round((Date.now() - tRecover) / 100) / 10} s`);
    t.ok(back.some((m) => m.id === survivor.m.id), 'the survivor is one of the 3');
    t.ok(back.every((m) => !doomed.includes(m.id)), 'the 2 others are new machines');
    // The group's tidy removes them within a pass or two once the new managers have joined.
    const nodes = await waitFor('the dead managers’ nodes removed', async () => {
      const n = await lab.nodes(back[0]!);
      return n.some((x) => deadNodes.includes(x.id)) ? undefined : n;
    }, 60_000, 1000).catch(async () => lab.nodes(back[0]!));
    t.same(nodes.filter((n) => deadNodes.includes(n.id)).map((n) => `${n.id} ${n.status}`), [], 'the dead managers’ nodes are removed');
    const others = nodes.filter((n) => n.status !== 'Ready');
    if (others.length) t.comment(`other nodes not Ready (an interrupted join is removed after 5 min): ${others.map((n) => `${n.id} ${n.status}`).join(', ')}`);
  });
}
