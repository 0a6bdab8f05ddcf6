// An autoscaled swarm-worker group with a warm pool on a lab (issue 16), and a service `<group>-fill` of one task per
// node of the group (MaxReplicas 1), so one task more than nodes fits nowhere: what the lab's warm-pool scenario
// (test/e2e/warm.ts) asserts and `npm run bench:lab` (bench/warm-lab.ts) times.
import { Lab, waitFor } from './lab.js';

export type Pool = 'cold' | 'warm' | 'warm-stopped';

export interface WarmMember {
  readonly id: string;
  readonly state: string;
  readonly health: string;
  readonly link?: string;
  readonly warm?: boolean;
}
export interface WarmDescribed {
  readonly version: number;
  readonly converged: boolean;
  readonly instances: readonly WarmMember[];
}
interface Task {
  readonly NodeID?: string;
  readonly Status: { readonly State: string };
}

export class WarmGroup {
  readonly fill: string;

  constructor(
    private readonly lab: Lab,
    readonly id: string,
  ) {
    this.fill = `${id}-fill`;
  }

  /** The group at `size`, with a pool of one (cold: none), scaled up by the autoscaler at once. */
  spec(size: number, pool: Pool) {
    return {
      id: this.id,
      allocation: { size },
      instance: { provider: 'docker', properties: { engine: 'unix:///run/capstan-infra/docker.sock', image: 'capstan/machine:dev', memory: '512m' } },
      flavor: { kind: 'swarm-worker', properties: { drainTimeout: '30s' } },
      update: { maxUnavailable: 1, maxSurge: 1, healthyFor: '0s', healthTimeout: '2m', onFailure: 'pause' },
      ...(pool === 'cold' ? {} : { warm: { size: 1, state: pool === 'warm' ? 'running' : 'stopped' } }),
      autoscale: { cpus: 1, memory: '256MiB', scaleUpDelay: '0s', cooldown: '1s', scaleDownIdle: '1h' },
    };
  }

  commit(size: number, pool: Pool): Promise<unknown> {
    return this.lab.rpcAny('group.commit', { spec: this.spec(size, pool) });
  }

  describe(): Promise<WarmDescribed> {
    return this.lab.rpcAny<WarmDescribed>('group.describe', { id: this.id });
  }

  private docker() {
    return this.lab.docker(this.lab.alive()[0]!);
  }

  /** The fill service with `replicas` tasks, one per node of the group at the most. */
  async createFill(replicas: number): Promise<void> {
    await this.docker().createService({
      Name: this.fill,
      TaskTemplate: {
        ContainerSpec: { Image: 'capstan/busybox:dev', Command: ['sleep', '86400'], Init: true },
        Resources: { Reservations: { NanoCPUs: 1e8 } },
        Placement: { Constraints: [`engine.labels.capstan.group==${this.id}`], MaxReplicas: 1 },
        RestartPolicy: { Condition: 'any', Delay: 0 },
      },
      Mode: { Replicated: { Replicas: replicas } },
    });
  }

  async running(): Promise<Task[]> {
    const tasks = (await this.docker().listTasks({ filters: { service: [this.fill], 'desired-state': ['running'] } })) as Task[];
    return tasks.filter((x) => x.Status.State === 'running');
  }

  /** The fill service's running tasks once there are `n`, looked at every 100 ms (a timing starts before it). */
  runningCount(n: number, timeoutMs = 300_000): Promise<Task[]> {
    return waitFor(`${n} ${this.fill} tasks running`, async () => {
      const r = await this.running();
      return r.length === n && r;
    }, timeoutMs, 100);
  }

  async replicas(n: number): Promise<void> {
    const service = this.docker().getService(this.fill);
    const info = await service.inspect();
    await service.update({ ...info.Spec, version: info.Version.Index, Mode: { Replicated: { Replicas: n } } });
  }

  /** The group converged at `size` serving members, the pool full and in its state, `tasks` fill tasks running. */
  settled(size: number, pool: Pool, tasks: number, timeoutMs = 300_000): Promise<WarmDescribed> {
    return waitFor(
      `group ${this.id} at ${size} with pool ${pool} and ${tasks} tasks`,
      async () => {
        const d = await this.describe();
        const warm = d.instances.filter((i) => i.warm);
        const poolOk = pool === 'cold' ? warm.length === 0 : warm.length === 1 && (pool === 'warm') === (warm[0]!.state === 'running');
        return d.converged && d.instances.length - warm.length === size && poolOk && (await this.running()).length === tasks && d;
      },
      timeoutMs,
      1000,
    );
  }

  /** The service and the group go; the group's machines with it. */
  async remove(log: (line: string) => void): Promise<void> {
    await this.docker().getService(this.fill).remove().catch(() => undefined);
    await this.lab.rpcAny('group.destroy', { id: this.id }).catch((e: unknown) => log(`group.destroy: ${String(e)}`));
  }
}
