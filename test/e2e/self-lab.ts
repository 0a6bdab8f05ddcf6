// The self-managed lab (`swarm/lab.sh up --self-managed`) as the end-to-end tests see it: its manager machines (the
// group `managers`), each replica's API, `docker node ls` from a manager; and `settled`, the rest state of N managers.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { demuxLog } from '../support/lab.js';

export const run = promisify(execFile);
export const TOP = new URL('../..', import.meta.url).pathname;
export const GROUP = 'managers';

export interface Member {
  readonly id: string;
  readonly ip: string;
}
export interface Node {
  readonly id: string;
  readonly status: string;
  readonly reachability: string;
  readonly leader: boolean;
}

export class SelfLab {
  readonly dir = `/tmp/capstan-self-${randomBytes(3).toString('hex')}`;
  readonly env: NodeJS.ProcessEnv;
  readonly infra: Docker;

  constructor() {
    const x = 200 + (parseInt(this.dir.slice(-6), 16) % 50);
    this.env = { ...process.env, LAB: this.dir, LAB_NET: `10.${x}`, LAB_PREFIX: `s${this.dir.slice(-6)}`, LAB_HOW: '0' };
    this.infra = new Docker({ socketPath: `${this.dir}/infra/sock/docker.sock` });
  }

  lab(args: string[], timeout = 600_000) {
    return run(`${TOP}swarm/lab.sh`, args, { env: this.env, timeout, maxBuffer: 64 << 20 });
  }

  /** The managers group's running machines, oldest first. */
  async members(): Promise<Member[]> {
    const list = await this.infra.listContainers({ filters: { label: [`capstan.group=${GROUP}`], status: ['running'] } });
    return list
      .sort((a, b) => a.Created - b.Created)
      .map((c) => ({ id: c.Id, ip: Object.values(c.NetworkSettings.Networks)[0]?.IPAddress ?? '' }));
  }

  async rpc<T = any>(ip: string, method: string, params?: unknown, timeoutMs = 10_000): Promise<T> {
    const token = readFileSync(`${this.dir}/token`, 'utf8').trim();
    const res = await fetch(`http://${ip}:8640/rpc`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json()) as { result?: T; error?: { code: number; message: string; data?: unknown } };
    if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
    return body.result as T;
  }

  /** `docker node ls` as one manager machine sees it. */
  async nodes(from: Member): Promise<Node[]> {
    const exec = await this.infra.getContainer(from.id).exec({
      Cmd: ['docker', 'node', 'ls', '--format', '{{.ID}}|{{.Status}}|{{.ManagerStatus}}|{{.Hostname}}'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    const lines = demuxLog(Buffer.concat(chunks)).filter((l) => l.includes('|'));
    return lines.map((l) => {
      const [id, status, manager] = l.split('|');
      return { id: id!, status: status!, reachability: manager === 'Leader' ? 'Reachable' : manager!, leader: manager === 'Leader' };
    });
  }

  /** Asks every member until one answers. */
  async anyRpc<T = any>(method: string, params?: unknown): Promise<T> {
    let last: unknown;
    for (const m of await this.members()) {
      try {
        return await this.rpc<T>(m.ip, method, params);
      } catch (error) {
        last = error;
      }
    }
    throw last ?? new Error('no manager machine runs');
  }
}

/** `size` managers: that many machines, each a Ready and Reachable manager, each replica answering, one leading. */
export async function settled(lab: SelfLab, size: number): Promise<Member[] | undefined> {
  const members = await lab.members();
  if (members.length !== size) return undefined;
  const nodes = await lab.nodes(members[0]!).catch(() => []);
  const managers = nodes.filter((n) => n.reachability === 'Reachable' && n.status === 'Ready');
  if (managers.length !== size || nodes.some((n) => n.reachability !== '' && n.reachability !== 'Reachable')) return undefined;
  const statuses = await Promise.all(members.map((m) => lab.rpc<{ leading: boolean }>(m.ip, 'manager.status', undefined, 3000).catch(() => undefined)));
  if (statuses.some((s) => !s) || statuses.filter((s) => s!.leading).length !== 1) return undefined;
  const d = await lab.anyRpc<{ converged: boolean; instances: { id: string }[] }>('group.describe', { id: GROUP });
  return d.converged && d.instances.length === size ? members : undefined;
}
