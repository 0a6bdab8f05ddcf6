import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** One registry for the process; `/metrics` serves it. */
export const registry = new Registry();

export const providerCalls = new Counter({
  name: 'capstan_provider_calls_total',
  help: 'Provider API calls by provider and operation',
  labelNames: ['provider', 'operation'] as const,
  registers: [registry],
});

export const providerErrors = new Counter({
  name: 'capstan_provider_errors_total',
  help: 'Provider API errors by provider, operation and error code',
  labelNames: ['provider', 'operation', 'code'] as const,
  registers: [registry],
});

export const groupSize = new Gauge({
  name: 'capstan_group_size',
  help: 'Group size: desired, actual (every member, the warm pool included) and warm (members in the warm pool)',
  labelNames: ['group', 'kind'] as const,
  registers: [registry],
});

export const groupInstances = new Gauge({
  name: 'capstan_group_instances',
  help: 'Instances by state and health',
  labelNames: ['group', 'state', 'health'] as const,
  registers: [registry],
});

export const updateProgress = new Gauge({
  name: 'capstan_update_progress',
  help: 'Rolling update progress: total, done, failed',
  labelNames: ['group', 'kind'] as const,
  registers: [registry],
});

export const reconcileSeconds = new Histogram({
  name: 'capstan_reconcile_seconds',
  help: 'Duration of one reconcile pass (observe, plan, act)',
  labelNames: ['group'] as const,
  buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  registers: [registry],
});

export const leadership = new Gauge({
  name: 'capstan_leader',
  help: '1 while this replica leads and acts, else 0',
  registers: [registry],
});

export const repairBlocked = new Gauge({
  name: 'capstan_repair_blocked',
  help: '1 while the remediation breaker holds back repairs of a group (too many members unhealthy at once)',
  labelNames: ['group'] as const,
  registers: [registry],
});
