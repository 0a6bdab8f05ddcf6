// The AWS SDK is paid for only when used (issue 14 item 1): a fresh Node process that loads the composition root
// (src/main.ts), builds its provider kinds, validates an aws spec and creates an aws provider has loaded no module
// of @aws-sdk; the provider's first call loads it, and works. Every module the child resolves is recorded by a
// module.registerHooks hook installed before anything else; that the same hook does see the SDK once it is loaded
// shows it would have seen it earlier. No engine, no AWS: the first call goes to a stand-in EC2 on loopback.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const src = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;

// The child: ESM, run by this same Node with the TypeScript loader tap gave this process (nothing else of tap's).
const child = `
import { registerHooks } from 'node:module';
import { createServer } from 'node:http';
const resolved = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); resolved.add(r.url); return r; } });
const sdkLoaded = () => [...resolved].filter((u) => u.includes('/@aws-sdk/') || u.includes('/@smithy/')).length;
const out = {};

// A stand-in EC2 on loopback: every DescribeInstances finds nothing.
const ec2 = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end('<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet/></DescribeInstancesResponse>');
  });
});
await new Promise((r) => ec2.listen(0, '127.0.0.1', r));
const endpoint = 'http://127.0.0.1:' + ec2.address().port;
process.env.CAPSTAN_ALLOW_ENDPOINTS = endpoint;

const { providerKinds } = await import(${JSON.stringify(src('main.ts'))});
const { operatorSettings } = await import(${JSON.stringify(src('settings.ts'))});
const { silentLogger } = await import(${JSON.stringify(src('log.ts'))});
const { validateSpec } = await import(${JSON.stringify(src('group/spec.ts'))});
const { vanillaFlavorKind } = await import(${JSON.stringify(src('flavors/vanilla.ts'))});
out.modulesAtStart = resolved.size;
out.sdkAtStart = sdkLoaded();

const kinds = providerKinds(operatorSettings(), silentLogger);
const plugins = { providers: new Map(kinds.map((k) => [k.name, k])), flavors: new Map([['vanilla', vanillaFlavorKind]]) };
const properties = { region: 'us-east-1', endpoint, subnetIds: ['subnet-0a1b2c3d'], launch: { ImageId: 'ami-12345678', InstanceType: 't3.micro' } };
const spec = validateSpec({ id: 'lazy', allocation: { size: 1 }, instance: { provider: 'aws', properties }, flavor: { kind: 'vanilla' } }, plugins);
const provider = plugins.providers.get('aws').create(spec.instance.properties);
out.maxBatch = provider.maxBatch;
out.sdkAfterCreate = sdkLoaded();

out.described = await provider.describe({ 'capstan.group': 'lazy' });
out.sdkAfterCall = sdkLoaded();
ec2.close();
console.log(JSON.stringify(out));
`;

function run(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    ...(process.env.TS_NODE_TRANSPILE_ONLY ? { TS_NODE_TRANSPILE_ONLY: process.env.TS_NODE_TRANSPILE_ONLY } : {}),
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    // No ~/.aws of whoever runs the tests.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...loader, '--no-warnings', '--input-type=module', '-e', child], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += String(d)));
    p.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('no @aws-sdk module until an aws provider makes its first call', async (t) => {
  const r = await run();
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  t.ok((out.modulesAtStart as number) > 100, `the composition root resolved ${String(out.modulesAtStart)} modules`);
  t.equal(out.sdkAtStart, 0, 'none of the SDK with the composition root loaded');
  t.equal(out.sdkAfterCreate, 0, 'none after an aws spec is validated and its provider created');
  t.equal(out.maxBatch, 100, 'the provider says its batch size without the SDK');
  t.same(out.described, [], 'the first call is answered');
  t.ok((out.sdkAfterCall as number) > 0, `the first call loaded the SDK (${String(out.sdkAfterCall)} modules)`);
});
