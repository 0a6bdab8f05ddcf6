import type Docker from 'dockerode';
import { CapstanError, InvalidError, type Problem } from '../errors.js';
import type { Autoscaled, FormerMachines, GroupSpec, SpecVersion, VersionState } from '../spi/index.js';

/*
 * How a spec version is stored as a Swarm config, and read back: named `capstan.group.<id>.v<N>`, labelled
 * `capstan.group`, `capstan.version`, `capstan.created` and, when the version carries operation state,
 * `capstan.state` (JSON); the data is the spec's JSON.
 */
export const GROUP_LABEL = 'capstan.group';
export const VERSION_LABEL = 'capstan.version';
export const CREATED_LABEL = 'capstan.created';
export const STATE_LABEL = 'capstan.state';

/** The start of every version's config name; Swarm's `name` filter matches a prefix. */
export const NAME_PREFIX = 'capstan.group.';
/** Bytes of the state label's JSON: a few fields and at most a list of instance ids. */
export const MAX_STATE_BYTES = 64 * 1024;

export function configName(id: string, version: number): string {
  return `${NAME_PREFIX}${id}.v${version}`;
}

/** Name prefix of one group's versions (ids are DNS labels: no dots, so `a.` never matches group `ab`). */
export function groupPrefix(id: string): string {
  return `${NAME_PREFIX}${id}.`;
}

/** A version number as written by the store: no sign, no leading zero, exact as a double. */
export function versionNumber(text: string | undefined): number | undefined {
  return text !== undefined && /^[1-9]\d{0,14}$/.test(text) ? Number(text) : undefined;
}

/**
 * The group and version a config's name claims, whatever its labels say. Swarm compares names ignoring case,
 * so `capstan.group.G.v3` blocks `capstan.group.g.v3` too.
 */
export function parseConfigName(name: string): { id: string; version: number } | undefined {
  const match = /^capstan\.group\.([^.]+)\.v(\d+)$/i.exec(name);
  const version = versionNumber(match?.[2]);
  return match && version !== undefined ? { id: match[1]!.toLowerCase(), version } : undefined;
}

/** The state label's value; refuses a state whose JSON is over MAX_STATE_BYTES. */
export function encodeState(state: VersionState): string {
  const text = JSON.stringify(state);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_STATE_BYTES) {
    const message = `operation state is ${bytes} bytes of JSON; at most ${MAX_STATE_BYTES} are stored with a version`;
    throw new CapstanError('tooLarge', message, { bytes, limit: MAX_STATE_BYTES });
  }
  return text;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The state in a label, or why it is malformed. Known fields must have their types; unknown ones are dropped, so a
 * version written by a newer Capstan still reads (skipping it would put an older version in force).
 */
export function decodeState(text: string): VersionState | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return `not JSON: ${messageOf(err)}`;
  }
  if (!isObject(raw)) return 'must be a JSON object';
  const { paused, failure, removing, note, former, autoscaled } = raw;
  if (paused !== undefined && typeof paused !== 'boolean') return 'paused must be a boolean';
  if (failure !== undefined && typeof failure !== 'string') return 'failure must be a string';
  if (note !== undefined && typeof note !== 'string') return 'note must be a string';
  if (removing !== undefined && !(Array.isArray(removing) && removing.every((r) => typeof r === 'string' && r !== ''))) {
    return 'removing must be a list of instance ids';
  }
  if (former !== undefined && !(Array.isArray(former) && former.every(isMachineSection))) return 'former must be a list of {instance, flavor} sections';
  if (autoscaled !== undefined && !isAutoscaled(autoscaled)) return 'autoscaled must be {at, action}';
  return {
    ...(paused !== undefined ? { paused } : {}),
    ...(failure !== undefined ? { failure } : {}),
    ...(removing !== undefined ? { removing: removing as string[] } : {}),
    ...(note !== undefined ? { note } : {}),
    ...(former !== undefined ? { former: former as FormerMachines[] } : {}),
    ...(autoscaled !== undefined ? { autoscaled: autoscaled as Autoscaled } : {}),
  };
}

