// The warm pool's part of a plan (issue 16): which members go into the pool or out of it, and which of its
// machines are stopped or started, given the members that stay after this pass's removals.
import type { WarmState } from '../spi/index.js';
import { idOf, type Facts, type StandbyAction } from './plan-types.js';

/**
 * The warm pool's moves among the members that stay: members not in the pool (booting ones included: they join
 * active) short of `size` are made up from the pool, healthy running ones first, then ones waking, then stopped ones
 * (started, then activated), current ones and the longest there first; a pool short of `warmWanted` takes active
 * members beyond `size`, machines still joining first (they are warmed once they have joined), then healthy ones with
 * the fewest tasks, newest first. Never a protected member or Capstan's own. Then the pool's machines are brought to
 * the state it keeps them in: healthy running ones stopped (`stopped`), stopped ones started (`running`).
 */
export function standby(staying: readonly Facts[], size: number, warmWanted: number, selfId: string | undefined, keep: WarmState): StandbyAction {
  const warm = staying.filter((f) => f.o.warm);
  const active = staying.filter((f) => !f.o.warm);
  const state = (f: Facts) => f.o.instance.state;
  if (active.length < size) {
    const rank = (f: Facts) => (state(f) === 'stopped' ? 2 : state(f) === 'stopping' ? 3 : f.o.health === 'healthy' ? 0 : 1);
    const ready = (f: Facts) => rank(f) * 2 + Number(!f.current);
    const take = [...warm].sort((a, b) => ready(a) - ready(b) || a.o.instance.launchedAt - b.o.instance.launchedAt || (idOf(a) < idOf(b) ? -1 : 1)).slice(0, size - active.length);
    // A stopping machine is activated once it has stopped and can start again.
    const go = take.filter((f) => state(f) !== 'stopping');
    return pool({ active: go.map(idOf), start: go.filter((f) => state(f) === 'stopped').map(idOf) });
  }
  const joining = active.filter((f) => f.o.health !== 'healthy').length;
  const short = Math.min(active.length - size, warmWanted - warm.length) - joining;
  const candidates = short > 0 ? active.filter((f) => f.o.health === 'healthy' && !f.o.protected && idOf(f) !== selfId) : [];
  candidates.sort((a, b) => (a.o.tasks ?? 0) - (b.o.tasks ?? 0) || b.o.instance.launchedAt - a.o.instance.launchedAt || (idOf(a) < idOf(b) ? -1 : 1));
  const power =
    keep === 'stopped'
      ? { stop: warm.filter((f) => state(f) === 'running' && f.o.health === 'healthy' && !f.o.protected && idOf(f) !== selfId).map(idOf) }
      : { start: warm.filter((f) => state(f) === 'stopped').map(idOf) };
  return pool({ warm: candidates.slice(0, Math.max(0, short)).map(idOf), ...power });
}

const pool = (moves: Partial<Omit<StandbyAction, 'kind'>>): StandbyAction => ({ kind: 'standby', warm: [], active: [], stop: [], start: [], ...moves });

