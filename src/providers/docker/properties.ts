/** The docker provider's `instance.properties`: their type, schema (schemas/docker.json), checks and defaults. */
import { readSchema } from '../../package.js';
import { problemsOf, problemText, validator } from '../../schema.js';
import { engineAllowed, type OperatorAllow } from '../allow.js';

export interface DockerProperties {
  readonly engine?: string;
  readonly image?: string;
  readonly privileged?: boolean;
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly securityOpt?: readonly string[];
  readonly deviceCgroupRules?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly network?: string;
  readonly memory?: number | string;
}

/** Everything a machine container is created with, defaults applied. */
export interface MachineConfig {
  /** DOCKER_HOST-style URL; undefined means createDocker's default (DOCKER_HOST, else the local socket). */
  readonly engine?: string;
  readonly image: string;
  readonly privileged: boolean;
  readonly capAdd: string[];
  readonly capDrop: string[];
  /** As the Engine API takes them: without systempaths=unconfined, which the CLI turns into `unmaskPaths`. */
  readonly securityOpt: string[];
  /** No masked or read-only /proc and /sys paths (--security-opt systempaths=unconfined). */
  readonly unmaskPaths: boolean;
  readonly deviceCgroupRules: string[];
  readonly env: string[];
  readonly network?: string;
  readonly memory?: number;
}

export const DEFAULT_IMAGE = 'capstan/machine:dev';
/** What replaces --privileged where it fails (the capability bounding set lacks CAP_SYS_RESOURCE). */
const UNPRIVILEGED = {
  capAdd: ['ALL'],
  capDrop: ['SYS_RESOURCE'],
  securityOpt: ['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined'],
  deviceCgroupRules: ['a *:* rwm'],
};

const SYSTEMPATHS_UNCONFINED = 'systempaths=unconfined';

export const dockerSchema: object = readSchema('docker.json');
const validateSchema = validator<DockerProperties>(dockerSchema);

/** Schema problems, each naming its JSON path; none when the properties are usable. */
export function checkProperties(properties: unknown): string[] {
  if (!validateSchema(properties)) return problemsOf(validateSchema.errors).map(problemText);
  const { memory } = properties;
  // Docker's own floor, which the schema can only say for the integer form.
  if (memory !== undefined && bytes(memory) < MIN_MEMORY) return [`/memory: less than Docker's minimum of 6m`];
  return [];
}

/** A capability's name as Docker compares them: upper case, without the CAP_ prefix. */
const capName = (c: string): string => c.toUpperCase().replace(/^CAP_/, '');

/** Whether a machine made with these capAdd and capDrop gets capability `cap` (Docker's TweakCapabilities). */
function grants(cap: string, capAdd: readonly string[], capDrop: readonly string[]): boolean {
  const add = capAdd.map(capName);
  const drop = capDrop.map(capName);
  if (add.includes('ALL')) return !drop.includes(cap);
  // Docker's own default set has no capability the defaults here drop, so only an explicit add grants one.
  return add.includes(cap);
}

/**
 * What the operator must allow (see ../allow.ts): an engine other than the local socket, privileged machines, the
 * host's network (or another container's), capabilities the default machine does not have. Messages name JSON paths.
 */
export function operatorProblems(properties: unknown, allow: OperatorAllow = {}): string[] {
  const p = (properties ?? {}) as DockerProperties;
  const problems: string[] = [];
  if (p.engine !== undefined && !engineAllowed(p.engine, allow)) {
    problems.push(`/engine: engine ${p.engine} is not allowed: only the local Docker socket, or an engine the operator lists in CAPSTAN_ALLOW_ENDPOINTS`);
  }
  if (allow.privileged) return problems;
  const needs = 'needs the operator to allow privileged machines (CAPSTAN_ALLOW_PRIVILEGED=1)';
  if (p.privileged === true) problems.push(`/privileged: ${needs}`);
  if (p.network === 'host' || p.network?.startsWith('container:')) problems.push(`/network: "${p.network}" shares a network namespace with the engine's host or a container: ${needs}`);
  if (p.privileged !== true) {
    const capAdd = p.capAdd ?? UNPRIVILEGED.capAdd;
    const capDrop = p.capDrop ?? UNPRIVILEGED.capDrop;
    const extra = UNPRIVILEGED.capDrop.map(capName).filter((cap) => grants(cap, capAdd, capDrop));
    // With ALL added, the drop list is what falls short; otherwise the add list names the capability.
    const at = capAdd.map(capName).includes('ALL') ? 'capDrop' : 'capAdd';
    if (extra.length) problems.push(`/${at}: grants ${extra.join(', ')}, beyond the default machine's capabilities: ${needs}`);
  }
  return problems;
}

export function machineConfig(properties: unknown): MachineConfig {
  const problems = checkProperties(properties ?? {});
  if (problems.length > 0) throw new Error(`invalid docker properties: ${problems.join('; ')}`);
  const p = (properties ?? {}) as DockerProperties;
  const privileged = p.privileged ?? false;
  const securityOpt = p.securityOpt ?? (privileged ? [] : UNPRIVILEGED.securityOpt);
  return {
    engine: p.engine === undefined ? undefined : p.engine.startsWith('/') ? `unix://${p.engine}` : p.engine,
    image: p.image ?? DEFAULT_IMAGE,
    privileged,
    capAdd: [...(p.capAdd ?? (privileged ? [] : UNPRIVILEGED.capAdd))],
    capDrop: [...(p.capDrop ?? (privileged ? [] : UNPRIVILEGED.capDrop))],
    securityOpt: securityOpt.filter((opt) => opt !== SYSTEMPATHS_UNCONFINED),
    unmaskPaths: securityOpt.includes(SYSTEMPATHS_UNCONFINED),
    deviceCgroupRules: [...(p.deviceCgroupRules ?? (privileged ? [] : UNPRIVILEGED.deviceCgroupRules))],
    env: Object.entries(p.env ?? {}).map(([k, v]) => `${k}=${v}`),
    network: p.network,
    memory: p.memory === undefined ? undefined : bytes(p.memory),
  };
}

const MIN_MEMORY = 6 * 1024 ** 2;
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function bytes(memory: number | string): number {
  if (typeof memory === 'number') return memory;
  const [, digits, unit] = /^([0-9]+)([bkmg]?)$/i.exec(memory)!;
  return Number(digits) * UNITS[unit!.toLowerCase()]!;
}
