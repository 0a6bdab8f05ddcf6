/**
 * A moto_server of the tests' own on a free loopback port, and a fault-injecting proxy to put
 * in front of it. Nothing here talks to AWS.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { CreateSubnetCommand, CreateVpcCommand, EC2Client } from '@aws-sdk/client-ec2';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Moto {
  readonly endpoint: string;
  /** Forgets every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Fake credentials for the SDK's default chain; moto accepts any. */
export function useFakeCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID = 'testing';
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  process.env.AWS_SESSION_TOKEN = 'testing';
  process.env.AWS_REGION = 'us-east-1';
  delete process.env.AWS_PROFILE;
}

function motoCommand(): string[] {
  const which = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' });
  const path = which.stdout.trim();
  if (which.status === 0 && path) return [path];
  const module = spawnSync('python3', ['-c', 'import moto.server'], { encoding: 'utf8' });
  if (module.status === 0) return ['python3', '-m', 'moto.server'];
  throw new Error(
    'moto_server is not installed: neither `moto_server` on PATH nor `python3 -m moto.server` works. ' +
      'Install it with `pip install "moto[server]"` to run the aws provider tests.',
  );
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startMoto(): Promise<Moto> {
  const [command, ...args] = motoCommand();
  const port = await freePort();
  const child = spawn(command!, [...args, '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/data.json`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    endpoint,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset failed: ${res.status}`);
    },
    stop: async () => {
      await stopChild(child);
      // moto answers its own crashes with an HTML 500: MOTO_DEBUG=1 shows the Python traceback.
      if (process.env.MOTO_DEBUG) console.error(stderr);
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export type Fault = 'throttle' | 'unavailable';

export interface FaultProxy {
  readonly endpoint: string;
  /** Faults answered so far, by EC2 action. */
  readonly injected: Map<string, number>;
  /** Share of calls answered with a fault, 0 to 1; change it at any time. */
  rate: number;
  stop(): Promise<void>;
}

/**
 * Forwards EC2 calls to `target`, but answers a share of them itself, without forwarding, with
 * RequestLimitExceeded (HTTP 400, EC2's XML error body) or 503. Seeded, so runs repeat.
 */
export interface FaultOptions {
  readonly rate: number;
  readonly faults: readonly Fault[];
  readonly seed?: number;
  /** The first this many calls of each action get a fault, whatever the rate. */
  readonly failFirst?: number;
  /** Answers chosen calls with an EC2 error of this code (HTTP 400), whatever the rate. */
  readonly refuse?: (params: URLSearchParams) => string | undefined;
}

export async function startFaultProxy(target: string, options: FaultOptions): Promise<FaultProxy> {
  const upstream = new URL(target);
  let seed = options.seed ?? 42;
  const random = (): number => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const injected = new Map<string, number>();
  const seen = new Map<string, number>();
  const proxy: FaultProxy = { endpoint: '', injected, rate: options.rate, stop: async () => {} };

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const params = new URLSearchParams(body.toString());
    const action = params.get('Action') ?? 'unknown';
    const refused = options.refuse?.(params);
    const nth = (seen.get(action) ?? 0) + 1;
    seen.set(action, nth);
    const unlucky = nth <= (options.failFirst ?? 0) || random() < proxy.rate;
    const fault = refused === undefined && unlucky ? options.faults[nth % options.faults.length]! : undefined;
    if (refused !== undefined || fault !== undefined) {
      injected.set(action, (injected.get(action) ?? 0) + 1);
      const [status, code] = refused !== undefined ? [400, refused] : fault === 'throttle' ? [400, 'RequestLimitExceeded'] : [503, 'Unavailable'];
      res.writeHead(status, { 'content-type': 'text/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code>` +
          `<Message>injected ${code}</Message></Error></Errors><RequestID>fault-${Date.now()}</RequestID></Response>`,
      );
      return;
    }
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    forward.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** A VPC 10.0.0.0/16 with `count` subnets 10.0.N.0/24, one per availability zone of `region`; their ids. */
export async function createSubnets(endpoint: string, count: number, region = 'us-east-1'): Promise<string[]> {
  const ec2 = new EC2Client({ region, endpoint });
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }));
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const subnet = await ec2.send(
      new CreateSubnetCommand({ VpcId: vpc.Vpc!.VpcId!, CidrBlock: `10.0.${n + 1}.0/24`, AvailabilityZone: `${region}${'abcdef'[n]}` }),
    );
    ids.push(subnet.Subnet!.SubnetId!);
  }
  ec2.destroy();
  return ids;
}

/** The usual setup of a test file: fake credentials, one moto for the file, reset before each test, an EC2 client. */
export async function motoForTests(): Promise<{ moto: Moto; ec2: EC2Client }> {
  const { default: t } = await import('tap');
  useFakeCredentials();
  const moto = await startMoto();
  t.teardown(() => moto.stop());
  t.beforeEach(() => moto.reset());
  const ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint });
  t.teardown(() => ec2.destroy());
  return { moto, ec2 };
}
