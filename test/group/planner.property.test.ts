// Property tests: random sequences of observations, health flips, lost machines, failed calls, describe lag, Swarm
// elections (every joined node reads `unknown` for a while) and new leaders (the controller's memory is lost),
// executed against a model world by the same rules the controller follows.
import t from 'tap';
import fc from 'fast-check';
import type { Observed, Plan } from '../../src/group/plan-types.js';
import { plan } from '../../src/group/planner.js';
import { resolveQuantity } from '../../src/spi/quantity.js';
import type { GroupSpec, Health, Instance, WarmState } from '../../src/spi/index.js';
import { inst, logicalSpec, sizedSpec } from './fixtures.js';

interface Machine {
  readonly instance: Instance;
  /** When the provider starts listing it (describe lag). */
  readonly visibleAt: number;
  /** When it becomes healthy (again, once started); Infinity for a config that never boots. */
  healthyAt: number;
  sick: boolean;
  /** The controller's memory: gone when a new leader takes over. */
  healthySince?: number;
  unhealthySince?: number;
  /** Infrastructure's memory (a Swarm node linked to the machine): survives a new leader. */
  joined?: boolean;
  /** Labelled capstan.protect=true (only in worlds that protect some machines). */
  protected?: boolean;
  tasks?: number;
  /** In the warm pool (only in worlds with one). */
  warm?: boolean;
  /** Stopped by the provider (a pool kept stopped): its node is Down, labelled warm if it is in the pool. */
  stopped?: boolean;
  /** Started by the controller (its memory, gone with a new leader) and not healthy yet. */
  waking?: boolean;
}

type Event =
  | { kind: 'tick'; ms: number }
  | { kind: 'lose'; pick: number }
  | { kind: 'sicken'; pick: number }
  | { kind: 'config' }
  | { kind: 'resize'; size: number }
  | { kind: 'election'; ms: number }
  | { kind: 'newLeader' };

const event: fc.Arbitrary<Event> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((ms) => ({ kind: 'tick' as const, ms })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: 'lose' as const, pick })) },
  { weight: 1, arbitrary: fc.nat().map((pick) => ({ kind: 'sicken' as const, pick })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'config' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 8 }).map((size) => ({ kind: 'resize' as const, size })) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((ms) => ({ kind: 'election' as const, ms })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'newLeader' as const }) },
);

const world = fc.record({
  logical: fc.boolean(),
  size: fc.integer({ min: 0, max: 8 }),
  max: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
  maxUnavailable: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('25%' as const, '50%' as const)),
  maxSurge: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('25%' as const, '100%' as const)),
  lagMs: fc.integer({ min: 0, max: 30_000 }),
  bootMs: fc.integer({ min: 0, max: 15_000 }),
  failRate: fc.constantFrom(0, 0.2, 0.5),
  maxUnhealthy: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('40%' as const, '100%' as const)),
  seed: fc.integer(),
  events: fc.array(event, { maxLength: 40 }),
});

type World = typeof world extends fc.Arbitrary<infer W> ? W : never;

function specOf(w: World, size: number, config: number, warm?: number, warmState: WarmState = 'running'): GroupSpec {
  const update = { maxUnavailable: w.maxUnavailable, maxSurge: w.maxSurge, healthTimeout: '60s', healthyFor: '5s', onFailure: 'pause' } as const;
  const repair = { unhealthyFor: '30s', maxUnhealthy: w.maxUnhealthy } as const;
  const max = w.max === undefined ? undefined : Math.max(w.max, size);
  const base = w.logical ? logicalSpec(Array.from({ length: size }, (_, i) => `id${i}`), { update, repair }) : sizedSpec(size, { update, repair });
  const pool = warm === undefined || w.logical ? {} : { warm: { size: warm, state: warmState } };
  return { ...base, instance: { provider: 'simulator', properties: { config } }, ...(max === undefined ? {} : { bounds: { max } }), ...pool };
}

