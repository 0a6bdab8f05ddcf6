// The console's front page: every group at a glance, and the autoscaler's recent decisions.
import { h } from 'preact';
import { count } from './format.js';
import { DecisionRows, serving, Table, UpdateCell } from './parts.js';
import type { Decision, El, Group } from './types.js';

/** The groups table (a group's name opens it) and the decisions table, the children of the page's main. */
export function overview({
  groups,
  loaded,
  decisions,
  open,
}: {
  groups: ReadonlyMap<string, Group>;
  loaded: boolean;
  decisions: readonly Decision[];
  open: (id: string, from: HTMLElement) => void;
}): El[] {
  return [
    h('h2', null, 'Groups'),
    !loaded
      ? h('p', { role: 'status' }, 'Loading…')
      : h(Table, {
          caption: 'Every group Capstan manages',
          head: ['Group', 'Version', 'Size', 'Serving', 'Converged', 'Update'],
          empty: 'No groups yet: commit one with `capstan group commit`.',
          rows: [...groups.values()]
            .sort((a, b) => a.list.id.localeCompare(b.list.id))
            .map((g) => {
              const s = serving(g);
              return h(
                'tr',
                { 'data-group': g.list.id },
                h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onClick: (e: Event) => open(g.list.id, e.currentTarget as HTMLElement), 'aria-label': `Open group ${g.list.id}` }, g.list.id)),
                h('td', { class: 'version' }, `version ${g.list.version}`),
                h('td', { class: 'size' }, count(g.list.size, 'machine')),
                h('td', { class: 'serving' }, `${s.serving} of ${count(s.of, 'machine')}${s.warm ? `, ${s.warm} warm` : ''}`),
                h('td', { class: 'converged' }, g.list.converged ? 'yes' : 'not yet'),
                h('td', { class: 'update' }, h(UpdateCell, { d: g.described })),
              );
            }),
        }),
    h('h2', null, 'Autoscaler decisions'),
    h(Table, { caption: 'Recent autoscaler decisions, newest first', head: ['When', 'Group', 'Action', 'Reason', 'Details'], empty: 'No decisions yet.', rows: DecisionRows(decisions, true) }),
  ];
}
