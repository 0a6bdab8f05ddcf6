import type { GroupSpec } from '../spi/index.js';

/** Desired member count of a group: its size, or one per logical id. */
export function desiredSize(spec: Pick<GroupSpec, 'allocation'>): number {
  return 'size' in spec.allocation ? spec.allocation.size : spec.allocation.logicalIds.length;
}
