import t from 'tap';
import { DescribeInstanceAttributeCommand, DescribeInstancesCommand, DescribeVolumesCommand, type Instance as Ec2Instance } from '@aws-sdk/client-ec2';
import { awsProviderKind, type AwsError, type AwsProviderKindOptions } from '../../src/providers/aws/index.js';
import { silentLogger } from '../../src/log.js';
import { providerCalls, providerErrors } from '../../src/metrics.js';
import type { InstanceProvider, InstanceSpec } from '../../src/spi/instance.js';
import { createSubnets, motoForTests } from '../support/moto.js';

const { moto, ec2 } = await motoForTests();

function provider(subnetIds: string[], options: AwsProviderKindOptions = {}, extra: object = {}): InstanceProvider {
  return awsProviderKind({ logger: silentLogger, ...options }).create({
    region: 'us-east-1',
    endpoint: moto.endpoint,
    subnetIds,
    tags: { team: 'infra' },
    launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' },
    ...extra,
  });
}

function specs(count: number, group = 'g1', config = 'c1', init = '#!/bin/sh\necho hello\n'): InstanceSpec[] {
  return Array.from({ length: count }, () => ({ tags: { 'capstan.group': group, 'capstan.config': config }, init }));
}

/** EC2 calls made so far, by operation. */
async function calls(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await providerCalls.get()).values) if (v.labels.provider === 'aws') out[String(v.labels.operation)] = v.value;
  return out;
}

async function callsDuring(run: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await calls();
  await run();
  const after = await calls();
  return Object.fromEntries(Object.entries(after).map(([op, n]) => [op, n - (before[op] ?? 0)]).filter(([, n]) => n !== 0));
}

/** Live instances straight from EC2, bypassing the provider. */
async function live(): Promise<Ec2Instance[]> {
  const out = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

const ids = (xs: readonly { id: string }[]): string[] => xs.map((x) => x.id).sort();

t.test('provisions in batches, tagged at launch, and finds the group by tags across pages', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!], { maxBatch: 2, pageSize: 5 });
  let launched: Awaited<ReturnType<InstanceProvider['provision']>> = [];
  const provisionCalls = await callsDuring(async () => {
    launched = await aws.provision(specs(12), 'grow-1');
  });
  t.equal(launched.length, 12);
  t.equal(provisionCalls.RunInstances, 6, 'one RunInstances per batch of maxBatch');
  t.equal(provisionCalls.DescribeInstances, 1, 'one describe to balance and dedupe');
  await aws.provision(specs(2, 'g1', 'c2'), 'config-2');
  await aws.provision(specs(3, 'other'), 'other-1');

  let found: Awaited<ReturnType<InstanceProvider['describe']>> = [];
  const describeCalls = await callsDuring(async () => {
    found = await aws.describe({ 'capstan.group': 'g1', 'capstan.config': 'c1' });
  });
  t.same(ids(found), ids(launched), 'exactly the batch, not the other config nor the other group');
  t.ok(describeCalls.DescribeInstances! >= 2, `paginated (${describeCalls.DescribeInstances} pages)`);
  t.equal((await aws.describe({ 'capstan.group': 'g1' })).length, 14);
  await aws.provision(specs(1, 'g*'), 'star-1');
  t.equal((await aws.describe({ 'capstan.group': 'g*' })).length, 1, 'tag values match literally, not as patterns');
  for (const instance of found) {
    t.match(instance.tags, { 'capstan.group': 'g1', 'capstan.config': 'c1', team: 'infra' });
    t.ok(['pending', 'running'].includes(instance.state));
    t.ok(Math.abs(instance.launchedAt - Date.now()) < 120_000, 'launchedAt from LaunchTime');
    t.match(instance.address, /^10\.0\.1\.\d+$/);
  }
  const volumes = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'tag:capstan.group', Values: ['g1'] }] }));
  t.ok((volumes.Volumes ?? []).length >= 1, 'volumes tagged at launch too');
});

t.test('destroys in batches, and a gone id is success', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!]);
  const launched = await aws.provision(specs(4), 'grow-1');
  await aws.destroy([launched[0]!.id]);
  await aws.destroy([launched[0]!.id, launched[1]!.id, 'i-0123456789abcdef0', 'not-an-id']);
  t.same(ids(await aws.describe({ 'capstan.group': 'g1' })), ids(launched.slice(2)));

  const unknown = Array.from({ length: 1001 }, (_, n) => `i-${n.toString(16).padStart(17, '0')}`);
  const destroyCalls = await callsDuring(() => aws.destroy(unknown));
  t.equal(destroyCalls.TerminateInstances, 2, '1001 ids take two TerminateInstances of at most 1000');
  t.equal((await live()).length, 2);
});

