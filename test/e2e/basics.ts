// The lab's first scenarios: who acts, scaling, a clean rolling update, a leader killed mid scale-up, a machine
// destroyed behind Capstan's back, every replica restarted mid-update, and what a replica costs.
import type { Test } from 'tap';
import { Lab, sleep, waitFor, type LabNode } from '../support/lab.js';
import {
  GROUP,
  describe,
  describeNode,
  explain,
  ghosts,
  killLeader,
  measure,
  readyActive,
  recover,
  restart,
  sameSet,
  settled,
  short,
  since,
  spec,
  state,
  type Failover,
} from './common.js';
import { Sampler, Watch, checkDrainedFirst, linksOf } from './watchers.js';

export async function oneActs(t: Test, lab: Lab) {
  const statuses = await Promise.all(lab.managers.map((n) => lab.rpc('manager.status', undefined, n)));
  t.equal(statuses.filter((s) => s.leading).length, 1, 'one replica leads');
  t.equal(new Set(statuses.map((s) => s.leaderNodeId)).size, 1, 'all name the same leader');
  const leaderIdx = statuses.findIndex((s) => s.leading);
  const swarmLeader = await lab.swarmLeader();
  t.equal(lab.managers[leaderIdx], swarmLeader, 'the leading replica is the one on the Raft leader');
  const follower = lab.managers[(leaderIdx + 1) % lab.managers.length]!;
  const before = Lab.metricSum(await lab.metrics(follower), 'capstan_rpc_calls_total', { method: 'group.commit', outcome: 'forwarded' });
  const committed = await lab.rpc('group.commit', { spec: spec(0, state.generation) }, follower);
  t.equal(committed.id, GROUP, 'commit through a follower answered');
  const after = Lab.metricSum(await lab.metrics(follower), 'capstan_rpc_calls_total', { method: 'group.commit', outcome: 'forwarded' });
  t.equal(after, before + 1, 'the follower forwarded the call');
  const list = await lab.rpc('group.list', {}, follower);
  t.ok(JSON.stringify(list).includes(GROUP), 'a follower lists the group the leader stored');
}

export async function scaleUp(t: Test, lab: Lab) {
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
}

export async function rollingUpdate(t: Test, lab: Lab) {
  await recover(t, lab, 6, state.generation);
  const old = await linksOf(lab);
  t.equal(old.size, 6);
  const w = new Watch(lab, old);
  const t0 = Date.now();
  const committed = await lab.rpcAny('group.commit', { spec: spec(6, ++state.generation) });
  const hash = (await lab.rpcAny('group.describe', { id: GROUP })).configHash as string;
  t.ok(committed.version > 1 && hash, `version ${committed.version}, config ${hash}`);
  await waitFor('6 workers of the new config', () => settled(lab, 6, hash), 420_000, 1000);
  measure(t, 'rolling_update_6_workers', since(t0));
  await w.stop();
  t.ok(w.minReady >= 5, `Ready+Active workers never below 6 - maxUnavailable (min seen ${w.minReady})`);
  await checkDrainedFirst(t, lab, w, old);
}

export async function scaleDown(t: Test, lab: Lab) {
  await recover(t, lab, 6, state.generation);
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
}

/** The leader killed during a scale-up 2 -> 5: the new leader finishes with exactly the requested machines, and which ones. */
export async function killDuringScaleUp(t: Test, lab: Lab) {
  await recover(t, lab, 2, state.generation);
  const oldLeader = (await lab.swarmLeader())!;
  t.ok(oldLeader, `Swarm leader ${oldLeader}`);
  const before = new Set((await lab.machines(GROUP)).map((m) => m.id));
  const s = new Sampler(lab, 5);
  const tStart = Date.now();
  await lab.rpc('group.scale', { id: GROUP, size: 5 }, oldLeader);
  // In the middle: as soon as the first new machine exists.
  await waitFor('a first new machine', async () => (await lab.machines(GROUP)).some((m) => !before.has(m.id)), 30_000, 100);
  const created = (await lab.machines(GROUP)).length - before.size;
  let f: Failover | undefined;
  let final: Set<string> | undefined;
  let back: Promise<void> | undefined;
  try {
    t.comment(`killing ${oldLeader}'s dockerd with ${created} of 3 new machines created`);
    f = await killLeader(t, lab, 'failover');
    // The killed manager comes back while the new leader finishes (its replica takes ~20 s).
    back = restart(lab, oldLeader);
    back.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    const five = await waitFor('size 5 settled under the new leader', () => settled(lab, 5), 120_000, 1000).catch(async (error) => {
      const d = await describe(lab).catch(() => undefined);
      t.comment(`not settled: ${JSON.stringify(d?.update)} health ${JSON.stringify(d?.instances?.map((i: { health: string }) => i.health))}`);
      throw error;
    });
    measure(t, 'failover_kill_to_settled', since(f.tKill));
    t.equal(five.machines.length, 5, 'exactly 5 machines');
    final = new Set(five.machines.map((m) => m.id));
    t.ok(sameSet(five.describe.instances.map((i: { id: string }) => i.id), final), 'Capstan’s instances are exactly the running machines');
  } finally {
    // No late duplicate, whatever happened: never more machines than requested.
    await sleep(5000);
    await s.stop();
    const machines = await lab.machines(GROUP);
    t.ok(machines.length <= 5, `no duplicate: ${machines.length} machine(s) for a size of 5`);
    await (back ?? restart(lab, oldLeader));
  }
  // Which machines: the 2 from before stayed, and nothing was made only to be destroyed.
  t.ok([...before].every((id) => final.has(id)), `the ${before.size} machines from before the scale-up are among the 5`);
  const ever = [...s.seen.keys()];
  t.ok(sameSet(ever, final), `every machine seen during the scale-up is one of the final 5 (seen: ${ever.map(short).join(' ')})`);
  const destroyed = (await lab.capstanLog(tStart)).filter((e) => e.event === 'instance.destroyed');
  t.same(destroyed.map((e) => `${e.node} ${e.reason} ${JSON.stringify(e.ids)}`), [], 'no instance.destroyed in any replica’s log');
  t.equal(readyActive(await lab.groupNodes(GROUP)).length, 5, '5 Ready workers');
  // Nodes left by a join through the killed leader (nameless or Down): reported, not asserted here (the flavor
  // removes them only once clearly stale, minutes later; the settled-kills scenario asserts there are none).
  const left = await ghosts(lab);
  measure(t, 'failover_ghost_nodes', left.length, 'nodes');
  for (const n of left) t.comment(`ghost: ${describeNode(n)}`);
}

