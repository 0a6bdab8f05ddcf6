import type { GroupSpec, UpdateProgress } from '../spi/index.js';
import { idOf, type Action, type Facts, type Plan, type PlanInput, type RepairStatus } from './plan-types.js';
import { standby } from './warm-pool.js';
import { poolSize } from './allocation.js';
import { configOf, logicalIdOf } from './identity.js';
import { durationMs, resolveQuantity } from '../spi/quantity.js';

/** Defaults of the `repair` section, also when a stored spec predates it. */
export const REPAIR_DEFAULTS = { unhealthyFor: '5m', maxUnhealthy: '40%' } as const;

/** The pure reconciler: (spec, observed, now) -> actions. No I/O, no clock, no randomness. */
export function plan(input: PlanInput): Plan {
  const { spec, configHash, now } = input;
  const healthTimeout = durationMs(spec.update.healthTimeout);
  const healthyFor = durationMs(spec.update.healthyFor);
  const unhealthyFor = durationMs(spec.repair?.unhealthyFor ?? REPAIR_DEFAULTS.unhealthyFor);
  const facts = input.observed.map((o): Facts => {
    const current = configOf(o.instance) === configHash;
    // An old instance that is healthy has long proven itself; a new one must stay healthy for `healthyFor`.
    const available = o.health === 'healthy' && (!current || (o.healthySince !== undefined && now - o.healthySince >= healthyFor));
    const late = now - o.instance.launchedAt > healthTimeout;
    const joined = o.joined === true || o.healthySince !== undefined;
    // Only evidence counts: a member that joined and reads `unknown` (an election, a failed call) is never failed.
    const neverJoined = !joined && o.health !== 'healthy';
    const failed = current && !available && late && (neverJoined || o.health === 'unhealthy');
    const longUnhealthy = o.health === 'unhealthy' && o.unhealthySince !== undefined && now - o.unhealthySince >= unhealthyFor;
    const repairable = longUnhealthy || (late && neverJoined);
    return { o, current, available, failed, repairable, free: o.health === 'unhealthy' || (late && neverJoined) };
  });
  const size = desiredOf(spec);
  // A pool member's Down node is not a symptom of anything shared until its repair is due: it may be waking up.
  const broken = facts.filter((f) => f.repairable || (f.o.health === 'unhealthy' && !f.o.warm)).length;
  const limit = Math.max(1, resolveQuantity(spec.repair?.maxUnhealthy ?? REPAIR_DEFAULTS.maxUnhealthy, size, 'down'));
  const repair: RepairStatus =
    broken > limit
      ? { broken, limit, blocked: `${broken} of ${facts.length} members unhealthy, more than the limit of ${limit}: repairing nothing (the cause is likely the network or the Swarm)` }
      : { broken, limit };
  const ctx = { input, facts, healthTimeout, repair };
  const p = 'logicalIds' in spec.allocation ? planLogical(ctx, spec.allocation.logicalIds) : planSized(ctx, spec.allocation.size, poolSize(spec));
  // Acting, members not known healthy or unhealthy yet, or pool members waking or stopping: only a new observation
  // shows what comes of them.
  const look = input.lookMs;
  const waiting = look !== undefined && (p.actions.length > 0 || input.observed.some((o) => o.health === 'unknown' || (o.warm && (o.instance.state === 'stopping' || (o.health !== 'healthy' && o.instance.state !== 'stopped')))));
  const wakeAt = Math.min(nextChange(input, healthyFor, unhealthyFor, healthTimeout) ?? Infinity, waiting ? now + look : Infinity);
  return Number.isFinite(wakeAt) ? { ...p, wakeAt } : p;
}

