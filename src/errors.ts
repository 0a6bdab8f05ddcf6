/** Errors with stable JSON-RPC codes (documented in README.md); the RPC layer maps them to responses. */
export const ErrorCode = {
  invalidParams: -32602,
  unauthorized: -32001,
  notFound: -32002,
  conflict: -32003,
  outOfBounds: -32004,
  noLeader: -32005,
  providerFailure: -32006,
  tooLarge: -32007,
  quorum: -32008,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

export class CapstanError extends Error {
  constructor(
    readonly kind: ErrorCodeName,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'CapstanError';
  }

  get code(): number {
    return ErrorCode[this.kind];
  }
}

/** One problem in a spec or params, located by JSON path (as ajv's instancePath, "" for the root). */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

export class InvalidError extends CapstanError {
  constructor(
    message: string,
    readonly problems: readonly Problem[],
  ) {
    super('invalidParams', message, { problems });
  }
}

/** Errors an instance provider threw, remembered as they are: their class, name and code stay the provider's own. */
const providerFailures = new WeakMap<object, { readonly provider: string; readonly operation: string }>();

/** Notes that `error` came out of a provider's `operation`; returns it unchanged. */
export function markProviderFailure<T>(error: T, provider: string, operation: string): T {
  if (typeof error === 'object' && error !== null && !(error instanceof CapstanError) && !providerFailures.has(error)) {
    providerFailures.set(error, { provider, operation });
  }
  return error;
}

/** The provider's own code for a failure: an AWS error code, a system code (ECONNREFUSED), an HTTP status. */
function providerCode(error: object): string {
  const e = error as { code?: unknown; statusCode?: unknown; name?: unknown };
  if (typeof e.code === 'string' || typeof e.code === 'number') return String(e.code);
  if (typeof e.statusCode === 'number') return `HTTP ${e.statusCode}`;
  return typeof e.name === 'string' ? e.name : 'Error';
}

/**
 * A provider's failure as callers see it: providerFailure (-32006) with the provider's code in `data`; undefined for
 * an error no provider threw.
 */
export function asProviderFailure(error: unknown): CapstanError | undefined {
  const seen = typeof error === 'object' && error !== null ? providerFailures.get(error) : undefined;
  if (!seen) return undefined;
  const code = providerCode(error as object);
  const message = error instanceof Error ? error.message : String(error);
  return new CapstanError('providerFailure', `the ${seen.provider} provider failed (${seen.operation}): ${message}`, { code, provider: seen.provider, operation: seen.operation });
}
