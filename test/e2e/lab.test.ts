// End-to-end: Capstan deployed as a stack on a real 3-manager Swarm (swarm/lab.sh), machines as docker-in-docker
// containers on the lab's infrastructure engine. One lab for the whole file, scenarios in sequence, each starting
// from the state the previous one left. Part of `npm test` (about 5-8 minutes, root, creates network namespaces);
// CAPSTAN_E2E=0 leaves it out while iterating on other tests:
//   npx tap test/e2e/lab.test.ts
// Set CAPSTAN_BUILD_DIR to a directory of your own to keep the image build cache between runs (saves ~90 s).
// Figures are printed as t.comment and as `MEASURE name value` lines on stderr.
import t, { type Test } from 'tap';
import { Lab, sleep, waitFor, type LabNode } from '../support/lab.js';

const GROUP = 'e2e-workers';
const INFRA = 'unix:///run/capstan-infra/docker.sock';

function spec(size: number, generation: number) {
  return {
    id: GROUP,
    allocation: { size },
    instance: {
      provider: 'docker',
      properties: { engine: INFRA, image: 'capstan/machine:dev', env: { LAB_GENERATION: String(generation) } },
    },
    flavor: { kind: 'swarm-worker', properties: { drainTimeout: '20s' } },
    update: { maxUnavailable: 1, maxSurge: 1, healthyFor: '3s', healthTimeout: '60s', onFailure: 'pause' },
  };
}

const since = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;
function measure(tt: Test, name: string, value: number | string, unit = 's') {
  tt.comment(`MEASURE ${name} ${value} ${unit}`);
  process.stderr.write(`MEASURE ${name} ${value} ${unit}\n`);
}

