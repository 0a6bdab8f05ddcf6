import t from 'tap';
import { Ajv } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import { clientToken, decisionKey, launchKey } from '../../src/providers/aws/client-token.js';
import { Ec2RateLimit, TokenBucket, type Clock } from '../../src/providers/aws/rate-limit.js';
import { fallbacks, inCidr, spread } from '../../src/providers/aws/subnets.js';
import { silentLogger } from '../../src/log.js';

const valid = {
  region: 'eu-west-1',
  subnetIds: ['subnet-0a1b2c3d', 'subnet-0e0f1a2b'],
  tags: { team: 'infra' },
  launch: {
    ImageId: 'ami-0123456789abcdef0',
    InstanceType: 'm7g.large',
    KeyName: 'ops',
    SecurityGroupIds: ['sg-0123'],
    IamInstanceProfile: { Name: 'swarm-node' },
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 50, VolumeType: 'gp3' } }],
    InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time' } },
  },
};

t.test('the schema takes RunInstances fields and refuses what Capstan sets', async (t) => {
  const kind = awsProviderKind({ logger: silentLogger });
  t.equal(kind.name, 'aws');
  const validate = new Ajv({ allErrors: true }).compile(kind.schema);
  t.ok(validate(valid), JSON.stringify(validate.errors));
  for (const owned of ['MinCount', 'MaxCount', 'UserData', 'TagSpecifications', 'ClientToken', 'SubnetId', 'PrivateIpAddress', 'NetworkInterfaces']) {
    const bad = { ...valid, launch: { ...valid.launch, [owned]: owned === 'TagSpecifications' || owned === 'NetworkInterfaces' ? [] : owned.endsWith('Count') ? 1 : 'x' } };
    t.notOk(validate(bad), `launch.${owned} refused`);
    t.throws(() => kind.create(bad), { message: new RegExp(`/launch/${owned}: set by Capstan`) });
  }
  t.notOk(validate({ ...valid, launch: { ...valid.launch, Imageid: 'typo' } }), 'unknown launch fields refused');
  t.notOk(validate({ ...valid, subnetIds: [] }), 'at least one subnet');
  t.notOk(validate({ ...valid, tags: { 'capstan.group': 'x' } }), 'capstan.* tags are reserved');
  t.notOk(validate({ ...valid, credentials: { accessKeyId: 'AKIA' } }), 'no credentials in the spec');
  t.same(kind.validate!({ ...valid, launch: { InstanceType: 't3.micro' } }), ['/launch: needs ImageId or a LaunchTemplate']);
  t.same(kind.validate!({ ...valid, launch: { LaunchTemplate: { LaunchTemplateName: 'swarm' } } }), []);
  t.same(kind.validate!({ ...valid, endpoint: 'http://[nope' }), ['/endpoint: not a URL: http://[nope']);
  t.throws(() => kind.create({ ...valid, launch: { InstanceType: 't3.micro' } }), { message: /needs ImageId/ });
  const strict2020 = new Ajv2020({ strict: true, allErrors: true }).compile(kind.schema);
  t.ok(strict2020(valid), 'also compiles and validates under Ajv 2020 strict mode');
  t.notOk(strict2020({ ...valid, launch: { ...valid.launch, MinCount: 1 } }));
  t.same(kind.validate!(valid), []);
  t.type(kind.create(valid).maxBatch, 'number');
});

t.test('client tokens: 64 hex chars, stable per decision, launch and subnet', async (t) => {
  const d = decisionKey('g', 'cfg', 'intent-1');
  const token = clientToken(launchKey(d, 'batch/x/subnet-a/0/5'), 'subnet-a');
  t.match(token, /^[0-9a-f]{64}$/);
  t.ok(token.startsWith(d));
  t.equal(clientToken(launchKey(decisionKey('g', 'cfg', 'intent-1'), 'batch/x/subnet-a/0/5'), 'subnet-a'), token);
  t.not(decisionKey('g', 'cfg', 'intent-2'), d);
  t.not(decisionKey('g', 'cfgintent-1', ''), decisionKey('g', 'cfg', 'intent-1'), 'parts cannot run into each other');
  t.not(clientToken(launchKey(d, 'batch/x/subnet-a/0/5'), 'subnet-b'), token);
  t.equal(decisionKey('g', 'cfg', 'intent-1', undefined), d, 'without a cluster the key is what it was before the cluster tag');
  t.not(decisionKey('g', 'cfg', 'intent-1', 'cluster-a'), d, 'the cluster is part of the decision');
  t.not(decisionKey('g', 'cfg', 'intent-1', 'cluster-a'), decisionKey('g', 'cfg', 'intent-1', 'cluster-b'));
});

