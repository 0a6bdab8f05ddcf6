/** InstanceProvider whose machines are docker-in-docker containers on an infrastructure engine. */
import type Docker from 'dockerode';
import type { Logger } from '../../log.js';
import { providerCalls, providerErrors } from '../../metrics.js';
import type { Instance, InstanceProvider, InstanceSpec, InstanceState, Tags } from '../../spi/instance.js';
import { TAG } from '../../spi/tags.js';
import { mapLimit, valuesOrThrow } from '../../concurrency.js';
import { CONFIG_TAG, GROUP_TAG, INTENT_INDEX_LABEL, INTENT_LABEL, type MachineNames } from './names.js';
import type { MachineConfig } from './properties.js';
import { tar } from './tar.js';

const LOGICAL_ID_TAG = TAG.logicalId;
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
/** Attempts at a fresh name when a name is taken by a container of another decision. */
const NAME_ATTEMPTS = 3;

export interface DockerProviderConfig {
  readonly docker: Docker;
  readonly machine: MachineConfig;
  readonly logger: Logger;
  readonly maxBatch: number;
  /** Containers created or removed at once. */
  readonly concurrency: number;
  /** Names given to decisions, shared by the providers of one engine. */
  readonly names: MachineNames;
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
  private readonly names: MachineNames;

  constructor(config: DockerProviderConfig) {
    this.docker = config.docker;
    this.machine = config.machine;
    this.logger = config.logger;
    this.maxBatch = config.maxBatch;
    this.concurrency = config.concurrency;
    this.names = config.names;
  }

  /**
   * One container per spec, each with a name never used before (names.ts). A retried decision takes over the
   * containers its earlier attempts made, found by their labels capstan.intent and capstan.intent-index, instead of
   * creating more. Fails if any spec failed, after all have settled; a container that could not be started is
   * removed again.
   */
  async provision(specs: readonly InstanceSpec[], intent: string): Promise<Instance[]> {
    if (specs.length > this.maxBatch) throw new Error(`${specs.length} specs exceed the docker provider's batch of ${this.maxBatch}`);
    if (specs.length === 0) return [];
    const group = specs[0]!.tags[GROUP_TAG];
    const label = [`${INTENT_LABEL}=${intent}`, ...(group === undefined ? [] : [`${GROUP_TAG}=${group}`])];
    const earlier = (await this.call('list', () => this.docker.listContainers({ all: true, filters: { label } })))!;
    const made = new Map(earlier.map((c) => [c.Labels?.[INTENT_INDEX_LABEL], c.Id]));
    const results = await mapLimit(specs, this.concurrency, async (spec, index) => {
      const labels = labelsOf(spec, intent, index);
      const id = made.get(String(index));
      return id === undefined ? this.launch(spec, labels, intent, index) : this.resume(spec, labels, this.docker.getContainer(id));
    });
    return valuesOrThrow(results);
  }

  async destroy(ids: readonly string[]): Promise<void> {
    // 404: already gone; 409: a removal is already in progress.
    await this.each(ids, 'remove', (c) => c.remove({ force: true, v: true }), [404, 409], 'machine removed');
  }

  /**
   * Stops machines (SIGTERM, then SIGKILL after 10 s): the machine image stops its dockerd, and its volume and init
   * marker stay, so a start boots it as it was. 304: already stopped; 404: gone.
   */
  async stop(ids: readonly string[]): Promise<void> {
    await this.each(ids, 'stop', (c) => c.stop({ t: 10 }), [304, 404], 'machine stopped');
  }

  /** Starts stopped machines again: the image sees its init marker and only starts dockerd. 304: already running. */
  async start(ids: readonly string[]): Promise<void> {
    await this.each(ids, 'start', (c) => c.start(), [304], 'machine started again');
  }

  /** One call per machine, `concurrency` at a time, logged unless answered with an `expected` status (nothing to do). */
  private async each(ids: readonly string[], operation: string, fn: (c: Docker.Container) => Promise<unknown>, expected: readonly number[], done: string): Promise<void> {
    const results = await mapLimit([...new Set(ids)], this.concurrency, async (id) => {
      const acted = await this.call(operation, async () => (await fn(this.docker.getContainer(id)), true), expected);
      if (acted) this.logger.info({ id }, done);
    });
    valuesOrThrow(results);
  }

  /** Only containers with a capstan.group label are machines: nothing else on the engine is ever listed. */
  async describe(tags: Tags): Promise<Instance[]> {
    const label = [GROUP_TAG, ...Object.entries(tags).map(([k, v]) => `${k}=${v}`)];
    const list = await this.call('list', () => this.docker.listContainers({ all: true, filters: { label } }));
    return list!.map((c) =>
      this.toInstance({ id: c.Id, labels: c.Labels ?? {}, status: c.State, createdMs: c.Created * 1000, networks: c.NetworkSettings?.Networks ?? {} }),
    );
  }

  /** Creates and starts the container; a taken name is either this decision's own container or a reason to rename. */
  private async launch(spec: InstanceSpec, labels: Tags, intent: string, index: number): Promise<Instance> {
    const m = this.machine;
    for (let attempt = 1; ; attempt++) {
      const name = this.names.nameFor(spec, intent, index, attempt > 1);
      const created = await this.call(
        'create',
        () =>
          this.docker.createContainer({
            name,
            Image: m.image,
            Hostname: name,
            Labels: { ...labels },
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
      if (created !== undefined) {
        this.names.seen(spec, intent, index);
        return this.boot(spec, labels, created, name);
      }
      // 409: a concurrent or earlier attempt of this decision made it (then take it over), or, should it ever happen,
      // another decision's container has the name (then take a fresh one).
      const container = this.docker.getContainer(name);
      const seen = await this.inspect(container);
      if (sameDecision(seen.labels, labels)) {
        this.names.seen(spec, intent, index);
        return this.resume(spec, labels, container, seen);
      }
      if (attempt >= NAME_ATTEMPTS) throw new Error(`container name ${name} is taken by a machine of another decision`);
    }
  }

  /** A container of an earlier attempt of this decision: started unless it is already past that. */
  private async resume(spec: InstanceSpec, labels: Tags, container: Docker.Container, seen?: Seen): Promise<Instance> {
    seen ??= await this.inspect(container);
    if (!sameDecision(seen.labels, labels)) throw new Error(`container ${seen.id} exists with other labels`);
    if (seen.status !== 'created') return this.toInstance(seen);
    return this.boot(spec, labels, container, seen.id);
  }

  /** Copies the init script in and starts the container; removes it again if that fails. */
  private async boot(spec: InstanceSpec, labels: Tags, container: Docker.Container, name: string): Promise<Instance> {
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

/** The container's labels: the instance's tags, its logical id, and which decision made it. */
function labelsOf(spec: InstanceSpec, intent: string, index: number): Tags {
  const labels: Record<string, string> = { ...spec.tags, [INTENT_LABEL]: intent, [INTENT_INDEX_LABEL]: String(index) };
  if (spec.logicalId !== undefined) labels[LOGICAL_ID_TAG] ??= spec.logicalId;
  return labels;
}

/** Whether a container was made by the same decision for the same place in it, for the same group and config. */
function sameDecision(seen: Tags, wanted: Tags): boolean {
  return [GROUP_TAG, CONFIG_TAG, INTENT_LABEL, INTENT_INDEX_LABEL].every((k) => seen[k] === wanted[k]);
}
