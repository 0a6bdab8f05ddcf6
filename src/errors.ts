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
