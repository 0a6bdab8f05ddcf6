/** The aws provider's `instance.properties`: their type, JSON Schema and validation. */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';

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

/** schemas/aws.json, found from this module whether it runs from src/ or from dist/. */
export const awsSchema: object = JSON.parse(readFileSync(schemaPath(), 'utf8'));

function schemaPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'schemas', 'aws.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('schemas/aws.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

const validateSchema = new Ajv({ allErrors: true, strict: true }).compile<AwsProperties>(awsSchema);

/** Schema and extra checks; messages name JSON paths, none when the properties are usable. */
export function checkProperties(properties: unknown): string[] {
  if (!validateSchema(properties)) return (validateSchema.errors ?? []).map(describeError);
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

export function parseProperties(properties: unknown): AwsProperties {
  const problems = checkProperties(properties);
  if (problems.length > 0) throw new Error(`invalid aws properties: ${problems.join('; ')}`);
  return properties as AwsProperties;
}

function describeError(error: ErrorObject): string {
  const path = error.instancePath || '/';
  if (error.keyword === 'false schema') return `${path}: set by Capstan, not allowed here`;
  if (error.keyword === 'additionalProperties') {
    return `${path}: unknown property ${String((error.params as { additionalProperty?: string }).additionalProperty)}`;
  }
  return `${path}: ${error.message ?? error.keyword}`;
}
