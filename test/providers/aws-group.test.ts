// The group controller driving the real aws provider against moto: converge, scale down, roll a config change.
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { configHash } from '../../src/group/identity.js';
import { validateSpec } from '../../src/group/spec.js';
import { silentLogger } from '../../src/log.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { awsProviderKind } from '../../src/providers/aws/index.js';
import type { Plugins } from '../../src/spi/index.js';
import { createSubnets, startMoto, useFakeCredentials } from '../support/moto.js';

useFakeCredentials();
const moto = await startMoto();
t.teardown(() => moto.stop());

const plugins: Plugins = { providers: new Map([['aws', awsProviderKind({ logger: silentLogger, allow: { endpoints: [moto.endpoint] } })]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
const subnetIds = await createSubnets(moto.endpoint, 2);

const spec = (size: number, instanceType: string) =>
  validateSpec(
    {
      id: 'workers',
      allocation: { size },
      instance: { provider: 'aws', properties: { region: 'us-east-1', endpoint: moto.endpoint, subnetIds, launch: { ImageId: 'ami-12345678', InstanceType: instanceType } } },
      flavor: { kind: 'vanilla', properties: { init: '#!/bin/sh\necho joined\n' } },
      update: { maxSurge: 2, maxUnavailable: 1, healthyFor: '0s' },
    },
    plugins,
  );

t.test('converges a size-10 group, scales it to 3, and rolls a config change', async (t) => {
  const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
  t.teardown(() => controller.stop());
  let version = 0;
  const converge = async (s: ReturnType<typeof spec>) => {
    controller.apply({ id: 'workers', version: ++version, createdAt: '', spec: s });
    let peak = 0;
    for (let pass = 1; pass <= 30; pass++) {
      const p = await controller.reconcile('workers');
      peak = Math.max(peak, controller.status('workers')!.instances.length);
      if (p?.converged) return { pass, peak };
    }
    throw new Error(`not converged: ${JSON.stringify(controller.status('workers'))}`);
  };

  const up = await converge(spec(10, 't3.micro'));
  t.ok(up.pass <= 3, `converged on pass ${up.pass}`);
  t.equal(controller.status('workers')!.instances.length, 10);

  await converge(spec(3, 't3.micro'));
  t.equal(controller.status('workers')!.instances.length, 3);

  const rolled = spec(3, 't3.small');
  const r = await converge(rolled);
  const st = controller.status('workers')!;
  t.equal(st.instances.length, 3);
  t.ok(st.instances.every((i) => i.config === configHash(rolled)), 'every instance on the new config');
  t.ok(r.peak <= 5, `never above size + maxSurge (peak ${r.peak})`);
});