t.test('the same intent twice launches once (ClientToken)', async (t) => {
  const subnets = await createSubnets(moto.endpoint, 2);
  const aws = provider(subnets);
  const first = await aws.provision(specs(6), 'intent-a');
  const again = await callsDuring(async () => t.same(ids(await aws.provision(specs(6), 'intent-a')), ids(first)));
  t.notOk(again.RunInstances, 'no RunInstances on retry');
  // Another provider object (a new leader) with the same decision: still the same instances.
  t.same(ids(await provider(subnets).provision(specs(6), 'intent-a')), ids(first));
  t.equal((await live()).length, 6);
  const tokens = new Set((await live()).map((i) => i.ClientToken));
  t.equal(tokens.size, 2, 'one token per subnet launch');
  for (const token of tokens) t.match(token, /^[0-9a-f]{64}$/);

  t.equal((await aws.provision(specs(6), 'intent-b')).length, 6, 'a new intent launches');
  t.equal((await live()).length, 12);

  // Like EC2, which answers a used token with the original (now terminated) instances.
  await aws.destroy(first.map((i) => i.id));
  t.same(await aws.provision(specs(6), 'intent-a'), [], 'a decision whose instances are gone does not launch again');
  t.equal((await live()).length, 6);
});

t.test('tag adds tags to live instances with CreateTags, in batches, skipping gone ids', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!]);
  t.type(aws.tag, 'function');
  const old = await aws.provision(specs(3), 'made-before-the-cluster-tag');
  await aws.provision(specs(1, 'other'), 'other-1');
  const adopted = old.slice(0, 2).map((i) => i.id);
  const tagCalls = await callsDuring(() => aws.tag!([...adopted, adopted[0]!, 'not-an-id'], { 'capstan.cluster': 'c-a' }));
  t.same(tagCalls, { CreateTags: 1 }, 'one CreateTags for the batch; duplicates and non-ids dropped');
  const tagged = await aws.describe({ 'capstan.group': 'g1', 'capstan.cluster': 'c-a' });
  t.same(ids(tagged), [...adopted].sort(), 'exactly the named instances now carry the tag');
  for (const instance of tagged) t.match(instance.tags, { 'capstan.group': 'g1', 'capstan.config': 'c1', team: 'infra', 'capstan.cluster': 'c-a' }, 'launch tags kept');
  const untouched = (await aws.describe({ 'capstan.group': 'g1' })).find((i) => i.id === old[2]!.id)!;
  t.equal(untouched.tags['capstan.cluster'], undefined, 'the instance not named is untouched');
  t.same(await aws.describe({ 'capstan.group': 'other', 'capstan.cluster': 'c-a' }), [], 'no other group touched');

  t.same(await callsDuring(() => aws.tag!([], { 'capstan.cluster': 'c-a' })), {}, 'nothing to tag: no call');
  t.same(await callsDuring(() => aws.tag!(adopted, {})), {}, 'no tags: no call');

  const unknown = Array.from({ length: 1001 }, (_, n) => `i-${n.toString(16).padStart(17, '0')}`);
  t.same(await callsDuring(() => aws.tag!(unknown, { 'capstan.cluster': 'c-a' })), { CreateTags: 2 }, '1001 ids take two CreateTags of at most 1000');
});

t.test('two clusters deciding with the same intent launch their own instances, never each other\'s', async (t) => {
  const subnets = await createSubnets(moto.endpoint, 2);
  const aws = provider(subnets);
  const of = (cluster: string): InstanceSpec[] => specs(3).map((s) => ({ ...s, tags: { ...s.tags, 'capstan.cluster': cluster } }));
  const a = await aws.provision(of('c-a'), 'same-intent');
  const b = await aws.provision(of('c-b'), 'same-intent');
  t.equal(a.length, 3);
  t.equal(b.length, 3);
  t.same(ids(a).filter((id) => ids(b).includes(id)), [], 'no instance shared');
  t.equal((await live()).length, 6);
  t.same(ids(await aws.provision(of('c-a'), 'same-intent')), ids(a), 'a retry of a cluster\'s decision still finds its own launch');
  t.same(ids(await aws.describe({ 'capstan.group': 'g1', 'capstan.cluster': 'c-b' })), ids(b));
});

t.test('spreads over subnets, balancing what runs there', async (t) => {
  const subnets = await createSubnets(moto.endpoint, 3);
  const aws = provider(subnets);
  const bySubnet = async (): Promise<number[]> => {
    const all = await live();
    return subnets.map((s) => all.filter((i) => i.SubnetId === s).length);
  };
  const first = await callsDuring(() => aws.provision(specs(7), 'grow-1'));
  t.equal(first.RunInstances, 3, 'one RunInstances per subnet');
  t.same(await bySubnet(), [3, 2, 2]);

  const inFirst = (await live()).filter((i) => i.SubnetId === subnets[0]).map((i) => i.InstanceId!);
  await aws.destroy(inFirst.slice(0, 3));
  await aws.provision(specs(2), 'grow-2');
  t.same(await bySubnet(), [2, 2, 2], 'the emptied subnet gets the new ones');
  await aws.provision(specs(3), 'grow-3');
  t.same(await bySubnet(), [3, 3, 3]);
});