export async function replaceDestroyed(t: Test, lab: Lab) {
  await recover(t, lab, 5, state.generation);
  const nodes = await lab.groupNodes(GROUP);
  const victim = nodes[0]!;
  const link = victim.Description!.Engine!.Labels!['capstan.instance']!;
  const machine = (await lab.machines(GROUP)).find((m) => m.labels['capstan.link'] === link)!;
  t.ok(machine, `machine of node ${victim.ID.slice(0, 8)}`);
  const t0 = Date.now();
  await lab.docker('infra').getContainer(machine.id).remove({ force: true, v: true });
  await waitFor(
    'replaced, Down node removed',
    async () => {
      const s = await settled(lab, 5);
      return s && !s.nodes.some((n: LabNode) => n.ID === victim.ID) && !(await lab.nodes()).some((n) => n.ID === victim.ID);
    },
    180_000,
    500,
  );
  measure(t, 'replace_destroyed_machine', since(t0));
  t.pass('5 machines again, the destroyed one’s node gone from docker node ls');
}

export async function replicasRestarted(t: Test, lab: Lab) {
  await recover(t, lab, 5, state.generation);
  await lab.rpcAny('group.scale', { id: GROUP, size: 3 });
  await waitFor('size 3 settled', () => settled(lab, 3), 180_000);
  const old = await linksOf(lab);
  const t0 = Date.now();
  await lab.rpcAny('group.commit', { spec: spec(3, ++state.generation) });
  const hash = (await lab.rpcAny('group.describe', { id: GROUP })).configHash as string;
  await waitFor('the update under way', async () => (await lab.machines(GROUP)).some((m) => m.labels['capstan.config'] === hash), 60_000, 200);
  // Every replica at once, as a crash of all of them would.
  await Promise.all(
    lab.managers.map(async (n) => {
      const c = await lab.replica(n);
      if (c) await lab.docker(n).getContainer(c.Id).remove({ force: true });
    }),
  );
  const tRemoved = Date.now();
  t.comment(`removed every replica ${since(t0)} s into the update`);
  const done = await waitFor('3 workers of the new config', () => settled(lab, 3, hash), 300_000, 1000).catch(async (error) => {
    await explain(t, lab, t0);
    throw error;
  });
  measure(t, 'rolling_update_3_workers_with_replica_restarts', since(t0));
  const ids = new Set(done.nodes.map((n: LabNode) => n.ID));
  t.ok([...old.keys()].every((id) => !ids.has(id)), 'every old node replaced');
  t.equal((await lab.machines(GROUP)).length, 3, 'exactly 3 machines');
  // Swarm restarts each after its restart delay (5 s); a replica that does not come back is a crash loop to see.
  const back = await waitFor('a replica running on every manager', async () => (await Promise.all(lab.managers.map((n) => lab.replica(n)))).every(Boolean), 120_000, 500).catch(() => false);
  t.ok(back, `every manager runs a replica again (seen ${since(tRemoved)} s after their removal)`);
  if (back) measure(t, 'replicas_back_after_removal', since(tRemoved));
  else for (const line of await lab.replicaTasks()) t.comment(`task: ${line}`);
}

export async function resources(t: Test, lab: Lab) {
  for (const n of lab.managers) {
    const rss = await lab.replicaRssMiB(n);
    t.ok(rss, `${n} replica RSS ${rss} MiB`);
    if (!rss) for (const line of await lab.replicaTasks()) t.comment(`task: ${line}`);
    measure(t, `capstan_rss_${n}`, rss ?? 'unknown', 'MiB');
  }
}
