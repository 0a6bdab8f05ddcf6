/** InstanceProvider whose machines are docker-in-docker containers on an infrastructure engine. */
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { providerCalls, providerErrors } from '../../metrics.js';
import type { Instance, InstanceProvider, InstanceSpec, InstanceState, Tags } from '../../spi/instance.js';
import type { MachineConfig } from './properties.js';
import { tar } from './tar.js';

const GROUP_TAG = 'capstan.group';
const CONFIG_TAG = 'capstan.config';
const LOGICAL_ID_TAG = 'capstan.logical-id';
/** Where the machine image looks for its init script; copied in before start, so it never shows in `docker inspect`. */
export const INIT_PATH = '/var/lib/capstan/init.sh';
/** Docker's container states as SPI states; exited, dead and paused machines are listed, as stopped. */
const STATES: Record<string, InstanceState> = {
  created: 'pending',
  restarting: 'pending',
  running: 'running',
  removing: 'stopping',
  paused: 'stopped',
  exited: 'stopped',
  dead: 'stopped',
};
const HOSTNAME = /^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

export interface DockerProviderConfig {
  readonly docker: Docker;
  readonly machine: MachineConfig;
  readonly logger: Logger;
  readonly maxBatch: number;
  /** Containers created or removed at once. */
  readonly concurrency: number;
}

/** What both the list and the inspect answers tell about a container. */
interface Seen {
  readonly id: string;
  readonly labels: Tags;
  readonly status: string;
  readonly createdMs: number;
  readonly networks: Record<string, { IPAddress?: string }>;
}

export class DockerInstanceProvider implements InstanceProvider {
  readonly maxBatch: number;
  private readonly docker: Docker;
  private readonly machine: MachineConfig;
  private readonly logger: Logger;
  private readonly concurrency: number;

  constructor(config: DockerProviderConfig) {
    this.docker = config.docker;
    this.machine = config.machine;
    this.logger = config.logger;
    this.maxBatch = config.maxBatch;
    this.concurrency = config.concurrency;
  }

  /**
   * One container per spec. Names derive from the intent, so a retried decision finds the containers its
   * first attempt made (Docker answers 409 for a taken name) instead of creating more. Fails if any spec
   * failed, after all have settled; a container that could not be started is removed again.
   */
  async provision(specs: readonly InstanceSpec[], intent: string): Promise<Instance[]> {
    if (specs.length > this.maxBatch) throw new Error(`${specs.length} specs exceed the docker provider's batch of ${this.maxBatch}`);
    const results = await settleBounded(specs, this.concurrency, (spec, index) => this.launch(spec, machineName(spec, intent, index)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<Instance>).value);
  }