function simulate(
  w: World,
  check: (ctx: { spec: GroupSpec; before: Machine[]; after: Machine[]; p: Plan; hash: string; now: number; faulted: boolean }) => void,
  opts: { protectRate?: number; warm?: number; warmState?: WarmState } = {},
) {
  let rand = w.seed >>> 0;
  const random = () => ((rand = (Math.imul(rand ^ (rand >>> 15), 2246822507) + 0x9e3779b9) >>> 0) / 2 ** 32);
  let now = 1_000_000;
  let size = w.size;
  let config = 1;
  let next = 0;
  let paused = false;
  let electionUntil = -1;
  const machines: Machine[] = [];

  const pass = () => {
    const spec = specOf(w, size, config, opts.warm, opts.warmState);
    const hash = `c${config}`;
    // What Swarm says: right after an election every joined node that is not Down reads `unknown`.
    // A stopped machine's node is Down: healthy only as a member of the pool, which keeps it so on purpose.
    const healthOf = (m: Machine): Health =>
      m.stopped ? (m.warm ? 'healthy' : 'unhealthy') : m.sick ? 'unhealthy' : now < electionUntil && m.joined ? 'unknown' : now >= m.healthyAt ? 'healthy' : 'unknown';
    for (const m of machines) {
      const h = healthOf(m);
      if (h === 'healthy') {
        m.healthySince ??= now;
        m.joined = true;
      } else delete m.healthySince;
      if (h === 'unhealthy') m.unhealthySince ??= now;
      else delete m.unhealthySince;
    }
    // Listed instances plus the ones the controller launched and the provider does not list yet: all of them.
    const observed: Observed[] = machines.map((m) => ({
      instance: m.stopped ? { ...m.instance, state: 'stopped' as const } : m.instance,
      health: healthOf(m),
      ...(m.healthySince === undefined ? {} : { healthySince: m.healthySince }),
      ...(m.unhealthySince === undefined ? {} : { unhealthySince: m.unhealthySince }),
      ...(m.joined ? { joined: true } : {}),
      ...(m.protected ? { protected: true } : {}),
      ...(m.tasks === undefined ? {} : { tasks: m.tasks }),
      ...(m.warm ? { warm: true } : {}),
      ...(m.waking && healthOf(m) !== 'healthy' ? { waking: true } : {}),
    }));
    const p = plan({ spec, configHash: hash, observed, now, paused });
    if (p.failure) paused = true;
    const before = [...machines];
    let faulted = false;
    for (const a of p.actions) {
      if (random() < w.failRate) {
        faulted = true;
        continue;
      }
      if (a.kind === 'destroy') {
        for (const id of a.ids) machines.splice(machines.findIndex((m) => m.instance.id === id), 1);
      } else if (a.kind === 'standby') {
        for (const m of machines) {
          if (a.stop.includes(m.instance.id) && (!m.warm || a.active.includes(m.instance.id))) throw new Error(`${m.instance.id} stopped, not a member of the pool`);
          if (a.active.includes(m.instance.id) && m.stopped && !a.start.includes(m.instance.id)) throw new Error(`${m.instance.id} activated while stopped`);
          if (a.start.includes(m.instance.id)) {
            delete m.stopped;
            m.healthyAt = now + w.bootMs;
            m.waking = true;
          }
          if (a.stop.includes(m.instance.id)) m.stopped = true;
        }
        for (const m of machines) if (a.warm.includes(m.instance.id)) m.warm = true;
        for (const m of machines) if (a.active.includes(m.instance.id)) delete m.warm;
      } else {
        for (let i = 0; i < a.count; i++) {
          const logicalId = a.logicalIds?.[i];
          machines.push({
            instance: inst(`i${next++}`, hash, { launchedAt: now, ...(logicalId ? { logicalId } : {}) }),
            visibleAt: now + w.lagMs,
            healthyAt: now + w.bootMs,
            sick: false,
            ...(opts.protectRate ? { protected: random() < opts.protectRate, tasks: Math.floor(random() * 4) } : {}),
          });
        }
      }
    }
    check({ spec, before, after: [...machines], p, hash, now, faulted });
    return p;
  };

  for (const e of w.events) {
    if (e.kind === 'tick') now += e.ms;
    else if (e.kind === 'lose' && machines.length) machines.splice(e.pick % machines.length, 1);
    else if (e.kind === 'sicken' && machines.length) machines[e.pick % machines.length]!.sick = true;
    else if (e.kind === 'config') {
      config++;
      paused = false;
    } else if (e.kind === 'resize') size = e.size;
    else if (e.kind === 'election') electionUntil = now + e.ms;
    else if (e.kind === 'newLeader') {
      for (const m of machines) {
        delete m.healthySince;
        delete m.unhealthySince;
        delete m.waking;
      }
    }
    pass();
  }
  // Then calm: no faults, time goes on, the operator resumes any paused update.
  w.failRate = 0;
  paused = false;
  electionUntil = -1;
  for (const m of machines) m.sick = false;
  // An operator lifts the protection, so the group can reach its size.
  for (const m of machines) delete m.protected;
  let last: Plan | undefined;
  for (let i = 0; i < 60 && !last?.converged; i++) {
    now += 5000;
    last = pass();
  }
  return { last: last!, machines, size, config };
}

