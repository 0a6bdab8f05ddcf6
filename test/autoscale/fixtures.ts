import type { AutoscaleState, NodeView, PendingTask } from '../../src/autoscale/decide.js';
import { machineLabels, type SwarmFlavorProperties } from '../../src/flavors/swarm.js';
import type { FlavorKind, GroupSpec, GroupStatus } from '../../src/spi/index.js';

/** The swarm-worker flavor kind as the autoscaler asks it (GroupView.flavor), without a Swarm to join. */
export const swarmWorker: Pick<FlavorKind, 'name' | 'labels'> = {
  name: 'swarm-worker',
  labels: (properties, groupId) => machineLabels(properties as SwarmFlavorProperties, groupId),
};

/**
 * A swarm-worker group of `size` machines of 4 CPUs and 8 GiB that scales up after 2 s and down after 10 min idle;
 * `nodeLabels` are the flavor's (put on each node of the group).
 */
export function group(id: string, size: number, over: { min?: number; max?: number; autoscale?: Record<string, unknown>; kind?: string; nodeLabels?: Record<string, string> } = {}): GroupSpec {
  return {
    id,
    allocation: { size },
    bounds: { ...(over.min === undefined ? {} : { min: over.min }), max: over.max ?? 10 },
    instance: { provider: 'simulator', properties: {} },
    flavor: { kind: over.kind ?? 'swarm-worker', properties: { labels: { zone: 'a', host: '{{LINK_ID}}' }, ...(over.nodeLabels ? { nodeLabels: over.nodeLabels } : {}) } },
    update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '60s', healthyFor: '10s', onFailure: 'pause' },
    autoscale: { scaleUpDelay: '2s', scaleDownIdle: '10m', cooldown: '1m', cpus: 4, memory: '8GiB', ...over.autoscale },
  };
}

/** Status of a group whose instance `i<n>` became Swarm node `n<n>`. */
export function status(spec: GroupSpec, links: readonly string[]): GroupStatus {
  return {
    id: spec.id,
    version: 1,
    size: links.length,
    configHash: 'h',
    instances: links.map((link) => ({ id: `i-${link}`, state: 'running', config: 'h', health: 'healthy', link })),
    converged: true,
    update: { state: 'idle', total: links.length, done: links.length, failed: 0 },
  };
}

/** A ready Swarm node, full unless `over` says otherwise (a pending task fitting it would be placed there). */
export function node(id: string, groupId: string | undefined, over: Partial<NodeView> = {}): NodeView {
  return {
    id,
    hostname: `host-${id}`,
    role: 'worker',
    ready: true,
    active: true,
    labels: {},
    engineLabels: groupId ? { 'capstan.group': groupId } : {},
    os: 'linux',
    architecture: 'x86_64',
    nanoCpus: 4e9,
    memoryBytes: 8 * 2 ** 30,
    reservedNanoCpus: over.nanoCpus ?? 4e9,
    reservedMemoryBytes: over.memoryBytes ?? 8 * 2 ** 30,
    ...over,
  };
}

export function task(id: string, over: Partial<PendingTask> = {}): PendingTask {
  return {
    id,
    service: `svc-${id}`,
    since: 0,
    nanoCpus: 1e9,
    memoryBytes: 2 ** 30,
    constraints: [],
    platforms: [],
    error: 'no suitable node (insufficient resources on 1 node)',
    ...over,
  };
}

/** One group `web` of `size` ready workers, at `now` = 60 s. */
export function state(over: Partial<AutoscaleState> & { size?: number; spec?: GroupSpec } = {}): AutoscaleState {
  const size = over.size ?? 2;
  const spec = over.spec ?? group('web', size);
  const links = Array.from({ length: size }, (_, i) => `n${i}`);
  return {
    now: 60_000,
    groups: [{ spec, status: status(spec, links), flavor: swarmWorker }],
    nodes: links.map((l) => node(l, spec.id)),
    pending: [],
    ...over,
  };
}