/** The earliest moment a fact turns by time alone: a new member becomes available, a repair or a deadline is due. */
function nextChange({ observed, now, configHash }: PlanInput, healthyFor: number, unhealthyFor: number, healthTimeout: number): number | undefined {
  // One loop, no arrays: this runs over every member on every pass.
  let next = Infinity;
  const consider = (at: number) => {
    if (at > now && at < next) next = at;
  };
  for (const o of observed) {
    if (o.health === 'healthy') {
      if (o.healthySince !== undefined && configOf(o.instance) === configHash) consider(o.healthySince + healthyFor);
    } else if (o.health === 'unhealthy' && o.unhealthySince !== undefined) consider(o.unhealthySince + unhealthyFor);
    if (o.health !== 'healthy' && !o.joined) consider(o.instance.launchedAt + healthTimeout + 1);
  }
  return Number.isFinite(next) ? next : undefined;
}

const desiredOf = (spec: GroupSpec): number => ('size' in spec.allocation ? spec.allocation.size : spec.allocation.logicalIds.length);

interface Ctx {
  readonly input: PlanInput;
  readonly facts: readonly Facts[];
  readonly healthTimeout: number;
  readonly repair: RepairStatus;
}

/** Which member goes first on scale-in, after named, unhealthy and outdated ones (schemas/group.json `scaleIn`). */
export type ScaleIn = 'least-busy' | 'newest' | 'oldest';

/**
 * Removal order: the instance hosting Capstan last, named removals first, then unhealthy, then (for updates) protected
 * ones last, outdated, and by the `scaleIn` policy: least-busy (fewest tasks, then newest), newest or oldest.
 */
function removalOrder(selfId: string | undefined, named: ReadonlySet<string> = new Set(), scaleIn: ScaleIn = 'least-busy') {
  // Ranks compared one by one, lowest first, without building them (a sort makes n log n comparisons).
  const ranks: ((f: Facts) => number)[] = [
    (f) => (idOf(f) === selfId ? 1 : 0),
    (f) => (named.has(idOf(f)) ? 0 : 1),
    (f) => (f.free || f.failed ? 0 : 1),
    (f) => (f.o.protected ? 1 : 0),
    (f) => (f.current ? 1 : 0),
    ...(scaleIn === 'least-busy' ? [(f: Facts) => f.o.tasks ?? 0] : []),
    scaleIn === 'oldest' ? (f: Facts) => f.o.instance.launchedAt : (f: Facts) => -f.o.instance.launchedAt,
  ];
  return (a: Facts, b: Facts): number => {
    for (const rank of ranks) {
      const ra = rank(a);
      const rb = rank(b);
      if (ra !== rb) return ra - rb;
    }
    return idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0;
  };
}

/** The first `count` of `list` in `order`; sorts only when some are asked for. */
const firstIn = (list: readonly Facts[], order: (a: Facts, b: Facts) => number, count: number): Facts[] => (count > 0 ? [...list].sort(order).slice(0, count) : []);

/**
 * Scale-in's choice of `count` of `list`: never a protected member (the group stays above size rather than lose
 * one); warm members beyond the pool's size `warmWanted` first, then in `order` with the pool's members after the
 * active ones (unless unhealthy), so a smaller size keeps the pool and a smaller pool keeps the active members.
 */
function scaleInFrom(list: readonly Facts[], order: (a: Facts, b: Facts) => number, count: number, warmWanted = 0): Facts[] {
  if (count <= 0) return [];
  const candidates = list.some((f) => f.o.protected) ? list.filter((f) => !f.o.protected) : list;
  const warm = candidates.filter((f) => f.o.warm);
  if (!warm.length) return firstIn(candidates, order, count);
  const surplus = firstIn(warm, order, Math.min(count, list.filter((f) => f.o.warm).length - warmWanted));
  const poolLast = (a: Facts, b: Facts) => Number(!a.free && !!a.o.warm) - Number(!b.free && !!b.o.warm) || order(a, b);
  return [...surplus, ...firstIn(without(candidates, surplus), poolLast, count - surplus.length)];
}

/** `list` without the members of `gone`, in one pass. */
const without = (list: readonly Facts[], gone: readonly Facts[]): Facts[] => {
  if (!gone.length) return [...list];
  const out = new Set(gone);
  return list.filter((f) => !out.has(f));
};

