import t, { type Test } from 'tap';
import { DescribeInstancesCommand, type Instance as Ec2Instance } from '@aws-sdk/client-ec2';
import { awsProviderKind, type AwsProviderKindOptions } from '../../src/providers/aws/index.js';
import { silentLogger } from '../../src/log.js';
import { providerCalls, providerErrors } from '../../src/metrics.js';
import type { InstanceProvider, InstanceSpec } from '../../src/spi/instance.js';
import { createSubnets, startFaultProxy, motoForTests, type FaultOptions } from '../support/moto.js';

const { moto, ec2 } = await motoForTests();

async function throughProxy(t: Test, subnetIds: string[], faults: FaultOptions, options: AwsProviderKindOptions = {}) {
  const proxy = await startFaultProxy(moto.endpoint, faults);
  t.teardown(() => proxy.stop());
  const aws: InstanceProvider = awsProviderKind({ logger: silentLogger, ...options }).create({
    region: 'us-east-1',
    endpoint: proxy.endpoint,
    subnetIds,
    launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' },
  });
  return { proxy, aws };
}

const specs = (count: number, group = 'g1'): InstanceSpec[] =>
  Array.from({ length: count }, () => ({ tags: { 'capstan.group': group, 'capstan.config': 'c1' }, init: '#!/bin/sh\n' }));

