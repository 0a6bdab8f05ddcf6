import type { Duration, Quantity } from './group.js';

/** A count or a percentage of `of`; surge rounds up and unavailability down, as Kubernetes does. */
export function resolveQuantity(q: Quantity, of: number, round: 'up' | 'down'): number {
  if (typeof q === 'number') return q;
  const exact = (Number(q.slice(0, -1)) * of) / 100;
  return round === 'up' ? Math.ceil(exact) : Math.floor(exact);
}

const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

export function durationMs(d: Duration): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`bad duration "${d}"`);
  return Number(m[1]) * unitMs[m[2] as keyof typeof unitMs];
}
