/**
 * RunInstances idempotency tokens. EC2 returns the original reservation when a token repeats
 * with the same parameters, so a retried provisioning decision never launches twice. A token
 * is 64 ASCII characters: 40 for the decision (group, config, intent, cluster), so this provider can
 * recognise the decision's instances among those it describes, 12 for the launch within the
 * decision and 12 for the subnet it went to.
 */
import { createHash } from 'node:crypto';

function hex(parts: readonly string[], length: number): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}`);
  return hash.digest('hex').slice(0, length);
}

/**
 * Prefix shared by every token of one provisioning decision. `cluster` (the Swarm's id) keeps two Swarms' decisions
 * apart; without it the key is what it was before the cluster tag, so a retry across that upgrade still matches.
 */
export function decisionKey(group: string, config: string, intent: string, cluster?: string): string {
  return hex(cluster === undefined ? [group, config, intent] : [group, config, intent, cluster], 40);
}

/** Length of a launch key: the part of a token before the subnet. */
export const LAUNCH_KEY_LENGTH = 52;

/** Identifies one launch of a decision, whichever subnet it lands in. */
export function launchKey(decision: string, launch: string): string {
  return decision + hex([launch], 12);
}

export function clientToken(launch: string, subnet: string): string {
  return launch + hex([subnet], 12);
}
