/**
 * The Swarm flavors `swarm-worker` and `swarm-manager` (schemas/swarm-flavor.json): a machine's init script labels
 * its engine with a link id and joins the Swarm; the link finds the Swarm node again for health, drain and cleanup.
 */
import { randomUUID } from 'node:crypto';
import type Docker from 'dockerode';
import { CapstanError } from '../errors.js';
import { durationMs } from '../spi/quantity.js';
import type { Logger } from '../log.js';
import { readSchema } from '../package.js';
import { problemsOf, problemText, validator } from '../schema.js';
import type { Duration, Flavor, FlavorKind, HealthReport, Instance, InstanceSpec, InstanceState, MachineLabels, PrepareContext } from '../spi/index.js';
import { GROUP_LABEL, LINK_TAG, linked, swarmOf, type Role, type Swarm, type SwarmNode } from './swarm-api.js';
import { renderInit, SHELL_SAFE, templated, TEMPLATE_VARIABLES, VARIABLE, type InitProperties, type TemplateVariable } from './swarm-init.js';
import { GHOST_AFTER_MS, tidyNodes } from './swarm-tidy.js';

export { GROUP_LABEL, INSTANCE_LABEL, LINK_TAG, quorumRefusal, type ManagerView, type Role, type SwarmNode } from './swarm-api.js';
export { renderInit, TEMPLATE_VARIABLES, type TemplateVariable } from './swarm-init.js';
export { joiningLaunches, staleNodes, type StaleReason, type StaleView } from './swarm-tidy.js';

export interface SwarmFlavorProperties extends InitProperties {
  readonly managerAddr?: string;
  /** Node labels (constraint node.labels.X) Capstan puts on each machine's node once it has joined. */
  readonly nodeLabels?: Readonly<Record<string, string>>;
  readonly drainTimeout?: Duration;
}

export interface SwarmFlavorOptions {
  /** A client of a manager of the Swarm the machines join. */
  readonly docker: Docker;
  readonly logger?: Logger;
  /** How often drain and demotion poll (default 500 ms). */
  readonly pollMs?: number;
  /** How old a node left by an interrupted join must be before tidy removes it (default 5 min; see swarm-tidy.ts). */
  readonly ghostAfterMs?: number;
}

export const swarmFlavorSchema: object = readSchema('swarm-flavor.json');
const validateSchema = validator<SwarmFlavorProperties>(swarmFlavorSchema);
/** Node label (constraint node.labels.capstan.protect) that keeps a machine from being chosen by scale-in. */
export const PROTECT_LABEL = 'capstan.protect';
/** Node label of a machine Capstan put in its group's warm pool (with availability drain): see standby. */
export const WARM_LABEL = 'capstan.warm';
const ACTIVE_TASK_STATES = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

/** `swarm-worker` and `swarm-manager`, sharing one Swarm client, join-token cache and membership lock. */
export function swarmFlavorKinds(options: SwarmFlavorOptions): FlavorKind[] {
  const swarm = swarmOf(options.docker, options.logger, options.pollMs);
  const ghostAfterMs = options.ghostAfterMs ?? GHOST_AFTER_MS;
  return (['worker', 'manager'] as const).map((role) => ({
    name: `swarm-${role}`,
    schema: swarmFlavorSchema,
    validate: (properties, allocation) => checkProperties(role, properties, allocation),
    labels: (properties, groupId) => machineLabels((properties ?? {}) as SwarmFlavorProperties, groupId),
    ...(role === 'worker' ? { warm: true } : {}),
    ...(role === 'manager' ? { admit: async (_: unknown, allocation: { size?: number; logicalIds?: readonly string[] }, groupId: string) => oddManagers(await swarm.nodes(), allocation, groupId) } : {}),
    create(properties: unknown): Flavor {
      const problems = checkProperties(role, properties, {});
      if (problems.length > 0) throw new CapstanError('invalidParams', `invalid swarm-${role} properties: ${problems.join('; ')}`, { problems });
      return new SwarmFlavor(swarm, role, properties as SwarmFlavorProperties, ghostAfterMs);
    },
  }));
}

