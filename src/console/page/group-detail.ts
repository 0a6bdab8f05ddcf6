// One group: its facts, the operator's actions on it (each confirmed against the pretend plan), its machines, the
// autoscaler's decisions about it and its stored versions.
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, RpcError } from './api.js';
import type { Pending } from './confirm.js';
import { age, count, shortHash, when, type Plan } from './format.js';
import { DecisionRows, marksOf, serving, Table, Time, UpdateCell } from './parts.js';
import { poolSize } from '../../group/allocation.js';
import type { Decision, El, Group, Spec, Version } from './types.js';

export function GroupDetail(props: {
  group: Group;
  history: readonly Version[] | undefined;
  decisions: readonly Decision[];
  ask: (p: Pending) => void;
  token: string;
  onClose: () => void;
}): El {
  const { group, history, decisions, ask, token } = props;
  const d = group.described;
  const id = group.list.id;
  const latest = history?.at(-1);
  const spec = latest?.spec;
  const sized = spec !== undefined && 'size' in spec.allocation;
  const [size, setSize] = useState(String(group.list.size));
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [id]);
  useEffect(() => setSize(String(group.list.size)), [id, group.list.size]);

  /** Opens the confirmation at once, then fills in the pretend plan of `next` (or the API's refusal). */
  const confirmWith = (what: Omit<Pending, 'plan' | 'refused' | 'loading' | 'seq'>, next: Spec | undefined) => {
    const base = { ...what, seq: Symbol(what.title) };
    if (!next) return ask({ ...base, refused: 'the current spec is not known yet' });
    ask({ ...base, loading: true });
    call<{ plan: Plan; autoscale?: Decision[] }>(token, 'group.commit', { spec: next, pretend: true }).then(
      (r) => ask({ ...base, plan: r.plan, ...(r.autoscale?.length ? { autoscale: r.autoscale } : {}) }),
      (err: unknown) => ask({ ...base, refused: err instanceof RpcError ? err.details : String(err) }),
    );
  };

  const scale = (e: Event) => {
    e.preventDefault();
    const n = Number(size);
    if (!spec || !sized) return;
    confirmWith(
      {
        title: `Scale ${id} to ${count(n, 'machine')}?`,
        what: `${id} has ${count(group.list.size, 'machine')} now (version ${group.list.version}); a new version with size ${n} is stored and the group is brought to it.`,
        confirm: `Scale to ${count(n, 'machine')}`,
        run: async () => {
          const r = await call<{ version: number; size: number; changed: boolean }>(token, 'group.scale', { id, size: n });
          return r.changed ? `${id}: version ${r.version} stored, size ${count(r.size, 'machine')}.` : `${id} already has size ${r.size}: nothing stored.`;
        },
      },
      Number.isInteger(n) && n >= 0 ? ({ ...spec, allocation: { size: n } } as Spec) : undefined,
    );
  };
  const pause = () =>
    confirmWith(
      {
        title: `Pause ${id}’s updates?`,
        what: `No machine of ${id} is replaced while paused; a pause is stored as a new version and survives a failover. Below: what the update would still do, and now waits for a resume.`,
        confirm: 'Pause',
        run: async () => `${id}: paused (version ${(await call<{ version: number }>(token, 'group.pause', { id })).version}).`,
      },
      spec,
    );
  const resume = () =>
    confirmWith(
      {
        title: `Resume ${id}?`,
        what: `The paused or failed update of ${id} goes on from where it stopped.`,
        confirm: 'Resume',
        run: async () => `${id}: resumed (version ${(await call<{ version: number }>(token, 'group.resume', { id })).version}).`,
      },
      spec,
    );
  // As the group service picks by default: the last earlier version with another spec.
  const target = latest && history ? [...history].reverse().find((v) => v.version < latest.version && v.spec && JSON.stringify(v.spec) !== JSON.stringify(latest.spec)) : undefined;
  const rollback = () =>
    target &&
    confirmWith(
      {
        title: `Roll ${id} back to version ${target.version}?`,
        what: `The spec of version ${target.version} (stored ${when(target.createdAt)}) is stored again as a new version, and the group is brought to it.`,
        confirm: `Roll back to version ${target.version}`,
        run: async () => {
          const r = await call<{ version: number; from: number }>(token, 'group.rollback', { id, version: target.version });
          return `${id}: version ${r.version} stored, the spec of version ${r.from}.`;
        },
      },
      target.spec,
    );

  const stopped = d?.update.state === 'paused' || d?.update.state === 'failed' || latest?.paused === true || latest?.failure !== undefined;
  const s = serving(group);
  const pool = spec ? poolSize(spec) : 0;
  return h(
    'section',
    { class: 'detail', 'aria-labelledby': 'detail-title' },
    h('div', { class: 'detail-head' }, h('h2', { id: 'detail-title', tabIndex: -1, ref: heading }, `Group ${id}`), h('button', { type: 'button', onClick: props.onClose }, 'Back to all groups')),
    h(
      'dl',
      { class: 'facts' },
      h('dt', null, 'Version'),
      h('dd', null, `version ${group.list.version}`, d && d.version !== group.list.version ? ` (the controller is still on version ${d.version})` : ''),
      h('dt', null, 'Size'),
      h('dd', null, count(group.list.size, 'machine')),
      h('dt', null, 'Serving'),
      h('dd', null, `${s.serving} of ${count(s.of, 'machine')} healthy`),
      pool || s.warm
        ? [
            h('dt', null, 'Warm pool'),
            h('dd', null, spec ? `${s.warm} of ${count(pool, 'machine')} warm` : `${s.warm} warm`, spec?.warm && pool < spec.warm.size ? ` (${spec.warm.size} asked; bounds.max leaves room for ${pool})` : ''),
          ]
        : null,
      h('dt', null, 'Converged'),
      h('dd', null, group.list.converged ? 'yes' : 'not yet'),
      h('dt', null, 'Update'),
      h('dd', null, h(UpdateCell, { d })),
      d?.repair?.blocked ? [h('dt', null, 'Repairs'), h('dd', { class: 'warn' }, d.repair.blocked)] : null,
      d?.lastError ? [h('dt', null, 'Last error'), h('dd', { class: 'bad' }, h(Time, { at: d.lastError.at }), ` ${d.lastError.operation}: ${d.lastError.message}`)] : null,
    ),
    h(
      'div',
      { class: 'actions', role: 'group', 'aria-label': `Actions on ${id}` },
      h(
        'form',
        { onSubmit: scale, class: 'scale' },
        h('label', { for: 'scale-size' }, 'New size (machines)'),
        h('input', { id: 'scale-size', type: 'number', min: 0, step: 1, inputMode: 'numeric', required: true, value: size, disabled: !sized, onInput: (e: Event) => setSize((e.currentTarget as HTMLInputElement).value) }),
        h('button', { type: 'submit', disabled: !sized }, 'Scale…'),
        spec && !sized ? h('p', { class: 'help' }, 'Allocated by logical ids: commit a spec to change them.') : null,
      ),
      h('button', { type: 'button', onClick: pause, disabled: !spec || latest?.paused === true }, 'Pause…'),
      h('button', { type: 'button', onClick: resume, disabled: !spec || !stopped }, 'Resume…'),
      h('button', { type: 'button', onClick: rollback, disabled: !target }, target ? `Roll back to version ${target.version}…` : 'Roll back…'),
    ),
    h('h3', null, 'Machines'),
    h(Table, {
      caption: `Machines of ${id}`,
      head: ['Machine', 'Health', 'Swarm node', 'Config', 'Age', 'State'],
      empty: 'No machines.',
      rows: (d?.instances ?? []).map((m) =>
        h(
          'tr',
          { 'data-machine': m.id },
          // One child per cell: on a narrow screen a cell is a grid of its label and its content.
          h('td', null, h('span', { class: 'machine' }, h('code', null, m.id), m.logicalId ? ` (${m.logicalId})` : '', marksOf(m))),
          h('td', { class: m.health === 'healthy' ? 'good' : m.health === 'unhealthy' ? 'bad' : 'warn' }, m.health),
          h('td', null, m.link ? h('code', null, m.link) : 'not joined yet'),
          h('td', null, h('span', null, h('code', null, shortHash(m.config)), m.config === d?.configHash ? ' (current)' : ' (old)')),
          h('td', null, m.launchedAt ? h('time', { dateTime: m.launchedAt, title: when(m.launchedAt) }, age(m.launchedAt)) : 'unknown'),
          h('td', null, m.state),
        ),
      ),
    }),
    h('h3', null, 'Autoscaler decisions'),
    h(Table, { caption: `Recent autoscaler decisions about ${id}`, head: ['When', 'Action', 'Reason', 'Details'], empty: 'No decisions about this group yet.', rows: DecisionRows(decisions, false) }),
    h('h3', null, 'History'),
    h(Table, {
      caption: `Stored versions of ${id}, newest first`,
      head: ['Version', 'Stored', 'Size', 'What changed', 'Made by'],
      empty: history ? 'No versions.' : 'Loading…',
      rows: [...(history ?? [])].reverse().map((v) =>
        h(
          'tr',
          null,
          h('td', null, `version ${v.version}`),
          h('td', null, h(Time, { at: v.createdAt })),
          h('td', null, v.size === undefined ? 'unknown' : count(v.size, 'machine')),
          h('td', null, v.changes.join('; ')),
          h('td', null, v.note ?? '', v.paused ? ' (paused)' : '', v.failure ? h('span', { class: 'bad' }, ` failed: ${v.failure}`) : null),
        ),
      ),
    }),
  );
}
