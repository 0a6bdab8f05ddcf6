// The operator's settings, read from the service's environment in one place and handed to what needs them.
import { readFileSync } from 'node:fs';
import { parseAllowList, type OperatorAllow } from './providers/allow.js';

/** The largest group (size or logical ids) by default; CAPSTAN_MAX_GROUP_SIZE sets another. */
export const DEFAULT_MAX_GROUP_SIZE = 1000;

/** What the operator decides in the service's environment; read here only, and handed to what needs it. */
export interface OperatorSettings {
  readonly maxGroupSize: number;
  readonly allow: OperatorAllow;
  readonly simulator: boolean;
}

/** The operator's settings from the environment; throws on a value that is not what it should be. */
export function operatorSettings(env: NodeJS.ProcessEnv = process.env): OperatorSettings {
  const max = env.CAPSTAN_MAX_GROUP_SIZE?.trim();
  if (max && !/^\d{1,9}$/.test(max)) throw new Error(`CAPSTAN_MAX_GROUP_SIZE=${max} is not a whole number`);
  return {
    maxGroupSize: max ? Number(max) : DEFAULT_MAX_GROUP_SIZE,
    allow: { endpoints: parseAllowList(env.CAPSTAN_ALLOW_ENDPOINTS), privileged: env.CAPSTAN_ALLOW_PRIVILEGED === '1' },
    simulator: env.CAPSTAN_ENABLE_SIMULATOR === '1',
  };
}

/**
 * HTTPS for the API: certificate and key files (Docker secrets) from CAPSTAN_TLS_CERT_FILE and CAPSTAN_TLS_KEY_FILE,
 * both or neither; undefined serves plain HTTP.
 */
export function tlsSettings(env: NodeJS.ProcessEnv = process.env): { cert: Buffer; key: Buffer } | undefined {
  const { CAPSTAN_TLS_CERT_FILE: certFile, CAPSTAN_TLS_KEY_FILE: keyFile } = env;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new Error('HTTPS needs both CAPSTAN_TLS_CERT_FILE and CAPSTAN_TLS_KEY_FILE');
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}
