// `--watch`: follows a group after a command until it converges on the new version, woken by the API's event stream
// (or polling), with its progress on stderr.
import { SseParser } from '../console/sse.js';
import { CallError, type Client } from './client.js';
import type { CliIo } from './main.js';

const words = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** The --watch settings from the command line. */
export interface Watch {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Poll every intervalMs instead of following the event stream (--interval given). */
  readonly poll: boolean;
}

/** What --watch waits on between looks at the group. */
interface Waiter {
  /** Resolves when the group may have moved, or after `ms` at the latest. */
  wait(ms: number): Promise<void>;
  close(): void;
}

/** Without the stream: the clock. */
const clock = (intervalMs: number): Waiter => ({ wait: () => new Promise((resolve) => setTimeout(resolve, intervalMs)), close: () => {} });

/**
 * GET /events (src/rpc/events.ts), the stream the web console follows: wakes the watch when an event names the
 * group (or leadership moves). Undefined when the stream cannot be had (a server before it, a proxy that refuses it);
 * once it ends, the clock takes over.
 */
export async function streamOf(url: string, token: string | undefined, id: string, intervalMs: number): Promise<Waiter | undefined> {
  const endpoint = new URL(url);
  endpoint.pathname = endpoint.pathname.replace(/\/?(rpc\/?)?$/, '/events');
  const abort = new AbortController();
  let res: Response;
  try {
    res = await fetch(endpoint, { headers: { accept: 'text/event-stream', ...(token && { authorization: `Bearer ${token}` }) }, signal: abort.signal });
  } catch {
    return undefined;
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  let moved = false;
  let ended = false;
  let wake: (() => void) | undefined;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    const parser = new SseParser();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const e of parser.push(value)) {
          let group: unknown;
          try {
            group = (JSON.parse(e.data) as { group?: unknown }).group;
          } catch {
            continue;
          }
          if (group === id || e.event === 'leadership') {
            moved = true;
            wake?.();
          }
        }
      }
    } catch {
      // aborted or broken: the clock takes over
    } finally {
      ended = true;
      wake?.();
    }
  })();
  return {
    wait: (ms) =>
      new Promise<void>((resolve) => {
        if (moved) {
          moved = false;
          return resolve();
        }
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          moved = false;
          resolve();
        };
        const timer = setTimeout(done, ended ? intervalMs : ms);
        if (!ended) wake = done;
      }),
    close: () => abort.abort(),
  };
}

/** With the stream, a look at the latest this long after the previous one all the same (an event missed in a relay). */
const streamBackstopMs = 15_000;

/** The parts of a group.describe answer that --watch reads. */
export interface DescribeView {
  readonly version: number;
  readonly size: number;
  readonly converged: boolean;
  readonly configHash?: string;
  readonly instances: readonly { readonly config: string; readonly health: string; readonly warm?: boolean }[];
  readonly update: { readonly state: string; readonly total: number; readonly done: number; readonly failed: number; readonly reason?: string };
}

/**
 * What --watch shows of a group: the members serving (healthy, whatever their config) of the size; an update apart,
 * as members on the new config and healthy (replaced) of the size, with those on it and not yet healthy in flight;
 * a scale-down as removal. `fraction` drives the progress bar; `startCount` is the instance count the watch began with.
 */
export function progressOf(id: string, version: number, d: DescribeView, startCount: number): { line: string; fraction: number } {
  const { size } = d;
  // Members of the warm pool are beyond the size on purpose: counted apart.
  const pool = d.instances.filter((i) => i.warm).length;
  const instances = pool ? d.instances.filter((i) => !i.warm) : d.instances;
  const serving = instances.filter((i) => i.health === 'healthy').length;
  const onNew = instances.filter((i) => i.config === d.configHash);
  const replaced = Math.min(onNew.filter((i) => i.health === 'healthy').length, size);
  const inFlight = onNew.length - onNew.filter((i) => i.health === 'healthy').length;
  const old = instances.length - onNew.length;
  const updating = old > 0 || ['rolling', 'paused', 'failed'].includes(d.update.state);
  let line = `${id} v${version}: `;
  let fraction: number;
  if (!updating && instances.length > size) {
    line += `${serving} serving, removing ${words(instances.length - size, 'instance')} (size ${size})`;
    fraction = startCount > size ? (startCount - instances.length) / (startCount - size) : 0;
  } else {
    line += `${serving}/${size} serving`;
    const starting = instances.length - serving;
    if (!updating && starting > 0) line += `, ${starting} starting`;
    if (!updating && instances.length < size) line += `, ${size - instances.length} to create`;
    fraction = size === 0 ? (instances.length === 0 ? 1 : 0) : serving / size;
  }
  if (updating) {
    const stopped = d.update.state === 'paused' || d.update.state === 'failed' ? ` ${d.update.state}${d.update.reason ? ` (${d.update.reason})` : ''}` : '';
    line += `; update${stopped}: ${replaced}/${size} replaced${inFlight ? `, ${inFlight} in flight` : ''}${old ? `, ${old} old` : ''}`;
    fraction = size === 0 ? 0 : replaced / size;
  }
  if (pool) line += `; ${pool} warm`;
  if (d.version < version) line += ` (controller still on v${d.version})`;
  return { line, fraction: Math.max(0, Math.min(fraction, d.version < version ? 0 : 1)) };
}

/**
 * Reads group.describe until the group runs `version` and converged, again each time the event stream says the group
 * moved (or every --interval when polling); progress on stderr.
 */
export async function watch(api: Client, io: CliIo, id: string, version: number, w: Watch, stream: () => Promise<Waiter | undefined>): Promise<void> {
  const followed = w.poll ? undefined : await stream();
  const waiter = followed ?? clock(w.intervalMs);
  try {
    await follow(api, io, id, version, w, waiter, followed ? streamBackstopMs : w.intervalMs);
  } finally {
    waiter.close();
  }
}

async function follow(api: Client, io: CliIo, id: string, version: number, w: Watch, waiter: Waiter, mostMs: number): Promise<void> {
  const tty = io.stderr.isTTY === true;
  const deadline = Date.now() + w.timeoutMs;
  let last = '';
  let startCount: number | undefined;
  for (;;) {
    const d = await api.call('group.describe', { id });
    const current = d.version >= version;
    startCount ??= d.instances.filter((i: { warm?: boolean }) => !i.warm).length;
    const { line, fraction } = progressOf(id, version, d, startCount!);
    if (tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      io.stderr.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% ${line}`);
    } else if (line !== last) {
      io.stderr.write(`${line}\n`);
    }
    last = line;
    const done = d.converged && current;
    const stuck = current && (d.update.state === 'failed' || d.update.state === 'paused');
    if (done || stuck || Date.now() >= deadline) {
      if (tty) io.stderr.write('\n');
      if (done) return;
      if (stuck) throw new CallError(`update ${d.update.state}${d.update.reason ? `: ${d.update.reason}` : ''}`);
      throw new CallError(`${id} did not converge on version ${version} within ${w.timeoutMs / 1000}s`);
    }
    await waiter.wait(Math.max(0, Math.min(mostMs, deadline - Date.now())));
  }
}