/**
 * The Swarm's managers at rest once the group has its size: the Raft members that are not the group's (Down ones
 * too: Raft counts them until they are demoted or removed) plus the group's size. An even number is refused:
 * it tolerates no more failures than one fewer, and a Swarm split in half has no majority on either side.
 */
export function oddManagers(nodes: readonly SwarmNode[], allocation: { size?: number; logicalIds?: readonly string[] }, groupId: string): string[] {
  const size = allocation.logicalIds?.length ?? allocation.size ?? 0;
  if (size === 0) return [];
  const others = nodes.filter((n) => n.ManagerStatus !== undefined && n.Description?.Engine?.Labels?.[GROUP_LABEL] !== groupId).length;
  if ((others + size) % 2 === 1) return [];
  const path = allocation.logicalIds ? '/allocation/logicalIds' : '/allocation/size';
  const fix = `${size - 1} or ${size + 1}`;
  return [`${path}: the Swarm would have ${others + size} managers (${others} not of group ${groupId} and ${size} of it), an even number: Raft's majority would tolerate no more failures than with one fewer; use ${fix}`];
}

/** Schema and template variables; messages start with a JSON path. (The managers' count is `admit`'s: it is the Swarm's.) */
export function checkProperties(role: Role, properties: unknown, allocation: { size?: number; logicalIds?: readonly string[] }): string[] {
  if (!validateSchema(properties)) return problemsOf(validateSchema.errors).map(problemText);
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
  return problems;
}

/**
 * What every new machine of the group will carry: its engine labels from the init script (capstan.group, and the
 * `labels` whose values hold no template variable, as those are only known at boot) and the `nodeLabels` tidy puts
 * on its node once it has joined. Not capstan.instance, which is each machine's own.
 */
export function machineLabels(properties: SwarmFlavorProperties, groupId: string): MachineLabels {
  const known = Object.entries(properties.labels ?? {}).filter(([, value]) => value.search(VARIABLE) < 0);
  return { node: { ...properties.nodeLabels }, engine: { ...Object.fromEntries(known), [GROUP_LABEL]: groupId } };
}

/**
 * Health of an instance from the nodes linked to it: none yet is unknown; two live ones (joined twice), Down,
 * disconnected, not Active, or for a manager not a reachable manager, is unhealthy. A node of the warm pool (drained,
 * labelled capstan.warm=true) is healthy if it could serve once activated, and a stopped machine's node of the pool,
 * Down on purpose, too; a running machine's Down node of the pool (it is starting, or broke) is an unhealthy one.
 */
export function assessNodes(nodes: readonly SwarmNode[], role: Role, state: InstanceState = 'running'): HealthReport {
  if (nodes.length === 0) return { health: 'unknown' };
  const live = nodes.filter((n) => n.Status.State !== 'down');
  const node = live[0] ?? nodes[0]!;
  const warm = node.Spec.Availability === 'drain' && node.Spec.Labels?.[WARM_LABEL] === 'true';
  if (warm && (state === 'stopped' || state === 'stopping') && live.length <= 1) return { health: 'healthy', link: node.ID, warm: true };
  if (live.length !== 1) return { health: 'unhealthy', link: node.ID, ...(warm ? { warm: true } : {}) };
  if (node.Status.State === 'unknown') return { health: 'unknown', link: node.ID };
  const serving = node.Status.State === 'ready' && (node.Spec.Availability === 'active' || warm);
  const member = role === 'worker' || (node.Spec.Role === 'manager' && node.ManagerStatus?.Reachability === 'reachable');
  return { health: serving && member ? 'healthy' : 'unhealthy', link: node.ID, ...(warm ? { warm: true } : {}) };
}

class SwarmFlavor implements Flavor {
  private readonly drainTimeoutMs: number;

