/**
 * Provisions 200 instances through the aws provider on moto, in batches, then destroys them all,
 * and compares the EC2 calls with launching and terminating one instance per call.
 * Alone: `npx tsc -p tsconfig.json && node dist/bench/aws.js`.
 */
import { pathToFileURL } from 'node:url';
import { EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { silentLogger } from '../src/log.js';
import { providerCalls } from '../src/metrics.js';
import { awsProviderKind } from '../src/providers/aws/index.js';
import type { InstanceSpec } from '../src/spi/instance.js';
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
    const aws = awsProviderKind({ logger: silentLogger }).create({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      subnetIds,
      launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' },
    });
    const spec: InstanceSpec = { tags: { 'capstan.group': 'bench', 'capstan.config': 'c1' }, init: '#!/bin/sh\necho bench\n' };

    const beforeProvision = await callsByOperation();
    const ids: string[] = [];
    const provisionMs = await timed(async () => {
      for (let batch = 0; ids.length < TOTAL; batch++) {
        const size = Math.min(aws.maxBatch, TOTAL - ids.length);
        const launched = await aws.provision(Array.from({ length: size }, () => spec), `bench-${batch}`);
        ids.push(...launched.map((i) => i.id));
      }
    });
    const afterProvision = await callsByOperation();
    const found = (await aws.describe({ 'capstan.group': 'bench' })).length;
    const beforeDestroy = await callsByOperation();
    const destroyMs = await timed(() => aws.destroy(ids));
    const afterDestroy = await callsByOperation();
    const left = (await aws.describe({ 'capstan.group': 'bench' })).length;

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
    console.log(`\naws provider on moto: ${TOTAL} instances in batches of ${aws.maxBatch} over ${subnetIds.length} subnets, then destroyed`);
    console.log(`described after provision: ${found}, after destroy: ${left}`);
    printTable(['', 'provision', 'destroy', 'capstan', 'one per instance'], rows);
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