/** Live instances straight from moto, not through the proxy. */
async function live(): Promise<Ec2Instance[]> {
  const out = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

async function errorCount(operation: string, code: string): Promise<number> {
  const v = (await providerErrors.get()).values.find((x) => x.labels.operation === operation && x.labels.code === code);
  return v?.value ?? 0;
}

async function callCount(operation: string): Promise<number> {
  return (await providerCalls.get()).values.find((x) => x.labels.provider === 'aws' && x.labels.operation === operation)?.value ?? 0;
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

t.test('throttles and 503s: provision, describe and destroy still end with exactly what was asked', async (t) => {
  const subnets = await createSubnets(moto.endpoint, 3);
  const { proxy, aws } = await throughProxy(t, subnets, { rate: 0.25, faults: ['throttle', 'unavailable', 'unavailable'], failFirst: 1, seed: 7 }, { maxBatch: 3, pageSize: 5 });

  const launched = await aws.provision(specs(20), 'grow-1');
  t.equal(launched.length, 20);
  const managers = await aws.provision(
    ['10.0.1.200', '10.0.2.200'].map((logicalId) => ({ ...specs(1, 'managers')[0]!, logicalId })),
    'managers-1',
  );
  t.equal(managers.length, 2);
  t.equal((await live()).length, 22, 'no extra instance in EC2');

  const found = await aws.describe({ 'capstan.group': 'g1' });
  t.same(sorted(found.map((i) => i.id)), sorted(launched.map((i) => i.id)));

  const doomed = launched.slice(0, 8).map((i) => i.id);
  await aws.destroy([...doomed, 'i-00000000000000000']);
  await aws.destroy(doomed.slice(0, 2));
  const left = await aws.describe({ 'capstan.group': 'g1' });
  t.same(sorted(left.map((i) => i.id)), sorted(launched.slice(8).map((i) => i.id)));
  t.equal((await live()).length, 14);

  for (const action of ['RunInstances', 'DescribeInstances', 'TerminateInstances', 'DescribeSubnets']) {
    t.ok((proxy.injected.get(action) ?? 0) > 0, `faults were injected into ${action}`);
  }
});

t.test('InsufficientInstanceCapacity in one subnet tries the next', async (t) => {
  const [full, roomy] = await createSubnets(moto.endpoint, 2);
  const noRoom = new Set([full]);
  const { aws } = await throughProxy(t, [full!, roomy!], {
    rate: 0,
    faults: [],
    refuse: (p) => (p.get('Action') === 'RunInstances' && noRoom.has(p.get('SubnetId') ?? '') ? 'InsufficientInstanceCapacity' : undefined),
  });
  const before = await errorCount('RunInstances', 'InsufficientInstanceCapacity');
  const launched = await aws.provision(specs(4), 'grow-1');
  t.equal(launched.length, 4);
  t.same(new Set((await live()).map((i) => i.SubnetId)), new Set([roomy]), 'all went to the subnet with room');
  t.ok((await errorCount('RunInstances', 'InsufficientInstanceCapacity')) > before, 'counted');

  noRoom.add(roomy!);
  await t.rejects(aws.provision(specs(2), 'grow-2'), { name: 'AwsError', code: 'InsufficientInstanceCapacity' });
  t.equal((await live()).length, 4, 'nothing launched when no subnet has room');
});

t.test('retrying a half-done decision launches only what is missing', async (t) => {
  const [a, b] = await createSubnets(moto.endpoint, 2);
  let broken = true;
  const { aws } = await throughProxy(
    t,
    [a!, b!],
    { rate: 0, faults: [], refuse: (p) => (broken && p.get('Action') === 'RunInstances' && p.get('SubnetId') === b ? 'RequestLimitExceeded' : undefined) },
    { maxAttempts: 1 },
  );
  await t.rejects(aws.provision(specs(6), 'grow-1'), { code: 'RequestLimitExceeded' });
  t.equal((await live()).length, 3, 'the launch in the healthy subnet went through');
  broken = false;
  const launched = await aws.provision(specs(6), 'grow-1');
  t.equal(launched.length, 6, 'the retry answers with the whole decision');
  const all = await live();
  t.equal(all.length, 6, 'and launched only the missing half');
  t.same(sorted(all.map((i) => i.InstanceId!)), sorted(launched.map((i) => i.id)));
  t.equal(all.filter((i) => i.SubnetId === b).length, 3, 'in the subnet it was meant for');
});

t.test('a persistent fault surfaces its AWS code', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const throttled = await throughProxy(t, [subnet!], { rate: 1, faults: ['throttle'] }, { maxAttempts: 2 });
  const before = await errorCount('DescribeInstances', 'RequestLimitExceeded');
  const callsBefore = await callCount('DescribeInstances');
  await t.rejects(throttled.aws.describe({ 'capstan.group': 'g1' }), { name: 'AwsError', code: 'RequestLimitExceeded', operation: 'DescribeInstances' });
  t.equal((await errorCount('DescribeInstances', 'RequestLimitExceeded')) - before, 1, 'counted once, after the retries');
  t.equal(throttled.proxy.injected.get('DescribeInstances'), 2, 'retried up to maxAttempts');
  t.equal((await callCount('DescribeInstances')) - callsBefore, 2, 'every attempt counts as a call (and waits for the rate limit)');

  const down = await throughProxy(t, [subnet!], { rate: 1, faults: ['unavailable'] }, { maxAttempts: 3 });
  await t.rejects(down.aws.provision(specs(1), 'grow-1'), { code: 'Unavailable' });
  t.equal((await live()).length, 0);
});

t.test('tag: an id EC2 says is gone is skipped, the others are tagged, a persistent fault surfaces', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  // moto accepts CreateTags on any id: the proxy answers like EC2 for a call naming the terminated one.
  let gone = '';
  const resources = (p: URLSearchParams) => [...p.entries()].filter(([k]) => k.startsWith('ResourceId.')).map(([, v]) => v);
  const { proxy, aws } = await throughProxy(t, [subnet!], {
    rate: 0,
    faults: [],
    refuse: (p) => (p.get('Action') === 'CreateTags' && resources(p).includes(gone) ? 'InvalidInstanceID.NotFound' : undefined),
  });
  const launched = await aws.provision(specs(3), 'grow-1');
  gone = launched[2]!.id;
  await aws.destroy([gone]);
  const errorsBefore = await errorCount('CreateTags', 'InvalidInstanceID.NotFound');
  await aws.tag!(launched.map((i) => i.id), { 'capstan.cluster': 'c-a' });
  t.same(sorted((await aws.describe({ 'capstan.group': 'g1', 'capstan.cluster': 'c-a' })).map((i) => i.id)), sorted(launched.slice(0, 2).map((i) => i.id)));
  t.equal(proxy.injected.get('CreateTags'), 2, 'the batch, then the gone id on its own (the message named no id)');
  t.equal(await errorCount('CreateTags', 'InvalidInstanceID.NotFound'), errorsBefore, 'a gone id is an outcome, not an error');

  const throttled = await throughProxy(t, [subnet!], { rate: 1, faults: ['throttle'] }, { maxAttempts: 1 });
  await t.rejects(throttled.aws.tag!([launched[0]!.id], { 'capstan.cluster': 'c-b' }), { name: 'AwsError', code: 'RequestLimitExceeded', operation: 'CreateTags' });
});