/** An earlier version's machine sections, as the spec schema shapes them (their properties were checked then). */
function isMachineSection(v: unknown): boolean {
  if (!isObject(v) || !isObject(v.instance) || !isObject(v.flavor)) return false;
  return typeof v.instance.provider === 'string' && typeof v.flavor.kind === 'string';
}

function isAutoscaled(v: unknown): boolean {
  return isObject(v) && typeof v.at === 'number' && Number.isFinite(v.at) && (v.action === 'scale-up' || v.action === 'scale-down');
}

/** A stored config that is not served: it does not decode, parse or validate, or it is mislabelled. */
export interface StoreProblem {
  /** Group id, from the config's label, else from its name. */
  readonly id: string;
  readonly version?: number;
  /** Config name and Swarm id. */
  readonly config: string;
  readonly configId: string;
  readonly message: string;
  /** The validator's problems by JSON path, when the spec itself is invalid. */
  readonly problems?: readonly Problem[];
}

/** One config of a group as read from Swarm: a good version, or a problem. */
export interface StoredConfig {
  readonly configId: string;
  readonly name: string;
  readonly id: string;
  /** From the version label; undefined when that is unusable. */
  readonly version?: number;
  /** The highest version this config's label or name claims: later commits must step over it. */
  readonly claims: number;
  readonly good?: SpecVersion;
  readonly problem?: StoreProblem;
}

/** Decodes one config; `parse` validates a raw spec and fills in defaults (throws InvalidError). */
export function decodeConfig(config: Docker.ConfigInfo, parse: (raw: unknown) => GroupSpec): StoredConfig {
  const labels = config.Spec?.Labels ?? {};
  const name = config.Spec?.Name ?? '';
  const named = parseConfigName(name);
  const id = labels[GROUP_LABEL] ?? named?.id ?? '';
  const versionLabel = labels[VERSION_LABEL];
  const version = versionNumber(versionLabel);
  const claims = Math.max(version ?? 0, named?.version ?? 0);
  const bad = (message: string, problems?: readonly Problem[]): StoredConfig => {
    const shown = version ?? named?.version;
    return {
      configId: config.ID,
      name,
      id,
      ...(version !== undefined ? { version } : {}),
      claims,
      problem: {
        id,
        ...(shown !== undefined ? { version: shown } : {}),
        config: name,
        configId: config.ID,
        message,
        ...(problems ? { problems } : {}),
      },
    };
  };
  if (labels[GROUP_LABEL] === undefined) return bad(`not labelled by Capstan: label ${GROUP_LABEL} is missing`);
  if (versionLabel === undefined) return bad(`not labelled by Capstan: label ${VERSION_LABEL} is missing`);
  if (version === undefined) return bad(`label ${VERSION_LABEL}="${versionLabel}" is not a version number`);
  if (name !== configName(id, version)) return bad(`name does not match its labels (want ${configName(id, version)})`);
  const stateLabel = labels[STATE_LABEL];
  const state = stateLabel === undefined ? undefined : decodeState(stateLabel);
  if (typeof state === 'string') return bad(`label ${STATE_LABEL} is malformed: ${state}`);

  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(config.Spec?.Data ?? '', 'base64').toString('utf8'));
  } catch (err) {
    return bad(`not JSON: ${messageOf(err)}`);
  }
  let spec: GroupSpec;
  try {
    spec = parse(raw);
  } catch (err) {
    return bad(`invalid spec: ${messageOf(err)}`, err instanceof InvalidError ? err.problems : undefined);
  }
  if (spec.id !== id) return bad(`spec id "${spec.id}" does not match its ${GROUP_LABEL} label "${id}"`);
  const created = labels[CREATED_LABEL];
  const createdAt = created && !Number.isNaN(Date.parse(created)) ? created : config.CreatedAt;
  return { configId: config.ID, name, id, version, claims, good: { id, version, createdAt, spec, ...(state ? { state } : {}) } };
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
