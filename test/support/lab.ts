// End-to-end tests' handle on a lab of their own (swarm/lab.sh): unique state dir, netns/interface prefix and
// subnet, so that it cannot collide with a developer's lab (default /tmp/capstan-lab, prefix clab, 10.77/16).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../swarm/lab.sh', import.meta.url));

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls fn until it returns something other than undefined/false; throws with the last value seen on timeout. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

/** What the tests read of a Swarm node (GET /nodes). */
export interface LabNode {
  ID: string;
  Spec: { Role: string; Availability: string };
  Description?: { Hostname?: string; Engine?: { Labels?: Record<string, string> } };
  Status: { State: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}

export interface Machine {
  id: string;
  state: string;
  labels: Record<string, string>;
}

export class RpcError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export class Lab {
  readonly dir: string;
  readonly prefix: string;
  readonly net: string;
  readonly managers: string[];
  private readonly clients = new Map<string, Docker>();

  private constructor(readonly size: number) {
    const id = randomBytes(3).toString('hex');
    this.dir = `/tmp/capstan-e2e-${id}`;
    this.prefix = `e${id}`;
    // A 10.x/16 no route of this host uses yet (another lab, a developer's, a VPN), starting at a random x.
    const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
    const start = parseInt(id, 16) % 100;
    const x = Array.from({ length: 100 }, (_, k) => 100 + ((start + k) % 100)).find((k) => !routes.includes(`10.${k}.`));
    if (x === undefined) throw new Error('no free 10.100-199.0.0/16 for a lab');
    this.net = `10.${x}`;
    this.managers = Array.from({ length: size }, (_, k) => `n${k + 1}`);
  }

  /** Brings up a lab of `managers` managers with Capstan deployed; tears it down again if that fails. */
  static async up(managers = 3, log: (line: string) => void = () => {}): Promise<Lab> {
    const lab = new Lab(managers);
    log(`lab ${lab.dir} prefix ${lab.prefix} net ${lab.net}.0.0/16`);
    try {
      await lab.sh(['up', String(managers)], 600_000);
    } catch (error) {
      await lab.down().catch(() => undefined);
      throw error;
    }
    return lab;
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, LAB: this.dir, LAB_PREFIX: this.prefix, LAB_NET: this.net, KEEP_ON_FAIL: '0' };
  }

  /** Runs swarm/lab.sh with this lab's environment; stdout. */
  async sh(args: string[], timeoutMs = 120_000): Promise<string> {
    try {
      const { stdout } = await run('bash', [script, ...args], { env: this.env(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
      return stdout;
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`lab.sh ${args.join(' ')} failed: ${e.message}\n${(e.stderr ?? '').split('\n').slice(-30).join('\n')}`);
    }
  }

  async down(): Promise<void> {
    await this.sh(['down'], 300_000);
  }

  /** For signal handlers, where nothing asynchronous runs any more. */
  downSync(): void {
    execFileSync('bash', [script, 'down'], { env: this.env(), stdio: 'inherit', timeout: 300_000 });
  }

  addr(node: string): string {
    if (node === 'infra') return `${this.net}.0.2`;
    return `${this.net}.0.${10 + Number(node.slice(1))}`;
  }

  socket(node: string): string {
    return `${this.dir}/${node}/sock/docker.sock`;
  }

  /** A dockerode client of a node's engine; every call times out (calls block during a Raft election). */
  docker(node: string): Docker {
    let c = this.clients.get(node);
    if (!c) {
      c = new Docker({ socketPath: this.socket(node), timeout: 5000 });
      this.clients.set(node, c);
    }
    return c;
  }

  token(): string {
    return readFileSync(`${this.dir}/token`, 'utf8').trim();
  }

  /** One JSON-RPC call to a node's replica (straight from the host, over the lab's host veth). */
  async rpc<T = any>(method: string, params?: unknown, node = 'n1', timeoutMs = 35_000): Promise<T> {
    const res = await fetch(`http://${this.addr(node)}:8640/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token()}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json()) as { result?: T; error?: { code: number; message: string; data?: unknown } };
    if (body.error) throw new RpcError(`${method} on ${node}: ${body.error.message}`, body.error.code, body.error.data);
    return body.result as T;
  }

  /** The first answer among the given nodes (default: every manager); for calls any replica forwards. */
  async rpcAny<T = any>(method: string, params?: unknown, nodes = this.managers): Promise<T> {
    let last: unknown;
    for (const n of nodes) {
      try {
        return await this.rpc<T>(method, params, n, 10_000);
      } catch (error) {
        last = error;
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }

  async metrics(node: string): Promise<string> {
    const res = await fetch(`http://${this.addr(node)}:8640/metrics`, { signal: AbortSignal.timeout(5000) });
    return res.text();
  }

  /** Sum of a Prometheus counter's samples whose labels include every given label="value". */
  static metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /** GET /nodes from the first of `from` (default: every manager) that answers. */
  async nodes(from = this.managers): Promise<LabNode[]> {
    let last: unknown;
    for (const n of from) {
      try {
        return (await this.docker(n).listNodes()) as LabNode[];
      } catch (error) {
        last = error;
      }
    }
    throw last instanceof Error ? last : new Error(String(last));
  }

  /** The Swarm nodes of a group (their engine carries the flavor's capstan.group label). */
  async groupNodes(group: string, from = this.managers): Promise<LabNode[]> {
    return (await this.nodes(from)).filter((n) => n.Description?.Engine?.Labels?.['capstan.group'] === group);
  }

  /** A group's machines: containers on the infrastructure engine. */
  async machines(group: string): Promise<Machine[]> {
    const list = await this.docker('infra').listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
    return list.map((c) => ({ id: c.Id, state: c.State, labels: c.Labels }));
  }

  /** Name (n1..) of the manager Swarm names leader, asking only `from`. */
  async swarmLeader(from = this.managers): Promise<string | undefined> {
    const nodes = await this.nodes(from);
    const leader = nodes.find((n) => n.ManagerStatus?.Leader);
    return leader?.Description?.Hostname;
  }

  async kill(node: string, signal = 'KILL'): Promise<void> {
    await this.sh(['kill', node, signal]);
  }

  async start(node: string): Promise<void> {
    await this.sh(['start', node]);
  }

  /** The Capstan task container on a manager. */
  async replica(node: string): Promise<Docker.ContainerInfo | undefined> {
    const list = await this.docker(node).listContainers({ filters: { label: ['com.docker.swarm.service.name=capstan_capstan'] } });
    return list[0];
  }

  /** Resident set size of a node's Capstan process in MiB (the lab's dockerd share the host's PID namespace). */
  async replicaRssMiB(node: string): Promise<number | undefined> {
    const c = await this.replica(node);
    if (!c) return undefined;
    const pid = (await this.docker(node).getContainer(c.Id).inspect()).State.Pid;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : undefined;
  }
}