  constructor(
    private readonly swarm: Swarm,
    private readonly role: Role,
    private readonly properties: SwarmFlavorProperties,
    private readonly ghostAfterMs: number,
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

  /**
   * Per instance: health from its linked nodes, whether its node is protected from scale-in (node label
   * capstan.protect=true), and how many tasks of non-global services run there: one listTasks and one listServices
   * for the whole pass, only when some instance has a node. A failed count leaves `tasks` out (least-busy then
   * falls back to newest) rather than failing the health check.
   */
  async health(instances: readonly Instance[]): Promise<Map<string, HealthReport>> {
    const byLink = linked(await this.swarm.nodes());
    const reports = instances.map((i) => [i, assessNodes(byLink.get(i.tags[LINK_TAG] ?? '') ?? [], this.role, i.state)] as const);
    const nodeIds = new Set(reports.flatMap(([, r]) => (r.link ? [r.link] : [])));
    const counts = nodeIds.size ? await this.taskCounts(nodeIds).catch(() => undefined) : undefined;
    const nodeById = new Map([...byLink.values()].flat().map((n) => [n.ID, n]));
    return new Map(
      reports.map(([i, r]) => {
        if (!r.link) return [i.id, r];
        const isProtected = nodeById.get(r.link)?.Spec.Labels?.[PROTECT_LABEL] === 'true';
        return [i.id, { ...r, ...(counts ? { tasks: counts.get(r.link) ?? 0 } : {}), ...(isProtected ? { protected: true } : {}) }];
      }),
    );
  }

  /** Active tasks of non-global services per node, for the nodes asked about. */
  private async taskCounts(nodeIds: ReadonlySet<string>): Promise<Map<string, number>> {
    const [tasks, services] = await Promise.all([
      this.swarm.docker.listTasks({ filters: { 'desired-state': ['running'] } }) as Promise<{ ServiceID: string; NodeID?: string; Status: { State: string } }[]>,
      this.swarm.docker.listServices(),
    ]);
    const global = new Set(services.filter((s) => s.Spec?.Mode?.Global !== undefined || 'GlobalJob' in (s.Spec?.Mode ?? {})).map((s) => s.ID));
    const counts = new Map<string, number>();
    for (const t of tasks) {
      if (t.NodeID === undefined || !nodeIds.has(t.NodeID) || global.has(t.ServiceID) || !ACTIVE_TASK_STATES.has(t.Status.State)) continue;
      counts.set(t.NodeID, (counts.get(t.NodeID) ?? 0) + 1);
    }
    return counts;
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

  /**
   * Puts the machine's node in the warm pool (availability drain and the label capstan.warm=true, in one update, so
   * its health never reads drained-by-someone) or takes it out (active, without the label). The node of a machine
   * just started from the pool is still Down: its spec is updated all the same, and holds when it is Ready again.
   */
  async standby(instance: Instance, warm: boolean): Promise<void> {
    const nodes = linked(await this.swarm.nodes()).get(instance.tags[LINK_TAG] ?? '') ?? [];
    const node = nodes.find((n) => n.Status.State !== 'down') ?? nodes[0];
    if (!node) throw new Error(`no Swarm node of ${instance.id} to ${warm ? 'put in the warm pool' : 'activate'}`);
    await this.swarm.update(node.ID, (spec) => {
      const { [WARM_LABEL]: _, ...labels } = spec.Labels ?? {};
      return warm ? { Availability: 'drain', Labels: { ...labels, [WARM_LABEL]: 'true' } } : { Availability: 'active', Labels: labels };
    });
  }

  /** Removes every node linked to the destroyed machine (demoting a manager first, if quorum allows). */
  async destroyed(instance: Instance): Promise<void> {
    const nodes = linked(await this.swarm.nodes()).get(instance.tags[LINK_TAG] ?? '') ?? [];
    for (const node of nodes) await this.swarm.removeNode(node);
  }

  /**
   * Removes the nodes no live machine can be (the group's Down nodes of vanished machines, nodes left by interrupted
   * joins: see staleNodes) and puts nodeLabels on the group's nodes that lack them.
   */
  async tidy(groupId: string, live: readonly Instance[]): Promise<void> {
    await tidyNodes(this.swarm, groupId, live, this.properties.nodeLabels ?? {}, this.ghostAfterMs);
  }
}
