import { JSONRPCErrorCode, type JSONRPCErrorResponse, type JSONRPCID, type JSONRPCRequest, type JSONRPCResponse } from 'json-rpc-2.0';
import { asProviderFailure, CapstanError, ErrorCode } from '../errors.js';

/** A result already serialized to JSON, spliced into the response as is (large results cached per controller pass). */
export class RawJson {
  #bytes?: Buffer;
  constructor(readonly json: string) {}
  /** UTF-8, encoded once however often it is sent. */
  get bytes(): Buffer {
    return (this.#bytes ??= Buffer.from(this.json));
  }
}

/** A whole response already serialized (the leader's answer to a forwarded call). */
export class RawResponse {
  constructor(readonly json: string) {}
}

export type AnyResponse = JSONRPCResponse | RawResponse;

const isId = (id: unknown): id is JSONRPCID => typeof id === 'string' || typeof id === 'number' || id === null;

export function errorResponse(id: JSONRPCID, code: number, message: string, data?: unknown): JSONRPCErrorResponse {
  return data === undefined ? { jsonrpc: '2.0', id, error: { code, message } } : { jsonrpc: '2.0', id, error: { code, message, data } };
}

export const parseError = (): JSONRPCErrorResponse => errorResponse(null, JSONRPCErrorCode.ParseError, 'Parse error');

export const tooLarge = (message: string): JSONRPCErrorResponse => errorResponse(null, ErrorCode.tooLarge, message);

/**
 * A JSON-RPC 2.0 request object, or the -32600 response it deserves. Stricter than json-rpc-2.0's own check,
 * which throws on null entries of a batch and accepts any method or params type.
 */
export function checkEnvelope(x: unknown): JSONRPCRequest | JSONRPCErrorResponse {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return errorResponse(null, JSONRPCErrorCode.InvalidRequest, 'Invalid Request');
  const o = x as Record<string, unknown>;
  const hasId = Object.hasOwn(o, 'id');
  const valid =
    o.jsonrpc === '2.0' &&
    typeof o.method === 'string' &&
    (!hasId || isId(o.id)) &&
    (o.params === undefined || (typeof o.params === 'object' && o.params !== null)) &&
    !Object.hasOwn(o, 'result') &&
    !Object.hasOwn(o, 'error');
  if (!valid) return errorResponse(hasId && isId(o.id) ? o.id : null, JSONRPCErrorCode.InvalidRequest, 'Invalid Request');
  return o as unknown as JSONRPCRequest;
}

export function isErrorResponse(x: JSONRPCRequest | JSONRPCErrorResponse): x is JSONRPCErrorResponse {
  return 'error' in x;
}

/**
 * The error part of a response for anything a method threw: a provider's failure is providerFailure with the
 * provider's code; other unexpected errors stay opaque to callers.
 */
export function toRpcError(error: unknown): { code: number; message: string; data?: unknown; unexpected: boolean } {
  const known = error instanceof CapstanError ? error : asProviderFailure(error);
  if (known) return { code: known.code, message: known.message, data: known.data, unexpected: false };
  return { code: JSONRPCErrorCode.InternalError, message: 'Internal error', unexpected: true };
}

export function serializeResponse(r: AnyResponse): string {
  if (r instanceof RawResponse) return r.json;
  if (r.result instanceof RawJson) return `{"jsonrpc":"2.0","id":${JSON.stringify(r.id)},"result":${r.result.json}}`;
  try {
    return JSON.stringify(r);
  } catch {
    // A result JSON cannot carry (a cycle, a BigInt) is the server's fault, not the caller's.
    return JSON.stringify(errorResponse(r.id, JSONRPCErrorCode.InternalError, 'Internal error'));
  }
}

const closing = Buffer.from('}');

/**
 * The HTTP body of one response. A large pre-serialized result goes out as pieces around its cached bytes,
 * never copied into a new buffer per request.
 */
export function responseBody(r: AnyResponse): string | Buffer[] {
  if (r instanceof RawResponse || !(r.result instanceof RawJson) || r.result.json.length < 16_384) return serializeResponse(r);
  return [Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(r.id)},"result":`), r.result.bytes, closing];
}
