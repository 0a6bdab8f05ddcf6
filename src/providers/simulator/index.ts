// The `simulator` provider: machines that exist only in this process's memory. For tests and benchmarks only.
import type { Instance, InstanceProvider, InstanceSpec, ProviderKind, Tags } from '../../spi/index.js';
import { providerCalls, providerErrors } from '../../metrics.js';
import { reportingFailures } from '../failures.js';

export interface SimulatorOptions {
  /** Milliseconds each call takes. */
  readonly latencyMs?: number;
  /** Share of calls (0..1) that fail with a SimulatedFailure. */
  readonly failureRate?: number;
  /** Milliseconds before a new instance is listed by describe (eventual consistency). */
  readonly describeLagMs?: number;
  readonly maxBatch?: number;
  /** Seed of the failure dice, for repeatable runs. */
  readonly seed?: number;
}

interface Machine {
  readonly instance: Instance;
  readonly visibleAt: number;
  readonly spec: InstanceSpec;
}

/** The simulated infrastructure; shared by every group and by controller restarts, like a real cloud. */
export class SimulatedCloud {
  readonly machines = new Map<string, Machine>();
  readonly calls = { provision: 0, destroy: 0, describe: 0, stop: 0, start: 0 };
  private next = 0;
  private dice: number;

  constructor(
    private readonly options: SimulatorOptions = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.dice = options.seed ?? 1;
  }

  /** Removes a machine behind Capstan's back. */
  lose(id: string): void {
    this.machines.delete(id);
  }

  /** Stops or starts a machine (a warm pool kept stopped); a machine gone is left alone. */
  power(id: string, state: 'running' | 'stopped'): void {
    const m = this.machines.get(id);
    if (m) this.machines.set(id, { ...m, instance: { ...m.instance, state } });
  }

  list(tags: Tags = {}): Instance[] {
    return [...this.machines.values()].filter((m) => matches(m.instance.tags, tags)).map((m) => m.instance);
  }

  /** The init script a machine was given. */
  initOf(id: string): string | undefined {
    return this.machines.get(id)?.spec.init;
  }

  async call<T>(operation: keyof SimulatedCloud['calls'], fn: () => T, options: SimulatorOptions): Promise<T> {
    const o = { ...this.options, ...options };
    this.calls[operation]++;
    providerCalls.inc({ provider: 'simulator', operation });
    if (o.latencyMs) await new Promise((r) => setTimeout(r, o.latencyMs));
    if (o.failureRate && this.roll() < o.failureRate) {
      providerErrors.inc({ provider: 'simulator', operation, code: 'SimulatedFailure' });
      throw Object.assign(new Error(`simulated ${operation} failure`), { code: 'SimulatedFailure' });
    }
    return fn();
  }

  create(spec: InstanceSpec, lagMs: number): Instance {
    const now = this.clock();
    const instance: Instance = { id: `sim-${(this.next++).toString(36).padStart(5, '0')}`, tags: spec.tags, state: 'running', launchedAt: now };
    this.machines.set(instance.id, { instance, spec, visibleAt: now + lagMs });
    return instance;
  }

  visible(tags: Tags): Instance[] {
    const now = this.clock();
    return [...this.machines.values()].filter((m) => m.visibleAt <= now && matches(m.instance.tags, tags)).map((m) => m.instance);
  }

  private roll(): number {
    // xorshift32: repeatable without a dependency.
    this.dice ^= this.dice << 13;
    this.dice ^= this.dice >>> 17;
    this.dice ^= this.dice << 5;
    return (this.dice >>> 0) / 2 ** 32;
  }
}

const matches = (have: Tags, want: Tags): boolean => Object.entries(want).every(([k, v]) => have[k] === v);

const schema = {
  type: 'object',
  description: 'Simulated machines. Other keys are free-form machine properties (a change of any of them is a new config).',
  properties: {
    latencyMs: { type: 'integer', minimum: 0 },
    failureRate: { type: 'number', minimum: 0, maximum: 1 },
    describeLagMs: { type: 'integer', minimum: 0 },
    maxBatch: { type: 'integer', minimum: 1 },
  },
};

export function simulatorProviderKind(cloud = new SimulatedCloud()): ProviderKind & { readonly cloud: SimulatedCloud } {
  return {
    name: 'simulator',
    schema,
    stoppable: true,
    cloud,
    create(properties: unknown): InstanceProvider {
      const o = properties as SimulatorOptions;
      return reportingFailures('simulator', {
        maxBatch: o.maxBatch ?? 100,
        provision: (specs) => cloud.call('provision', () => specs.map((s) => cloud.create(s, o.describeLagMs ?? 0)), o),
        destroy: (ids) => cloud.call('destroy', () => ids.forEach((id) => cloud.lose(id)), o),
        describe: (tags) => cloud.call('describe', () => cloud.visible(tags), o),
        stop: (ids) => cloud.call('stop', () => ids.forEach((id) => cloud.power(id, 'stopped')), o),
        start: (ids) => cloud.call('start', () => ids.forEach((id) => cloud.power(id, 'running')), o),
      });
    },
  };
}
