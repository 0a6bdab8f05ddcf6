/** An autoscale policy (schemas/autoscale.json): what one machine of a group offers, and how patiently to act. */
import type { Problem } from '../errors.js';
import { readSchema } from '../package.js';
import { problemsOf, problemText, validator } from '../schema.js';
import type { Duration, GroupSpec } from '../spi/index.js';

/** schemas/autoscale.json, with its defaults filled in. */
export interface AutoscalePolicy {
  readonly enabled: boolean;
  readonly scaleUpDelay: Duration;
  readonly scaleDownIdle: Duration;
  readonly cooldown: Duration;
  readonly cpus: number;
  readonly memory: number | string;
  /** No longer honoured: refused when not empty (autoscaleProblems). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly engineLabels: Readonly<Record<string, string>>;
  readonly platform: { readonly os: string; readonly architecture: string };
}

export const autoscaleSchema: object = readSchema('autoscale.json');
const validatePolicy = validator<AutoscalePolicy>(autoscaleSchema, { defaults: true });

/**
 * What makes an autoscale section unusable beyond its schema, for validateSpec to reject at commit. Only a sized
 * swarm-worker group can be scaled: its machines join the Swarm as workers, and one more or one less is always
 * valid (a swarm-manager group must stay odd). Node labels the autoscaler may count on are those the flavor puts on
 * each node (flavor property nodeLabels): a machine cannot label its own node, so `labels` here would be a promise
 * nothing keeps.
 */
export function autoscaleProblems(spec: GroupSpec): Problem[] {
  if (spec.autoscale === undefined) return [];
  const problems: Problem[] = [];
  if (!('size' in spec.allocation)) problems.push({ path: '/autoscale', message: 'a logicalIds group cannot be scaled by count: use a size allocation' });
  if (spec.flavor.kind !== 'swarm-worker') problems.push({ path: '/autoscale', message: `only swarm-worker groups are autoscaled, not ${spec.flavor.kind}` });
  const labels = (spec.autoscale as { labels?: Record<string, string> }).labels;
  if (labels !== undefined && Object.keys(labels).length > 0) {
    problems.push({
      path: '/autoscale/labels',
      message: 'nothing would put these node labels on new machines: set them in /flavor/properties/nodeLabels, which Capstan puts on each node of the group and the autoscaler counts on',
    });
  }
  return problems;
}

/** The group's policy with defaults, or why it has none that can act. */
export function policyOf(spec: GroupSpec): { policy: AutoscalePolicy } | { problem: string } | undefined {
  if (spec.autoscale === undefined) return undefined;
  const policy = structuredClone(spec.autoscale);
  if (!validatePolicy(policy)) {
    return { problem: `invalid autoscale: ${problemsOf(validatePolicy.errors, { prefix: '/autoscale' }).map(problemText).join('; ')}` };
  }
  const problems = autoscaleProblems(spec);
  return problems.length ? { problem: problems.map((p) => p.message).join('; ') } : { policy };
}

const BYTE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** Bytes of a memory quantity as the schema allows it: 1073741824, "1GiB", "1.5GB". */
export function bytesOf(memory: number | string): number {
  if (typeof memory === 'number') return memory;
  const m = /^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$/.exec(memory);
  const unit = m ? BYTE_UNITS[m[2]!] : undefined;
  if (!m || unit === undefined) throw new Error(`bad memory quantity "${memory}"`);
  return Math.floor(Number(m[1]) * unit);
}
