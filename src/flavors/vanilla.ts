// The `vanilla` flavor: a machine that runs a boot script and counts as healthy while it runs.
import type { Flavor, FlavorKind, HealthReport } from '../spi/index.js';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: { init: { type: 'string', description: 'The script an instance runs at boot.' } },
};

export const vanillaFlavorKind: FlavorKind = {
  name: 'vanilla',
  schema,
  create(properties: unknown): Flavor {
    const init = (properties as { init?: string }).init ?? '';
    return {
      prepare: async (spec) => ({ ...spec, init }),
      health: async (instances) =>
        new Map(instances.map((i): [string, HealthReport] => [i.id, { health: i.state === 'running' ? 'healthy' : i.state === 'pending' ? 'unknown' : 'unhealthy' }])),
      drain: async () => {},
      destroyed: async () => {},
    };
  },
};
