import type { GroupSpec } from '../spi/index.js';

/** Desired member count of a group: its size, or one per logical id. */
export function desiredSize(spec: Pick<GroupSpec, 'allocation'>): number {
  return 'size' in spec.allocation ? spec.allocation.size : spec.allocation.logicalIds.length;
}

/**
 * Machines the warm pool holds beyond the size: its `size`, less what bounds.max leaves no room for; none for a
 * group of logical ids. The planner, the preview and the console count the pool with this one function.
 */
export function poolSize(spec: Pick<GroupSpec, 'allocation' | 'bounds' | 'warm'>): number {
  if (!spec.warm || !('size' in spec.allocation)) return 0;
  return Math.max(0, Math.min(spec.warm.size, (spec.bounds?.max ?? Infinity) - spec.allocation.size));
}
