import type { GroupSpec, Health, Instance } from '../../src/spi/index.js';
import { TAG } from '../../src/group/identity.js';
import type { Observed } from '../../src/group/planner.js';

export function sizedSpec(size: number, over: Partial<GroupSpec> = {}): GroupSpec {
  return {
    id: 'web',
    allocation: { size },
    instance: { provider: 'simulator', properties: {} },
    flavor: { kind: 'vanilla', properties: {} },
    update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '10s', onFailure: 'pause' },
    ...over,
  };
}

export function logicalSpec(ids: string[], over: Partial<GroupSpec> = {}): GroupSpec {
  return sizedSpec(0, { allocation: { logicalIds: ids }, ...over });
}

export function inst(id: string, config: string, opts: { launchedAt?: number; logicalId?: string } = {}): Instance {
  return {
    id,
    state: 'running',
    launchedAt: opts.launchedAt ?? 0,
    tags: { [TAG.group]: 'web', [TAG.config]: config, ...(opts.logicalId ? { [TAG.logicalId]: opts.logicalId } : {}) },
  };
}

export function obs(i: Instance, health: Health = 'healthy', healthySince: number | undefined = health === 'healthy' ? 0 : undefined): Observed {
  return { instance: i, health, ...(healthySince === undefined ? {} : { healthySince }) };
}
