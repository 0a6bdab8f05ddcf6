/**
 * The `aws` provider kind: EC2 instances, configured by schemas/aws.json.
 *
 * IAM permissions it needs: ec2:RunInstances (on the instance, volume, network-interface, subnet,
 * security-group, image and key-pair resources), ec2:CreateTags with condition
 * ec2:CreateAction = RunInstances (tagging at launch), ec2:CreateTags on instances that carry
 * capstan.group and no capstan.cluster, for the key capstan.cluster only (adoption of instances
 * made before the cluster tag; see README "AWS"), ec2:DescribeInstances,
 * ec2:TerminateInstances, ec2:DescribeSubnets (only for logical ids that are addresses), and
 * iam:PassRole on the role of `launch.IamInstanceProfile` when one is given.
 */
// Only types from the SDK and from the modules that use it (ec2.ts, provider.ts) are imported here: the SDK costs
// about 90 MB and most of a start-up, so it is loaded by the first call a provider makes (see `sdk` below), and a
// Capstan with no aws group never loads it. Name, schema and validation need none of it.
import type { EC2Client } from '@aws-sdk/client-ec2';
import { createLogger, type Logger } from '../../log.js';
import type { InstanceProvider, ProviderKind } from '../../spi/instance.js';
import type { OperatorAllow } from '../allow.js';
import { reportingFailures } from '../failures.js';
import { awsSchema, extraChecks, operatorProblems, parseProperties } from './properties.js';
import { sharedEc2RateLimit, type RateLimit } from './rate-limit.js';

export type { AwsError } from './ec2.js';
export type { AwsProperties } from './properties.js';
export { Ec2RateLimit, EC2_DEFAULT_LIMITS, type RateLimit } from './rate-limit.js';

export interface AwsProviderKindOptions {
  readonly logger?: Logger;
  /** Defaults to the process-wide limit sized to EC2's account limits. */
  readonly rateLimit?: RateLimit;
  /** Attempts per EC2 call, first included (default 8). */
  readonly maxAttempts?: number;
  /** Most instances per provision call, and per RunInstances (default 100). */
  readonly maxBatch?: number;
  /** DescribeInstances page size, 5 to 1000 (default 1000). */
  readonly pageSize?: number;
  /** Endpoints beyond AWS's own the operator allows; none by default. */
  readonly allow?: OperatorAllow;
}

/** The SDK-backed modules, imported once per process by the first call of any aws provider. */
type Sdk = Pick<typeof import('./ec2.js'), 'createEc2Client'> & Pick<typeof import('./provider.js'), 'AwsInstanceProvider'>;
let loading: Promise<Sdk> | undefined;
function sdk(): Promise<Sdk> {
  loading ??= Promise.all([import('./ec2.js'), import('./provider.js')])
    .then(([{ createEc2Client }, { AwsInstanceProvider }]) => ({ createEc2Client, AwsInstanceProvider }))
    .catch((err: unknown) => {
      loading = undefined; // a failed import is tried again by the next call
      throw err;
    });
  return loading;
}

export function awsProviderKind(options: AwsProviderKindOptions = {}): ProviderKind {
  const logger = (options.logger ?? createLogger()).child({ provider: 'aws' });
  const rateLimit = options.rateLimit ?? sharedEc2RateLimit;
  const maxBatch = options.maxBatch ?? 100;
  const pageSize = options.pageSize ?? 1000;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, not ${maxBatch}`);
  if (!Number.isInteger(pageSize) || pageSize < 5 || pageSize > 1000) throw new RangeError(`pageSize must be 5 to 1000 (EC2's MaxResults), not ${pageSize}`);
  // One client per region and endpoint, shared by groups, so the SDK's adaptive retry sees all their throttles
  // (a bounded set: regions, times the endpoints the operator allows).
  const clients = new Map<string, EC2Client>();
  return {
    name: 'aws',
    stoppable: true,
    schema: awsSchema,
    validate: (properties: unknown) => [...extraChecks(properties), ...operatorProblems(properties, options.allow)],
    create(raw: unknown) {
      // Invalid properties are refused here and now, as before; the SDK comes with the first call.
      const properties = parseProperties(raw);
      let ready: Promise<InstanceProvider> | undefined;
      const provider = () =>
        (ready ??= sdk().then(({ createEc2Client, AwsInstanceProvider }) => {
          const key = `${properties.region} ${properties.endpoint ?? ''}`;
          let client = clients.get(key);
          if (!client) {
            client = createEc2Client({ region: properties.region, endpoint: properties.endpoint, rateLimit, maxAttempts: options.maxAttempts ?? 8 });
            clients.set(key, client);
          }
          return new AwsInstanceProvider({ client, properties, logger, maxBatch, pageSize });
        }).catch((err: unknown) => {
          ready = undefined; // tried again by the next call
          throw err;
        }));
      return reportingFailures('aws', {
        maxBatch,
        provision: async (specs, intent) => (await provider()).provision(specs, intent),
        destroy: async (ids) => (await provider()).destroy(ids),
        describe: async (tags) => (await provider()).describe(tags),
        tag: async (ids, tags) => (await provider()).tag!(ids, tags),
        stop: async (ids) => (await provider()).stop!(ids),
        start: async (ids) => (await provider()).start!(ids),
      });
    },
    // A region (and endpoint) is a separate world of instances; a change of either moves the machines.
    location(raw: unknown) {
      const properties = parseProperties(raw);
      return `${properties.region} ${properties.endpoint ?? ''}`;
    },
  };
}
