// Moving a group to another region is a rolling update: new machines in the new region within maxSurge and
// maxUnavailable, old ones destroyed through a provider of their own region; nothing orphaned, also across a new leader.
import t from 'tap';
import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { Controller } from '../../src/group/controller.js';
import { GroupService } from '../../src/group/service.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { MemoryStore } from '../support/memory-store.js';
import { createSubnets, startMoto, useFakeCredentials } from '../support/moto.js';

useFakeCredentials();
const moto = await startMoto();
t.teardown(() => moto.stop());

const plugins: Plugins = { providers: new Map([['aws', awsProviderKind({ logger: silentLogger, allow: { endpoints: [moto.endpoint] } })]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
const validate = (raw: unknown) => validateSpec(raw, plugins);
const subnets: Record<string, string[]> = { 'us-east-1': await createSubnets(moto.endpoint, 1), 'eu-west-1': await createSubnets(moto.endpoint, 1, 'eu-west-1') };
const spec = (region: string) =>
  validate({
    id: 'workers',
    allocation: { size: 4 },
    instance: { provider: 'aws', properties: { region, endpoint: moto.endpoint, subnetIds: subnets[region], launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } } },
    flavor: { kind: 'vanilla', properties: {} },
    update: { maxSurge: 1, maxUnavailable: 1, healthyFor: '0s' },
  });

/** Live instances of the group in one region, read with the SDK directly. */
async function live(region: string): Promise<string[]> {
  const ec2 = new EC2Client({ region, endpoint: moto.endpoint });
  const out = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'tag:capstan.group', Values: ['workers'] }, { Name: 'instance-state-name', Values: ['pending', 'running'] }] }),
  );
  return (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map((i) => i.InstanceId!)).sort();
}

t.test('a change of region replaces every machine in a rolling update, through each region\'s own provider', async (t) => {
  const store = new MemoryStore();
  const lead = () => {
    const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
    return { controller, service: new GroupService({ store, controller, validate, logger: silentLogger }) };
  };
  const term1 = lead();
  await term1.service.commit(spec('us-east-1'));
  for (let i = 0; i < 5 && !(await term1.controller.reconcile('workers'))?.converged; i++);
  const east = await live('us-east-1');
  t.equal(east.length, 4);

  await term1.service.commit(spec('eu-west-1'));
  // One pass with the first leader, then a new leader (a failover) carries on from what the store says.
  await term1.controller.reconcile('workers');
  await term1.controller.stop();
  const term2 = lead();
  t.teardown(() => term2.controller.stop());
  for (const v of await store.list()) term2.controller.apply(v);
  let converged = false;
  for (let pass = 0; pass < 30 && !converged; pass++) {
    converged = (await term2.controller.reconcile('workers'))?.converged === true;
    const e = await live('us-east-1');
    const w = await live('eu-west-1');
    t.ok(e.length + w.length <= 5, `never above size + maxSurge (${e.length} + ${w.length})`);
    t.ok(e.every((id) => east.includes(id)), 'the old region only loses machines');
  }
  t.ok(converged, 'converged');
  t.same(await live('us-east-1'), [], 'no machine left behind in the old region');
  t.equal((await live('eu-west-1')).length, 4, 'the size in the new region');
});
