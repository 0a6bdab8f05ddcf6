// Small pieces the console's views share: times, the update's progress, a machine's marks, tables, the autoscaler's
// decisions.
import { cloneElement, h, isValidElement, toChildArray } from 'preact';
import { count, isoOf, when } from './format.js';
import type { Decision, Described, El, Group, Machine } from './types.js';

export const Time = ({ at }: { at: string | number | undefined }): El => h('time', { dateTime: isoOf(at) }, when(at));

/** The members beyond the size on purpose (the warm pool) are counted apart from the others, as `capstan --watch` does. */
const activeOf = (d: Described): readonly Machine[] => d.instances.filter((i) => !i.warm);

/** Members serving (healthy, out of the warm pool) of the size, and the warm pool's members. */
export function serving(g: Group): { serving: number; of: number; warm: number } {
  const d = g.described;
  if (!d) return { serving: 0, of: g.list.size, warm: 0 };
  return { serving: activeOf(d).filter((i) => i.health === 'healthy').length, of: d.size, warm: d.instances.length - activeOf(d).length };
}

/** What sets a machine apart in its group, in words on the page: in the warm pool, protected from scale-in. */
export function marksOf(m: Machine): El[] {
  return [
    m.warm ? h('span', { class: 'mark warm', title: 'Joined with nothing scheduled there; a scale-up activates it first' }, 'in the warm pool') : null,
    m.protected ? h('span', { class: 'mark protected', title: 'Swarm node label capstan.protect=true: never chosen when the size drops' }, 'protected from scale-in') : null,
  ].filter((e): e is El => e !== null);
}

/** A rolling update's figures, as `capstan --watch` counts them: replaced (new config, healthy), in flight (new config, not yet). */
function rollout(d: Described): { replaced: number; inFlight: number; old: number; active: boolean } {
  const members = activeOf(d);
  const onNew = members.filter((i) => i.config === d.configHash);
  const healthyNew = onNew.filter((i) => i.health === 'healthy').length;
  const old = members.length - onNew.length;
  return { replaced: Math.min(healthyNew, d.size), inFlight: onNew.length - healthyNew, old, active: old > 0 || ['rolling', 'paused', 'failed'].includes(d.update.state) };
}

export function UpdateCell({ d }: { d: Described | undefined }): El {
  if (!d) return h('span', null, 'not known yet');
  const r = rollout(d);
  if (!r.active) return h('span', null, 'no update rolling');
  const label = `${r.replaced} of ${count(d.size, 'machine')} replaced`;
  return h(
    'div',
    { class: 'rollout' },
    h('progress', { max: Math.max(d.size, 1), value: r.replaced, 'aria-label': `Update of ${d.id}: ${label}` }),
    h(
      'span',
      null,
      label,
      r.inFlight ? `, ${r.inFlight} in flight` : '',
      r.old ? `, ${count(r.old, 'machine')} on the old config` : '',
      d.update.state === 'paused' ? h('strong', { class: 'warn' }, ' · paused') : null,
      d.update.state === 'failed' ? h('strong', { class: 'bad' }, ` · failed: ${d.update.reason ?? 'no reason given'}`) : null,
    ),
  );
}

/** Each cell of a row names its column (data-label): on a narrow screen rows become cards that show the names. */
function labelled(row: El, head: readonly string[]): El {
  const cells = toChildArray((row.props as { children?: El[] }).children);
  return cloneElement(row, {}, ...cells.map((c, i) => (isValidElement(c) && head[i] ? cloneElement(c, { 'data-label': head[i] }) : c)));
}

export function Table({ caption, head, rows, empty }: { caption: string; head: readonly string[]; rows: readonly El[]; empty: string }): El {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap', tabIndex: 0, role: 'region', 'aria-label': caption },
    h('table', null, h('caption', null, caption), h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', null, rows.map((r) => labelled(r, head)))),
  );
}

export function DecisionRows(decisions: readonly Decision[], withGroup: boolean): El[] {
  return [...decisions]
    .sort((a, b) => b.at - a.at)
    .slice(0, 20)
    .map((d) =>
      h(
        'tr',
        null,
        h('td', null, h(Time, { at: d.at })),
        withGroup ? h('td', null, d.group || '(none)') : null,
        h('td', null, d.action),
        h('td', null, d.reason),
        h('td', null, d.message),
      ),
    );
}
