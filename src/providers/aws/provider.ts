/** InstanceProvider over EC2: batched, idempotent launches spread over subnets. */
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Filter,
  type Instance as Ec2Instance,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { Logger } from '../../log.js';
import type { Instance, InstanceProvider, InstanceSpec, InstanceState, Tags } from '../../spi/instance.js';
import { valuesOrThrow } from '../../concurrency.js';
import { TAG } from '../../spi/tags.js';
import { LAUNCH_KEY_LENGTH, clientToken, decisionKey } from './client-token.js';
import { AwsError, ec2Call } from './ec2.js';
import { encodeUserData, planLaunches, type Launch } from './launches.js';
import type { AwsProperties } from './properties.js';
import { inCidr } from './subnets.js';

const { group: GROUP_TAG, config: CONFIG_TAG, logicalId: LOGICAL_ID_TAG, cluster: CLUSTER_TAG } = TAG;
/** EC2's limit of tags per resource. */
const TAG_LIMIT = 50;
/** Ids per TerminateInstances (its limit), and per CreateTags, StopInstances and StartInstances (no published limit). */
const ID_BATCH = 1000;
const LIVE_STATES: readonly InstanceState[] = ['pending', 'running', 'stopping', 'stopped'];
const ANY_STATE = [...LIVE_STATES, 'shutting-down', 'terminated'];
/** Errors local to one subnet's availability zone: another subnet may still have room. */
const CAPACITY_CODES = ['InsufficientInstanceCapacity', 'InsufficientFreeAddressesInSubnet'];
/** For calls on instance ids (TerminateInstances, CreateTags, StopInstances, StartInstances) these mean it is gone. */
const GONE_CODES = ['InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed'];
/** Anything else cannot name an instance, so destroying it is trivially done. */
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

export interface AwsProviderConfig {
  readonly client: EC2Client;
  readonly properties: AwsProperties;
  readonly logger: Logger;
  readonly maxBatch: number;
  /** DescribeInstances MaxResults (5 to 1000). */
  readonly pageSize: number;
}

export class AwsInstanceProvider implements InstanceProvider {
  readonly maxBatch: number;
  private readonly client: EC2Client;
  private readonly properties: AwsProperties;
  private readonly logger: Logger;
  private readonly pageSize: number;
  private cidrs?: Promise<Map<string, string>>;

  constructor(config: AwsProviderConfig) {
    this.client = config.client;
    this.properties = config.properties;
    this.logger = config.logger;
    this.maxBatch = config.maxBatch;
    this.pageSize = config.pageSize;
  }

  /**
   * Describes the group first: to balance subnets on what runs there, and to find launches of
   * this same decision that already happened (EC2 would dedupe them by ClientToken anyway; this
   * also saves the calls, and covers endpoints that do not dedupe).
   */
  async provision(specs: readonly InstanceSpec[], intent: string): Promise<Instance[]> {
    if (specs.length === 0) return [];
    // Anything EC2 would refuse fails the whole decision before any call.
    const prepared = specs.map((spec) => ({ spec, tags: this.tagsOf(spec), userData: encodeUserData(spec.init) }));
    const first = specs[0]!;
    const group = first.tags[GROUP_TAG] ?? '';
    // The cluster is part of the decision: two Swarms' decisions of one group never share a client token, so
    // neither is ever answered with the other's instances (below, or by EC2's own dedupe).
    const decision = decisionKey(group, first.tags[CONFIG_TAG] ?? '', intent, first.tags[CLUSTER_TAG]);
    // Terminated ones too: EC2 would answer a repeated token with them rather than launch again.
    const known = group === '' ? [] : await this.describeRaw({ [GROUP_TAG]: group }, ANY_STATE);
    const done = new Map<string, Ec2Instance[]>();
    const load = new Map<string, number>();
    for (const instance of known) {
      const token = instance.ClientToken ?? '';
      if (token.startsWith(decision)) {
        const key = token.slice(0, LAUNCH_KEY_LENGTH);
        done.set(key, [...(done.get(key) ?? []), instance]);
      } else if (instance.SubnetId && isLive(instance)) {
        load.set(instance.SubnetId, (load.get(instance.SubnetId) ?? 0) + 1);
      }
    }
    const launches = await planLaunches(prepared, decision, load, {
      subnets: this.properties.subnetIds,
      maxBatch: this.maxBatch,
      subnetFor: (address) => this.subnetFor(address),
    });
    const results = valuesOrThrow(await Promise.allSettled(launches.map((launch) => done.get(launch.key) ?? this.launch(launch, group))));
    return results.flatMap((made, i) => made.map((instance) => toInstance(instance, launches[i]!.tags))).filter((instance): instance is Instance => instance !== undefined);
  }

