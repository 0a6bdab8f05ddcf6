// The web console: every group at a glance, one group's machines, decisions and history, live from /events, and
// the operator's actions (scale, pause, resume, roll back) each confirmed against the API's pretend plan.
// Preact's h() rather than JSX, so the project's one TypeScript setup checks it as it is.
import { cloneElement, h, isValidElement, toChildArray, type VNode } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { batch, call, follow, RpcError, unauthorizedCode, type StreamState } from './api.js';
import { age, count, isoOf, planWords, shortHash, when, type Plan } from './format.js';
import type { InstanceStatus } from '../../spi/group.js';

/** What h() makes, whatever its props. */
type El = VNode<any>;

// --- what the API answers (schemas/rpc/) ----------------------------------------------------------------------

interface ListEntry {
  readonly id: string;
  readonly version: number;
  readonly size: number;
  readonly instances: number;
  readonly converged: boolean;
}
/** group.describe's machines, typed once for the API and the page (the import is erased from the bundle). */
type Machine = InstanceStatus;
interface Update {
  readonly state: 'idle' | 'rolling' | 'paused' | 'failed' | 'done';
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly reason?: string;
}
interface Decision {
  readonly at: number;
  readonly group: string;
  readonly action: string;
  readonly reason: string;
  readonly message: string;
}
interface Described {
  readonly id: string;
  readonly version: number;
  readonly size: number;
  readonly converged: boolean;
  readonly configHash?: string;
  readonly instances: readonly Machine[];
  readonly update: Update;
  readonly repair?: { readonly broken: number; readonly limit: number; readonly blocked?: string };
  readonly lastError?: { readonly at: string; readonly operation: string; readonly message: string };
  readonly autoscale?: readonly Decision[];
}
type Spec = { readonly id: string; readonly allocation: { readonly size: number } | { readonly logicalIds: readonly string[] } } & Record<string, unknown>;
interface Version {
  readonly version: number;
  readonly createdAt: string;
  readonly size?: number;
  readonly changes: readonly string[];
  readonly note?: string;
  readonly paused?: boolean;
  readonly failure?: string;
  readonly spec?: Spec;
}
interface Manager {
  readonly nodeId?: string;
  readonly leading: boolean;
  readonly leaderNodeId?: string;
  readonly leaderAddr?: string;
  readonly since?: string;
  readonly version: string;
}
interface Group {
  readonly list: ListEntry;
  readonly described?: Described;
}

const tokenKey = 'capstan.token';
/** The token lives in this tab's session only (sessionStorage): never localStorage, a cookie or a URL. */
const session = {
  get: (): string | null => sessionStorage.getItem(tokenKey),
  set: (token: string) => sessionStorage.setItem(tokenKey, token),
  clear: () => sessionStorage.removeItem(tokenKey),
};

// --- small pieces -------------------------------------------------------------------------------------------------

const Time = ({ at }: { at: string | number | undefined }): El => h('time', { dateTime: isoOf(at) }, when(at));

function serving(g: Group): { serving: number; of: number } {
  const d = g.described;
  return d ? { serving: d.instances.filter((i) => i.health === 'healthy').length, of: d.size } : { serving: 0, of: g.list.size };
}

/** A rolling update's figures, as `capstan --watch` counts them: replaced (new config, healthy), in flight (new config, not yet). */
function rollout(d: Described): { replaced: number; inFlight: number; old: number; active: boolean } {
  const onNew = d.instances.filter((i) => i.config === d.configHash);
  const healthyNew = onNew.filter((i) => i.health === 'healthy').length;
  const old = d.instances.length - onNew.length;
  return { replaced: Math.min(healthyNew, d.size), inFlight: onNew.length - healthyNew, old, active: old > 0 || ['rolling', 'paused', 'failed'].includes(d.update.state) };
}

