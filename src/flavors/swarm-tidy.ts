/**
 * What each pass of a Swarm flavor group tidies in the Swarm: it removes the nodes no live machine can be, and puts
 * the group's node labels (flavor property nodeLabels) on its machines' nodes.
 */
import type { Instance } from '../spi/index.js';
import { GROUP_LABEL, INSTANCE_LABEL, LINK_TAG, linked, type Swarm, type SwarmNode } from './swarm-api.js';

/** Default age after which a node left by an interrupted join is removed. */
export const GHOST_AFTER_MS = 5 * 60_000;
/** Clock skew allowed between the provider's launch times and the Swarm's node creation times. */
const SKEW_MS = 60_000;
/** How long a group's count of machines still joining holds after its latest tidy (a group no longer served). */
const UNJOINED_TTL_MS = 5 * 60_000;

export type StaleReason = 'machine gone' | 'interrupted join';

export interface StaleView {
  readonly group: string;
  /** The capstan.link tag of every live instance of `group`. */
  readonly liveLinks: ReadonlySet<string>;
  /** Launch times (epoch ms) of the live machines, of every group, that no node that is not Down links to yet. */
  readonly unjoined: readonly number[];
  /** The node Capstan runs on. */
  readonly self: string;
  readonly now: number;
  readonly ghostAfterMs: number;
}

/**
 * The nodes to remove, and why. Never the node Capstan runs on, never a Ready one. "machine gone": Down, its engine
 * label capstan.group is this group and its capstan.instance links to no live instance. "interrupted join": no
 * hostname and no engine labels (it never got as far as its first session with a manager), Down or unknown, created
 * more than ghostAfterMs ago, and no live machine launched before then (give or take clock skew) is still without a
 * node: any machine that could have begun that join has joined since as another node, or is gone.
 */
export function staleNodes(nodes: readonly SwarmNode[], v: StaleView): { node: SwarmNode; reason: StaleReason }[] {
  const out: { node: SwarmNode; reason: StaleReason }[] = [];
  for (const node of nodes) {
    if (node.ID === v.self || node.Status.State === 'ready') continue;
    const labels = node.Description?.Engine?.Labels ?? {};
    const link = labels[INSTANCE_LABEL];
    if (link !== undefined) {
      if (node.Status.State === 'down' && labels[GROUP_LABEL] === v.group && !v.liveLinks.has(link)) out.push({ node, reason: 'machine gone' });
      continue;
    }
    const nameless = !node.Description?.Hostname && Object.keys(labels).length === 0;
    const created = Date.parse(node.CreatedAt ?? '');
    if (!nameless || node.ManagerStatus !== undefined || (node.Status.State !== 'down' && node.Status.State !== 'unknown')) continue;
    if (!(v.now - created >= v.ghostAfterMs)) continue;
    if (v.unjoined.some((launchedAt) => launchedAt <= created + SKEW_MS)) continue;
    out.push({ node, reason: 'interrupted join' });
  }
  return out;
}

/**
 * Launch times of the live machines that may be joining now: running or booting, with no node that is not Down. A
 * stopped machine (a pool kept stopped) is no join in progress, though its node is Down.
 */
export function joiningLaunches(live: readonly Instance[], byLink: ReadonlyMap<string, readonly SwarmNode[]>): number[] {
  const joining = live.filter((i) => i.state !== 'stopped' && i.state !== 'stopping' && !(byLink.get(i.tags[LINK_TAG] ?? '') ?? []).some((n) => n.Status.State !== 'down'));
  return joining.map((i) => i.launchedAt);
}

/** Removes what staleNodes names, and puts `nodeLabels` on the live instances' nodes that lack them. */
export async function tidyNodes(swarm: Swarm, group: string, live: readonly Instance[], nodeLabels: Readonly<Record<string, string>>, ghostAfterMs: number): Promise<void> {
  const nodes = await swarm.nodes();
  const now = Date.now();
  const byLink = linked(nodes);
  const nodesOf = (i: Instance) => byLink.get(i.tags[LINK_TAG] ?? '') ?? [];
  swarm.unjoined.set(group, { at: now, launchedAt: joiningLaunches(live, byLink) });
  for (const [g, u] of swarm.unjoined) if (now - u.at > UNJOINED_TTL_MS) swarm.unjoined.delete(g);

  const wanted = Object.entries(nodeLabels);
  const unlabelled = wanted.length === 0 ? [] : live.flatMap(nodesOf).filter((n) => n.Status.State !== 'down' && wanted.some(([k, v]) => n.Spec.Labels?.[k] !== v));
  for (const node of unlabelled) {
    try {
      await swarm.update(node.ID, (spec) => ({ Labels: { ...spec.Labels, ...nodeLabels } }));
      swarm.logger.info({ event: 'node.labelled', node: node.ID, labels: nodeLabels }, 'put the group\'s node labels on its node');
    } catch (err) {
      swarm.logger.warn({ node: node.ID, err: String(err) }, 'could not label node');
    }
  }

  const self = await swarm.selfId().catch(() => undefined);
  if (self === undefined) return;
  const liveLinks = new Set(live.map((i) => i.tags[LINK_TAG]).filter((l): l is string => l !== undefined));
  const unjoined = [...swarm.unjoined.values()].flatMap((u) => u.launchedAt);
  for (const { node, reason } of staleNodes(nodes, { group, liveLinks, unjoined, self, now, ghostAfterMs })) {
    try {
      await swarm.removeNode(node);
      swarm.logger.info({ event: 'node.removed', node: node.ID, reason }, `removed node ${node.ID} (${reason})`);
    } catch (err) {
      swarm.logger.warn({ node: node.ID, reason, err: String(err) }, 'could not remove a stale node');
    }
  }
}
