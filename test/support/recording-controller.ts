import type { GroupController, GroupSpec, GroupStatus, Instance, PlanPreview, SpecVersion } from '../../src/spi/index.js';

export interface ControllerCall {
  readonly op: string;
  readonly id: string;
  readonly arg?: unknown;
}

/** A GroupController that records what the API asked of it and reports whatever status a test sets. */
export class RecordingController implements GroupController {
  readonly calls: ControllerCall[] = [];
  readonly statuses = new Map<string, GroupStatus>();
  plan: PlanPreview = { create: 0, createLogicalIds: [], destroy: [], replace: [] };
  /** When set, the named operation throws this error (to exercise error mapping). */
  failWith?: { op: string; error: Error };

  private record(op: string, id: string, arg?: unknown): void {
    this.calls.push(arg === undefined ? { op, id } : { op, id, arg });
    if (this.failWith?.op === op) throw this.failWith.error;
  }

  /** Like the real loop, a version naming instances for removal makes them go (from the status a test set). */
  apply(version: SpecVersion): void {
    this.record('apply', version.id, version.version);
    const removing = new Set(version.state?.removing ?? []);
    const status = this.statuses.get(version.id);
    if (status && removing.size) this.statuses.set(version.id, { ...status, instances: status.instances.filter((i) => !removing.has(i.id)) });
  }

  trigger(id: string): void {
    this.record('trigger', id);
  }

  status(id: string): GroupStatus | undefined {
    return this.statuses.get(id);
  }

  list(): GroupStatus[] {
    return [...this.statuses.values()];
  }

  /** The status's instances as a provider would list them; instances named in `gone` have vanished since. */
  async instances(id: string): Promise<Instance[]> {
    this.record('instances', id);
    return (this.statuses.get(id)?.instances ?? []).map((i) => ({ id: i.id, state: 'running', launchedAt: 0, tags: { 'capstan.group': id, 'capstan.config': i.config, ...(i.logicalId ? { 'capstan.logical-id': i.logicalId } : {}) } }));
  }

  async preview(spec: GroupSpec): Promise<PlanPreview> {
    this.record('preview', spec.id);
    return this.plan;
  }

  async free(id: string): Promise<void> {
    this.record('free', id);
    this.statuses.delete(id);
  }

  /** Ends a leadership term. */
  async stop(): Promise<void> {
    this.calls.push({ op: 'stop', id: '' });
  }

  async destroy(id: string): Promise<void> {
    this.record('destroy', id);
    this.statuses.delete(id);
  }
}

/** A status of `size` healthy, running instances on one config, as after a converged pass. */
export function convergedStatus(id: string, version: number, size: number, configHash = 'cfg-' + version): GroupStatus {
  return {
    id,
    version,
    size,
    configHash,
    converged: true,
    instances: Array.from({ length: size }, (_, i) => ({
      id: `i-${(0x1000000 + i).toString(16).padStart(17, '0')}`,
      state: 'running',
      config: configHash,
      health: 'healthy',
      link: `node${String(i).padStart(21, '0')}`,
    })),
    update: { state: 'done', total: size, done: size, failed: 0 },
    lastPassAt: new Date().toISOString(),
  };
}
