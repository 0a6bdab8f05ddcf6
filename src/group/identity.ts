import { createHash } from 'node:crypto';
import type { GroupSpec, Instance, Tags } from '../spi/index.js';
import { TAG } from '../spi/tags.js';

export { TAG } from '../spi/tags.js';

/** JSON with object keys sorted, so equal values always serialize the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Hash of what a machine is (instance + flavor); size, bounds and update policy are deliberately left out. */
export function configHash(spec: Pick<GroupSpec, 'instance' | 'flavor'>): string {
  return createHash('sha256').update(canonicalJson({ instance: spec.instance, flavor: spec.flavor })).digest('hex').slice(0, 16);
}

export function groupTags(spec: GroupSpec, hash: string, logicalId?: string, cluster?: string): Tags {
  return {
    [TAG.group]: spec.id,
    [TAG.config]: hash,
    ...(cluster === undefined ? {} : { [TAG.cluster]: cluster }),
    ...(logicalId === undefined ? {} : { [TAG.logicalId]: logicalId }),
  };
}

/**
 * A group's listing by cluster: this cluster's own (tagged with its id) and the `untagged` ones, made by a release
 * before the tag, which are this cluster's only on its flavor's evidence (Members.observe); another cluster's are
 * neither. Without a cluster id (tests, a single engine) every instance of the group is its own.
 */
export function ownInstances(listed: readonly Instance[], cluster: string | undefined): { own: Instance[]; untagged: Instance[] } {
  if (cluster === undefined) return { own: [...listed], untagged: [] };
  return { own: listed.filter((i) => i.tags[TAG.cluster] === cluster), untagged: listed.filter((i) => i.tags[TAG.cluster] === undefined) };
}

export const logicalIdOf = (i: Instance): string | undefined => i.tags[TAG.logicalId];
export const configOf = (i: Instance): string | undefined => i.tags[TAG.config];
