import { CapstanError, InvalidError, type Problem } from '../errors.js';
import type { GroupSpec, Plugins } from '../spi/index.js';
import { readSchema } from '../package.js';
import { problemsOf, validator } from '../schema.js';
import { desiredSize } from './allocation.js';
import { resolveQuantity } from '../spi/quantity.js';

// Provider and flavor properties are stored as the operator wrote them: the config hash covers them, so a
// default a later release adds or changes must not change the hash (that would replace every machine). Each is
// validated, and gets its defaults, as a copy.
const validateGroup = validator<GroupSpec>(readSchema('group.json'), { defaults: true, uses: [readSchema('autoscale.json')] });
const compile = (schema: object) => validator(schema, { defaults: true });

/** What an allocation must be, said for the oneOf of schemas/group.json. */
const forms = { '/allocation': 'must have exactly one of "size" (integer >= 0) or "logicalIds" (unique non-empty strings)' };

/** A provider's or flavor's properties: the named kind exists, its schema holds, then its own checks. */
function checkPlugin(
  at: string,
  key: string,
  name: string,
  kinds: ReadonlyMap<string, { readonly schema: object }>,
  properties: unknown,
  validate: (properties: unknown) => string[],
): Problem[] {
  const kind = kinds.get(name);
  if (!kind) return [{ path: `${at}/${key}`, message: `unknown ${key === 'kind' ? 'flavor' : key} "${name}"; known: ${[...kinds.keys()].join(', ')}` }];
  const check = compile(kind.schema);
  const filled = structuredClone(properties);
  if (!check(filled)) return problemsOf(check.errors, { prefix: `${at}/properties` });
  return validate(filled).map((message) => (at === '/instance' ? located(`${at}/properties`, message) : { path: `${at}/properties`, message }));
}

/**
 * The checks of a spec against the cluster as it is now (its flavor's `admit`, such as the Swarm's manager count),
 * made before a commit or scale is stored. Throws InvalidError; a flavor without `admit` admits everything.
 */
export async function admitSpec(spec: GroupSpec, plugins: Plugins): Promise<void> {
  const flavor = plugins.flavors.get(spec.flavor.kind);
  const messages = (await flavor?.admit?.(spec.flavor.properties, spec.allocation, spec.id)) ?? [];
  if (messages.length) throw new InvalidError(`group ${spec.id} refused by the cluster as it is`, messages.map((m) => located('', m)));
}

/** A provider's message as a problem: one that starts with a path in the properties ("/engine: ...") is located there. */
function located(at: string, message: string): Problem {
  const m = /^(\/[^\s:]*): ([\s\S]*)$/.exec(message);
  return m ? { path: m[1] === '/' ? at : at + m[1], message: m[2]! } : { path: at, message };
}

/** A provider's or flavor's properties with its schema's defaults filled in, for `create`; never mutates. */
export function pluginProperties(kind: { readonly schema: object }, properties: unknown): unknown {
  const filled = structuredClone(properties);
  compile(kind.schema)(filled);
  return filled;
}

/**
 * Validates a raw spec against schemas/group.json, its provider's and flavor's schemas and the cross-field rules,
 * returning it with defaults filled in. Throws InvalidError listing every problem by JSON path; never mutates `raw`.
 */
export function validateSpec(raw: unknown, plugins: Plugins): GroupSpec {
  const spec = structuredClone(raw) as GroupSpec;
  if (!validateGroup(spec)) throw new InvalidError('invalid group spec', problemsOf(validateGroup.errors, { oneOf: forms }));
  const problems: Problem[] = [];
  const allocation = spec.allocation;

  const provider = plugins.providers.get(spec.instance.provider);
  problems.push(...checkPlugin('/instance', 'provider', spec.instance.provider, plugins.providers, spec.instance.properties, (p) => provider?.validate?.(p) ?? []));
  const flavor = plugins.flavors.get(spec.flavor.kind);
  problems.push(...checkPlugin('/flavor', 'kind', spec.flavor.kind, plugins.flavors, spec.flavor.properties, (p) => flavor?.validate?.(p, allocation) ?? []));

  const { min, max } = spec.bounds ?? {};
  const size = desiredSize(spec);
  const outside = new Set<Problem>();
  const outsideBounds = (message: string) => {
    const problem = { path: '/allocation', message };
    outside.add(problem);
    problems.push(problem);
  };
  if (min !== undefined && max !== undefined && min > max) problems.push({ path: '/bounds', message: `min ${min} is above max ${max}` });
  if (min !== undefined && size < min) outsideBounds(`size ${size} is below bounds.min ${min}`);
  if (max !== undefined && size > max) outsideBounds(`size ${size} is above bounds.max ${max}`);
  if (resolveQuantity(spec.update.maxUnavailable, size, 'down') === 0 && resolveQuantity(spec.update.maxSurge, size, 'up') === 0 && size > 0) {
    problems.push({ path: '/update', message: 'maxUnavailable and maxSurge cannot both be 0: no update could make progress' });
  }
  if (spec.warm && spec.warm.size > 0) {
    if (!('size' in allocation)) problems.push({ path: '/warm', message: 'a warm pool needs allocation.size, not logicalIds' });
    if (flavor && !flavor.warm) problems.push({ path: '/warm', message: `flavor ${spec.flavor.kind} keeps no warm pool (swarm-worker does)` });
    if (spec.warm.state === 'stopped' && provider && !provider.stoppable) problems.push({ path: '/warm/state', message: `provider ${spec.instance.provider} cannot stop machines: use state running` });
  }
  problems.push(...(plugins.checks ?? []).flatMap((check) => check(spec)));
  // A size outside the spec's own bounds, and nothing else wrong, is outOfBounds whichever method asked (as a scale).
  if (problems.length && problems.every((p) => outside.has(p))) {
    throw new CapstanError('outOfBounds', `group ${spec.id}: ${problems.map((p) => p.message).join('; ')}`, { size, min: min ?? 0, max });
  }
  if (problems.length) throw new InvalidError('invalid group spec', problems);
  return spec;
}

/**
 * A whole-spec check (Plugins.checks) of the operator's largest group: a size, or a number of logical ids, above
 * `max` is refused at `/allocation`. Set by the composition root (CAPSTAN_MAX_GROUP_SIZE); a stored version over it
 * is a store problem, never loaded.
 */
export function maxGroupSize(max: number): (spec: GroupSpec) => Problem[] {
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`the largest group size must be an integer >= 0, not ${max}`);
  return (spec) => {
    const size = desiredSize(spec);
    return size > max ? [{ path: '/allocation', message: `size ${size} is above the largest group this service manages, ${max} (CAPSTAN_MAX_GROUP_SIZE)` }] : [];
  };
}