  async destroy(ids: readonly string[]): Promise<void> {
    await this.batched('TerminateInstances', ids, (some) => this.client.send(new TerminateInstancesCommand({ InstanceIds: some })), 'terminated');
  }

  /** StopInstances: the instances keep their EBS volumes and private addresses, and EC2 bills only the volumes. */
  async stop(ids: readonly string[]): Promise<void> {
    await this.batched('StopInstances', ids, (some) => this.client.send(new StopInstancesCommand({ InstanceIds: some })), 'stopped');
  }

  /** StartInstances: they boot from their volumes, and EC2 sets their LaunchTime anew. */
  async start(ids: readonly string[]): Promise<void> {
    await this.batched('StartInstances', ids, (some) => this.client.send(new StartInstancesCommand({ InstanceIds: some })), 'started');
  }

  async describe(tags: Tags): Promise<Instance[]> {
    const instances = await this.describeRaw(tags);
    return instances.map((instance) => toInstance(instance)).filter((instance): instance is Instance => instance !== undefined);
  }

  /**
   * Adds (or overwrites) `tags` on instances with CreateTags, up to TAG_BATCH ids a call: how instances made before the
   * cluster tag existed are adopted. Ids that are gone are skipped, like in destroy. Volumes keep their launch tags.
   */
  async tag(ids: readonly string[], tags: Tags): Promise<void> {
    const Tags: Tag[] = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    if (Tags.length === 0) return;
    await this.batched('CreateTags', ids, (some) => this.client.send(new CreateTagsCommand({ Resources: some, Tags })), 'tagged', { keys: Object.keys(tags) });
  }

  /** An EC2 call on instance ids, ID_BATCH at a time, skipping ids that cannot name an instance or are gone. */
  private async batched(operation: string, ids: readonly string[], send: (ids: string[]) => Promise<unknown>, done: string, extra: object = {}): Promise<void> {
    const existing = [...new Set(ids)].filter((id) => INSTANCE_ID.test(id));
    for (let i = 0; i < existing.length; i += ID_BATCH) {
      const acted = await this.skippingGone(operation, existing.slice(i, i + ID_BATCH), send);
      if (acted.length > 0) this.logger.info({ count: acted.length, ids: acted, ...extra }, done);
    }
  }

  private async launch(launch: Launch, group: string): Promise<Ec2Instance[]> {
    const tags: Tag[] = Object.entries(launch.tags).map(([Key, Value]) => ({ Key, Value }));
    let lastError: unknown;
    for (const subnet of launch.subnets) {
      const token = clientToken(launch.key, subnet);
      try {
        const out = await ec2Call('RunInstances', () =>
          this.client.send(
            new RunInstancesCommand({
              ...this.properties.launch,
              MinCount: launch.count,
              MaxCount: launch.count,
              SubnetId: subnet,
              PrivateIpAddress: launch.privateIp,
              UserData: launch.userData,
              ClientToken: token,
              TagSpecifications: [
                { ResourceType: 'instance', Tags: tags },
                { ResourceType: 'volume', Tags: tags },
              ],
            }),
          ),
        );
        const instances = out.Instances ?? [];
        this.logger.info({ group, subnet, count: instances.length, clientToken: token, ids: instances.map((i) => i.InstanceId) }, 'launched');
        return instances;
      } catch (err) {
        if (!(err instanceof AwsError) || !CAPACITY_CODES.includes(err.code)) throw err;
        this.logger.warn({ group, subnet, count: launch.count, code: err.code }, 'no capacity in subnet, trying the next');
        lastError = err;
      }
    }
    throw lastError;
  }

