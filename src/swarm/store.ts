import type Docker from 'dockerode';
import { CapstanError, InvalidError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GroupSpec, SpecStore, SpecVersion, VersionState } from '../spi/index.js';
import {
  configName,
  CREATED_LABEL,
  decodeConfig,
  decodeState,
  encodeState,
  GROUP_LABEL,
  groupPrefix,
  NAME_PREFIX,
  parseConfigName,
  STATE_LABEL,
  VERSION_LABEL,
  type StoredConfig,
  type StoreProblem,
} from './spec-config.js';

export { configName, MAX_STATE_BYTES, type StoreProblem } from './spec-config.js';

/** Swarm refuses config data of this many bytes or more ("must be larger than 0 and less than 1024000 bytes"). */
export const MAX_CONFIG_BYTES = 1_024_000;
/** Swarm's limit on a config name. */
const MAX_NAME_LENGTH = 64;
const NAME_PATTERN = /^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/;

export interface SwarmSpecStoreOptions {
  readonly docker: Docker;
  /** Validates a raw spec and fills in defaults; throws InvalidError. */
  readonly parse: (raw: unknown) => GroupSpec;
  readonly logger: Logger;
  /** Versions kept per group; older ones are removed after a commit. */
  readonly keep?: number;
}

/**
 * Group specs as Swarm configs, one per version (`capstan.group.<id>.v<N>`, labelled `capstan.group`,
 * `capstan.version`, `capstan.created`, and `capstan.state` when the version carries operation state). Swarm's
 * unique config names make a commit atomic: of two commits of the same version only one can create the config.
 * Configs are immutable, so nothing is ever overwritten.
 */
export class SwarmSpecStore implements SpecStore {
  readonly #docker: Docker;
  readonly #parse: (raw: unknown) => GroupSpec;
  readonly #logger: Logger;
  readonly #keep: number;
  /** Problems seen by the latest read, by config id. */
  readonly #problems = new Map<string, StoreProblem>();
  /** Config ids already logged, so that a bad config is logged once however often it is read. */
  readonly #warned = new Set<string>();
  /** Groups held because their newest version is unreadable, logged once each. */
  readonly #held = new Set<string>();

  constructor({ docker, parse, logger, keep = 10 }: SwarmSpecStoreOptions) {
    if (!Number.isInteger(keep) || keep < 1) throw new Error(`keep must be a positive integer, not ${keep}`);
    this.#docker = docker;
    this.#parse = parse;
    this.#logger = logger.child({ component: 'spec-store' });
    this.#keep = keep;
  }