/** Available in truth (whatever the planner could see): serving, and a new one for `healthyFor`. */
const available = (ms: readonly Machine[], hash: string, now: number) =>
  ms.filter((m) => !m.sick && m.joined && now >= m.healthyAt && (m.instance.tags['capstan.config'] !== hash || now - m.healthyAt >= 5000)).length;

t.test('converges to the spec after any history of faults', async (t) => {
  fc.assert(
    fc.property(world, (w) => {
      const end = simulate(w, () => {});
      if (!end.last.converged) return false;
      if (end.machines.length !== end.size) return false;
      return end.machines.every((m) => m.instance.tags['capstan.config'] === `c${end.config}`);
    }),
    { numRuns: 500 },
  );
  t.pass('300 random histories converged');
});

t.test('never above max, never two per logical id, surge and unavailability within policy', async (t) => {
  fc.assert(
    fc.property(world, (w) => {
      simulate(w, ({ spec, before, after, p, hash, now, faulted }) => {
        const size = 'size' in spec.allocation ? spec.allocation.size : spec.allocation.logicalIds.length;
        const max = spec.bounds?.max ?? Infinity;
        const surge = Math.min(resolveQuantity(spec.update.maxSurge, size, 'up'), max - size);
        const unavailable = Math.max(resolveQuantity(spec.update.maxUnavailable, size, 'down'), surge <= 0 ? 1 : 0);
        // The plan never takes the group above the larger of what it found and what it is allowed. (A failed destroy
        // beside a successful provision can leave one pass above it; the next pass removes the excess.)
        const allowed = w.logical ? size : Math.min(size + surge, max);
        if (!faulted && after.length > Math.max(before.length, allowed)) throw new Error(`${after.length} instances, allowed ${allowed}`);
        if (!faulted && after.length > max && after.length > before.length) throw new Error('grew above max');
        if (w.logical) {
          const ids = after.map((m) => m.instance.tags['capstan.logical-id']);
          if (new Set(ids).size !== ids.length) throw new Error('two instances for one logical id');
          const updates = p.actions.flatMap((a) => (a.kind === 'destroy' && a.reason === 'update' ? a.ids : []));
          if (updates.length > 1) throw new Error('more than one member replaced at once');
        } else if (p.update.state === 'rolling') {
          // Update destroys keep availability at size - maxUnavailable, or where it already was.
          const gone = new Set(p.actions.flatMap((a) => (a.kind === 'destroy' && a.reason === 'update' ? a.ids : [])));
          const kept = before.filter((m) => !gone.has(m.instance.id));
          const was = available(before, hash, now);
          if (gone.size && available(kept, hash, now) < Math.min(was, size - unavailable)) throw new Error('update took too many unavailable');
        }
      });
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('invariants held over 300 random histories');
});

t.test('no over-provisioning under describe lag', async (t) => {
  // A lagging provider that the controller reconciles with its own launch record never gets a second launch.
  fc.assert(
    fc.property(world, (w) => {
      let launched = 0;
      const end = simulate({ ...w, events: [], failRate: 0 }, ({ p }) => {
        launched += p.actions.reduce((n, a) => n + (a.kind === 'provision' ? a.count : 0), 0);
      });
      return launched === end.size;
    }),
    { numRuns: 200 },
  );
  t.pass('launches equal the size from empty, whatever the lag');
});

t.test('only evidence destroys: elections and new leaders never cost a serving member', async (t) => {
  fc.assert(
    fc.property(world, (w) => {
      simulate(w, ({ before, p }) => {
        const byId = new Map(before.map((m) => [m.instance.id, m]));
        for (const a of p.actions) {
          if (a.kind !== 'destroy' || a.reason !== 'repair') continue;
          for (const id of a.ids) {
            const m = byId.get(id)!;
            // A repair takes a member that is sick or never joined: never one that serves or merely reads unknown.
            if (!m.sick && m.joined) throw new Error(`repaired ${id}, which is not sick and has joined`);
          }
          if (a.ids.length > Math.max(1, p.repair.limit)) throw new Error(`repaired ${a.ids.length}, limit ${p.repair.limit}`);
          if (p.repair.blocked) throw new Error('repaired while the breaker is open');
        }
      });
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass('no repair of a serving member over 500 random histories with elections and new leaders');
});

t.test('protected machines are never chosen by scale-in, and the group still converges once they are not', async (t) => {
  fc.assert(
    fc.property(world, (w) => {
      const end = simulate(
        w,
        ({ before, p }) => {
          const byId = new Map(before.map((m) => [m.instance.id, m]));
          for (const a of p.actions) {
            if (a.kind !== 'destroy' || a.reason !== 'scale-down') continue;
            for (const id of a.ids) if (byId.get(id)?.protected) throw new Error(`scale-in chose protected ${id}`);
          }
        },
        { protectRate: 0.3 },
      );
      return end.last.converged && end.machines.length === end.size;
    }),
    { numRuns: 300 },
  );
  t.pass('no protected machine scaled in over 300 random histories');
});

t.test('warm pool: never above bounds.max, no launch twice, converges with the pool at its size (kept running or stopped)', async (t) => {
  fc.assert(
    fc.property(world, fc.integer({ min: 1, max: 3 }), fc.constantFrom<WarmState>('running', 'stopped'), (w0, warm, warmState) => {
      const w = { ...w0, logical: false };
      const end = simulate(
        w,
        ({ spec, before, after, faulted }) => {
          const max = spec.bounds?.max ?? Infinity;
          if (!faulted && after.length > max && after.length > before.length) throw new Error(`grew to ${after.length}, above max ${max}`);
        },
        { warm, warmState },
      );
      const max = w.max === undefined ? Infinity : Math.max(w.max, end.size);
      const pool = Math.min(warm, max - end.size);
      if (!end.last.converged || end.machines.length !== end.size + pool) return false;
      if (end.machines.filter((m) => m.warm).length !== pool) return false;
      // Converged: the pool's machines in the state it keeps them in, every active one running.
      if (end.machines.some((m) => !!m.stopped !== (m.warm === true && warmState === 'stopped'))) return false;
      // From empty with no events: exactly size + pool launched, however slow the machines are to be listed.
      let launched = 0;
      const calm = simulate({ ...w, events: [], failRate: 0 }, ({ p }) => void (launched += p.actions.reduce((n, a) => n + (a.kind === 'provision' ? a.count : 0), 0)), { warm, warmState });
      return launched === calm.size + Math.min(warm, (w.max === undefined ? Infinity : Math.max(w.max, calm.size)) - calm.size);
    }),
    { numRuns: 300 },
  );
  t.pass('300 random histories with a warm pool, kept running or stopped');
});
