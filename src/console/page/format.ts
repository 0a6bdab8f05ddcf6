// Words and figures as the page shows them: every count with its unit, times in the viewer's own locale and zone.

/** "1 machine", "3 machines". */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${new Intl.NumberFormat().format(n)} ${n === 1 ? one : many}`;
}

/** A moment in the viewer's locale and time zone, with the date when it is not today. */
export function when(iso: string | number | undefined, now = Date.now()): string {
  if (iso === undefined || iso === '') return 'unknown';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return 'unknown';
  const today = new Date(now).toDateString() === d.toDateString();
  return new Intl.DateTimeFormat(undefined, today ? { timeStyle: 'medium' } : { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

/** A machine-readable form for <time datetime>. */
export function isoOf(iso: string | number | undefined): string | undefined {
  if (iso === undefined || iso === '') return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** How long ago, in the largest whole unit: "45 seconds", "3 minutes", "2 hours", "5 days". */
export function age(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return 'unknown';
  const ms = now - new Date(iso).getTime();
  if (Number.isNaN(ms)) return 'unknown';
  const s = Math.max(0, Math.floor(ms / 1000));
  const [value, unit] = s < 60 ? [s, 'second'] : s < 3600 ? [Math.floor(s / 60), 'minute'] : s < 86_400 ? [Math.floor(s / 3600), 'hour'] : [Math.floor(s / 86_400), 'day'];
  return new Intl.NumberFormat(undefined, { style: 'unit', unit, unitDisplay: 'long' }).format(value);
}

/** A config hash as people compare them: its first 8 characters. */
export const shortHash = (hash: string | undefined): string => (hash ? hash.slice(0, 8) : 'none');

export interface Plan {
  readonly create: number;
  readonly createLogicalIds?: readonly string[];
  readonly destroy: readonly string[];
  readonly replace: readonly string[];
  /** Members the warm pool would take in now. */
  readonly warm?: readonly string[];
  /** Members of the warm pool that would be activated now (a larger size takes them first). */
  readonly activate?: readonly string[];
}

/**
 * A pretend commit's plan in words: "create 2 machines, destroy none, replace none", and what the warm pool would
 * activate or take in when it would.
 */
export function planWords(p: Plan): string[] {
  const out = [
    p.create ? `create ${count(p.create, 'machine')}${p.createLogicalIds?.length ? ` (${p.createLogicalIds.join(', ')})` : ''}` : 'create no machine',
    p.destroy.length ? `destroy ${count(p.destroy.length, 'machine')} (${p.destroy.join(', ')})` : 'destroy no machine',
    p.replace.length ? `replace ${count(p.replace.length, 'machine')} on an older config (${p.replace.join(', ')})` : 'replace no machine',
  ];
  if (p.activate?.length) out.push(`activate ${count(p.activate.length, 'machine')} from the warm pool (${p.activate.join(', ')})`);
  if (p.warm?.length) out.push(`put ${count(p.warm.length, 'machine')} in the warm pool (${p.warm.join(', ')})`);
  return out;
}