  /** Highest good version of every group, by id; two Swarm calls. */
  async list(): Promise<SpecVersion[]> {
    const stored = await this.#read();
    const latest = new Map<string, SpecVersion>();
    const newestBad = new Map<string, number>();
    for (const { good, problem, id, claims } of stored) {
      if (good && (latest.get(good.id)?.version ?? 0) < good.version) latest.set(good.id, good);
      if (problem) newestBad.set(id, Math.max(newestBad.get(id) ?? 0, claims));
    }
    // A group whose newest version cannot be read is held, not served from an older version: that would bring back
    // an old size or old machines. It stays listed in problems() until a good commit steps over the bad version.
    for (const [id, bad] of newestBad) {
      const good = latest.get(id);
      if (!good || good.version > bad) continue;
      latest.delete(id);
      if (!this.#held.has(`${id}@${bad}`)) this.#logger.error({ event: 'store.held', group: id, version: bad, inForce: good.version }, `group ${id}: its newest version v${bad} cannot be read; not managed until a good commit`);
      this.#held.add(`${id}@${bad}`);
    }
    return [...latest.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async get(id: string): Promise<SpecVersion | undefined> {
    return (await this.history(id)).at(-1);
  }

  /** Every stored good version, oldest first. */
  async history(id: string): Promise<SpecVersion[]> {
    return goodVersions(await this.#read(id));
  }

  /** Configs that are stored but not served, as of the latest read. */
  problems(): StoreProblem[] {
    return [...this.#problems.values()].sort((a, b) => (a.id === b.id ? (a.version ?? 0) - (b.version ?? 0) : a.id < b.id ? -1 : 1));
  }

  /**
   * Stores `spec` (and `state`, when given) as the next version after `expected`, the version in force (0 for a new
   * group). The new version steps over any higher corrupt versions and hand-made names, so it always supersedes them.
   */
  async commit(spec: GroupSpec, expected: number, state?: VersionState): Promise<SpecVersion> {
    const data = JSON.stringify(spec);
    const bytes = Buffer.byteLength(data);
    if (bytes >= MAX_CONFIG_BYTES) {
      throw new CapstanError('tooLarge', `spec is ${bytes} bytes; Swarm stores less than ${MAX_CONFIG_BYTES} bytes per config`, {
        bytes,
        limit: MAX_CONFIG_BYTES - 1,
      });
    }
    const stateLabel = state === undefined ? undefined : encodeState(state);
    // Validate what will be read back, so a commit never stores a version that reads would skip.
    const parsed = this.#parse(JSON.parse(data));
    const id = parsed.id;
    const readState = stateLabel === undefined ? undefined : decodeState(stateLabel);
    if (typeof readState === 'string') {
      throw new InvalidError(`operation state: ${readState}`, [{ path: '/state', message: readState }]);
    }

    const stored = await this.#read(id);
    const current = goodVersions(stored).at(-1)?.version ?? 0;
    if (expected !== current) {
      throw new CapstanError('conflict', `group ${id}: expected version ${expected}, but version ${current} is in force`, {
        id,
        expected,
        current,
      });
    }
    const version = Math.max(current, ...stored.map((s) => s.claims)) + 1;
    const name = configName(id, version);
    if (name.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(name)) {
      const message = `config name "${name}" must be at most ${MAX_NAME_LENGTH} characters of [a-zA-Z0-9_.-]`;
      throw new InvalidError(`group id cannot name a Swarm config: ${message}`, [{ path: '/id', message }]);
    }

    const createdAt = new Date().toISOString();
    try {
      // dockerode also copies a POST body into the query string unless `_query` is given: a large spec would
      // overflow the daemon's header limit (HTTP 431).
      await this.#docker.createConfig({
        _query: {},
        _body: {
          Name: name,
          Labels: {
            [GROUP_LABEL]: id,
            [VERSION_LABEL]: String(version),
            [CREATED_LABEL]: createdAt,
            ...(stateLabel !== undefined ? { [STATE_LABEL]: stateLabel } : {}),
          },
          Data: Buffer.from(data).toString('base64'),
        },
      });
    } catch (err) {
      if (statusOf(err) === 409) {
        throw new CapstanError('conflict', `group ${id}: version ${version} already exists (another commit got there first)`, {
          id,
          expected,
          version,
        });
      }
      throw err;
    }
    this.#logger.info({ id, version, bytes, ...(readState ? { state: readState } : {}) }, 'spec committed');
    // Only configs this store would have written: a mislabelled one stays (and is reported) until remove(id).
    const old = stored.filter((s) => s.version !== undefined && s.version <= version - this.#keep);
    await this.#prune(old.filter((s) => s.name === configName(id, s.version!)));
    return { id, version, createdAt, spec: parsed, ...(readState ? { state: readState } : {}) };
  }

  /**
   * Removes every config of the group, corrupt and hand-made ones included; a group with none is not an error.
   * A remove that fails part way leaves the version in force (or none) and a retry finishes the job.
   */
  async remove(id: string): Promise<void> {
    const stored = (await this.#list(id)).map((config) => decodeConfig(config, this.#parse)).sort((a, b) => a.claims - b.claims);
    this.#forget(id);
    // Oldest first, one at a time, stopping at the first failure: what is left is always the newest versions, so
    // none older than the one in force can come back (removing newest first would put the previous one in force).
    for (const s of stored) await this.#removeConfig(s.configId);
    this.#logger.info({ id, configs: stored.length }, 'group specs removed');
  }

  async #prune(old: readonly StoredConfig[]): Promise<void> {
    // The commit has succeeded already: a config that cannot be removed now goes with a later commit.
    await Promise.all(
      old.map((s) =>
        this.#removeConfig(s.configId).catch((err: unknown) =>
          this.#logger.warn({ id: s.id, version: s.version, err }, 'cannot remove an old spec version'),
        ),
      ),
    );
  }

  async #removeConfig(configId: string): Promise<void> {
    try {
      await this.#docker.getConfig(configId).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /**
   * The configs of one group, or of all: those with its label, and those named like one of its versions whatever
   * their labels (filters of one call are ANDed, so two calls).
   */
  async #list(id?: string): Promise<Docker.ConfigInfo[]> {
    const [labelled, named] = await Promise.all([
      this.#docker.listConfigs({ filters: { label: [id === undefined ? GROUP_LABEL : `${GROUP_LABEL}=${id}`] } }),
      this.#docker.listConfigs({ filters: { name: [id === undefined ? NAME_PREFIX : groupPrefix(id)] } }),
    ]);
    const configs = new Map(labelled.map((c) => [c.ID, c]));
    for (const config of named) {
      const claim = parseConfigName(config.Spec?.Name ?? '');
      if (claim && (id === undefined || claim.id === id)) configs.set(config.ID, config);
    }
    return [...configs.values()];
  }

  /** Reads and decodes the configs of one group, or of all; records the problems this read found. */
  async #read(id?: string): Promise<StoredConfig[]> {
    const stored = (await this.#list(id)).map((config) => decodeConfig(config, this.#parse));
    this.#forget(id);
    for (const { problem } of stored) {
      if (!problem) continue;
      this.#problems.set(problem.configId, problem);
      if (this.#warned.has(problem.configId)) continue;
      this.#warned.add(problem.configId);
      this.#logger.warn(
        { id: problem.id, version: problem.version, config: problem.config, error: problem.message, problems: problem.problems },
        'stored spec skipped; the last good version stays in force',
      );
    }
    for (const configId of this.#warned) if (!this.#problems.has(configId)) this.#warned.delete(configId);
    return stored;
  }

  /** Drops the recorded problems of one group (by label or by name), or of all. */
  #forget(id?: string): void {
    for (const [configId, problem] of this.#problems) {
      if (id === undefined || problem.id === id || parseConfigName(problem.config)?.id === id) this.#problems.delete(configId);
    }
  }
}

function goodVersions(stored: readonly StoredConfig[]): SpecVersion[] {
  return stored.flatMap((s) => (s.good ? [s.good] : [])).sort((a, b) => a.version - b.version);
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | null)?.statusCode;
}

