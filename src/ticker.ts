/** Exponential backoff with jitter: the n-th (1-based) wait, capped at `maxMs`, somewhere in its upper half. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

export interface TickerOptions {
  /**
   * One run. Returns when it next wants to run (a time on `clock`); undefined, or anything past `intervalMs` from
   * now, means after `intervalMs`. A step that throws has failed: the next run waits with backoff. The signal
   * aborts on stop(), so work in flight can stop at its next safe point.
   */
  readonly step: (signal: AbortSignal) => Promise<number | undefined>;
  /** The longest wait between runs: a backstop for what no trigger announces. */
  readonly intervalMs: number;
  /** Waits after failures in a row: about `baseMs`, doubling up to `maxMs`, jittered (default 1 s to 60 s). */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /** Told of each failure, with how many in a row so far. */
  readonly onError?: (err: unknown, failures: number) => void;
  /** The clock the step's times are on (default Date.now). */
  readonly clock?: () => number;
}

/**
 * Runs a step again and again, never two at once: when the step asks, at the latest every `intervalMs`, soon after
 * a trigger, later after failures. Triggers that arrive while the step runs make exactly one more run. Nothing
 * runs before the first trigger; after stop() nothing runs again and no timer is left.
 */
export class Ticker {
  readonly #o: TickerOptions;
  readonly #abort = new AbortController();
  #timer?: NodeJS.Timeout;
  /** When the timer fires, on the clock; Infinity when none is set. */
  #dueAt = Infinity;
  #running?: Promise<void>;
  /** The earliest time a trigger asked for while the step ran; Infinity when none did. */
  #again = Infinity;
  #failures = 0;
  /** Those waiting for the next run to finish. */
  #waiters: (() => void)[] = [];

  constructor(options: TickerOptions) {
    this.#o = options;
  }

  /** Aborted once stopped; the step gets it too. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /**
   * Runs the step within `withinMs` (at once by default) unless a run is due sooner, or once more after the run in
   * flight. Resolves when a run that started after this call has finished, or on stop().
   */
  trigger(withinMs = 0): Promise<void> {
    if (this.signal.aborted) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.#waiters.push(resolve));
    const at = this.#now() + withinMs;
    if (this.#running) this.#again = Math.min(this.#again, at);
    else this.#schedule(at);
    return done;
  }

  /** Nothing runs again; the step's signal aborts. Resolves once the run in flight, if any, has finished. */
  stop(): Promise<void> {
    if (!this.signal.aborted) {
      this.#abort.abort();
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#dueAt = Infinity;
      for (const resolve of this.#waiters.splice(0)) resolve();
    }
    return this.#running ?? Promise.resolve();
  }

  #now(): number {
    return (this.#o.clock ?? Date.now)();
  }

  /** Sets the timer for `at`, unless it is set for sooner already. */
  #schedule(at: number): void {
    if (this.signal.aborted || at >= this.#dueAt) return;
    clearTimeout(this.#timer);
    this.#dueAt = at;
    this.#timer = setTimeout(() => this.#run(), Math.max(0, at - this.#now()));
  }

  #run(): void {
    this.#timer = undefined;
    this.#dueAt = Infinity;
    if (this.signal.aborted) return;
    const waiters = this.#waiters.splice(0);
    this.#again = Infinity;
    this.#running = this.#attempt().then((next) => {
      this.#running = undefined;
      for (const resolve of waiters) resolve();
      this.#schedule(Math.min(next, this.#again));
    });
  }

  /** One run of the step; resolves with when the next one is due. */
  async #attempt(): Promise<number> {
    try {
      const at = await this.#o.step(this.signal);
      this.#failures = 0;
      return Math.min(at ?? Infinity, this.#now() + this.#o.intervalMs);
    } catch (err) {
      this.#failures++;
      try {
        this.#o.onError?.(err, this.#failures);
      } catch {
        // A report that fails does not stop the ticker.
      }
      const { baseMs, maxMs } = this.#o.backoff ?? { baseMs: 1000, maxMs: 60_000 };
      return this.#now() + backoffMs(this.#failures, baseMs, maxMs);
    }
  }
}
