/**
 * The Swarm flavors `swarm-worker` and `swarm-manager` (schemas/swarm-flavor.json): a machine's init script labels
 * its engine with a link id and joins the Swarm; the link finds the Swarm node again for health, drain and cleanup.
 */
import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import type Docker from 'dockerode';
import { CapstanError } from '../errors.js';
import { durationMs } from '../group/quantity.js';
import { createLogger, type Logger } from '../log.js';
import { readSchema } from '../package.js';
import type { Duration, Flavor, FlavorKind, HealthReport, Instance, InstanceSpec, PrepareContext } from '../spi/index.js';

/** Instance tag holding the link id; the node's engine label INSTANCE_LABEL carries the same value. */
export const LINK_TAG = 'capstan.link';
export const INSTANCE_LABEL = 'capstan.instance';
/** Engine label with the group id, so orphan cleanup can stay within one group. */
export const GROUP_LABEL = 'capstan.group';
export const TEMPLATE_VARIABLES = ['JOIN_ADDR', 'LINK_ID', 'GROUP_ID', 'LOGICAL_ID', 'ROLE', 'CONFIG_HASH'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];
export type Role = 'worker' | 'manager';

export interface SwarmFlavorProperties {
  readonly managerAddr?: string;
  readonly advertiseAddr?: string;
  readonly before?: string;
  readonly after?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly joinAttempts?: number;
  readonly drainTimeout?: Duration;
}

/** The parts of a Swarm node (GET /nodes) the flavor reads. */
export interface SwarmNode {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: { readonly Role: Role; readonly Availability: 'active' | 'pause' | 'drain'; readonly [key: string]: unknown };
  readonly Description?: { readonly Hostname?: string; readonly Engine?: { readonly Labels?: Readonly<Record<string, string>> } };
  readonly Status: { readonly State: 'unknown' | 'down' | 'ready' | 'disconnected'; readonly Addr?: string };
  readonly ManagerStatus?: { readonly Leader?: boolean; readonly Reachability: 'unknown' | 'unreachable' | 'reachable'; readonly Addr: string };
}

export interface SwarmFlavorOptions {
  /** A client of a manager of the Swarm the machines join. */
  readonly docker: Docker;
  readonly logger?: Logger;
  /** How often drain and demotion poll (default 500 ms). */
  readonly pollMs?: number;
}

export const swarmFlavorSchema: object = readSchema('swarm-flavor.json');
const validateSchema = new Ajv({ allErrors: true, strict: false }).compile<SwarmFlavorProperties>(swarmFlavorSchema);
/** {{UPPER_CASE}} is a variable; any other {{...}}, such as a `docker --format` template, is left as it is. */
const VARIABLE = /\{\{([A-Z][A-Z0-9_]*)\}\}/g;
/** What may be substituted verbatim into a shell script. */
const SHELL_SAFE = /^[A-Za-z0-9._:@/+=,-]*$/;
const ACTIVE_TASK_STATES = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);
const JOIN_INFO_TTL_MS = 5_000;

/** `swarm-worker` and `swarm-manager`, sharing one Swarm client, join-token cache and membership lock. */
export function swarmFlavorKinds(options: SwarmFlavorOptions): FlavorKind[] {
  const swarm = swarmOf(options.docker, options.logger, options.pollMs);
  return (['worker', 'manager'] as const).map((role) => ({
    name: `swarm-${role}`,
    schema: swarmFlavorSchema,
    validate: (properties, allocation) => checkProperties(role, properties, allocation),
    create(properties: unknown): Flavor {
      const problems = checkProperties(role, properties, {});
      if (problems.length > 0) throw new CapstanError('invalidParams', `invalid swarm-${role} properties: ${problems.join('; ')}`, { problems });
      return new SwarmFlavor(swarm, role, properties as SwarmFlavorProperties);
    },
  }));
}