t.test('spread balances existing and new instances', async (t) => {
  t.same([...spread(7, ['a', 'b', 'c'], new Map())], [['a', 3], ['b', 2], ['c', 2]]);
  t.same([...spread(4, ['a', 'b', 'c'], new Map([['a', 5], ['b', 1]]))], [['b', 2], ['c', 2]]);
  t.same([...spread(3, ['a', 'b'], new Map([['a', 1], ['x', 9]]))], [['a', 1], ['b', 2]]);
  t.same(fallbacks(['a', 'b', 'c'], new Map([['b', 3], ['c', 1]]), new Set(['a'])), ['c', 'b']);
  t.ok(inCidr('10.0.1.10', '10.0.1.0/24'));
  t.notOk(inCidr('10.0.2.10', '10.0.1.0/24'));
  t.ok(inCidr('10.1.2.3', '10.0.0.0/15'));
  t.notOk(inCidr('10.0.1.x', '10.0.1.0/24'));
});

/** A clock that only moves when someone sleeps. */
function fakeClock(): Clock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
}

t.test('token bucket: bursts to capacity, then refills at its rate, in arrival order', async (t) => {
  const clock = fakeClock();
  const bucket = new TokenBucket(5, 2, clock);
  for (let i = 0; i < 5; i++) await bucket.take();
  t.same(clock.slept, [], 'the burst needs no wait');
  await bucket.take();
  t.same(clock.slept, [500], 'then one token every 500 ms at 2/s');
  const order: number[] = [];
  await Promise.all([bucket.take(3).then(() => order.push(3)), bucket.take(1).then(() => order.push(1))]);
  t.same(order, [3, 1], 'a large take is not overtaken');
  t.equal(clock.now(), 500 + 1500 + 500);
  await bucket.take(50);
  t.equal(clock.slept.at(-1), 2500, 'a take over capacity waits for a full bucket');
});

t.test('EC2 rate limit: request and resource buckets per operation', async (t) => {
  const clock = fakeClock();
  const limit = new Ec2RateLimit(
    { requests: { RunInstances: { capacity: 2, refillPerSecond: 1 } }, otherRequests: { capacity: 100, refillPerSecond: 100 }, resources: { RunInstances: { capacity: 10, refillPerSecond: 2 } } },
    clock,
  );
  await limit.acquire('RunInstances', 10);
  t.equal(clock.now(), 0);
  await limit.acquire('RunInstances', 4);
  t.equal(clock.now(), 2000, 'four instances at 2/s');
  await limit.acquire('DescribeInstances', 0);
  t.equal(clock.now(), 2000, 'describes draw on their own bucket');
  for (let i = 0; i < 3; i++) await limit.acquire('RunInstances', 0);
  t.equal(clock.now(), 3000, 'the request bucket (2, refilled by then) throttles the third call');
});

t.test('an unreachable endpoint fails with the network error code', async (t) => {
  process.env.AWS_ACCESS_KEY_ID = 'testing';
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  const aws = awsProviderKind({ logger: silentLogger, maxAttempts: 1 }).create({ ...valid, endpoint: 'http://127.0.0.1:9' });
  await t.rejects(aws.describe({ 'capstan.group': 'g' }), { name: 'AwsError', code: 'ECONNREFUSED', operation: 'DescribeInstances' });
  t.throws(() => awsProviderKind({ pageSize: 2 }), RangeError);
});
