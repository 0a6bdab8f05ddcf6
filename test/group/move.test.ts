// A group moved to another location, with a change of leader in the middle: the version's earlier machine sections
// (`former`) are stored in the Swarm config's state label on the tests' engine and read back by the new leader, which
// finds the machines left in the old region through a provider of their own and replaces every one. The aws
// provider on one moto_server, two regions; every assertion names instances by id.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';
import type { Plugins } from '../../src/spi/index.js';
import { engine } from '../support/engine.js';
import { createSubnets, startMoto, useFakeCredentials } from '../support/moto.js';
import { until } from '../support/until.js';

const id = `t-move-${randomBytes(3).toString('hex')}`;
useFakeCredentials();
const moto = await startMoto();
const subnets = { 'us-east-1': await createSubnets(moto.endpoint, 2, 'us-east-1'), 'us-west-2': await createSubnets(moto.endpoint, 2, 'us-west-2') };
const plugins: Plugins = {
  providers: new Map([['aws', awsProviderKind({ logger: silentLogger, allow: { endpoints: [moto.endpoint] } })]]),
  flavors: new Map([['vanilla', vanillaFlavorKind]]),
};
const parse = (raw: unknown) => validateSpec(raw, plugins);
/** The store of a leader: Swarm configs on the tests' engine, read afresh by each new instance. */
const storeOf = () => new SwarmSpecStore({ docker: engine(), parse, logger: silentLogger });
t.teardown(async () => {
  await storeOf().remove(id);
  await moto.stop();
});

const spec = (region: keyof typeof subnets) =>
  parse({
    id,
    allocation: { size: 3 },
    instance: { provider: 'aws', properties: { region, endpoint: moto.endpoint, subnetIds: subnets[region], launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } } },
    flavor: { kind: 'vanilla', properties: {} },
    update: { maxSurge: 1, maxUnavailable: 1, healthyFor: '0s', healthTimeout: '30s' },
  });

/** Live instances of the group in a region, read around Capstan. */
async function live(region: keyof typeof subnets): Promise<string[]> {
  const ec2 = new EC2Client({ region, endpoint: moto.endpoint });
  const out = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:capstan.group', Values: [id] }, { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] }),
  );
  ec2.destroy();
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId!).sort();
}

/** One leadership term: a controller and a service over a store read from Swarm. */
function lead() {
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 100, busyMs: 50, backoff: { baseMs: 50, maxMs: 200 } });
  const service = new GroupService({ store: storeOf(), controller, validate: parse, logger: silentLogger });
  return { controller, service };
}

t.test('moved from us-east-1 to us-west-2, the leader changing mid-move: the new leader replaces every machine left in us-east-1', async (t) => {
  const first = lead();
  await first.service.commit(spec('us-east-1'));
  await until('3 machines in us-east-1', async () => first.controller.status(id)?.converged === true && (await live('us-east-1')).length === 3, 60_000);
  const east = await live('us-east-1');

  // The move is committed, and this leader stops at once: most of the old region's machines are still there.
  await first.service.commit(spec('us-west-2'));
  await first.controller.stop();
  const left = (await live('us-east-1')).filter((i) => east.includes(i));
  t.ok(left.length >= 2, `${left.length} of us-east-1's 3 machines left when the leader stopped`);
  const westBefore = await live('us-west-2');

  // A new leader knows only what Swarm stored.
  const second = lead();
  t.teardown(() => second.controller.stop());
  for (const v of await storeOf().list()) if (v.id === id) second.controller.apply(v);
  await until('every us-east-1 machine replaced', async () => second.controller.status(id)?.converged === true && (await live('us-east-1')).length === 0, 90_000).catch(
    async (error: unknown) => {
      t.comment(`us-east-1 still holds ${(await live('us-east-1')).join(', ')}; the new leader reports ${JSON.stringify(second.controller.status(id)?.instances.map((i) => i.id))}`);
      throw error;
    },
  );
  t.same(await live('us-east-1'), [], 'none of the group is left in us-east-1: not one machine orphaned');
  const west = await live('us-west-2');
  t.equal(west.length, 3, 'exactly 3 in us-west-2');
  t.ok(westBefore.every((i) => west.includes(i)), 'the first leader\'s new machines kept, not made again');
  t.same(second.controller.status(id)!.instances.map((i) => i.id).sort(), west, 'the new leader\'s members are exactly those');
});
