/** How a provisioning decision becomes RunInstances calls: the launches, their keys, subnets and user data. */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { InstanceSpec, Tags } from '../../spi/instance.js';
import { launchKey } from './client-token.js';
import { AwsError } from './ec2.js';
import { fallbacks, spread } from './subnets.js';

/** EC2 takes at most 16 KB of user data, counted before base64. */
const USER_DATA_LIMIT = 16 * 1024;

/** A spec with its tags and user data, checked against EC2's limits. */
export interface Prepared {
  readonly spec: InstanceSpec;
  readonly tags: Tags;
  readonly userData?: string;
}

/** One RunInstances of a provisioning decision. */
export interface Launch {
  /** Same for every attempt of this launch, whichever subnet it goes to. */
  readonly key: string;
  readonly count: number;
  readonly tags: Tags;
  readonly userData?: string;
  readonly privateIp?: string;
  /** Preferred subnet first, then where to go when it lacks capacity. */
  readonly subnets: readonly string[];
}

/** What planLaunches needs of the provider. */
export interface LaunchSettings {
  /** The configured subnets, in order. */
  readonly subnets: readonly string[];
  /** Most instances one RunInstances launches. */
  readonly maxBatch: number;
  /** The subnet whose CIDR holds a logical id that is an address. */
  readonly subnetFor: (address: string) => Promise<string>;
}

/**
 * Splits a decision into launches, given how many instances each subnet already has (`load`, updated with the
 * launches planned): identical specs batch together, spread over the subnets; a logical id launches on its own.
 */
export async function planLaunches(specs: readonly Prepared[], decision: string, load: Map<string, number>, settings: LaunchSettings): Promise<Launch[]> {
const { subnets, maxBatch, subnetFor } = settings;
  const launches: Launch[] = [];
  const batches = new Map<string, Prepared[]>();
  for (const prepared of specs) {
    const { spec, tags, userData } = prepared;
    if (spec.logicalId === undefined) {
      const kind = specKey(spec);
      batches.set(kind, [...(batches.get(kind) ?? []), prepared]);
      continue;
    }
    // Logical ids launch one at a time; an address is the private IP, which fixes the subnet.
    const address = isIPv4(spec.logicalId) ? spec.logicalId : undefined;
    const subnet = address === undefined ? [...spread(1, subnets, load).keys()][0]! : await subnetFor(address);
    load.set(subnet, (load.get(subnet) ?? 0) + 1);
    launches.push({
      key: launchKey(decision, `logical-id/${spec.logicalId}/${specKey(spec)}`),
      count: 1,
      tags,
      userData,
      privateIp: address,
      subnets: address === undefined ? [subnet, ...fallbacks(subnets, load, new Set([subnet]))] : [subnet],
    });
  }
  for (const [kind, batch] of batches) {
    const { tags, userData } = batch[0]!;
    const shares = spread(batch.length, subnets, load);
    for (const [subnet, share] of shares) load.set(subnet, (load.get(subnet) ?? 0) + share);
    for (const [subnet, share] of shares) {
      for (let offset = 0; offset < share; offset += maxBatch) {
        const count = Math.min(maxBatch, share - offset);
        launches.push({
          key: launchKey(decision, `batch/${kind}/${subnet}/${offset}/${count}`),
          count,
          tags,
          userData,
          subnets: [subnet, ...fallbacks(subnets, load, new Set([subnet]))],
        });
      }
    }
  }
  return launches;
}

/** The init script as EC2 user data (base64), none when empty; refused over EC2's limit. */
export function encodeUserData(init: string): string | undefined {
  const size = Buffer.byteLength(init, 'utf8');
  if (size > USER_DATA_LIMIT) {
    throw new AwsError('UserDataTooLarge', 'RunInstances', `init script is ${size} bytes, over EC2's user data limit of ${USER_DATA_LIMIT} bytes`);
  }
  return size === 0 ? undefined : Buffer.from(init, 'utf8').toString('base64');
}

/** Identical specs share a key and may launch together. */
function specKey(spec: InstanceSpec): string {
  const tags = Object.entries(spec.tags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify([tags, spec.init])).digest('hex').slice(0, 16);
}
