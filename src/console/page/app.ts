// The web console: every group at a glance, one group's machines, decisions and history, live from /events, and
// the operator's actions (scale, pause, resume, roll back) each confirmed against the API's pretend plan.
// Preact's h() rather than JSX, so the project's one TypeScript setup checks it as it is.
import { h } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { batch, call, follow, RpcError, unauthorizedCode, type StreamState } from './api.js';
import { Confirm, type Pending } from './confirm.js';
import { when } from './format.js';
import { GroupDetail } from './group-detail.js';
import { overview } from './overview.js';
import { Time } from './parts.js';
import { SignIn } from './sign-in.js';
import type { Decision, Described, El, Group, ListEntry, Manager, Version } from './types.js';

const tokenKey = 'capstan.token';
/** The token lives in this tab's session only (sessionStorage): never localStorage, a cookie or a URL. */
const session = {
  get: (): string | null => sessionStorage.getItem(tokenKey),
  set: (token: string) => sessionStorage.setItem(tokenKey, token),
  clear: () => sessionStorage.removeItem(tokenKey),
};

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
        : overview({ groups, loaded, decisions, open }),
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