/** Schema, template variables, and for managers an odd member count; messages start with a JSON path. */
export function checkProperties(role: Role, properties: unknown, allocation: { size?: number; logicalIds?: readonly string[] }): string[] {
  if (!validateSchema(properties)) {
    return (validateSchema.errors ?? []).map((e) => {
      const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
      return `${e.instancePath || '/'}: ${e.message ?? e.keyword}${extra}`;
    });
  }
  const problems: string[] = [];
  for (const [path, text] of templated(properties)) {
    for (const [, name] of text.matchAll(VARIABLE)) {
      if (!(TEMPLATE_VARIABLES as readonly string[]).includes(name!)) {
        problems.push(`${path}: unknown template variable {{${name}}}; known: ${TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(' ')}`);
      }
    }
  }
  const usesLogicalId = templated(properties).some(([, text]) => text.includes('{{LOGICAL_ID}}'));
  allocation.logicalIds?.forEach((id, i) => {
    if (usesLogicalId && !SHELL_SAFE.test(id)) problems.push(`/allocation/logicalIds/${i}: {{LOGICAL_ID}} is used, so it may only hold letters, digits and . _ : @ / + = , -`);
  });
  if (role === 'manager') {
    const count = allocation.logicalIds?.length ?? allocation.size;
    const path = allocation.logicalIds ? '/allocation/logicalIds' : '/allocation/size';
    if (count !== undefined && count % 2 === 0) problems.push(`${path}: a swarm-manager group needs an odd number of managers for Raft quorum, not ${count}`);
  }
  return problems;
}