  async destroy(ids: readonly string[]): Promise<void> {
    const results = await settleBounded([...new Set(ids)], this.concurrency, async (id) => {
      // 404: already gone; 409: a removal is already in progress.
      const removed = await this.call('remove', () => this.docker.getContainer(id).remove({ force: true, v: true }), [404, 409]);
      if (removed !== undefined) this.logger.info({ id }, 'machine removed');
    });
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Only containers with a capstan.group label are machines: nothing else on the engine is ever listed. */
  async describe(tags: Tags): Promise<Instance[]> {
    const label = [GROUP_TAG, ...Object.entries(tags).map(([k, v]) => `${k}=${v}`)];
    const list = await this.call('list', () => this.docker.listContainers({ all: true, filters: { label } }));
    return list!.map((c) =>
      this.toInstance({ id: c.Id, labels: c.Labels ?? {}, status: c.State, createdMs: c.Created * 1000, networks: c.NetworkSettings?.Networks ?? {} }),
    );
  }

  private async launch(spec: InstanceSpec, name: string): Promise<Instance> {
    const labels: Record<string, string> = { ...spec.tags };
    if (spec.logicalId !== undefined) labels[LOGICAL_ID_TAG] ??= spec.logicalId;
    const m = this.machine;
    const created = await this.call(
      'create',
      () =>
        this.docker.createContainer({
          name,
          Image: m.image,
          Hostname: spec.logicalId !== undefined && HOSTNAME.test(spec.logicalId) ? spec.logicalId : name,
          Labels: labels,
          Env: m.env,
          HostConfig: {
            Privileged: m.privileged,
            CapAdd: m.capAdd,
            CapDrop: m.capDrop,
            SecurityOpt: m.securityOpt,
            ...(m.unmaskPaths ? { MaskedPaths: [], ReadonlyPaths: [] } : {}),
            DeviceCgroupRules: m.deviceCgroupRules,
            ...(m.network ? { NetworkMode: m.network } : {}),
            ...(m.memory ? { Memory: m.memory } : {}),
          },
        }),
      [409],
    );
    const container = created ?? this.docker.getContainer(name);
    if (created === undefined) {
      // Made by an earlier attempt of this decision: take it over unless it is already past start.
      const seen = await this.inspect(container);
      if (seen.labels[GROUP_TAG] !== labels[GROUP_TAG] || seen.labels[CONFIG_TAG] !== labels[CONFIG_TAG]) {
        throw new Error(`container ${name} exists with other labels`);
      }
      if (seen.status !== 'created') return this.toInstance(seen);
    }
    try {
      if (spec.init !== '') {
        const archive = tar([
          { path: 'var/lib/capstan/', mode: 0o700 },
          { path: INIT_PATH.slice(1), mode: 0o700, content: spec.init },
        ]);
        await this.call('put-archive', () => container.putArchive(archive, { path: '/' }));
      }
      await this.call('start', () => container.start(), [304]);
    } catch (err) {
      await this.call('remove', () => container.remove({ force: true, v: true }), [404, 409]).catch(() => undefined);
      throw err;
    }
    const instance = this.toInstance(await this.inspect(container));
    this.logger.info({ id: instance.id, name, group: labels[GROUP_TAG] }, 'machine started');
    return instance;
  }

  private async inspect(container: Docker.Container): Promise<Seen> {
    const info = (await this.call('inspect', () => container.inspect()))!;
    return {
      id: info.Id,
      labels: info.Config.Labels ?? {},
      status: info.State.Status,
      createdMs: Date.parse(info.Created),
      networks: info.NetworkSettings.Networks ?? {},
    };
  }

  private toInstance(seen: Seen): Instance {
    const network = this.machine.network ?? 'bridge';
    const address = seen.networks[network]?.IPAddress || Object.values(seen.networks).find((n) => n.IPAddress)?.IPAddress;
    return {
      id: seen.id,
      tags: seen.labels,
      state: STATES[seen.status] ?? 'pending',
      launchedAt: seen.createdMs,
      ...(address ? { address } : {}),
    };
  }

  /** A Docker call, counted; an error whose HTTP status is in `expected` resolves to undefined instead. */
  private async call<T>(operation: string, fn: () => Promise<T>, expected: readonly number[] = []): Promise<T | undefined> {
    providerCalls.inc({ provider: 'docker', operation });
    try {
      return await fn();
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status !== undefined && expected.includes(status)) return undefined;
      providerErrors.inc({ provider: 'docker', operation, code: String(status ?? (err as { code?: string }).code ?? 'unknown') });
      throw err;
    }
  }
}

/**
 * capstan-<group>-<8 hex>: the hex is a hash of the decision and the spec's place in it, random-looking
 * across decisions but the same when a decision is retried.
 */
export function machineName(spec: InstanceSpec, intent: string, index: number): string {
  const group = (spec.tags[GROUP_TAG] ?? 'machine').replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 40);
  const key = [group, spec.tags[CONFIG_TAG] ?? '', spec.logicalId ?? '', intent, String(index)].join('\u0000');
  return `capstan-${group}-${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

/** Like Promise.allSettled over items.map(fn), with at most `limit` calls running at once. */
async function settleBounded<I, O>(items: readonly I[], limit: number, fn: (item: I, index: number) => Promise<O>): Promise<PromiseSettledResult<O>[]> {
  const results: PromiseSettledResult<O>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = { status: 'fulfilled', value: await fn(items[index]!, index) };
      } catch (reason) {
        results[index] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
