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
import { Lab, waitFor } from '../test/support/lab.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const group = 'bench-warm';
const fill = `${group}-fill`;
type Pool = 'cold' | 'warm' | 'warm-stopped';

interface Member {
  id: string;
  state: string;
  health: string;
  link?: string;
  warm?: boolean;
}
interface Described {
  version: number;
  converged: boolean;
  instances: Member[];
}

const lab = process.env.LAB ? Lab.attach(process.env.LAB) : await Lab.up(3, (l) => console.log(l));
const owned = !process.env.LAB;
const docker = () => lab.docker(lab.alive()[0]!);

function spec(size: number, pool: Pool) {
  return {
    id: group,
    allocation: { size },
    instance: { provider: 'docker', properties: { engine: 'unix:///run/capstan-infra/docker.sock', image: 'capstan/machine:dev', memory: '512m' } },
    flavor: { kind: 'swarm-worker', properties: { drainTimeout: '30s' } },
    update: { maxUnavailable: 1, maxSurge: 1, healthyFor: '0s', healthTimeout: '2m', onFailure: 'pause' },
    ...(pool === 'cold' ? {} : { warm: { size: 1, state: pool === 'warm' ? 'running' : 'stopped' } }),
    autoscale: { cpus: 1, memory: '256MiB', scaleUpDelay: '0s', cooldown: '1s', scaleDownIdle: '1h' },
  };
}

const describe = () => lab.rpcAny<Described>('group.describe', { id: group });
const running = async () =>
  ((await docker().listTasks({ filters: { service: [fill], 'desired-state': ['running'] } })) as { NodeID?: string; Status: { State: string } }[]).filter((x) => x.Status.State === 'running');

async function replicas(n: number): Promise<void> {
  const service = docker().getService(fill);
  const info = await service.inspect();
  await service.update({ ...info.Spec, version: info.Version.Index, Mode: { Replicated: { Replicas: n } } });
}

/** The group settled at `size` serving members, the pool full and in its state, `tasks` fill tasks running. */
async function settled(size: number, pool: Pool, tasks: number): Promise<Described> {
  return waitFor(
    `group ${group} at ${size} with pool ${pool} and ${tasks} tasks`,
    async () => {
      const d = await describe();
      const warm = d.instances.filter((i) => i.warm);
      const poolOk = pool === 'cold' ? warm.length === 0 : warm.length === 1 && (pool === 'warm') === (warm[0]!.state === 'running');
      return d.converged && d.instances.length - warm.length === size && poolOk && (await running()).length === tasks && d;
    },
    300_000,
    1000,
  );
}

const range = (xs: number[]) => (xs.length ? `${(Math.min(...xs) / 1000).toFixed(1)}-${(Math.max(...xs) / 1000).toFixed(1)} s (median ${(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]! / 1000).toFixed(1)} s)` : 'none');

try {
  await lab.rpcAny('group.commit', { spec: spec(2, 'cold') });
  await docker().createService({
    Name: fill,
    TaskTemplate: {
      ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '86400'], Init: true },
      Resources: { Reservations: { NanoCPUs: 1e8 } },
      Placement: { Constraints: [`engine.labels.capstan.group==${group}`], MaxReplicas: 1 },
      RestartPolicy: { Condition: 'any', Delay: 0 },
    },
    Mode: { Replicated: { Replicas: 2 } },
  });
  const times: Record<Pool, number[]> = { cold: [], warm: [], 'warm-stopped': [] };
  for (let round = 1; round <= rounds; round++) {
    for (const pool of ['cold', 'warm', 'warm-stopped'] as const) {
      await lab.rpcAny('group.commit', { spec: spec(2, pool) });
      const before = await settled(2, pool, 2);
      const pooled = before.instances.find((i) => i.warm);
      const t0 = Date.now();
      await replicas(3);
      const third = await waitFor('the third task running', async () => {
        const r = await running();
        return r.length === 3 && r;
      }, 300_000, 100);
      const ms = Date.now() - t0;
      times[pool].push(ms);
      const node = third.find((x) => !before.instances.some((i) => !i.warm && i.link === x.NodeID))?.NodeID;
      const where = pooled && node === pooled.link ? `the warm machine ${pooled.id.slice(0, 12)}'s node` : `a new machine's node ${node}`;
      console.log(`round ${round} ${pool}: created -> running ${(ms / 1000).toFixed(2)} s, on ${where} (load ${loadavg()[0]!.toFixed(2)})`);
      // Back to 2 serving: the task goes, then the scale-down takes the member left empty.
      await replicas(2);
      await waitFor('2 tasks', async () => (await running()).length === 2, 60_000);
      await lab.rpcAny('group.scale', { id: group, size: 2 });
    }
  }
  // Scale-in: 4 members, 3 busy and 1 empty; which goes on a scaleDown of 1?
  await lab.rpcAny('group.commit', { spec: spec(4, 'cold') });
  await replicas(3);
  const four = await settled(4, 'cold', 3);
  const busy = new Set((await running()).map((x) => x.NodeID));
  const empty = four.instances.find((i) => i.link && !busy.has(i.link));
  const t0 = Date.now();
  await lab.rpcAny('group.scaleDown', { id: group });
  const after = await settled(3, 'cold', 3);
  const gone = four.instances.filter((i) => !after.instances.some((a) => a.id === i.id));
  console.log(`scale-in: 4 members, empty ${empty?.id.slice(0, 12)}; scaleDown removed ${gone.map((g) => g.id.slice(0, 12)).join(', ')} (${gone.length === 1 && gone[0]!.id === empty?.id ? 'the empty one' : 'NOT the empty one'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const pool of ['cold', 'warm', 'warm-stopped'] as const) console.log(`${pool.padEnd(13)} task created -> running: ${range(times[pool])} over ${times[pool].length} rounds`);
} finally {
  await docker().getService(fill).remove().catch(() => undefined);
  await lab.rpcAny('group.destroy', { id: group }).catch((e: unknown) => console.log(`group.destroy: ${String(e)}`));
  if (owned) await lab.down();
}