t.test('logical ids launch one at a time at their address, in the subnet holding it', async (t) => {
  const subnets = await createSubnets(moto.endpoint, 2);
  const aws = provider(subnets);
  const managers = ['10.0.2.10', '10.0.1.10', '10.0.2.11'].map((logicalId) => ({ ...specs(1, 'managers')[0]!, logicalId }));
  const made = await callsDuring(async () => {
    const launched = await aws.provision(managers, 'managers-1');
    t.same(launched.map((i) => i.address).sort(), ['10.0.1.10', '10.0.2.10', '10.0.2.11']);
    for (const i of launched) t.equal(i.tags['capstan.logical-id'], i.address);
  });
  t.equal(made.RunInstances, 3);
  const bySubnet = new Map((await live()).map((i) => [i.PrivateIpAddress, i.SubnetId]));
  t.equal(bySubnet.get('10.0.1.10'), subnets[0]);
  t.equal(bySubnet.get('10.0.2.11'), subnets[1]);

  const before = await calls();
  await t.rejects(aws.provision([{ ...specs(1, 'managers')[0]!, logicalId: '192.168.0.1' }], 'managers-2'), { code: 'InvalidLogicalId' });
  t.equal((await calls()).RunInstances, before.RunInstances, 'refused before any launch');
});

t.test('user data round trip', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!]);
  const init = '#!/bin/bash\nset -eu\ndocker swarm join --token "$(cat /run/join)" 10.0.0.1:2377 # héllo\n';
  const [instance] = await aws.provision(specs(1, 'g1', 'c1', init), 'grow-1');
  const attr = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instance!.id, Attribute: 'userData' }));
  t.equal(Buffer.from(attr.UserData!.Value!, 'base64').toString('utf8'), init);

  const atLimit = 'x'.repeat(16 * 1024);
  t.equal((await aws.provision(specs(1, 'g1', 'c1', atLimit), 'grow-2')).length, 1, '16 KB exactly is fine');
});

t.test('an init script over 16 KB is refused before any call', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!]);
  const made = await callsDuring(async () => {
    const err = await aws.provision([...specs(2), ...specs(1, 'g1', 'c1', 'é'.repeat(8 * 1024 + 1))], 'grow-1').then(
      () => undefined,
      (e: unknown) => e as AwsError,
    );
    t.equal(err?.code, 'UserDataTooLarge');
    t.match(err?.message, /16384/);
  });
  t.same(made, {}, 'no EC2 call at all');
  t.equal((await live()).length, 0);
});

t.test('a persistent failure throws the AWS code and counts it', async (t) => {
  const aws = provider(['subnet-0000000000000000a'], { maxAttempts: 1 });
  const errors = async (): Promise<number> =>
    (await providerErrors.get()).values.filter((v) => v.labels.operation === 'RunInstances').reduce((n, v) => n + v.value, 0);
  const before = await errors();
  const err = (await aws.provision(specs(1), 'grow-1').catch((e: unknown) => e)) as AwsError;
  t.equal(err.name, 'AwsError');
  t.match(err.code, /^InvalidSubnet/);
  t.equal(err.operation, 'RunInstances');
  t.equal((await errors()) - before, 1);
});

t.test('every EC2 call waits for the rate limit, launches and terminations with their instance count', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const acquired: [string, number][] = [];
  const rateLimit = { acquire: async (operation: string, resources: number) => void acquired.push([operation, resources]) };
  const aws = provider([subnet!], { rateLimit, maxBatch: 3 });
  const launched = await aws.provision(specs(5), 'grow-1');
  await aws.destroy(launched.map((i) => i.id));
  t.same(acquired, [
    ['DescribeInstances', 0],
    ['RunInstances', 3],
    ['RunInstances', 2],
    ['TerminateInstances', 5],
  ]);
});

t.test('stop and start: StopInstances and StartInstances, listed as stopped and running, gone ids skipped', async (t) => {
  const [subnet] = await createSubnets(moto.endpoint, 1);
  const aws = provider([subnet!]);
  const group = 'g-power';
  const made = await aws.provision(specs(3, group), 'power-1');
  const states = async () => Object.fromEntries((await aws.describe({ 'capstan.group': group })).map((i) => [i.id, i.state]));
  const [a, b, c] = made.map((i) => i.id) as [string, string, string];
  const stopCalls = await callsDuring(() => aws.stop!([a, b, 'i-0123456789abcdef0', 'not-an-id']));
  t.same(stopCalls, { StopInstances: 2 }, 'one call, and again without the id EC2 says is gone');
  t.same(await states(), { [a]: 'stopped', [b]: 'stopped', [c]: 'running' }, 'exactly the named instances stopped, still listed');
  t.same(await callsDuring(() => aws.start!([a])), { StartInstances: 1 });
  t.same(await states(), { [a]: 'running', [b]: 'stopped', [c]: 'running' }, 'exactly the named instance started');
  t.same(await callsDuring(() => aws.stop!([])), {}, 'nothing to stop: no call');
  await aws.destroy(made.map((i) => i.id));
});