function progress(total: number, members: readonly Facts[], paused: boolean, failure: string | undefined): UpdateProgress {
  const outdated = members.some((f) => !f.current);
  const done = Math.min(total, members.filter((f) => f.current && f.available).length);
  const failed = members.filter((f) => f.failed).length;
  const state = failure ? 'failed' : outdated ? (paused ? 'paused' : 'rolling') : 'idle';
  return { state, total, done, failed, ...(failure ? { reason: failure } : {}) };
}

function failureOf(members: readonly Facts[], healthTimeout: number): string | undefined {
  const failed = members.filter((f) => f.failed);
  if (!failed.length || !members.some((f) => !f.current)) return undefined;
  return `${failed.length} new instance(s) not healthy within ${healthTimeout / 1000}s: ${failed.map(idOf).join(', ')}`;
}

function finish(actions: Action[], total: number, members: readonly Facts[], ctx: Ctx, failure?: string): Plan {
  const kept = actions.filter((a) => (a.kind === 'provision' ? a.count > 0 : a.kind === 'standby' ? a.warm.length + a.active.length + a.stop.length + a.start.length > 0 : a.ids.length > 0));
  const converged = !kept.length && members.length === total && members.every((f) => f.current && f.available);
  return { actions: kept, update: progress(total, members, ctx.input.paused, failure), converged, repair: ctx.repair, ...(failure ? { failure } : {}) };
}

/** Members to repair this pass: none while the breaker is open, at most its limit otherwise. */
function repairs(candidates: readonly Facts[], { repair }: Ctx, budget: number): Facts[] {
  if (repair.blocked) return [];
  return candidates.filter((f) => f.repairable).slice(0, Math.max(0, Math.min(repair.limit, budget)));
}

/**
 * A group of `active` members plus a warm pool of `warmWanted` (within bounds.max): the planning below is for the
 * total; which members are in the pool is decided last (standby).
 */
function planSized(ctx: Ctx, active: number, warmWanted: number): Plan {
  const { input, facts, healthTimeout } = ctx;
  const { spec } = input;
  const max = spec.bounds?.max ?? Infinity;
  const size = active + warmWanted;
  // Surge never goes above bounds.max; with no room to surge, one instance at a time must go first.
  const maxSurge = Math.max(0, Math.min(resolveQuantity(spec.update.maxSurge, size, 'up'), max - size));
  const maxUnavailable = Math.max(resolveQuantity(spec.update.maxUnavailable, size, 'down'), maxSurge === 0 ? 1 : 0);
  // While outdated instances remain, up to maxSurge extra instances are intended, not excess.
  const ceiling = facts.some((f) => !f.current) ? size + maxSurge : size;
  const actions: Action[] = [];
  let members = [...facts];

  // 1. Too many: instances named for removal (the size already dropped for them), then the excess in removal
  // order, and new instances beyond the size.
  const removing = new Set(input.removing ?? []);
  const order = removalOrder(input.selfInstanceId, removing, spec.scaleIn);
  const named = members.filter((f) => removing.has(idOf(f)));
  members = members.filter((f) => !removing.has(idOf(f)));
  const overCeiling = scaleInFrom(members, order, members.length - ceiling, warmWanted);
  const overSize = without(members, overCeiling).filter((f) => f.current);
  const gone = [...named, ...overCeiling, ...scaleInFrom(overSize, order, overSize.length - size, warmWanted)];
  actions.push({ kind: 'destroy', ids: gone.map(idOf), reason: 'scale-down' });
  members = without(members, gone);
  // Most groups have no pool: no standby work on their passes.
  const pooled = warmWanted > 0 || members.some((f) => f.o.warm);

  const old = members.filter((f) => !f.current);
  const failure = failureOf(members, healthTimeout);
  if (!old.length || input.paused || failure) {
    // 2a. Replace the lost; repair (within the breaker's limit) members with evidence against them: unhealthy for
    // `repair.unhealthyFor`, or never a member by their deadline (a machine that could not join, say).
    const broken = old.length ? [] : repairs(members, ctx, Math.max(1, maxUnavailable));
    actions.push({ kind: 'destroy', ids: broken.map(idOf), reason: 'repair' });
    const moves = pooled ? standby(without(members, broken), active, warmWanted, input.selfInstanceId, spec.warm?.state ?? 'running') : undefined;
    // A stopped member being woken to serve is refilled once it serves: a new machine launched at the same time
    // could join first and take the task it wakes for.
    const waking = moves ? moves.start.filter((id) => moves.active.includes(id)).length + members.filter((f) => f.o.waking && !f.o.warm).length : 0;
    actions.push({ kind: 'provision', count: Math.max(0, Math.min(size, max) - members.length - waking) });
    if (moves) actions.push(moves);
    return finish(actions, size, members, ctx, failure);
  }

  // 2b. Rolling update within maxSurge (extra instances) and maxUnavailable (below size), planned with scaling.
  const fresh = members.length - old.length;
  actions.push({ kind: 'provision', count: Math.max(0, Math.min(size - fresh, ceiling - members.length)) });
  // Old instances with evidence against them cost no availability; available ones go only within the budget;
  // `unknown` ones (Swarm right after an election) neither count as available nor go for free.
  let budget = members.filter((f) => f.available).length - (size - maxUnavailable);
  const replace: Facts[] = [];
  for (const f of [...old].sort(order)) {
    if (f.free && !ctx.repair.blocked) replace.push(f);
    else if (f.available && budget > 0) {
      replace.push(f);
      budget--;
    }
  }
  actions.push({ kind: 'destroy', ids: replace.map(idOf), reason: 'update' });
  if (pooled) actions.push(standby(without(members, replace), active, warmWanted, input.selfInstanceId, spec.warm?.state ?? 'running'));
  return finish(actions, size, members, ctx);
}