const readyActive = (nodes: LabNode[]) => nodes.filter((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active');

/** Converged from Capstan's view and the Swarm's: `size` machines, all of config `config` if given, as many Ready workers, no other node of the group. */
async function settled(lab: Lab, size: number, config?: string) {
  const d = await lab.rpcAny('group.describe', { id: GROUP }, alive(lab));
  if (!d.converged || d.size !== size || d.instances.length !== size) return false;
  if (config && d.instances.some((i: { config: string }) => i.config !== config)) return false;
  const machines = (await lab.machines(GROUP)).filter((m) => m.state === 'running');
  if (machines.length !== size) return false;
  const nodes = await lab.groupNodes(GROUP, alive(lab));
  if (nodes.length !== size || readyActive(nodes).length !== size) return false;
  return { describe: d, machines, nodes };
}

const killed = new Set<string>();
const alive = (lab: Lab) => lab.managers.filter((n) => !killed.has(n));

/** Machines (by link id) and Swarm node events; records when each old node was drained and its machine went. */
class Watch {
  readonly drainedAt = new Map<string, number>(); // node id -> ms
  readonly machineGoneAt = new Map<string, number>(); // link -> ms
  minReady = Infinity;
  private stopped = false;
  private readonly loop: Promise<void>;
  constructor(
    private readonly lab: Lab,
    private readonly linkOf: Map<string, string>, // node id -> link of the old nodes
  ) {
    this.loop = this.run();
  }
  private async run() {
    while (!this.stopped) {
      await this.sample();
      await sleep(150);
    }
  }
  private async sample() {
    try {
      const [nodes, machines] = await Promise.all([this.lab.groupNodes(GROUP, alive(this.lab)), this.lab.machines(GROUP)]);
      const now = Date.now();
      this.minReady = Math.min(this.minReady, readyActive(nodes).length);
      for (const n of nodes) if (n.Spec.Availability === 'drain' && !this.drainedAt.has(n.ID)) this.drainedAt.set(n.ID, now);
      const links = new Set(machines.filter((m) => m.state === 'running').map((m) => m.labels['capstan.link']));
      for (const link of this.linkOf.values()) if (!links.has(link) && !this.machineGoneAt.has(link)) this.machineGoneAt.set(link, now);
    } catch {
      // a manager busy in an election: next round
    }
  }
  /** Ends with one more look, so that what settled since the last round is seen too. */
  async stop() {
    this.stopped = true;
    await this.loop;
    await this.sample();
  }
}

async function linksOf(lab: Lab): Promise<Map<string, string>> {
  const nodes = await lab.groupNodes(GROUP, alive(lab));
  return new Map(nodes.map((n) => [n.ID, n.Description?.Engine?.Labels?.['capstan.instance'] ?? '']));
}

/** Asserts every old node was drained before its machine disappeared (and is gone from the Swarm). */
async function checkDrainedFirst(tt: Test, lab: Lab, w: Watch, old: Map<string, string>) {
  const now = new Set((await lab.nodes(alive(lab))).map((n) => n.ID));
  for (const [id, link] of old) {
    const drained = w.drainedAt.get(id);
    const gone = w.machineGoneAt.get(link);
    tt.ok(drained !== undefined && gone !== undefined && drained <= gone, `node ${id.slice(0, 8)} drained (${drained}) before its machine went (${gone})`);
    tt.notOk(now.has(id), `node ${id.slice(0, 8)} removed from docker node ls`);
  }
}

/**
 * Each scenario starts from a settled group of `size`. If an earlier scenario failed and left machines that never
 * became healthy, they are destroyed through the API (the controller replaces them), so later scenarios still run.
 */
async function recover(tt: Test, lab: Lab, size: number) {
  if (await waitFor(`size ${size} settled`, () => settled(lab, size), 20_000).catch(() => false)) return;
  const d = await lab.rpcAny('group.describe', { id: GROUP }, alive(lab));
  const bad = d.instances.filter((i: { health: string }) => i.health !== 'healthy').map((i: { id: string }) => i.id);
  tt.comment(`RECOVERY: group not settled at ${size} (${JSON.stringify(d.update)}); destroying ${bad.length} unhealthy instance(s), then scaling back`);
  // destroyInstances stores a smaller size: back to `size` afterwards, and the controller makes new ones.
  if (bad.length) {
    await lab.rpcAny('group.destroyInstances', { id: GROUP, instanceIds: bad }, alive(lab));
    await waitFor('the unhealthy machines gone', async () => !(await lab.machines(GROUP)).some((m) => bad.includes(m.id)), 90_000, 1000);
  }
  await lab.rpcAny('group.scale', { id: GROUP, size }, alive(lab));
  await waitFor(`size ${size} settled after recovery`, () => settled(lab, size), 120_000, 1000);
}

if (process.env.CAPSTAN_E2E === '0') {
  t.plan(0, 'end-to-end lab tests switched off by CAPSTAN_E2E=0');
} else {
  t.setTimeout(15 * 60_000);
  const tUp = Date.now();
  const lab = await Lab.up(3, (l) => t.comment(l));
  t.teardown(() => lab.down());
  // tap's teardown does not run when the run is interrupted: tear down on signals too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      lab.downSync();
      process.exit(130);
    });
  }
  measure(t, 'lab_up', since(tUp));

  await t.test('exactly one replica acts; a call to a non-leader is forwarded', async (t) => {
    const statuses = await Promise.all(lab.managers.map((n) => lab.rpc('manager.status', undefined, n)));
    t.equal(statuses.filter((s) => s.leading).length, 1, 'one replica leads');
    t.equal(new Set(statuses.map((s) => s.leaderNodeId)).size, 1, 'all name the same leader');
    const leaderIdx = statuses.findIndex((s) => s.leading);
    const swarmLeader = await lab.swarmLeader();
    t.equal(lab.managers[leaderIdx], swarmLeader, 'the leading replica is the one on the Raft leader');
    const follower = lab.managers[(leaderIdx + 1) % lab.managers.length]!;
    const before = Lab.metricSum(await lab.metrics(follower), 'capstan_rpc_calls_total', { method: 'group.commit', outcome: 'forwarded' });
    const committed = await lab.rpc('group.commit', { spec: spec(0, 1) }, follower);
    t.equal(committed.id, GROUP, 'commit through a follower answered');
    const after = Lab.metricSum(await lab.metrics(follower), 'capstan_rpc_calls_total', { method: 'group.commit', outcome: 'forwarded' });
    t.equal(after, before + 1, 'the follower forwarded the call');
    const list = await lab.rpc('group.list', {}, follower);
    t.ok(JSON.stringify(list).includes(GROUP), 'a follower lists the group the leader stored');
  });

  await t.test('scale 0 -> 3 -> 6 (then a rolling update of 6, then -> 2)', async (t) => {
    await waitFor('size 0 settled', () => settled(lab, 0), 60_000);
    let t0 = Date.now();
    await lab.rpcAny('group.scale', { id: GROUP, size: 3 });
    await waitFor('3 Ready workers', async () => readyActive(await lab.groupNodes(GROUP)).length === 3, 120_000, 250);
    measure(t, 'workers_0_to_3_ready', since(t0));
    await waitFor('size 3 settled', () => settled(lab, 3), 60_000);
    t0 = Date.now();
    await lab.rpcAny('group.scale', { id: GROUP, size: 6 });
    const six = await waitFor('size 6 settled', () => settled(lab, 6), 180_000);
    measure(t, 'workers_3_to_6_settled', since(t0));
    t.equal(six.nodes.length, 6, '6 Ready workers');

    // Only the leader's replica touched the provider.
    const statuses = await Promise.all(lab.managers.map((n) => lab.rpc('manager.status', undefined, n)));
    for (const [i, n] of lab.managers.entries()) {
      const calls = Lab.metricSum(await lab.metrics(n), 'capstan_provider_calls_total');
      if (statuses[i].leading) t.ok(calls > 0, `${n} (leader) made ${calls} provider calls`);
      else t.equal(calls, 0, `${n} (follower) made no provider call`);
    }
  });

  await t.test('rolling update of 6 workers: never more than maxUnavailable missing, drain before destroy', async (t) => {
    const old = await linksOf(lab);
    t.equal(old.size, 6);
    const w = new Watch(lab, old);
    const t0 = Date.now();
    const committed = await lab.rpcAny('group.commit', { spec: spec(6, 2) });
    const hash = (await lab.rpcAny('group.describe', { id: GROUP })).configHash as string;
    t.ok(committed.version > 1 && hash, `version ${committed.version}, config ${hash}`);
    await waitFor('6 workers of the new config', () => settled(lab, 6, hash), 420_000, 1000);
    measure(t, 'rolling_update_6_workers', since(t0));
    await w.stop();
    t.ok(w.minReady >= 5, `Ready+Active workers never below 6 - maxUnavailable (min seen ${w.minReady})`);
    await checkDrainedFirst(t, lab, w, old);
  });

  await t.test('scale 6 -> 2: removed nodes drained and gone', async (t) => {
    await recover(t, lab, 6);
    const before = await linksOf(lab);
    const w = new Watch(lab, before);
    await lab.rpcAny('group.scale', { id: GROUP, size: 2 });
    const two = await waitFor('size 2 settled', () => settled(lab, 2), 180_000);
    await w.stop();
    const kept = new Set(two.nodes.map((n: LabNode) => n.ID));
    const removed = new Map([...before].filter(([id]) => !kept.has(id)));
    t.equal(removed.size, 4, '4 nodes removed');
    await checkDrainedFirst(t, lab, w, removed);
    t.equal((await lab.machines(GROUP)).length, 2, 'exactly 2 machines, none stopped and left behind');
  });

  await t.test('leader killed during a scale-up: the new leader finishes with exactly the requested machines', async (t) => {
    await recover(t, lab, 2);
    const oldLeader = (await lab.swarmLeader())!;
    t.ok(oldLeader, `Swarm leader ${oldLeader}`);
    const survivors = lab.managers.filter((n) => n !== oldLeader);
    const before = new Set((await lab.machines(GROUP)).map((m) => m.id));
    await lab.rpc('group.scale', { id: GROUP, size: 5 }, oldLeader);
    // In the middle: as soon as the first new machine exists.
    await waitFor('a first new machine', async () => (await lab.machines(GROUP)).some((m) => !before.has(m.id)), 30_000, 100);
    const created = (await lab.machines(GROUP)).length - before.size;
    const tKill = Date.now();
    await lab.kill(oldLeader);
    killed.add(oldLeader);
    t.comment(`killed ${oldLeader}'s dockerd with ${created} of 3 new machines created`);
    try {
      // Independent pollers per survivor: a Docker call blocks during the election and returns once there is a
      // leader, so re-issuing at once catches the moment closely.
      let swarmAt: number | undefined;
      let leadingAt: number | undefined;
      let actingAt: number | undefined;
      let newLeader: string | undefined;
      const deadline = tKill + 90_000;
      const poll = async (fn: () => Promise<boolean>) => {
        while (Date.now() < deadline && !(await fn().catch(() => false))) await sleep(100);
      };
      await Promise.all(
        survivors.flatMap((n) => [
          poll(async () => {
            if (swarmAt !== undefined) return true;
            const l = await lab.swarmLeader([n]);
            if (!l || l === oldLeader) return false;
            swarmAt ??= Date.now();
            newLeader = l;
            return true;
          }),
          poll(async () => {
            if (leadingAt !== undefined) return true;
            const st = await lab.rpc('manager.status', undefined, n, 2000);
            if (st.leading) leadingAt ??= Date.now();
            return Boolean(st.leading);
          }),
          // Acting: the new leader's controller completed a pass (observe, plan, act) after the kill.
          poll(async () => {
            if (actingAt !== undefined) return true;
            const d = await lab.rpc('group.describe', { id: GROUP }, n, 2000);
            if (d.lastPassAt && Date.parse(d.lastPassAt) > tKill) actingAt ??= Date.now();
            return actingAt !== undefined;
          }),
        ]),
      );
      t.ok(swarmAt && leadingAt && actingAt, `new leader ${newLeader}; Swarm, replica and controller all moved on`);
      measure(t, 'failover_swarm_new_leader', ((swarmAt ?? NaN) - tKill) / 1000);
      measure(t, 'failover_replica_leading', ((leadingAt ?? NaN) - tKill) / 1000);
      measure(t, 'failover_replica_acting', ((actingAt ?? NaN) - tKill) / 1000);
      measure(t, 'failover_acting_after_swarm_leader', ((actingAt ?? NaN) - (swarmAt ?? NaN)) / 1000);
      const five = await waitFor('size 5 settled under the new leader', () => settled(lab, 5), 120_000, 1000).catch(async (error) => {
        const d = await lab.rpcAny('group.describe', { id: GROUP }, survivors).catch(() => undefined);
        t.comment(`not settled: ${JSON.stringify(d?.update)} health ${JSON.stringify(d?.instances?.map((i: { health: string }) => i.health))}`);
        throw error;
      });
      measure(t, 'failover_kill_to_settled', since(tKill));
      t.equal(five.machines.length, 5, 'exactly 5 machines');
    } finally {
      // No late duplicate, whatever happened: never more machines than requested.
      await sleep(5000);
      const machines = await lab.machines(GROUP);
      t.ok(machines.length <= 5, `no duplicate: ${machines.length} machine(s) for a size of 5`);
      await lab.start(oldLeader);
      killed.delete(oldLeader);
      await waitFor(
        'every replica answering with one leader',
        async () => {
          const st = await Promise.all(lab.managers.map((n) => lab.rpc('manager.status', undefined, n, 3000)));
          return st.filter((x) => x.leading).length === 1 && new Set(st.map((x) => x.leaderNodeId)).size === 1;
        },
        120_000,
        1000,
      );
    }
    t.equal(readyActive(await lab.groupNodes(GROUP)).length, 5, '5 Ready workers');
  });

  await t.test('a machine destroyed behind Capstan’s back is replaced and its Down node removed', async (t) => {
    await recover(t, lab, 5);
    const nodes = await lab.groupNodes(GROUP);
    const victim = nodes[0]!;
    const link = victim.Description!.Engine!.Labels!['capstan.instance']!;
    const machine = (await lab.machines(GROUP)).find((m) => m.labels['capstan.link'] === link)!;
    t.ok(machine, `machine of node ${victim.ID.slice(0, 8)}`);
    const t0 = Date.now();
    await lab.docker('infra').getContainer(machine.id).remove({ force: true, v: true });
    await waitFor('replaced, Down node removed', async () => {
      const s = await settled(lab, 5);
      return s && !s.nodes.some((n: LabNode) => n.ID === victim.ID) && !(await lab.nodes()).some((n) => n.ID === victim.ID);
    }, 180_000, 500);
    measure(t, 'replace_destroyed_machine', since(t0));
    t.pass('5 machines again, the destroyed one’s node gone from docker node ls');
  });

  await t.test('every replica restarted during a rolling update: it resumes and completes', async (t) => {
    await recover(t, lab, 5);
    await lab.rpcAny('group.scale', { id: GROUP, size: 3 });
    await waitFor('size 3 settled', () => settled(lab, 3), 180_000);
    const old = await linksOf(lab);
    const t0 = Date.now();
    await lab.rpcAny('group.commit', { spec: spec(3, 3) });
    const hash = (await lab.rpcAny('group.describe', { id: GROUP })).configHash as string;
    await waitFor('the update under way', async () => (await lab.machines(GROUP)).some((m) => m.labels['capstan.config'] === hash), 60_000, 200);
    // Every replica at once, as a crash of all of them would.
    await Promise.all(
      lab.managers.map(async (n) => {
        const c = await lab.replica(n);
        if (c) await lab.docker(n).getContainer(c.Id).remove({ force: true });
      }),
    );
    t.comment(`removed every replica ${since(t0)} s into the update`);
    const done = await waitFor('3 workers of the new config', () => settled(lab, 3, hash), 300_000, 1000);
    measure(t, 'rolling_update_3_workers_with_replica_restarts', since(t0));
    const ids = new Set(done.nodes.map((n: LabNode) => n.ID));
    t.ok([...old.keys()].every((id) => !ids.has(id)), 'every old node replaced');
    t.equal((await lab.machines(GROUP)).length, 3, 'exactly 3 machines');
  });

  await t.test('resources', async (t) => {
    for (const n of lab.managers) {
      const rss = await lab.replicaRssMiB(n);
      t.ok(rss, `${n} replica RSS ${rss} MiB`);
      measure(t, `capstan_rss_${n}`, rss ?? 'unknown', 'MiB');
    }
  });
}