/** The templated properties, by JSON path. */
function templated(p: SwarmFlavorProperties): [string, string][] {
  const out: [string, string][] = [];
  if (p.before !== undefined) out.push(['/before', p.before]);
  if (p.after !== undefined) out.push(['/after', p.after]);
  for (const [key, value] of Object.entries(p.labels ?? {})) out.push([`/labels/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, value]);
  return out;
}

export interface ManagerView {
  readonly id: string;
  readonly reachable: boolean;
}

/**
 * Why removing `leaving` from the managers (demotion or removal) would lose Raft quorum, or undefined if it is safe:
 * the managers that remain must have a reachable majority, and at least one must remain.
 */
export function quorumRefusal(managers: readonly ManagerView[], leaving: string): string | undefined {
  const remaining = managers.filter((m) => m.id !== leaving);
  if (remaining.length === managers.length) return undefined;
  if (remaining.length === 0) return `node ${leaving} is the last manager`;
  const reachable = remaining.filter((m) => m.reachable).length;
  if (2 * reachable > remaining.length) return undefined;
  return `removing manager ${leaving} would leave ${reachable} reachable of ${remaining.length} managers, not a majority`;
}

/**
 * Health of an instance from the nodes linked to it: none yet is unknown; two live ones (joined twice), Down,
 * disconnected, not Active, or for a manager not a reachable manager, is unhealthy.
 */
export function assessNodes(nodes: readonly SwarmNode[], role: Role): HealthReport {
  if (nodes.length === 0) return { health: 'unknown' };
  const live = nodes.filter((n) => n.Status.State !== 'down');
  const node = live[0] ?? nodes[0]!;
  if (live.length !== 1) return { health: 'unhealthy', link: node.ID };
  if (node.Status.State === 'unknown') return { health: 'unknown', link: node.ID };
  const serving = node.Status.State === 'ready' && node.Spec.Availability === 'active';
  const member = role === 'worker' || (node.Spec.Role === 'manager' && node.ManagerStatus?.Reachability === 'reachable');
  return { health: serving && member ? 'healthy' : 'unhealthy', link: node.ID };
}

interface JoinInfo {
  readonly tokens: Record<Role, string>;
  /** Every manager a machine may join through, the leader first: the leader may be gone by the time it boots. */
  readonly addrs: readonly string[];
}

/** Everything the flavors do to the Swarm, through one manager's API. */
class Swarm {
  /** Demotions and removals of managers one at a time, each judged on a fresh node list. */
  private membership: Promise<unknown> = Promise.resolve();
  private joinInfo?: { at: number; value: Promise<JoinInfo> };

  constructor(
    readonly docker: Docker,
    readonly logger: Logger,
    readonly pollMs: number,
  ) {}

  async nodes(): Promise<SwarmNode[]> {
    return (await this.docker.listNodes()) as SwarmNode[];
  }

  /** Join tokens and the addresses of the Ready, reachable managers (the leader first); briefly cached for batches. */
  async join(): Promise<JoinInfo> {
    if (!this.joinInfo || Date.now() - this.joinInfo.at > JOIN_INFO_TTL_MS) {
      const value = this.readJoinInfo();
      this.joinInfo = { at: Date.now(), value };
      value.catch(() => (this.joinInfo = undefined));
    }
    return this.joinInfo.value;
  }

  private async readJoinInfo(): Promise<JoinInfo> {
    const [swarm, managers] = await Promise.all([
      this.docker.swarmInspect() as Promise<{ JoinTokens: { Worker: string; Manager: string } }>,
      this.docker.listNodes({ filters: JSON.stringify({ role: ['manager'] }) }) as Promise<SwarmNode[]>,
    ]);
    const candidates = managers
      .filter((n) => n.Status.State === 'ready' && n.ManagerStatus?.Reachability === 'reachable' && n.ManagerStatus.Addr)
      .sort((a, b) => Number(Boolean(b.ManagerStatus!.Leader)) - Number(Boolean(a.ManagerStatus!.Leader)));
    if (candidates.length === 0) throw new CapstanError('noLeader', 'no Ready, reachable manager to join');
    return { tokens: { worker: swarm.JoinTokens.Worker, manager: swarm.JoinTokens.Manager }, addrs: candidates.map((n) => n.ManagerStatus!.Addr) };
  }

  /** Runs `fn` after every earlier membership change has settled. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.membership.then(fn, fn);
    this.membership = run.catch(() => undefined);
    return run;
  }

  /** Demotes a manager unless that would lose quorum; waits (bounded) until it has left the Raft members. */
  demote(nodeId: string): Promise<void> {
    return this.exclusive(async () => {
      const managers = (await this.docker.listNodes({ filters: JSON.stringify({ role: ['manager'] }) })) as SwarmNode[];
      const refusal = quorumRefusal(
        managers.map((n) => ({ id: n.ID, reachable: n.ManagerStatus?.Reachability === 'reachable' })),
        nodeId,
      );
      if (refusal) throw new CapstanError('quorum', refusal, { node: nodeId });
      if (!managers.some((n) => n.ID === nodeId)) return;
      await this.update(nodeId, { Role: 'worker' });
      this.logger.info({ node: nodeId }, 'manager demoted');
      await this.poll('demotion', 30_000, async () => {
        const node = (await this.docker.getNode(nodeId).inspect()) as SwarmNode;
        return node.ManagerStatus === undefined;
      });
    });
  }

  /** Node spec changes on a fresh copy, retried when another update got in between (Docker: out of sequence). */
  async update(nodeId: string, change: Partial<SwarmNode['Spec']>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const node = (await this.docker.getNode(nodeId).inspect()) as SwarmNode;
      try {
        await this.docker.getNode(nodeId).update({ _query: { version: node.Version.Index }, _body: { ...node.Spec, ...change } });
        return;
      } catch (err) {
        if (attempt >= 5 || !/out of sequence/i.test(String((err as Error).message))) throw err;
      }
    }
  }

  async remove(nodeId: string): Promise<void> {
    try {
      await this.docker.getNode(nodeId).remove({ force: true });
      this.logger.info({ node: nodeId }, 'node removed');
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }

  /** Polls `done` until true or `timeoutMs` passes (then false); errors in between count as not done. */
  async poll(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await done().catch(() => false)) return true;
      if (Date.now() >= deadline) {
        this.logger.warn({ what, timeoutMs }, `gave up waiting for ${what}`);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }
}

class SwarmFlavor implements Flavor {
  private readonly drainTimeoutMs: number;

  constructor(
    private readonly swarm: Swarm,
    private readonly role: Role,
    private readonly properties: SwarmFlavorProperties,
  ) {
    this.drainTimeoutMs = durationMs(properties.drainTimeout ?? '60s');
  }

  /** Replaces the spec's init with the join script; a fresh link id goes into the script and the tags. */
  async prepare(spec: InstanceSpec, ctx: PrepareContext): Promise<InstanceSpec> {
    const { tokens, addrs: found } = await this.swarm.join();
    const link = randomUUID();
    const managerAddr = this.properties.managerAddr;
    const addrs = managerAddr === undefined ? found : [/:\d+$/.test(managerAddr) ? managerAddr : `${managerAddr}:2377`];
    const unsafe = addrs.find((a) => !SHELL_SAFE.test(a));
    if (unsafe !== undefined) throw new CapstanError('invalidParams', `manager address ${JSON.stringify(unsafe)} is not safe in a shell script`);
    const vars: Record<TemplateVariable, string> = {
      JOIN_ADDR: addrs[0]!,
      LINK_ID: link,
      GROUP_ID: ctx.groupId,
      LOGICAL_ID: ctx.logicalId ?? spec.logicalId ?? '',
      ROLE: this.role,
      CONFIG_HASH: ctx.configHash,
    };
    const used = new Set(templated(this.properties).flatMap(([, text]) => [...text.matchAll(VARIABLE)].map((m) => m[1]!)));
    for (const [name, value] of Object.entries(vars)) {
      if ((name !== 'LOGICAL_ID' || used.has(name)) && !SHELL_SAFE.test(value)) {
        throw new CapstanError('invalidParams', `{{${name}}} would be ${JSON.stringify(value)}, which is not safe in a shell script`);
      }
    }
    return { ...spec, tags: { ...spec.tags, [LINK_TAG]: link }, init: renderInit(this.role, this.properties, vars, tokens[this.role], addrs) };
  }

  async health(instances: readonly Instance[]): Promise<Map<string, HealthReport>> {
    const byLink = linked(await this.swarm.nodes());
    return new Map(instances.map((i) => [i.id, assessNodes(byLink.get(i.tags[LINK_TAG] ?? '') ?? [], this.role)]));
  }

  /**
   * Demotes a manager (refused if quorum would be lost), sets the node to drain and waits until no task of a
   * non-global service is active on it, at most drainTimeout; then returns either way, logging a timeout.
   */
  async drain(instance: Instance): Promise<void> {
    const nodes = linked(await this.swarm.nodes()).get(instance.tags[LINK_TAG] ?? '') ?? [];
    const node = nodes.find((n) => n.Status.State !== 'down');
    const log = this.swarm.logger.child({ instance: instance.id });
    if (!node) {
      log.info('no live Swarm node to drain');
      return;
    }
    if (node.Spec.Role === 'manager') await this.swarm.demote(node.ID);
    if (node.Spec.Availability !== 'drain') await this.swarm.update(node.ID, { Availability: 'drain' });
    log.info({ node: node.ID }, 'node draining');
    const moved = await this.swarm.poll(`tasks to leave node ${node.ID}`, this.drainTimeoutMs, async () => {
      const tasks = (await this.swarm.docker.listTasks({ filters: { node: [node.ID] } })) as { ServiceID: string; Status: { State: string } }[];
      const active = tasks.filter((t) => ACTIVE_TASK_STATES.has(t.Status.State));
      if (active.length === 0) return true;
      const services = await this.swarm.docker.listServices();
      const global = new Set(services.filter((s) => s.Spec?.Mode?.Global !== undefined || 'GlobalJob' in (s.Spec?.Mode ?? {})).map((s) => s.ID));
      return active.every((t) => global.has(t.ServiceID));
    });
    if (moved) log.info({ node: node.ID }, 'node drained');
  }

  /** Removes every node linked to the destroyed machine (demoting a manager first, if quorum allows). */
  async destroyed(instance: Instance): Promise<void> {
    const nodes = linked(await this.swarm.nodes()).get(instance.tags[LINK_TAG] ?? '') ?? [];
    for (const node of nodes) await removeNode(this.swarm, node);
  }

  /** Removes the group's Down nodes whose machines are gone, such as one removed behind Capstan's back. */
  async tidy(groupId: string, live: readonly Instance[]): Promise<void> {
    const links = new Set(live.map((i) => i.tags[LINK_TAG]).filter((l): l is string => l !== undefined));
    await removeOrphans(this.swarm, links, groupId);
  }
}

async function removeNode(swarm: Swarm, node: SwarmNode): Promise<void> {
  if (node.Spec.Role === 'manager' || node.ManagerStatus !== undefined) await swarm.demote(node.ID);
  await swarm.remove(node.ID);
}

/** Nodes by the link id in their engine label. */
function linked(nodes: readonly SwarmNode[]): Map<string, SwarmNode[]> {
  const out = new Map<string, SwarmNode[]>();
  for (const node of nodes) {
    const link = node.Description?.Engine?.Labels?.[INSTANCE_LABEL];
    if (link !== undefined) out.set(link, [...(out.get(link) ?? []), node]);
  }
  return out;
}

const swarms = new WeakMap<Docker, Swarm>();

/** One Swarm per client, so the flavors and the orphan cleanup share the membership lock (pass the same client). */
function swarmOf(docker: Docker, logger?: Logger, pollMs?: number): Swarm {
  let swarm = swarms.get(docker);
  if (!swarm) {
    swarm = new Swarm(docker, (logger ?? createLogger()).child({ flavor: 'swarm' }), pollMs ?? 500);
    swarms.set(docker, swarm);
  }
  return swarm;
}

/**
 * Removes Down nodes that Capstan's init linked to an instance (engine label capstan.instance) that is no longer
 * live, for the controller to call each pass. `liveLinks` must hold the capstan.link tag of every live instance of
 * `group` (or, without `group`, of every group). Managers are demoted first, unless that would lose quorum (then
 * skipped). Returns the removed node ids.
 */
/** Removes Down nodes of `group` whose link is not live. */
async function removeOrphans(swarm: Swarm, liveLinks: ReadonlySet<string>, group: string): Promise<void> {
  const orphans = (await swarm.nodes()).filter((n) => {
    const labels = n.Description?.Engine?.Labels ?? {};
    const link = labels[INSTANCE_LABEL];
    return n.Status.State === 'down' && link !== undefined && !liveLinks.has(link) && labels[GROUP_LABEL] === group;
  });
  for (const node of orphans) {
    try {
      await removeNode(swarm, node);
      swarm.logger.info({ event: 'node.removed', node: node.ID, reason: 'machine gone' }, 'removed the Down node of a vanished machine');
    } catch (err) {
      swarm.logger.warn({ node: node.ID, err: String(err) }, 'could not remove orphan node');
    }
  }
}

/** The machine's first-boot script: see the description in schemas/swarm-flavor.json. */
export function renderInit(role: Role, p: SwarmFlavorProperties, vars: Record<TemplateVariable, string>, token: string, addrs: readonly string[] = [vars.JOIN_ADDR]): string {
  const fill = (text: string): string => text.replace(VARIABLE, (_, name: string) => vars[name as TemplateVariable]);
  const labels = [`${INSTANCE_LABEL}=${vars.LINK_ID}`, `${GROUP_LABEL}=${vars.GROUP_ID}`, ...Object.entries(p.labels ?? {}).map(([k, v]) => `${k}=${fill(v)}`)];
  const advertise = p.advertiseAddr === undefined ? '' : ` --advertise-addr '${p.advertiseAddr}'`;
  return `#!/bin/sh
# Capstan swarm-${role} init, group ${vars.GROUP_ID}: label this engine with link ${vars.LINK_ID}, join the Swarm
# through ${addrs.join(', ')}. Runs once, at first boot. Never prints the join token.
log() { echo "[capstan-init $(date +%H:%M:%S)] $*"; }
fail() { log "ERROR: $*"; exit 1; }
nap() { sleep "$1" 2>/dev/null || sleep 1; }

n=0
until docker version >/dev/null 2>&1; do
  n=$((n + 1)); [ $n -ge 600 ] && fail "dockerd is not answering"; nap 0.2
done
${p.before === undefined ? '' : `\n# --- before (flavor properties) ---\n${fill(p.before)}\n# --- end of before ---\n`}
# Engine labels, so Capstan can tell which Swarm node this machine became; set before joining so the node has them.
labels='${labels.map((l) => `"${l}"`).join(',')}'
f=/etc/docker/daemon.json
mkdir -p /etc/docker
if [ ! -s "$f" ] || [ "$(tr -d ' \\t\\r\\n' <"$f")" = '{}' ]; then
  printf '{"labels":[%s]}\\n' "$labels" >"$f" || fail "cannot write $f"
elif grep -q '"labels"' "$f"; then
  fail "$f already sets labels; add ${INSTANCE_LABEL}=${vars.LINK_ID} there instead"
else
  awk -v l="$labels" '!done && sub(/\\{/, "{\\"labels\\":[" l "],") { done = 1 } { print }' "$f" >"$f.capstan" && mv "$f.capstan" "$f" || fail "cannot edit $f"
fi
if [ -s /var/run/docker.pid ]; then
  kill -HUP "$(cat /var/run/docker.pid)"
else
  systemctl reload docker
fi || fail "cannot reload dockerd"
n=0
until docker info --format '{{json .Labels}}' 2>/dev/null | grep -q '"${INSTANCE_LABEL}=${vars.LINK_ID}"'; do
  n=$((n + 1)); [ $n -ge 150 ] && fail "dockerd did not take the labels in $f"; nap 0.2
done
log "engine labelled ${INSTANCE_LABEL}=${vars.LINK_ID}"

state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
token='${token}'
# Each attempt tries the next manager: the one that was leader when this script was written may be gone.
set -- ${addrs.map((a) => `'${a}'`).join(' ')}
n=0
until [ "$(state)" = active ] || [ "$(state)" = pending ]; do
  n=$((n + 1)); [ $n -gt ${p.joinAttempts ?? 10} ] && fail "could not join the Swarm through $*"
  addr=$1; shift; set -- "$@" "$addr"
  if out=$(docker swarm join --token "$token"${advertise} "$addr" 2>&1); then
    log "$out"
  else
    log "join attempt $n through $addr failed: $out"; nap 3
  fi
done
unset token
log "joined the Swarm as a ${role}"
${p.after === undefined ? '' : `\n# --- after (flavor properties) ---\n${fill(p.after)}\n# --- end of after ---\n`}`;
}
