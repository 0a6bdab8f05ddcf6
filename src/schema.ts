/**
 * JSON Schema validation, set up once: the validators every part of Capstan compiles its schemas with, and the one
 * wording of their errors (problems located by JSON Pointer) that callers show.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Problem } from './errors.js';

export type { ValidateFunction } from 'ajv';

/*
 * Two validators, because filling in defaults changes the value validated (useDefaults): specs and policies are
 * validated as copies that are to get their defaults; everything else (RPC params and results, a plugin's
 * properties checked where the caller still owns them) must come out of validation exactly as it went in. Both
 * report every error (allErrors) and refuse a schema ajv would have to guess about (strict).
 */
const filling = new Ajv({ allErrors: true, strict: true, useDefaults: true });
const checking = new Ajv({ allErrors: true, strict: true });
/** Validators made so far, per Ajv instance: by schema object and by $id (which names one schema only). */
const made = new Map<Ajv, { readonly byObject: WeakMap<object, ValidateFunction>; readonly byId: Map<string, ValidateFunction> }>([
  [filling, { byObject: new WeakMap(), byId: new Map() }],
  [checking, { byObject: new WeakMap(), byId: new Map() }],
]);

export interface ValidatorOptions {
  /** Fill in the schema's defaults, in the value validated (pass a copy the caller may change). Default: false. */
  readonly defaults?: boolean;
  /** Schemas (each with an $id) that `schema` refers to by $ref. */
  readonly uses?: readonly object[];
}

const idOf = (schema: object): string | undefined => {
  const id = (schema as { $id?: unknown }).$id;
  return typeof id === 'string' ? id.replace(/#$/, '') : undefined;
};

/**
 * The validator of `schema`: the same one again for the same object or $id, compiled once, on its first use
 * (compiling every schema at start-up cost a replica about 100 ms it does not need before the first call).
 */
export function validator<T = unknown>(schema: object, options: ValidatorOptions = {}): ValidateFunction<T> {
  const ajv = options.defaults ? filling : checking;
  const cache = made.get(ajv)!;
  const id = idOf(schema);
  const known = cache.byObject.get(schema) ?? (id === undefined ? undefined : cache.byId.get(id));
  if (known) return known as ValidateFunction<T>;
  let fn: ValidateFunction | undefined;
  const validate = ((...args: Parameters<ValidateFunction>) => (fn ??= compile(ajv, schema, id, options.uses ?? []))(...args)) as ValidateFunction;
  Object.defineProperty(validate, 'errors', { get: () => fn?.errors ?? null });
  cache.byObject.set(schema, validate);
  if (id !== undefined) cache.byId.set(id, validate);
  return validate as ValidateFunction<T>;
}

function compile(ajv: Ajv, schema: object, id: string | undefined, uses: readonly object[]): ValidateFunction {
  for (const used of uses) {
    const usedId = idOf(used);
    if (usedId === undefined) throw new Error('a schema referred to by $ref needs an $id');
    if (!ajv.schemas[usedId] && !ajv.refs[usedId]) ajv.addSchema(used);
  }
  return (id !== undefined && (ajv.schemas[id] || ajv.refs[id]) ? ajv.getSchema(id) : undefined) ?? ajv.compile(schema);
}

export interface ProblemOptions {
  /** Put before every path: where the validated value sits in a larger one ("/instance/properties"). */
  readonly prefix?: string;
  /** What a value that matches no, or several, branches of a oneOf should be, by the oneOf's path (before `prefix`). */
  readonly oneOf?: Readonly<Record<string, string>>;
}

/** A key as one JSON Pointer segment. */
const segment = (key: string): string => `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * ajv's errors as the problems callers show: each located by a JSON Pointer ("" is the root), an unknown or
 * invalid key by its own path, each said once. Branch errors under a failed oneOf are said once, by the oneOf.
 */
export function problemsOf(errors: readonly ErrorObject[] | null | undefined, options: ProblemOptions = {}): Problem[] {
  const list = errors ?? [];
  const prefix = options.prefix ?? '';
  const oneOfPaths = list.filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath);
  const under = (path: string, at: string) => path === at || path.startsWith(`${at}/`);
  // A key refused by propertyNames: its inner errors (which carry propertyName) say why.
  const keyErrors = new Set(list.filter((e) => e.propertyName !== undefined).map((e) => `${e.instancePath}${segment(e.propertyName!)}`));
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const e of list) {
    if (e.keyword !== 'oneOf' && e.schemaPath.includes('/oneOf/') && oneOfPaths.some((p) => under(e.instancePath, p))) continue;
    let path = e.instancePath;
    let message = e.message ?? `is invalid (${e.keyword})`;
    if (e.keyword === 'additionalProperties') {
      path += segment(String((e.params as { additionalProperty?: unknown }).additionalProperty));
      message = 'unknown key';
    } else if (e.propertyName !== undefined) {
      path += segment(e.propertyName);
      message = `key ${message}`;
    } else if (e.keyword === 'propertyNames') {
      path += segment(String((e.params as { propertyName?: unknown }).propertyName));
      if (keyErrors.has(path)) continue;
      message = 'invalid key';
    } else if (e.keyword === 'false schema') {
      // Capstan's schemas refuse a field with `false` where Capstan sets it itself (the aws provider's launch fields).
      message = 'set by Capstan, not allowed here';
    } else if (e.keyword === 'enum') {
      const allowed = (e.params as { allowedValues?: readonly unknown[] }).allowedValues ?? [];
      message = `must be equal to one of the allowed values: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (e.keyword === 'oneOf') {
      message = options.oneOf?.[e.instancePath] ?? 'must match exactly one allowed form';
    }
    path = prefix + path;
    const key = `${path} ${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message });
  }
  return out;
}

/** A problem as one line of text: its path ("/" for the root), a colon, its message. */
export function problemText(problem: Problem): string {
  return `${problem.path || '/'}: ${problem.message}`;
}
