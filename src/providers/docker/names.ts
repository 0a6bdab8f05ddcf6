/**
 * Machine names (container name and hostname) of the docker provider. A name is never used twice in a group: it ends
 * in a part made from the clock and randomness at the first attempt of a provisioning decision. A retry of that
 * decision must find the container its first attempt made instead of making another: within a process it is given
 * the same name again (Docker refuses a taken name with 409, atomically), and any process finds it by its labels
 * capstan.intent and capstan.intent-index (see DockerInstanceProvider.provision).
 */
import { createHash, randomInt } from 'node:crypto';
import type { InstanceSpec } from '../../spi/instance.js';
import { TAG } from '../../spi/tags.js';

export const { group: GROUP_TAG, config: CONFIG_TAG } = TAG;
export const INTENT_LABEL = 'capstan.intent';
export const INTENT_INDEX_LABEL = 'capstan.intent-index';
/** Names kept for retries in this process (the oldest forgotten first). */
const REMEMBERED = 10_000;

/**
 * capstan-<group>-<6 hex>-<12 base36>, at most 60 characters, a valid hostname for a group id (a DNS label): the hex
 * is a hash of the decision and the spec's place in it (which decision made the machine), the rest is `unique`.
 */
export function machineName(spec: InstanceSpec, intent: string, index: number, unique: string): string {
  const group = (spec.tags[GROUP_TAG] ?? 'machine').replace(/[^a-zA-Z0-9-]/g, '-').slice(0, 32).replace(/-+$/, '');
  const key = [group, spec.tags[CONFIG_TAG] ?? '', spec.logicalId ?? '', intent, String(index)].join('\u0000');
  return `capstan-${group}-${createHash('sha256').update(key).digest('hex').slice(0, 6)}-${unique}`;
}

/**
 * The names given to provisioning decisions whose containers have not been seen yet, shared by the providers of one
 * engine. A name is kept only until its container is seen: later retries find the container by its labels, and a
 * decision whose machine is gone gets a fresh name. So a name could come back only if a create whose answer was lost
 * (a timeout) made a container that is then removed before the retry: a retry never makes a second machine.
 */
export class MachineNames {
  readonly #given = new Map<string, string>();
  #last = 0;

  /**
   * The name of the `index`th machine of decision `intent`: the one given before (a retry), else, or with `renew`
   * (the name turned out taken), a fresh one.
   */
  nameFor(spec: InstanceSpec, intent: string, index: number, renew = false): string {
    const key = keyOf(spec, intent, index);
    let name = renew ? undefined : this.#given.get(key);
    if (name === undefined) {
      this.#given.delete(key);
      name = this.fresh(spec, intent, index);
      this.#given.set(key, name);
      if (this.#given.size > REMEMBERED) this.#given.delete(this.#given.keys().next().value!);
    }
    return name;
  }

  /** The container of that machine has been seen: its name is never given again. */
  seen(spec: InstanceSpec, intent: string, index: number): void {
    this.#given.delete(keyOf(spec, intent, index));
  }

  /** A name not given before: milliseconds, strictly increasing in this process, then 4 random base36 digits. */
  fresh(spec: InstanceSpec, intent: string, index: number): string {
    this.#last = Math.max(this.#last + 1, Date.now());
    const unique = this.#last.toString(36).padStart(8, '0') + randomInt(36 ** 4).toString(36).padStart(4, '0');
    return machineName(spec, intent, index, unique);
  }
}

const keyOf = (spec: InstanceSpec, intent: string, index: number): string => `${spec.tags[GROUP_TAG] ?? ''}\u0000${intent}\u0000${index}`;
