/** The aws provider's `instance.properties`: their type, JSON Schema and validation. */
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { readSchema } from '../../package.js';
import { problemsOf, problemText, validator } from '../../schema.js';
import { endpointAllowed, type OperatorAllow } from '../allow.js';

/** RunInstances fields Capstan sets itself; the schema refuses them in `launch`. */
export type CapstanOwned =
  | 'MinCount'
  | 'MaxCount'
  | 'UserData'
  | 'TagSpecifications'
  | 'ClientToken'
  | 'SubnetId'
  | 'PrivateIpAddress'
  | 'NetworkInterfaces'
  | 'SecondaryInterfaces'
  | 'DryRun';

export interface AwsProperties {
  readonly region: string;
  readonly endpoint?: string;
  readonly subnetIds: readonly string[];
  readonly tags?: Readonly<Record<string, string>>;
  readonly launch: Omit<RunInstancesCommandInput, CapstanOwned>;
}

export const awsSchema: object = readSchema('aws.json');

const validateSchema = validator<AwsProperties>(awsSchema);

/** Schema and extra checks; messages name JSON paths, none when the properties are usable. */
export function checkProperties(properties: unknown): string[] {
  if (!validateSchema(properties)) return problemsOf(validateSchema.errors).map(problemText);
  return extraChecks(properties);
}

/** What the schema cannot say (or only in ways strict validators refuse). */
export function extraChecks(properties: unknown): string[] {
  const { endpoint, launch } = (properties ?? {}) as { endpoint?: unknown; launch?: { ImageId?: unknown; LaunchTemplate?: unknown } };
  const problems: string[] = [];
  if (typeof endpoint === 'string' && !URL.canParse(endpoint)) problems.push(`/endpoint: not a URL: ${endpoint}`);
  if (launch && launch.ImageId === undefined && launch.LaunchTemplate === undefined) problems.push('/launch: needs ImageId or a LaunchTemplate');
  return problems;
}

/**
 * What the operator must allow (see ../allow.ts): an `endpoint` at all. Capstan signs its requests with the
 * process's AWS credentials, so by default they go to AWS's own endpoints only. Messages name JSON paths.
 */
export function operatorProblems(properties: unknown, allow: OperatorAllow = {}): string[] {
  const { endpoint } = (properties ?? {}) as { endpoint?: unknown };
  if (typeof endpoint !== 'string' || !URL.canParse(endpoint) || endpointAllowed(endpoint, allow)) return [];
  return [`/endpoint: endpoint ${endpoint} is not allowed: only AWS's own endpoints (no endpoint), or one under a URL prefix the operator lists in CAPSTAN_ALLOW_ENDPOINTS`];
}

export function parseProperties(properties: unknown): AwsProperties {
  const problems = checkProperties(properties);
  if (problems.length > 0) throw new Error(`invalid aws properties: ${problems.join('; ')}`);
  return properties as AwsProperties;
}
