// The page's only ways out: JSON-RPC calls to /rpc and the event stream at /events, both on this origin and both
// with the token in the Authorization header (never in a URL, a cookie or localStorage).
import { SseParser, type SseEvent } from '../sse.js';

export const unauthorizedCode = -32001;

export class RpcError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly data?: { readonly problems?: readonly { readonly path: string; readonly message: string }[] },
  ) {
    super(message);
  }

  /** The message with the spec problems the API located, if any. */
  get details(): string {
    const problems = this.data?.problems ?? [];
    return [this.message, ...problems.map((p) => `${p.path || '/'}: ${p.message}`)].join('; ');
  }
}

type Answer = { id: number; result?: unknown; error?: { code: number; message: string; data?: RpcError['data'] } };

let nextId = 1;

async function post(token: string, body: unknown): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch('/rpc', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new RpcError('Capstan cannot be reached', 0);
  }
  if (res.status === 204) return undefined;
  try {
    return await res.json();
  } catch {
    throw new RpcError(`Capstan answered HTTP ${res.status}, not JSON-RPC`, 0);
  }
}

function unwrap(a: Answer | undefined): unknown {
  if (!a) throw new RpcError('no answer', 0);
  if (a.error) throw new RpcError(a.error.message, a.error.code, a.error.data);
  return a.result;
}

/** One call; throws RpcError with the API's code and message. */
export async function call<T = any>(token: string, method: string, params: object = {}): Promise<T> {
  return unwrap((await post(token, { jsonrpc: '2.0', id: nextId++, method, params })) as Answer) as T;
}

/** Several calls in one request (a batch); each answer is a value or its RpcError. */
export async function batch(token: string, calls: readonly (readonly [string, object?])[]): Promise<unknown[]> {
  if (!calls.length) return [];
  const first = nextId;
  nextId += calls.length;
  const answers = (await post(token, calls.map(([method, params], i) => ({ jsonrpc: '2.0', id: first + i, method, params: params ?? {} })))) as Answer[] | Answer;
  // A refusal of the whole batch (too large, unparsable) comes as one error object.
  if (!Array.isArray(answers)) throw new RpcError(answers.error?.message ?? 'the batch was refused', answers.error?.code ?? 0);
  const byId = new Map(answers.map((a) => [a.id, a]));
  return calls.map((_c, i) => {
    try {
      return unwrap(byId.get(first + i));
    } catch (error) {
      return error;
    }
  });
}

export type StreamState = { readonly state: 'connecting' } | { readonly state: 'live'; readonly since: number } | { readonly state: 'lost'; readonly since: number; readonly why: string };

export interface Follow {
  onEvent(event: SseEvent): void;
  onState(state: StreamState): void;
  /** The stream refused the token: sign out. */
  onUnauthorized(): void;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Follows /events until stopped: reconnects after a loss (0.5 s, doubling to 10 s), and takes silence longer than
 * the server's keepalive interval (as its hello says) for a loss. Returns the stop.
 */
export function follow(token: string, f: Follow): () => void {
  const stop = new AbortController();
  void (async () => {
    let wait = 500;
    let lostSince: number | undefined;
    f.onState({ state: 'connecting' });
    while (!stop.signal.aborted) {
      const attempt = new AbortController();
      const abort = () => attempt.abort();
      stop.signal.addEventListener('abort', abort, { once: true });
      let silentFor = 45_000;
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      const alive = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => attempt.abort(new Error(`no sign of life for ${Math.round(silentFor / 1000)} s`)), silentFor);
      };
      let why = 'the stream ended';
      try {
        alive();
        const res = await fetch('/events', { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, cache: 'no-store', credentials: 'omit', signal: attempt.signal });
        if (res.status === 401) {
          await res.body?.cancel();
          f.onUnauthorized();
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          alive();
          for (const event of parser.push(value)) {
            if (event.event === 'hello') {
              const heartbeatMs = Number((JSON.parse(event.data) as { heartbeatMs?: number }).heartbeatMs);
              if (heartbeatMs > 0) silentFor = Math.max(2000, heartbeatMs * 2.5);
              alive();
              wait = 500;
              lostSince = undefined;
              f.onState({ state: 'live', since: Date.now() });
            }
            f.onEvent(event);
          }
        }
      } catch (error) {
        why = attempt.signal.reason instanceof Error ? attempt.signal.reason.message : error instanceof Error ? error.message : String(error);
      } finally {
        clearTimeout(watchdog);
        stop.signal.removeEventListener('abort', abort);
      }
      if (stop.signal.aborted) return;
      lostSince ??= Date.now();
      f.onState({ state: 'lost', since: lostSince, why });
      await sleep(wait, stop.signal);
      wait = Math.min(wait * 2, 10_000);
    }
  })();
  return () => stop.abort();
}
