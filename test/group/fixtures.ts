import type { FlavorKind, GroupSpec, Health, Instance } from '../../src/spi/index.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { TAG } from '../../src/group/identity.js';
import type { Observed } from '../../src/group/plan-types.js';

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

/** vanilla, except that machines prepared with `broken: true` never become healthy (their config never joins). */
const brokenConfigs = new Set<string>();
export const pickyFlavorKind: FlavorKind = {
  ...vanillaFlavorKind,
  name: 'picky',
  schema: { type: 'object' },
  create: (p) => {
    const inner = vanillaFlavorKind.create({});
    return {
      ...inner,
      prepare: async (spec, ctx) => {
        if ((p as { broken?: boolean }).broken) brokenConfigs.add(ctx.configHash);
        return inner.prepare(spec, ctx);
      },
      health: async (is) => new Map(is.map((i) => [i.id, { health: brokenConfigs.has(i.tags['capstan.config']!) ? 'unknown' : 'healthy' }])),
    };
  },
};
