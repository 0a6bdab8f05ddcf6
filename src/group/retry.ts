import { backoffMs } from '../ticker.js';

/**
 * Calls `fn` until it succeeds or `go()` turns false (then resolves undefined), waiting with backoff between
 * attempts and reporting each failure.
 */
export async function retry<T>(
  fn: () => Promise<T>,
  go: () => boolean,
  failed: (attempt: number, err: unknown) => void,
  { baseMs = 500, maxMs = 15_000 } = {},
): Promise<T | undefined> {
  for (let attempt = 1; go(); attempt++) {
    try {
      return await fn();
    } catch (err) {
      failed(attempt, err);
      await new Promise((r) => setTimeout(r, backoffMs(attempt, baseMs, maxMs)));
    }
  }
  return undefined;
}