function planLogical(ctx: Ctx, logicalIds: readonly string[]): Plan {
  const { input, facts, healthTimeout } = ctx;
  const wanted = new Set(logicalIds);
  const actions: Action[] = [];
  const unknown = facts.filter((f) => !wanted.has(logicalIdOf(f.o.instance) ?? ''));
  actions.push({ kind: 'destroy', ids: unknown.map(idOf), reason: 'unknown-id' });

  // One member per id: keep the best of duplicates (current and available, then newest).
  const members: Facts[] = [];
  const duplicates: Facts[] = [];
  for (const id of logicalIds) {
    const mine = facts.filter((f) => logicalIdOf(f.o.instance) === id);
    mine.sort((a, b) => Number(b.current && b.available) - Number(a.current && a.available) || Number(b.current) - Number(a.current) || b.o.instance.launchedAt - a.o.instance.launchedAt);
    if (mine[0]) members.push(mine[0]);
    duplicates.push(...mine.slice(1));
  }
  actions.push({ kind: 'destroy', ids: duplicates.map(idOf), reason: 'duplicate' });

  const present = new Set(members.map((f) => logicalIdOf(f.o.instance)));
  const missing = logicalIds.filter((id) => !present.has(id));
  actions.push({ kind: 'provision', count: missing.length, logicalIds: missing });

  const failure = failureOf(members, healthTimeout);
  const old = members.filter((f) => !f.current);
  // Never more than one member replaced at a time: a missing or not yet available new member is one in progress,
  // and so is any member whose health is not known (an election): with one unavailable, the next must wait.
  const inProgress = missing.length + members.filter((f) => f.current && !f.available).length;
  const order = removalOrder(input.selfInstanceId, undefined, input.spec.scaleIn);
  if (old.length && !input.paused && !failure && inProgress === 0) {
    const next = [...old].sort(order)[0]!;
    if (members.every((f) => f === next || f.available) || (next.free && !ctx.repair.blocked)) actions.push({ kind: 'destroy', ids: [idOf(next)], reason: 'update' });
  } else if (!old.length && missing.length === 0 && members.every((f) => f.available || f.repairable)) {
    actions.push({ kind: 'destroy', ids: repairs([...members].sort(order), ctx, 1).map(idOf), reason: 'repair' });
  }
  return finish(actions, logicalIds.length, members, ctx, failure);
}
