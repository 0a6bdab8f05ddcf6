import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { InvalidError, type Problem } from '../errors.js';
import type { GroupSpec, Plugins } from '../spi/index.js';
import { readSchema } from '../schemas.js';
import { resolveQuantity } from './quantity.js';


const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateGroup = ajv.compile(readSchema('group.json'));
const compiled = new WeakMap<object, ValidateFunction>();

function compile(schema: object): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/** ajv's errors as problems with JSON paths; oneOf noise is folded into one message for its path. */
export function problemsOf(errors: readonly ErrorObject[] | null | undefined, prefix = ''): Problem[] {
  const out: Problem[] = [];
  const seen = new Set<string>();
  const oneOfPaths = new Set((errors ?? []).filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath));
  for (const e of errors ?? []) {
    const path = prefix + e.instancePath;
    // Branch errors under a failed oneOf are reported once, by the oneOf itself.
    if (e.keyword !== 'oneOf' && [...oneOfPaths].some((p) => e.instancePath.startsWith(p) && e.schemaPath.includes('/oneOf/'))) continue;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') message = `unknown key "${(e.params as { additionalProperty: string }).additionalProperty}"`;
    if (e.keyword === 'oneOf') message = path.endsWith('/allocation') ? 'must have exactly one of "size" (integer >= 0) or "logicalIds" (unique non-empty strings)' : 'must match exactly one allowed form';
    const key = `${path} ${message}`;
    if (!seen.has(key)) out.push({ path: path || '/', message });
    seen.add(key);
  }
  return out;
}

/** Desired member count of a group. */
export function desiredSize(spec: GroupSpec): number {
  return 'size' in spec.allocation ? spec.allocation.size : spec.allocation.logicalIds.length;
}

/**
 * Validates a raw spec against schemas/group.json, its provider's and flavor's schemas and the cross-field rules,
 * returning it with defaults filled in. Throws InvalidError listing every problem by JSON path; never mutates `raw`.
 */
export function validateSpec(raw: unknown, plugins: Plugins): GroupSpec {
  const spec = structuredClone(raw) as GroupSpec;
  if (!validateGroup(spec)) throw new InvalidError('invalid group spec', problemsOf(validateGroup.errors));
  const problems: Problem[] = [];
  const allocation = spec.allocation;

  const provider = plugins.providers.get(spec.instance.provider);
  if (!provider) {
    problems.push({ path: '/instance/provider', message: `unknown provider "${spec.instance.provider}"; known: ${[...plugins.providers.keys()].join(', ')}` });
  } else {
    const check = compile(provider.schema);
    if (!check(spec.instance.properties)) problems.push(...problemsOf(check.errors, '/instance/properties'));
    else problems.push(...(provider.validate?.(spec.instance.properties) ?? []).map((message) => ({ path: '/instance/properties', message })));
  }
  const flavor = plugins.flavors.get(spec.flavor.kind);
  if (!flavor) {
    problems.push({ path: '/flavor/kind', message: `unknown flavor "${spec.flavor.kind}"; known: ${[...plugins.flavors.keys()].join(', ')}` });
  } else {
    const check = compile(flavor.schema);
    if (!check(spec.flavor.properties)) problems.push(...problemsOf(check.errors, '/flavor/properties'));
    else problems.push(...(flavor.validate?.(spec.flavor.properties, allocation) ?? []).map((message) => ({ path: '/flavor/properties', message })));
  }

  const { min, max } = spec.bounds ?? {};
  const size = desiredSize(spec);
  if (min !== undefined && max !== undefined && min > max) problems.push({ path: '/bounds', message: `min ${min} is above max ${max}` });
  if (min !== undefined && size < min) problems.push({ path: '/allocation', message: `size ${size} is below bounds.min ${min}` });
  if (max !== undefined && size > max) problems.push({ path: '/allocation', message: `size ${size} is above bounds.max ${max}` });
  if (resolveQuantity(spec.update.maxUnavailable, size, 'down') === 0 && resolveQuantity(spec.update.maxSurge, size, 'up') === 0 && size > 0) {
    problems.push({ path: '/update', message: 'maxUnavailable and maxSurge cannot both be 0: no update could make progress' });
  }
  if (problems.length) throw new InvalidError('invalid group spec', problems);
  return spec;
}
