/**
 * A warm pool in the lab, with real machines (issue 16 item 5): `npm run bench:lab` (root; brings up a lab Swarm of
 * its own with swarm/lab.sh and takes it down again; LAB=<dir> uses a lab that is already up instead).
 *
 * A swarm-worker group of 2 on the lab's docker-in-docker machines, autoscaled (scaleUpDelay 0s), runs a service
 * `fill` with one task per node (MaxReplicas 1), so a third task fits no node. Per round and per pool (none: cold; a
 * warm machine kept running; one kept stopped) it times the third task from its creation (the service scaled to 3)
 * to running, with the autoscaler's scale-up in between, and names the node it ran on: the warm machine's, or a new
 * one. Then a scale-in: a group of 4 with 3 busy nodes and one empty, group.scaleDown, and which node went.
 * Figures are printed with their range and the load average; nothing is asserted (the tests prove the behaviour).
 */
import { loadavg } from 'node:os';
import { Lab } from '../test/support/lab.js';
import { WarmGroup, type Pool } from '../test/support/warm-group.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const lab = process.env.LAB ? Lab.attach(process.env.LAB) : await Lab.up(3, (l) => console.log(l));
const owned = !process.env.LAB;
const g = new WarmGroup(lab, 'bench-warm');

const range = (xs: number[]) => (xs.length ? `${(Math.min(...xs) / 1000).toFixed(1)}-${(Math.max(...xs) / 1000).toFixed(1)} s (median ${(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]! / 1000).toFixed(1)} s)` : 'none');

try {
  await g.commit(2, 'cold');
  await g.createFill(2);
  const times: Record<Pool, number[]> = { cold: [], warm: [], 'warm-stopped': [] };
  for (let round = 1; round <= rounds; round++) {
    for (const pool of ['cold', 'warm', 'warm-stopped'] as const) {
      await g.commit(2, pool);
      const before = await g.settled(2, pool, 2);
      const pooled = before.instances.find((i) => i.warm);
      const t0 = Date.now();
      await g.replicas(3);
      const third = await g.runningCount(3);
      const ms = Date.now() - t0;
      times[pool].push(ms);
      const node = third.find((x) => !before.instances.some((i) => !i.warm && i.link === x.NodeID))?.NodeID;
      const where = pooled && node === pooled.link ? `the warm machine ${pooled.id.slice(0, 12)}'s node` : `a new machine's node ${node}`;
      console.log(`round ${round} ${pool}: created -> running ${(ms / 1000).toFixed(2)} s, on ${where} (load ${loadavg()[0]!.toFixed(2)})`);
      // Back to 2 serving: the task goes, then the scale-down takes the member left empty.
      await g.replicas(2);
      await g.runningCount(2, 60_000);
      await lab.rpcAny('group.scale', { id: g.id, size: 2 });
    }
  }
  // Scale-in: 4 members, 3 busy and 1 empty; which goes on a scaleDown of 1?
  await g.commit(4, 'cold');
  await g.replicas(3);
  const four = await g.settled(4, 'cold', 3);
  const busy = new Set((await g.running()).map((x) => x.NodeID));
  const empty = four.instances.find((i) => i.link && !busy.has(i.link));
  const t0 = Date.now();
  await lab.rpcAny('group.scaleDown', { id: g.id });
  const after = await g.settled(3, 'cold', 3);
  const gone = four.instances.filter((i) => !after.instances.some((a) => a.id === i.id));
  console.log(`scale-in: 4 members, empty ${empty?.id.slice(0, 12)}; scaleDown removed ${gone.map((m) => m.id.slice(0, 12)).join(', ')} (${gone.length === 1 && gone[0]!.id === empty?.id ? 'the empty one' : 'NOT the empty one'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const pool of ['cold', 'warm', 'warm-stopped'] as const) console.log(`${pool.padEnd(13)} task created -> running: ${range(times[pool])} over ${times[pool].length} rounds`);
} finally {
  await g.remove((line) => console.log(line));
  if (owned) await lab.down();
}
