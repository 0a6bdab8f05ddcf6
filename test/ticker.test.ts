// The one loop shape (src/ticker.ts) with small real delays: triggers coalesce, the step's next time and the interval
// are honoured, failures back off with jitter and reset, stop() cancels and waits for the step in flight.
import t, { type Test } from 'tap';
import { backoffMs, Ticker, type TickerOptions } from '../src/ticker.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A ticker whose step is `body`, recording when each run started; stopped when the test ends. */
function ticker(t: Test, body: (run: number, signal: AbortSignal) => Promise<number | undefined> | number | undefined, over: Partial<TickerOptions> = {}) {
  const starts: number[] = [];
  const k = new Ticker({
    intervalMs: 60_000,
    step: async (signal) => {
      starts.push(Date.now());
      return body(starts.length, signal);
    },
    ...over,
  });
  t.teardown(() => k.stop());
  return { k, starts };
}

t.test('nothing runs before a trigger; a trigger runs the step and resolves once it has', async (t) => {
  const { k, starts } = ticker(t, async () => {
    await sleep(20);
    return undefined;
  });
  await sleep(30);
  t.equal(starts.length, 0, 'idle until triggered');
  const at = Date.now();
  await k.trigger();
  t.equal(starts.length, 1);
  t.ok(Date.now() - at >= 19, 'resolved after the step finished');
});

t.test('triggers during a run make exactly one more run', async (t) => {
  const { k, starts } = ticker(t, async () => {
    await sleep(40);
    return undefined;
  });
  const first = k.trigger();
  await sleep(10);
  const during = [k.trigger(), k.trigger(), k.trigger(200), k.trigger()];
  await first;
  t.equal(starts.length, 1, 'the run in flight was not doubled');
  await Promise.all(during);
  t.equal(starts.length, 2, 'one follow-up served every trigger that arrived meanwhile');
  await sleep(80);
  t.equal(starts.length, 2, 'and nothing more');
});

t.test('the step says when it next runs; the interval caps it', async (t) => {
  const soon = ticker(t, (run) => (run === 1 ? Date.now() + 50 : undefined));
  await soon.k.trigger();
  await sleep(150);
  t.equal(soon.starts.length, 2, 'ran again when asked');
  const gap = soon.starts[1]! - soon.starts[0]!;
  t.ok(gap >= 48 && gap < 140, `at the time it asked for (${gap} ms)`);

  const capped = ticker(t, () => Date.now() + 60_000, { intervalMs: 40 });
  await capped.k.trigger();
  await sleep(150);
  t.ok(capped.starts.length >= 2, `the interval is the longest wait (${capped.starts.length} runs)`);

  // Times are on the ticker's clock: a fake clock standing still makes the wait exactly what the step asked for.
  const fake = ticker(t, (run) => (run === 1 ? 1_000_040 : undefined), { clock: () => 1_000_000 });
  await fake.k.trigger();
  await sleep(120);
  t.equal(fake.starts.length, 2);
  t.ok(fake.starts[1]! - fake.starts[0]! >= 38, 'the wait came from the step\'s time on that clock');
});

t.test('trigger(within) brings a later run forward and never puts a sooner one off', async (t) => {
  const { k, starts } = ticker(t, (run) => (run === 1 ? Date.now() + 30 : undefined));
  await k.trigger();
  void k.trigger(500);
  await sleep(100);
  t.equal(starts.length, 2, 'the run due in 30 ms was not put off to 500 ms');
  const at = Date.now();
  await k.trigger(40);
  const waited = Date.now() - at;
  t.equal(starts.length, 3);
  t.ok(waited >= 38 && waited < 200, `ran within the 40 ms asked (${waited} ms), not at the 60 s interval`);
});

t.test('failures back off, growing and jittered, and reset after a success', async (t) => {
  const failures: number[] = [];
  const { k, starts } = ticker(
    t,
    (run) => {
      if (run === 4) return undefined;
      throw new Error(`run ${run} failed`);
    },
    { backoff: { baseMs: 40, maxMs: 160 }, onError: (_err, n) => failures.push(n) },
  );
  await k.trigger();
  await sleep(40 + 80 + 160 + 150);
  t.equal(starts.length, 4, 'three failures, then the success');
  t.same(failures, [1, 2, 3], 'each failure counted in a row');
  const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
  // Each wait is in the upper half of baseMs * 2^(n-1): 20-40, 40-80, 80-160 ms (timers never fire early).
  t.ok(gaps[0]! >= 19 && gaps[1]! >= 39 && gaps[2]! >= 79, `the waits grow: ${gaps.join(', ')} ms`);
  t.ok(gaps[0]! < 40 + 100, `the first wait is short: ${gaps[0]} ms`);

  // A success resets the count: the next failure waits as the first did.
  const more = ticker(t, (run) => (run === 2 ? undefined : Promise.reject(new Error('no'))), { backoff: { baseMs: 40, maxMs: 160 }, onError: (_e, n) => failures.push(n) });
  failures.length = 0;
  await more.k.trigger();
  await sleep(80);
  await more.k.trigger();
  t.same(failures, [1, 1], 'after a success, the count starts again');
});

t.test('backoffMs: jittered within the upper half of its cap, capped at maxMs', async (t) => {
  for (const [attempt, cap] of [[1, 100], [2, 200], [3, 400], [4, 800], [5, 1000], [30, 1000]] as const) {
    const waits = Array.from({ length: 200 }, () => backoffMs(attempt, 100, 1000));
    t.ok(waits.every((w) => w >= cap / 2 && w <= cap), `attempt ${attempt}: within ${cap / 2}-${cap}`);
    t.ok(new Set(waits).size > 100, `attempt ${attempt}: jittered`);
  }
});

t.test('stop cancels the timer, aborts the step\'s signal and waits for the step in flight', async (t) => {
  const before = timers();
  let signal: AbortSignal | undefined;
  let finished = false;
  const { k, starts } = ticker(t, async (_run, s) => {
    signal = s;
    await sleep(60);
    finished = true;
    return Date.now() + 10;
  });
  void k.trigger();
  await sleep(10);
  t.equal(signal?.aborted, false);
  const stopping = k.stop();
  t.equal(signal?.aborted, true, 'the step is told at once');
  t.equal(k.signal.aborted, true);
  await stopping;
  t.ok(finished, 'stop() resolved only once the step in flight had finished');
  await k.trigger();
  await sleep(40);
  t.equal(starts.length, 1, 'nothing runs after stop, triggered or scheduled');
  t.equal(timers(), before, 'no timer left behind');

  // Stopped while idle: the scheduled run is cancelled.
  const idle = ticker(t, () => Date.now() + 20);
  await idle.k.trigger();
  await idle.k.stop();
  await sleep(50);
  t.equal(idle.starts.length, 1, 'the run due in 20 ms never happened');
  t.equal(timers(), before, 'no timer left behind');
});
