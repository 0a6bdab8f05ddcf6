// The CLI's JSON-RPC client of the API.
import { JSONRPCClient, JSONRPCErrorException, type JSONRPCResponse } from 'json-rpc-2.0';

/** A JSON-RPC error answer, or a failure to get one. */
export class CallError extends Error {
  constructor(
    message: string,
    readonly code?: number,
    readonly data?: any,
  ) {
    super(message);
  }
}

export interface Client {
  call(method: string, params?: object): Promise<any>;
}

/** The API through json-rpc-2.0's client (ids, answers, error objects); transport errors are said plainly. */
export function client(url: string, token: string | undefined): Client {
  const endpoint = new URL(url);
  if (!endpoint.pathname.endsWith('/rpc')) endpoint.pathname = endpoint.pathname.replace(/\/?$/, '/rpc');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const rpc: JSONRPCClient = new JSONRPCClient(async (request) => {
    let text: string;
    try {
      const res = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(request), signal: AbortSignal.timeout(120_000) });
      text = await res.text();
    } catch (error) {
      throw new CallError(`cannot reach capstan at ${endpoint.href}: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}`);
    }
    let answer: JSONRPCResponse;
    try {
      answer = JSON.parse(text) as JSONRPCResponse;
    } catch {
      throw new CallError(`not a JSON-RPC answer from ${endpoint.href}: ${text.slice(0, 200)}`);
    }
    rpc.receive(answer);
  });
  return {
    async call(method, params = {}) {
      try {
        return await rpc.request(method, params);
      } catch (error) {
        if (error instanceof JSONRPCErrorException) throw new CallError(error.message, error.code, error.data);
        throw error;
      }
    },
  };
}
