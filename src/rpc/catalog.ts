import { CapstanError } from '../errors.js';
import { readSchema } from '../package.js';
import { problemsOf, validator, type ValidateFunction } from '../schema.js';

/** Every public method, in the order rpc.discover lists them. The names are the API's contract. */
export const methodNames = [
  'group.commit',
  'group.describe',
  'group.list',
  'group.scale',
  'group.scaleUp',
  'group.scaleDown',
  'group.destroyInstances',
  'group.pause',
  'group.resume',
  'group.rollback',
  'group.history',
  'group.free',
  'group.destroy',
  'manager.status',
  'manager.recover',
  'rpc.discover',
] as const;

export type MethodName = (typeof methodNames)[number];

/** Answered by any replica, without a token: they say nothing about groups. */
export const publicMethods: ReadonlySet<string> = new Set<MethodName>(['manager.status', 'rpc.discover']);

export interface MethodSchema {
  readonly title: string;
  readonly description: string;
  readonly params: object;
  readonly result: object;
}

const base = 'https://capstan.dev/schemas/rpc/';

export const commonSchema = readSchema('rpc/common.json') as { definitions: Record<string, object> };
export const methodSchemas: ReadonlyMap<MethodName, MethodSchema> = new Map(
  methodNames.map((name) => [name, readSchema(`rpc/${name}.json`) as MethodSchema]),
);

// An $id per part so "common.json#/..." resolves against the shared definitions. Params are checked as the client
// sent them (no defaults filled in).
function compile(name: string, part: 'params' | 'result'): ValidateFunction {
  const schema = methodSchemas.get(name as MethodName)![part];
  return validator({ $id: `${base}${name}.${part}.json`, ...schema }, { uses: [commonSchema] });
}

const paramValidators = new Map(methodNames.map((name) => [name as string, compile(name, 'params')]));
const resultValidators = new Map<string, ValidateFunction>();

const maxProblems = 20;

const maxDepth = 64;

/** Nesting depth of a parsed JSON value, walked without recursion so no input can exhaust the stack. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth > deepest) deepest = depth;
    if (deepest > maxDepth) break;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Checks a known method's params (absent params count as {}); throws invalidParams with ajv's errors. */
export function checkParams(method: string, params: unknown): Record<string, unknown> {
  const value = params === undefined ? {} : params;
  // Deep values would overflow the stack of whatever recursive code (cloning, validation, storage) meets them later.
  if (depthOf(value) > maxDepth) {
    throw new CapstanError('invalidParams', `invalid params for ${method}`, { problems: [{ path: '', message: `must not nest deeper than ${maxDepth} levels` }], errors: [] });
  }
  const validate = paramValidators.get(method)!;
  if (!validate(value)) {
    const errors = (validate.errors ?? []).slice(0, maxProblems);
    throw new CapstanError('invalidParams', `invalid params for ${method}`, { problems: problemsOf(errors).slice(0, maxProblems), errors });
  }
  return value as Record<string, unknown>;
}

/** A validator of a method's result; for tests and tools, not the request path (results can be large). */
export function resultValidator(method: string): ValidateFunction {
  let validate = resultValidators.get(method);
  if (!validate) resultValidators.set(method, (validate = compile(method, 'result')));
  return validate;
}
