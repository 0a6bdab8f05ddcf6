/**
 * Scales an aws group 0 -> 200 -> 0 on moto through the controller and the aws provider, and compares the EC2 calls
 * with launching and terminating one instance per call.
 * Alone: `npx tsc -p tsconfig.json && node dist/bench/aws.js`.
 */
import { pathToFileURL } from 'node:url';
import { EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { silentLogger } from '../src/log.js';
import { providerCalls } from '../src/metrics.js';
import { awsProviderKind } from '../src/providers/aws/index.js';
import { vanillaFlavorKind } from '../src/flavors/vanilla.js';
import { Controller } from '../src/group/controller.js';
import { validateSpec } from '../src/group/spec.js';
import type { Plugins } from '../src/spi/index.js';
import { createSubnets, startMoto, useFakeCredentials } from '../test/support/moto.js';

const TOTAL = 200;

async function callsByOperation(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of (await providerCalls.get()).values) if (v.labels.provider === 'aws') out.set(String(v.labels.operation), v.value);
  return out;
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

export async function benchAws(): Promise<void> {
  useFakeCredentials();
  const moto = await startMoto();
  const ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint });
  try {
    const subnetIds = await createSubnets(moto.endpoint, 3);
    const plugins: Plugins = { providers: new Map([['aws', awsProviderKind({ logger: silentLogger, allow: { endpoints: [moto.endpoint] } })]]), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
    const properties = { region: 'us-east-1', endpoint: moto.endpoint, subnetIds, launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } };
    const controller = new Controller({ plugins, logger: silentLogger, intervalMs: 3_600_000, busyMs: 3_600_000 });
    let version = 0;
    /** Commits the size and runs passes until the group has converged; returns the passes it took. */
    const scaleTo = async (size: number): Promise<number> => {
      const spec = validateSpec({ id: 'bench', allocation: { size }, instance: { provider: 'aws', properties }, flavor: { kind: 'vanilla', properties: { init: '#!/bin/sh\necho bench\n' } }, update: { healthyFor: '0s' } }, plugins);
      controller.apply({ id: 'bench', version: ++version, createdAt: '', spec });
      for (let pass = 1; ; pass++) if ((await controller.reconcile('bench'))?.converged) return pass;
    };

    const beforeProvision = await callsByOperation();
    let upPasses = 0;
    const provisionMs = await timed(async () => (upPasses = await scaleTo(TOTAL)));
    const afterProvision = await callsByOperation();
    const found = controller.status('bench')!.instances.length;
    const beforeDestroy = await callsByOperation();
    let downPasses = 0;
    const destroyMs = await timed(async () => (downPasses = await scaleTo(0)));
    const afterDestroy = await callsByOperation();
    const left = controller.status('bench')!.instances.length;
    controller.stop();

    // The naive way on the same moto, bypassing the provider: one instance per call.
    const naiveIds: string[] = [];
    const naiveProvisionMs = await timed(async () => {
      for (let n = 0; n < TOTAL; n++) {
        const out = await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12345678', MinCount: 1, MaxCount: 1, SubnetId: subnetIds[n % 3] }));
        naiveIds.push(out.Instances![0]!.InstanceId!);
      }
    });
    const naiveDestroyMs = await timed(async () => {
      for (const id of naiveIds) await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    });

    const delta = (from: Map<string, number>, to: Map<string, number>, op: string): number => (to.get(op) ?? 0) - (from.get(op) ?? 0);
    const rows: string[][] = [...afterDestroy.keys()].sort().map((op) => {
      const provision = delta(beforeProvision, afterProvision, op);
      const destroy = delta(beforeDestroy, afterDestroy, op);
      const naive = op === 'RunInstances' || op === 'TerminateInstances' ? String(TOTAL) : '0';
      return [op, String(provision), String(destroy), String(provision + destroy), naive];
    }).filter((row) => row[3] !== '0' || row[4] !== '0');
    const sum = (col: number): string => String(rows.reduce((n, r) => n + Number(r[col]), 0));
    rows.push(['total EC2 calls', sum(1), sum(2), sum(3), sum(4)]);
    rows.push(['wall time (ms)', provisionMs.toFixed(0), destroyMs.toFixed(0), (provisionMs + destroyMs).toFixed(0), (naiveProvisionMs + naiveDestroyMs).toFixed(0)]);
    console.log(`\naws group on moto, controller and provider: size 0 -> ${TOTAL} -> 0 over ${subnetIds.length} subnets`);
    console.log(`instances after scale-up: ${found} (${upPasses} passes), after scale-down: ${left} (${downPasses} passes)`);
    printTable(['', '0 -> 200', '200 -> 0', 'capstan', 'one per instance'], rows);
  } finally {
    ec2.destroy();
    await moto.stop();
  }
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await benchAws();