function UpdateCell({ d }: { d: Described | undefined }): El {
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

function Table({ caption, head, rows, empty }: { caption: string; head: readonly string[]; rows: readonly El[]; empty: string }): El {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap', tabIndex: 0, role: 'region', 'aria-label': caption },
    h('table', null, h('caption', null, caption), h('thead', null, h('tr', null, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', null, rows.map((r) => labelled(r, head)))),
  );
}

function DecisionRows(decisions: readonly Decision[], withGroup: boolean): El[] {
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

// --- sign-in ------------------------------------------------------------------------------------------------------

function SignIn({ onSignedIn, message }: { onSignedIn: (token: string) => void; message?: string }): El {
  const [token, setToken] = useState('');
  const [error, setError] = useState(message ?? '');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) return setError('Enter the API token.');
    setBusy(true);
    try {
      // Any group call says whether the token is right; manager.status would answer without one.
      await call(token.trim(), 'group.list');
      onSignedIn(token.trim());
    } catch (err) {
      setError(err instanceof RpcError && err.code === unauthorizedCode ? 'That token was refused.' : `Cannot sign in: ${(err as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return h(
    'main',
    { id: 'main', class: 'signin' },
    h('h1', null, 'Capstan'),
    h(
      'form',
      { onSubmit: submit, method: 'post', 'aria-describedby': 'signin-help' },
      h('label', { for: 'token' }, 'API token'),
      h('input', {
        id: 'token',
        type: 'password',
        autoComplete: 'off',
        spellcheck: false,
        required: true,
        value: token,
        onInput: (e: Event) => setToken((e.currentTarget as HTMLInputElement).value),
        'aria-invalid': error ? 'true' : undefined,
        'aria-describedby': error ? 'signin-error' : undefined,
      }),
      h('button', { type: 'submit', disabled: busy }, busy ? 'Signing in…' : 'Sign in'),
      error ? h('p', { id: 'signin-error', class: 'bad', role: 'alert' }, error) : null,
      h('p', { id: 'signin-help', class: 'help' }, 'The token of CAPSTAN_TOKEN_FILE. It is kept in this tab only, until you sign out or close it.'),
    ),
  );
}

// --- confirmation ---------------------------------------------------------------------------------------------

interface Pending {
  /** One confirmation: a pretend plan that arrives after it was closed does not open it again. */
  readonly seq: symbol;
  readonly title: string;
  /** What the action does, in words. */
  readonly what: string;
  readonly confirm: string;
  /** The pretend plan, or why the API refuses the change. */
  readonly plan?: Plan;
  readonly autoscale?: readonly Decision[];
  readonly refused?: string;
  readonly loading?: boolean;
  readonly run: () => Promise<string>;
}

function Confirm({ pending, onClose }: { pending: Pending; onClose: (done?: string) => void }): El {
  const ref = useRef<HTMLDialogElement>(null);
  // The control that opened it, focused again when it goes.
  const opener = useRef(document.activeElement instanceof HTMLElement ? document.activeElement : null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => {
      if (dialog?.open) dialog.close();
      const back = opener.current;
      setTimeout(() => back?.isConnected && back.focus(), 0);
    };
  }, []);
  const go = async () => {
    setBusy(true);
    setError('');
    try {
      onClose(await pending.run());
    } catch (err) {
      setError(err instanceof RpcError ? err.details : String(err));
      setBusy(false);
    }
  };
  return h(
    'dialog',
    { ref, class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-what', onCancel: (e: Event) => (e.preventDefault(), onClose()) },
    h('h2', { id: 'confirm-title' }, pending.title),
    h('p', { id: 'confirm-what' }, pending.what),
    h('h3', null, 'What will happen (the API’s pretend plan)'),
    pending.loading
      ? h('p', { role: 'status' }, 'Asking the API…')
      : pending.refused
        ? h('p', { class: 'bad', role: 'alert' }, `The API refuses this: ${pending.refused}`)
        : pending.plan
          ? h('ul', { class: 'plan', 'aria-label': 'Pretend plan' }, planWords(pending.plan).map((w) => h('li', null, w)))
          : null,
    pending.autoscale?.length ? h('p', null, 'Autoscaling would then: ', pending.autoscale.map((d) => `${d.action} (${d.reason}: ${d.message})`).join('; ')) : null,
    error ? h('p', { class: 'bad', role: 'alert' }, error) : null,
    h(
      'div',
      { class: 'buttons' },
      h('button', { type: 'button', class: 'primary', disabled: busy || pending.loading || !!pending.refused, onClick: go }, busy ? 'Working…' : pending.confirm),
      h('button', { type: 'button', onClick: () => onClose() }, 'Cancel'),
    ),
  );
}

// --- one group ------------------------------------------------------------------------------------------------

function GroupDetail(props: {
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
          null,
          h('td', null, h('code', null, m.id), m.logicalId ? ` (${m.logicalId})` : ''),
          h('td', { class: m.health === 'healthy' ? 'good' : m.health === 'unhealthy' ? 'bad' : 'warn' }, m.health),
          h('td', null, m.link ? h('code', null, m.link) : 'not joined yet'),
          h('td', null, h('code', null, shortHash(m.config)), m.config === d?.configHash ? ' (current)' : ' (old)'),
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

// --- the console ----------------------------------------------------------------------------------------------

function StreamBadge({ stream }: { stream: StreamState }): El {
  const text =
    stream.state === 'live' ? `Live since ${when(stream.since)}` : stream.state === 'lost' ? `Live updates lost at ${when(stream.since)} (${stream.why}); reconnecting…` : 'Connecting…';
  return h('p', { class: `stream ${stream.state}`, role: 'status', 'aria-live': 'polite', id: 'stream-state', 'data-state': stream.state }, text);
}

function Console({ token, onSignOut }: { token: string; onSignOut: (message?: string) => void }): El {
  const [groups, setGroups] = useState<ReadonlyMap<string, Group>>(new Map());
  const [loaded, setLoaded] = useState(false);
  const [manager, setManager] = useState<Manager | undefined>();
  const [stream, setStream] = useState<StreamState>({ state: 'connecting' });
  const [selected, setSelected] = useState<string | undefined>();
  const [history, setHistory] = useState<readonly Version[] | undefined>();
  const [decisions, setDecisions] = useState<readonly Decision[]>([]);
  const [pending, setPending] = useState<Pending | undefined>();
  const [notice, setNotice] = useState('');
  const [, tick] = useState(0);
  const selectedRef = useRef(selected);
  selectedRef.current = selected;
  const opener = useRef<HTMLElement | null>(null);

  const failed = useCallback(
    (err: unknown) => {
      if (err instanceof RpcError && err.code === unauthorizedCode) onSignOut('The token is no longer accepted: sign in again.');
      else setNotice(`Could not read the cluster: ${err instanceof Error ? err.message : String(err)}`);
    },
    [onSignOut],
  );

  const addDecisions = useCallback((more: readonly Decision[]) => {
    if (!more.length) return;
    setDecisions((had) => {
      const key = (d: Decision) => `${d.at}|${d.group}|${d.action}|${d.reason}|${d.message}`;
      const seen = new Set(had.map(key));
      return [...had, ...more.filter((d) => !seen.has(key(d)))].sort((a, b) => a.at - b.at).slice(-100);
    });
  }, []);

  /** Everything, in one request (on sign-in and each time the stream comes back: events in between were missed). */
  const loadAll = useCallback(async () => {
    try {
      const [list, status] = (await batch(token, [['group.list'], ['manager.status']])) as [ListEntry[] | RpcError, Manager | RpcError];
      if (list instanceof RpcError) throw list;
      if (!(status instanceof RpcError)) setManager(status);
      const described = await batch(token, list.map((g) => ['group.describe', { id: g.id }] as const));
      const next = new Map<string, Group>();
      list.forEach((g, i) => {
        const d = described[i];
        next.set(g.id, { list: g, ...(d && !(d instanceof Error) ? { described: d as Described } : {}) });
      });
      setGroups(next);
      setNotice((n) => (n.startsWith('Could not read') ? '' : n));
      addDecisions(described.flatMap((d) => (d && !(d instanceof Error) ? ((d as Described).autoscale ?? []) : [])));
      setLoaded(true);
      const id = selectedRef.current;
      if (id) setHistory(await call<Version[]>(token, 'group.history', { id }).catch(() => undefined));
    } catch (err) {
      failed(err);
    }
  }, [token, failed, addDecisions]);

  /** One group again, after the stream said it moved; a burst of its events is one read. */
  const due = useRef(new Map<string, { timer: ReturnType<typeof setTimeout>; history: boolean }>());
  const refresh = useCallback(
    (id: string, withHistory: boolean) => {
      const before = due.current.get(id);
      clearTimeout(before?.timer);
      const history = withHistory || before?.history === true;
      const timer = setTimeout(async () => {
        due.current.delete(id);
        const calls: [string, object][] = [['group.list', {}], ['group.describe', { id }]];
        if (history && selectedRef.current === id) calls.push(['group.history', { id }]);
        try {
          const [list, d, hist] = await batch(token, calls);
          if (list instanceof RpcError) throw list;
          setGroups((had) => {
            const next = new Map<string, Group>();
            for (const g of list as ListEntry[]) {
              const described = g.id === id ? (d instanceof Error ? undefined : (d as Described)) : had.get(g.id)?.described;
              next.set(g.id, { list: g, ...(described ? { described } : {}) });
            }
            return next;
          });
          if (!(d instanceof Error)) addDecisions((d as Described).autoscale ?? []);
          if (hist && !(hist instanceof Error) && selectedRef.current === id) setHistory(hist as Version[]);
        } catch (err) {
          failed(err);
        }
      }, 100);
      due.current.set(id, { timer, history });
    },
    [token, failed, addDecisions],
  );

  // At once, and again each time the stream is (back) live.
  useEffect(() => void loadAll(), [loadAll]);

  useEffect(
    () =>
      follow(token, {
        onState: (s) => {
          setStream(s);
          if (s.state === 'live') void loadAll();
        },
        onUnauthorized: () => onSignOut('The token is no longer accepted: sign in again.'),
        onEvent: (e) => {
          const data = JSON.parse(e.data) as { group?: string; decision?: Decision } & Partial<Manager>;
          if (e.event === 'hello' || e.event === 'leadership') {
            void call<Manager>(token, 'manager.status').then(setManager, () => undefined);
          } else if (e.event === 'autoscale.decision' && data.decision) {
            addDecisions([data.decision]);
            if (data.group) refresh(data.group, false);
          } else if (data.group) {
            refresh(data.group, e.event !== 'group.progress');
          }
        },
      }),
    [token],
  );

  // Ages and "today" move on without events.
  useEffect(() => {
    const timer = setInterval(() => tick((n) => n + 1), 15_000);
    return () => clearInterval(timer);
  }, []);

  const open = (id: string, from: HTMLElement) => {
    opener.current = from;
    setSelected(id);
    setHistory(undefined);
    call<Version[]>(token, 'group.history', { id }).then(setHistory, failed);
  };
  const close = () => {
    setSelected(undefined);
    const back = opener.current;
    setTimeout(() => back?.isConnected && back.focus(), 0);
  };
  const ask = (p: Pending) => setPending((open) => (open === undefined ? (p.loading || p.refused !== undefined ? p : open) : open.seq === p.seq ? p : open));
  const done = (message?: string) => {
    setPending(undefined);
    if (message) setNotice(message);
  };

  const group = selected ? groups.get(selected) : undefined;
  const leader = manager
    ? manager.leaderNodeId
      ? [`Leader: `, h('code', null, manager.leaderNodeId), manager.leading ? ' (this replica)' : manager.leaderAddr ? ` at ${manager.leaderAddr}` : '', manager.since ? [' · since ', h(Time, { at: manager.since })] : null]
      : 'No replica leads right now'
    : 'Leader: asking…';

  return h(
    'div',
    { class: 'console' },
    h('a', { href: '#main', class: 'skip' }, 'Skip to the groups'),
    h(
      'header',
      null,
      h('h1', null, 'Capstan'),
      h('p', { class: 'leader', id: 'leader' }, leader, manager ? ` · Capstan ${manager.version}` : ''),
      h(StreamBadge, { stream }),
      h('button', { type: 'button', onClick: () => onSignOut() }, 'Sign out'),
    ),
    h('p', { class: 'notice', role: 'status', 'aria-live': 'polite', id: 'notice' }, notice),
    h(
      'main',
      { id: 'main', tabIndex: -1 },
      group
        ? h(GroupDetail, { group, history, decisions: decisions.filter((d) => d.group === group.list.id), ask, token, onClose: close })
        : [
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
                        h('td', { class: 'serving' }, `${s.serving} of ${count(s.of, 'machine')}`),
                        h('td', { class: 'converged' }, g.list.converged ? 'yes' : 'not yet'),
                        h('td', { class: 'update' }, h(UpdateCell, { d: g.described })),
                      );
                    }),
                }),
            h('h2', null, 'Autoscaler decisions'),
            h(Table, { caption: 'Recent autoscaler decisions, newest first', head: ['When', 'Group', 'Action', 'Reason', 'Details'], empty: 'No decisions yet.', rows: DecisionRows(decisions, true) }),
          ],
    ),
    pending ? h(Confirm, { pending, onClose: done, key: pending.seq }) : null,
  );
}

export function App(): El {
  const [token, setToken] = useState<string | null>(() => session.get());
  const [message, setMessage] = useState<string | undefined>();
  const signOut = useCallback((why?: string) => {
    session.clear();
    setMessage(why);
    setToken(null);
  }, []);
  if (!token)
    return h(SignIn, {
      message,
      onSignedIn: (t: string) => {
        session.set(t);
        setMessage(undefined);
        setToken(t);
      },
    });
  return h(Console, { token, onSignOut: signOut, key: token });
}