  /**
   * Runs an EC2 call on instance ids; when EC2 answers that some are gone, drops the ids its message names and
   * calls again with the rest (each id on its own when the message names none). Returns the ids it succeeded on.
   */
  private async skippingGone(operation: string, ids: readonly string[], send: (ids: string[]) => Promise<unknown>): Promise<string[]> {
    let pending = ids;
    while (pending.length > 0) {
      try {
        const some = [...pending];
        await ec2Call(operation, () => send(some), GONE_CODES);
        return some;
      } catch (err) {
        if (!(err instanceof AwsError) || !GONE_CODES.includes(err.code)) throw err;
        const gone = new Set(String((err.cause as Error | undefined)?.message ?? err.message).match(/i-[0-9a-zA-Z]+/g) ?? []);
        const rest = pending.filter((id) => !gone.has(id));
        if (rest.length === pending.length) {
          // The message named none of them: settle each id on its own.
          if (pending.length === 1) return [];
          const settled: string[] = [];
          for (const id of pending) settled.push(...(await this.skippingGone(operation, [id], send)));
          return settled;
        }
        this.logger.info({ operation, gone: [...gone] }, 'already gone');
        pending = rest;
      }
    }
    return [];
  }

  private async describeRaw(tags: Tags, states: readonly string[] = LIVE_STATES): Promise<Ec2Instance[]> {
    // EC2 filter values are patterns: * and ? (and \\) must be escaped to match themselves.
    const filters: Filter[] = Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value.replace(/[\\*?]/g, '\\$&')] }));
    filters.push({ Name: 'instance-state-name', Values: [...states] });
    const out: Ec2Instance[] = [];
    let nextToken: string | undefined;
    do {
      const page = await ec2Call('DescribeInstances', () =>
        this.client.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: this.pageSize, NextToken: nextToken })),
      );
      for (const reservation of page.Reservations ?? []) out.push(...(reservation.Instances ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
    return out;
  }

  /** The configured subnet whose CIDR holds `address`; CIDRs never change, so they are read once. */
  private async subnetFor(address: string): Promise<string> {
    this.cidrs ??= ec2Call('DescribeSubnets', () =>
      this.client.send(new DescribeSubnetsCommand({ SubnetIds: [...this.properties.subnetIds] })),
    ).then(
      (out) => new Map((out.Subnets ?? []).map((s) => [s.SubnetId ?? '', s.CidrBlock ?? ''])),
      (err: unknown) => {
        this.cidrs = undefined;
        throw err;
      },
    );
    const cidrs = await this.cidrs;
    const subnet = this.properties.subnetIds.find((id) => inCidr(address, cidrs.get(id) ?? ''));
    if (subnet === undefined) {
      throw new AwsError('InvalidLogicalId', 'RunInstances', `logical id ${address} is in none of the subnets ${this.properties.subnetIds.join(', ')}`);
    }
    return subnet;
  }

  private tagsOf(spec: InstanceSpec): Tags {
    const tags: Record<string, string> = { ...this.properties.tags, ...spec.tags };
    if (spec.logicalId !== undefined) tags[LOGICAL_ID_TAG] ??= spec.logicalId;
    const count = Object.keys(tags).length;
    if (count > TAG_LIMIT) throw new AwsError('TagLimitExceeded', 'RunInstances', `${count} tags exceed EC2's limit of ${TAG_LIMIT} per instance`);
    return tags;
  }
}

function isLive(instance: Ec2Instance): boolean {
  return LIVE_STATES.includes(instance.State?.Name as InstanceState);
}

/** SPI view of a live instance; `tags` stand in when EC2's answer omits them. */
function toInstance(instance: Ec2Instance, tags?: Tags): Instance | undefined {
  if (!instance.InstanceId || !isLive(instance)) return undefined;
  const state = instance.State!.Name as InstanceState;
  const own = Object.fromEntries((instance.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  return {
    id: instance.InstanceId,
    tags: Object.keys(own).length > 0 ? own : { ...tags },
    state,
    launchedAt: instance.LaunchTime?.getTime() ?? Date.now(),
    ...(instance.PrivateIpAddress ? { address: instance.PrivateIpAddress } : {}),
  };
}
