// The warm pool on the deployed stack (issue 16 items 2 and 4): Swarm's own pending task makes the autoscaler take
// the warm machine (its node, by id, runs the task) and the pool is refilled with exactly one new machine; then a
// scale-down of 1 removes the member whose node runs nothing, and keeps the pool. Identity, not counts.
import type { Test } from 'tap';
import type { Lab } from '../support/lab.js';
import { WarmGroup } from '../support/warm-group.js';
import { measure, secs, short } from './common.js';

export async function warmPool(t: Test, lab: Lab): Promise<void> {
  const g = new WarmGroup(lab, 'e2e-warm');
  t.teardown(() => g.remove((line) => t.comment(line)));
  await g.commit(1, 'warm');
  await g.createFill(1);
  const before = await g.settled(1, 'warm', 1);
  const pooled = before.instances.find((i) => i.warm)!;
  const serving = before.instances.find((i) => !i.warm)!;
  t.ok(pooled.link && serving.link, `one serving machine ${short(serving.id)} and one warm ${short(pooled.id)}, both joined`);

  // A second task fits no node of the group: Swarm leaves it pending, the autoscaler scales up by one.
  const t0 = Date.now();
  await g.replicas(2);
  const two = await g.runningCount(2, 120_000);
  measure(t, 'warm_task_created_to_running', secs(Date.now() - t0));
  t.same(two.map((x) => x.NodeID).sort(), [serving.link, pooled.link].sort(), 'the new task runs on the warm machine’s node');

  const after = await g.settled(2, 'warm', 2);
  const added = after.instances.filter((i) => !before.instances.some((b) => b.id === i.id));
  t.ok(before.instances.every((b) => after.instances.some((i) => i.id === b.id)), 'both machines from before stay');
  t.equal(added.length, 1, `exactly one machine launched: ${added.map((i) => short(i.id)).join(', ')}`);
  t.same(after.instances.filter((i) => i.warm).map((i) => i.id), added.map((i) => i.id), 'and it, not the activated one, is the pool now');

  // Scale-in: the first task goes, its node is left empty; a scale-down of 1 takes that member, not the busy one.
  await g.replicas(1);
  const busy = new Set((await g.runningCount(1, 60_000)).map((x) => x.NodeID));
  const active = after.instances.filter((i) => !i.warm);
  const empty = active.find((i) => !busy.has(i.link));
  t.ok(empty, `member ${short(empty?.id ?? '?')} runs nothing`);
  await lab.rpcAny('group.scaleDown', { id: g.id });
  const last = await g.settled(1, 'warm', 1);
  const gone = after.instances.filter((i) => !last.instances.some((l) => l.id === i.id)).map((i) => i.id);
  t.same(gone, [empty?.id], 'the scale-down removed exactly the empty member');
  t.same(last.instances.filter((i) => i.warm).map((i) => i.id), added.map((i) => i.id), 'the pool kept its machine');
}
