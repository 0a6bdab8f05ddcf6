// Graceful shutdown of a real `capstan serve` (issue 11, item 7): Swarm stops the leader's replica the way it stops
// any task, with SIGTERM, while that replica is creating machines. It must exit by itself (code 0) well inside
// stack.yml's stop_grace_period, start no write after it stood down, and leave the group whole for the next leader.
import type { Test } from 'tap';
import { Lab, waitFor } from '../support/lab.js';
import { GROUP, describe, measure, readyActive, recover, replicasBack, sameSet, settled, short, since, state } from './common.js';
import { Sampler } from './watchers.js';

/** stack.yml's stop_grace_period: after it Docker sends SIGKILL, and the exit code says so (137). */
const STOP_GRACE_S = 45;

export async function sigtermMidScaleUp(t: Test, lab: Lab) {
  await recover(t, lab, 2, state.generation);
  const leader = (await lab.swarmLeader())!;
  const replica = (await lab.replica(leader))!;
  t.ok(replica, `the leader ${leader} runs replica ${short(replica.Id)}`);
  const before = new Set((await lab.machines(GROUP)).map((m) => m.id));
  const s = new Sampler(lab, 5);
  const tStart = Date.now();
  await lab.rpc('group.scale', { id: GROUP, size: 5 }, leader);
  await waitFor('a first new machine', async () => (await lab.machines(GROUP)).some((m) => !before.has(m.id)), 30_000, 100);

  // What Swarm does when it stops a task: SIGTERM, then SIGKILL after the grace period.
  const tStop = Date.now();
  const container = lab.docker(leader).getContainer(replica.Id);
  await container.stop({ t: STOP_GRACE_S });
  const stopS = since(tStop);
  measure(t, 'sigterm_to_exit', stopS);
  const exited = (await container.inspect()).State;
  t.equal(exited.ExitCode, 0, `the replica exited by itself (exit code ${exited.ExitCode}, not SIGKILL's 137)`);
  t.ok(stopS < STOP_GRACE_S, `it exited ${stopS} s after SIGTERM, inside the ${STOP_GRACE_S} s grace period`);

  const own = (await lab.capstanLog(tStart, [leader])).filter((e) => e.container === short(replica.Id));
  const down = own.find((e) => e.event === 'shutdown');
  const done = own.find((e) => e.event === 'shutdown.done');
  t.ok(down && done, 'it logged shutdown and shutdown.done');
  t.equal(done?.settled, true, 'work in flight settled before it exited');

  const five = await waitFor('size 5 settled after the replica came back', () => settled(lab, 5), 180_000, 1000);
  await s.stop();
  await replicasBack(lab);
  const final = new Set(five.machines.map((m) => m.id));
  t.ok([...before].every((id) => final.has(id)), `the ${before.size} machines from before are among the 5`);
  t.ok(sameSet([...s.seen.keys()], final), 'every machine seen during the scale-up is one of the final 5: none made only to be destroyed');
  t.ok(sameSet((await describe(lab)).instances.map((i: { id: string }) => i.id), final), 'Capstan’s instances are exactly the running machines');
  t.equal(readyActive(await lab.groupNodes(GROUP)).length, 5, '5 Ready workers');

  // Fencing: no machine was created between the stopped replica's stand-down and the next leader acting.
  const all = await lab.capstanLog(tStart);
  const acting = all.find((e) => e.event === 'leadership.acting' && (e.time ?? 0) > (down?.time ?? Infinity));
  const gap = { from: down?.time ?? 0, to: acting?.time ?? Date.now() };
  // Docker's creation times have whole seconds: one second of slack at the start of the gap.
  const inGap = (await lab.machines(GROUP)).filter((m) => m.created > gap.from + 1000 && m.created < gap.to - 1000);
  t.same(inGap.map((m) => short(m.id)), [], `no machine created between stand-down and the next leader acting (${Math.round((gap.to - gap.from) / 100) / 10} s)`);
  const destroyed = all.filter((e) => e.event === 'instance.destroyed');
  t.same(destroyed.map((e) => `${e.node} ${JSON.stringify(e.ids)}`), [], 'no instance.destroyed in any replica’s log');
}
