import { groupInstances, groupSize, repairBlocked, updateProgress } from '../metrics.js';
import type { GroupStatus } from '../spi/index.js';
import type { RepairStatus } from './plan-types.js';

/** One group's metric series: set after each pass, replaced without touching other groups, removed with the group. */
export class GroupMetrics {
  /** The `state|health` label pairs set by the last pass, so a pair that disappears is removed. */
  private pairs = new Set<string>();

  constructor(private readonly group: string) {}

  set(status: GroupStatus, repair: RepairStatus): void {
    const group = this.group;
    groupSize.set({ group, kind: 'desired' }, status.size);
    groupSize.set({ group, kind: 'actual' }, status.instances.length);
    groupSize.set({ group, kind: 'warm' }, status.instances.filter((i) => i.warm).length);
    const counts = new Map<string, number>();
    for (const i of status.instances) counts.set(`${i.state}|${i.health}`, (counts.get(`${i.state}|${i.health}`) ?? 0) + 1);
    for (const pair of this.pairs) if (!counts.has(pair)) groupInstances.remove({ group, ...labels(pair) });
    for (const [pair, n] of counts) groupInstances.set({ group, ...labels(pair) }, n);
    this.pairs = new Set(counts.keys());
    for (const kind of ['total', 'done', 'failed'] as const) updateProgress.set({ group, kind }, status.update[kind]);
    repairBlocked.set({ group }, repair.blocked ? 1 : 0);
  }

  remove(): void {
    const group = this.group;
    for (const kind of ['desired', 'actual', 'warm']) groupSize.remove({ group, kind });
    for (const pair of this.pairs) groupInstances.remove({ group, ...labels(pair) });
    for (const kind of ['total', 'done', 'failed']) updateProgress.remove({ group, kind });
    repairBlocked.remove({ group });
    this.pairs.clear();
  }
}

function labels(pair: string): { state: string; health: string } {
  const [state = '', health = ''] = pair.split('|');
  return { state, health };
}
