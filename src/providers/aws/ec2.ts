/** The EC2 client Capstan uses: adaptive retries, the shared rate limit, metrics, coded errors. */
import { EC2Client, type ServiceInputTypes, type ServiceOutputTypes } from '@aws-sdk/client-ec2';
// Type only: the SDK's own middleware types, installed with it.
import type { FinalizeRequestMiddleware } from '@smithy/types';
import { providerCalls, providerErrors } from '../../metrics.js';
import type { RateLimit } from './rate-limit.js';

/** A failed EC2 call, after the SDK's retries; `code` is AWS's error code for the controller to surface. */
export class AwsError extends Error {
  override readonly name = 'AwsError';
  constructor(
    readonly code: string,
    readonly operation: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ClientOptions {
  readonly region: string;
  readonly endpoint?: string;
  readonly rateLimit: RateLimit;
  /** Attempts per call, first included; throttles and 5xx are retried with backoff. */
  readonly maxAttempts: number;
}

/**
 * Credentials come from the SDK's default chain only (environment, shared files such as a
 * Docker secret named by AWS_SHARED_CREDENTIALS_FILE, instance role), never from a spec.
 */
export function createEc2Client(options: ClientOptions): EC2Client {
  const client = new EC2Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    retryMode: 'adaptive',
    maxAttempts: options.maxAttempts,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
  // Every attempt, retries included, spends EC2 tokens: wait for ours before signing it.
  const rateLimited: FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next, context) => async (args) => {
    const operation = (context.commandName ?? 'Unknown').replace(/Command$/, '');
    await options.rateLimit.acquire(operation, resourcesOf(operation, args.input));
    providerCalls.inc({ provider: 'aws', operation });
    return next(args);
  };
  client.middlewareStack.addRelativeTo(rateLimited, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'capstanRateLimit' });
  return client;
}

function resourcesOf(operation: string, input: unknown): number {
  const request = input as { MaxCount?: number; InstanceIds?: readonly string[] };
  if (operation === 'RunInstances') return request.MaxCount ?? 0;
  if (operation === 'TerminateInstances') return request.InstanceIds?.length ?? 0;
  return 0;
}

/**
 * Runs one EC2 call; a failure becomes an AwsError and is counted, unless its code is one the
 * caller handles as an outcome (a gone instance when terminating).
 */
export async function ec2Call<T>(operation: string, send: () => Promise<T>, handled: readonly string[] = []): Promise<T> {
  try {
    return await send();
  } catch (err) {
    const code = errorCode(err);
    if (!handled.includes(code)) providerErrors.inc({ provider: 'aws', operation, code });
    const message = err instanceof Error ? err.message : String(err);
    throw new AwsError(code, operation, `EC2 ${operation} failed: ${code}: ${message}`, { cause: err });
  }
}

function errorCode(err: unknown): string {
  if (typeof err !== 'object' || err === null) return 'Unknown';
  const e = err as { name?: unknown; code?: unknown; $fault?: unknown };
  // An answer from EC2 names its code; a network failure carries the system's (ECONNRESET...).
  if (e.$fault !== undefined && typeof e.name === 'string') return e.name;
  if (typeof e.code === 'string') return e.code;
  return typeof e.name === 'string' ? e.name : 'Unknown';
}
