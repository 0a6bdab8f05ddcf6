import { Counter } from 'prom-client';
import { registry } from '../metrics.js';

/** JSON-RPC calls by method ("unknown" for names not in the API) and outcome ("ok", "forwarded" or the error code). */
export const rpcCalls = new Counter({
  name: 'capstan_rpc_calls_total',
  help: 'JSON-RPC calls by method and outcome',
  labelNames: ['method', 'outcome'] as const,
  registers: [registry],
});
