// End-to-end tests' handle on a lab of their own (swarm/lab.sh): unique state dir, netns/interface prefix and
// subnet, so that it cannot collide with a developer's lab (default /tmp/capstan-lab, prefix clab, 10.77/16).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);
// From test/support, or from dist/test/support when a compiled benchmark (bench/warm-lab.ts) uses a lab.
const script = ['../../swarm/lab.sh', '../../../swarm/lab.sh'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p))!;

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
  CreatedAt?: string;
  Spec: { Role: string; Availability: string };
  Description?: { Hostname?: string; Engine?: { Labels?: Record<string, string> } };
  Status: { State: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}

export interface Machine {
  id: string;
  state: string;
  labels: Record<string, string>;
  /** Creation time, epoch ms (the docker provider's launchedAt). */
  created: number;
}

/** One line of a Capstan replica's pino log, with where it came from. */
export interface LogEvent {
  readonly node: string;
  readonly container: string;
  readonly time?: number;
  readonly event?: string;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

/** The lines of a non-TTY container log: frames of an 8-byte header (stream, 0, 0, 0, size uint32 BE) and payload. */
export function demuxLog(buf: Buffer): string[] {
  const chunks: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const size = buf.readUInt32BE(at + 4);
    chunks.push(buf.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(chunks).toString('utf8').split('\n');
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
  /** Managers whose dockerd this lab killed and did not start again. */
  readonly killed = new Set<string>();
  private preferred: string | undefined;
  private readonly clients = new Map<string, Docker>();

  private constructor(
    readonly size: number,
    at?: { dir: string; prefix: string; net: string },
  ) {
    this.managers = Array.from({ length: size }, (_, k) => `n${k + 1}`);
    if (at) {
      ({ dir: this.dir, prefix: this.prefix, net: this.net } = at);
      return;
    }
    const id = randomBytes(3).toString('hex');
    this.dir = `/tmp/capstan-e2e-${id}`;
    this.prefix = `e${id}`;
    // A 10.x/16 no route of this host uses yet (another lab, a developer's, a VPN), starting at a random x.
    const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
    const start = parseInt(id, 16) % 100;
    const x = Array.from({ length: 100 }, (_, k) => 100 + ((start + k) % 100)).find((k) => !routes.includes(`10.${k}.`));
    if (x === undefined) throw new Error('no free 10.100-199.0.0/16 for a lab');
    this.net = `10.${x}`;
  }

  /**
   * A lab that is already up (`swarm/lab.sh up` with LAB=dir), for iterating on scenarios without waiting for a
   * new lab each run; the caller neither owns nor tears it down.
   */
  static attach(dir: string): Lab {
    const env = Object.fromEntries(
      readFileSync(`${dir}/lab.env`, 'utf8')
        .split('\n')
        .map((l) => /^(\w+)=(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[2]!.replace(/^'(.*)'$/, '$1')]),
    );
    return new Lab(Number(env.LAB_MANAGERS ?? 3), { dir, prefix: env.LAB_PREFIX ?? 'clab', net: env.LAB_NET ?? '10.77' });
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

  /**
   * The first answer among the given nodes (default: the managers that are up); for calls any replica forwards.
   * An error answer is an answer and is thrown at once (a retry elsewhere could hide it), except `no leader`
   * (-32005, an election); an unreachable replica is skipped.
   */
  async rpcAny<T = any>(method: string, params?: unknown, nodes = this.alive()): Promise<T> {
    let last: unknown;
    for (const n of nodes) {
      try {
        return await this.rpc<T>(method, params, n, 10_000);
      } catch (error) {
        if (error instanceof RpcError && error.code !== -32005) throw error;
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

  /**
   * GET /nodes, hedged: asks the manager that answered last first, and each further one of `from` (default: the
   * managers that are up) 400 ms later while none has answered; the first answer wins. A manager whose dockerd just
   * restarted can block for the whole 5 s timeout, which would leave a gap in a watcher's samples.
   */
  async nodes(from = this.alive()): Promise<LabNode[]> {
    const order = this.preferred && from.includes(this.preferred) ? [this.preferred, ...from.filter((n) => n !== this.preferred)] : from;
    if (!order.length) throw new Error('no manager to ask');
    return new Promise<LabNode[]>((resolve, reject) => {
      let done = false;
      let failed = 0;
      const ask = (n: string) => {
        if (done) return;
        this.docker(n)
          .listNodes()
          .then(
            (nodes) => {
              if (done) return;
              done = true;
              this.preferred = n;
              resolve(nodes as LabNode[]);
            },
            (error: unknown) => {
              if (++failed === order.length && !done) {
                done = true;
                reject(error instanceof Error ? error : new Error(String(error)));
              }
            },
          );
      };
      order.forEach((n, i) => (i === 0 ? ask(n) : setTimeout(() => ask(n), 400 * i)));
    });
  }

  /** The Swarm nodes of a group (their engine carries the flavor's capstan.group label). */
  async groupNodes(group: string, from = this.alive()): Promise<LabNode[]> {
    return (await this.nodes(from)).filter((n) => n.Description?.Engine?.Labels?.['capstan.group'] === group);
  }

  /** A group's machines: containers on the infrastructure engine. */
  async machines(group: string): Promise<Machine[]> {
    const list = await this.docker('infra').listContainers({ all: true, filters: { label: [`capstan.group=${group}`] } });
    return list.map((c) => ({ id: c.Id, state: c.State, labels: c.Labels, created: c.Created * 1000 }));
  }

  /** The managers whose dockerd is running. */
  alive(): string[] {
    return this.managers.filter((n) => !this.killed.has(n));
  }

  /**
   * Every line Capstan's replicas logged since `sinceMs` on the managers that are up, from every Capstan container
   * there (stopped ones too: a replica whose dockerd was killed and restarted left its log in its old container).
   */
  async capstanLog(sinceMs: number, nodes = this.alive()): Promise<LogEvent[]> {
    const out: LogEvent[] = [];
    for (const node of nodes) {
      const docker = this.docker(node);
      const list = await docker.listContainers({ all: true, filters: { label: ['com.docker.swarm.service.name=capstan_capstan'] } });
      for (const c of list) {
        const buf = (await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, follow: false, since: Math.floor(sinceMs / 1000) })) as unknown as Buffer;
        for (const line of demuxLog(buf)) {
          if (!line.startsWith('{')) continue;
          try {
            const e = JSON.parse(line) as Record<string, unknown>;
            if (typeof e.time === 'number' && e.time < sinceMs) continue;
            out.push({ ...e, node, container: c.Id.slice(0, 12) });
          } catch {
            // not one of pino's lines
          }
        }
      }
    }
    return out.sort((a, b) => (a.time ?? 0) - (b.time ?? 0));
  }

  /** Name (n1..) of the manager Swarm names leader, asking only `from`. */
  async swarmLeader(from = this.alive()): Promise<string | undefined> {
    const nodes = await this.nodes(from);
    const leader = nodes.find((n) => n.ManagerStatus?.Leader);
    return leader?.Description?.Hostname;
  }

  async kill(node: string, signal = 'KILL'): Promise<void> {
    await this.sh(['kill', node, signal]);
    if (signal === 'KILL') this.killed.add(node);
  }

  async start(node: string): Promise<void> {
    await this.clearStalePidFile(node);
    await this.sh(['start', node]);
    this.killed.delete(node);
  }

  /**
   * A killed dockerd stays a zombie until whoever inherited it reaps it (pid 1 here, which can take seconds), and
   * until then dockerd refuses to start over its pid file ("pid file found, ensure docker is not running"). Waits a
   * little for the reaping, then removes the pid file if it still names a dead process or one that is not this
   * node's dockerd.
   */
  private async clearStalePidFile(node: string): Promise<void> {
    const file = `${this.dir}/${node}/docker.pid`;
    const stale = () => {
      let pid: string;
      try {
        pid = readFileSync(file, 'utf8').trim();
      } catch {
        return false;
      }
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return state === 'Z' || state === 'X' || !cmdline.includes(`${this.dir}/${node}/`);
      } catch {
        return false; // no such process: dockerd overwrites the file itself
      }
    };
    for (let i = 0; i < 20 && stale(); i++) await sleep(250);
    if (stale()) rmSync(file, { force: true });
  }

  /** The Capstan task container on a manager. */
  async replica(node: string): Promise<Docker.ContainerInfo | undefined> {
    const list = await this.docker(node).listContainers({ filters: { label: ['com.docker.swarm.service.name=capstan_capstan'] } });
    return list[0];
  }

  /** Capstan's Swarm tasks, newest first, one line each (node, desired, state, error), as a leader reports them. */
  async replicaTasks(from = this.alive()): Promise<string[]> {
    const nodes = await this.nodes(from);
    const names = new Map(nodes.map((n) => [n.ID, n.Description?.Hostname ?? n.ID]));
    const tasks = await this.docker(from[0]).listTasks({ filters: { service: ['capstan_capstan'] } });
    return tasks
      .sort((a, b) => String(b.CreatedAt).localeCompare(String(a.CreatedAt)))
      .map((k) => `${names.get(k.NodeID) ?? k.NodeID} ${k.DesiredState} ${k.Status?.State} since ${k.Status?.Timestamp} ${k.Status?.Err ?? ''}`);
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
