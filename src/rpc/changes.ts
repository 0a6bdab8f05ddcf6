import { canonicalJson as canonical } from '../group/identity.js';
import type { GroupSpec } from '../spi/index.js';

const show = (v: unknown): string => (v === undefined ? 'unset' : typeof v === 'string' ? v : canonical(v));

function listDelta(before: readonly string[], after: readonly string[]): string {
  const added = after.filter((x) => !before.includes(x));
  const removed = before.filter((x) => !after.includes(x));
  const part = (sign: string, xs: string[]): string => (xs.length === 0 ? '' : xs.length <= 5 ? ` ${sign}${xs.join(`,${sign}`)}` : ` ${sign}${xs.length}`);
  return `logicalIds${part('+', added)}${part('-', removed)}`;
}

/** What changed from one version's spec to the next, in words an operator reads in `capstan group history`. */
export function describeChanges(prev: GroupSpec | undefined, next: GroupSpec): string[] {
  if (!prev) return ['created'];
  const out: string[] = [];
  const a = prev.allocation;
  const b = next.allocation;
  if ('size' in a && 'size' in b) {
    if (a.size !== b.size) out.push(`size ${a.size} -> ${b.size}`);
  } else if ('logicalIds' in a && 'logicalIds' in b) {
    if (canonical(a.logicalIds) !== canonical(b.logicalIds)) out.push(listDelta(a.logicalIds, b.logicalIds));
  } else {
    out.push(`allocation ${'size' in a ? 'size' : 'logicalIds'} -> ${'size' in b ? 'size' : 'logicalIds'}`);
  }
  for (const k of ['min', 'max'] as const) {
    if (prev.bounds?.[k] !== next.bounds?.[k]) out.push(`bounds.${k} ${show(prev.bounds?.[k])} -> ${show(next.bounds?.[k])}`);
  }
  for (const part of ['instance', 'flavor'] as const) {
    const kindKey = part === 'instance' ? 'provider' : 'kind';
    const before = prev[part] as unknown as Record<string, unknown>;
    const after = next[part] as unknown as Record<string, unknown>;
    if (before[kindKey] !== after[kindKey]) out.push(`${part}.${kindKey} ${show(before[kindKey])} -> ${show(after[kindKey])}`);
    if (canonical(before.properties) !== canonical(after.properties)) out.push(`${part}.properties changed`);
  }
  const keys = new Set([...Object.keys(prev.update ?? {}), ...Object.keys(next.update ?? {})]);
  for (const k of [...keys].sort()) {
    const before = (prev.update as unknown as Record<string, unknown> | undefined)?.[k];
    const after = (next.update as unknown as Record<string, unknown> | undefined)?.[k];
    if (canonical(before) !== canonical(after)) out.push(`update.${k} ${show(before)} -> ${show(after)}`);
  }
  if (canonical(prev.autoscale) !== canonical(next.autoscale)) out.push('autoscale changed');
  return out.length ? out : ['no changes'];
}
