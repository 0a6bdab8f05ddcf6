import { ErrorCode, type ErrorCodeName } from '../errors.js';
import { commonSchema, methodNames, methodSchemas, publicMethods, type MethodName } from './catalog.js';

/** Meaning of each Capstan error code, as rpc.discover documents it. */
export const errorMeanings: Record<ErrorCodeName, string> = {
  invalidParams: 'Invalid params: data.problems lists each one by JSON path',
  unauthorized: 'Missing or wrong bearer token',
  notFound: 'No such group, version or instance',
  conflict: 'Another commit stored a version first; read and retry',
  outOfBounds: "The size would leave the group's bounds",
  noLeader: 'No replica leads right now, or the leader cannot be reached',
  providerFailure: 'The infrastructure provider failed',
  tooLarge: 'The request body or batch is too large',
  quorum: 'The Swarm has no Raft quorum',
};

const methodErrors: Record<MethodName, ErrorCodeName[]> = {
  'group.commit': ['conflict', 'providerFailure'],
  'group.describe': ['notFound'],
  'group.list': [],
  'group.scale': ['notFound', 'conflict', 'outOfBounds'],
  'group.scaleUp': ['notFound', 'conflict', 'outOfBounds'],
  'group.scaleDown': ['notFound', 'conflict', 'outOfBounds'],
  'group.destroyInstances': ['notFound', 'conflict', 'outOfBounds', 'providerFailure'],
  'group.pause': ['notFound'],
  'group.resume': ['notFound'],
  'group.rollback': ['notFound', 'conflict'],
  'group.history': ['notFound'],
  'group.free': ['notFound', 'providerFailure'],
  'group.destroy': ['notFound', 'providerFailure'],
  'manager.status': [],
  'manager.recover': ['conflict'],
  'rpc.discover': [],
};

const commonPrefix = 'common.json#/definitions/';

// Method schemas point into common.json; in the document they point into components.schemas instead.
function relink(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(relink);
  if (!schema || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string' ? `#/components/schemas/${v.replace(commonPrefix, '').replace('#/definitions/', '')}` : relink(v),
    ]),
  );
}

interface ObjectSchema {
  $ref?: string;
  required?: string[];
  properties?: Record<string, object & { description?: string }>;
}

/** The OpenRPC document rpc.discover returns, built from schemas/rpc/. */
export function openRpcDocument(version: string): object {
  const methods = methodNames.map((name) => {
    const schema = methodSchemas.get(name)!;
    let params = schema.params as ObjectSchema;
    if (params.$ref) params = commonSchema.definitions[params.$ref.replace(commonPrefix, '')] as ObjectSchema;
    const required = new Set(params.required ?? []);
    const errors = [...(publicMethods.has(name) ? [] : (['unauthorized', 'noLeader', 'invalidParams'] as const)), ...methodErrors[name]];
    return {
      name,
      description: schema.description,
      paramStructure: 'by-name',
      params: Object.entries(params.properties ?? {}).map(([param, s]) => ({
        name: param,
        required: required.has(param),
        ...(s.description && { description: s.description }),
        schema: relink(s),
      })),
      result: { name: `${name}.result`, schema: relink(schema.result) },
      errors: [...new Set(errors)].map((kind) => ({ $ref: `#/components/errors/${kind}` })),
    };
  });
  return {
    openrpc: '1.2.6',
    info: {
      title: 'Capstan',
      version,
      description: 'Keeps a Docker Swarm\'s own machines at their declared size. Every method except rpc.discover and manager.status needs "Authorization: Bearer <token>".',
    },
    methods,
    components: {
      schemas: relink(commonSchema.definitions),
      errors: Object.fromEntries(Object.entries(errorMeanings).map(([kind, message]) => [kind, { code: ErrorCode[kind as ErrorCodeName], message }])),
    },
  };
}
