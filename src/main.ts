// The composition root: the one place that wires Docker, leadership, the spec store, the plugins, the controller
// and the API together. Everything else receives what it needs.
import { Autoscaler, autoscaleProblems } from './autoscale/index.js';
import { Controller } from './group/controller.js';
import { GroupService } from './group/service.js';
import { retry } from './group/retry.js';
import { Terms } from './group/term.js';
import { recoverQuorum } from './swarm/recover.js';
import { admitSpec, maxGroupSize, validateSpec } from './group/spec.js';
import { createLogger } from './log.js';
import { vanillaFlavorKind } from './flavors/vanilla.js';
import { swarmFlavorKinds } from './flavors/swarm.js';
import { operatorSettings, tlsSettings, type OperatorSettings } from './settings.js';
import { awsProviderKind } from './providers/aws/index.js';
import { dockerProviderKind } from './providers/docker/index.js';
import { simulatorProviderKind } from './providers/simulator/index.js';
import { groupMethods } from './rpc/methods.js';
import { createRpcServer, parseListen } from './rpc/server.js';
import { packageVersion as version } from './package.js';
import type { FlavorKind, Plugins, ProviderKind } from './spi/index.js';
import { createDocker } from './docker.js';
import { Leadership } from './swarm/leader.js';
import { SwarmSpecStore } from './swarm/store.js';

/** How long SIGTERM waits for work in flight; stack.yml's stop_grace_period (45 s) is longer. */
const SHUTDOWN_GRACE_MS = 30_000;
/** Without a leader, Swarm calls wait out the daemon's own deadline, and re-initialising takes a while. */
const RECOVER_TIMEOUT_MS = 25_000;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** The provider kinds specs may name: the simulator only when the operator enables it (tests, benchmarks). */
export function providerKinds(settings: OperatorSettings, logger: ReturnType<typeof createLogger>): ProviderKind[] {
  const { allow } = settings;
  return [dockerProviderKind({ logger, allow }), awsProviderKind({ logger, allow }), ...(settings.simulator ? [simulatorProviderKind()] : [])];
}

/**
 * `capstan serve`: runs until SIGTERM or SIGINT. Configured by DOCKER_HOST, CAPSTAN_LISTEN, CAPSTAN_TOKEN_FILE,
 * CAPSTAN_TLS_CERT_FILE and CAPSTAN_TLS_KEY_FILE (tlsSettings) and
 * the operator's settings (operatorSettings: CAPSTAN_MAX_GROUP_SIZE, CAPSTAN_ALLOW_ENDPOINTS, CAPSTAN_ALLOW_PRIVILEGED,
 * CAPSTAN_ENABLE_SIMULATOR).
 */
export async function serve(): Promise<void> {
  const logger = createLogger();
  const settings = operatorSettings();
  const tls = tlsSettings();
  // Signal handlers first: a SIGTERM during start-up is honoured too.
  const stopped = new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info({ event: 'shutdown', signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
  const docker = createDocker();
  const providers = providerKinds(settings, logger);
  const flavors: FlavorKind[] = [vanillaFlavorKind, ...swarmFlavorKinds({ docker, logger })];
  const checks = [autoscaleProblems, maxGroupSize(settings.maxGroupSize)];
  const plugins: Plugins = { providers: new Map(providers.map((p) => [p.name, p])), flavors: new Map(flavors.map((f) => [f.name, f])), checks };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const store = new SwarmSpecStore({ docker, parse: validate, logger });
  const leadership = new Leadership({ docker, logger });
  // The cluster id tags and filters every instance: no acting without it, so wait for this engine's Swarm.
  let terminated = false;
  void stopped.then(() => (terminated = true));
  const swarm = await retry(
    async () => {
      const info = (await docker.info()).Swarm as { NodeID?: string; Cluster?: { ID?: string } } | undefined;
      if (!info?.NodeID || !info.Cluster?.ID) throw new Error('this engine is not a Swarm manager (no node or cluster id in /info)');
      return { nodeId: info.NodeID, clusterId: info.Cluster.ID };
    },
    () => !terminated,
    (attempt, err) => logger.warn({ event: 'swarm.waiting', attempt, err: String(err) }, 'waiting for this engine to be a Swarm manager'),
  );
  if (!swarm) return;
  const { nodeId, clusterId } = swarm;

  const controller: Controller = new Controller({
    plugins,
    logger,
    selfLink: nodeId,
    clusterId,
    onUpdateFailed: (id, failed, reason) => void service.updateFailed(id, failed, reason),
  });
  const service = new GroupService({ store, controller, validate, admit: (spec) => admitSpec(spec, plugins), logger });

  // Autoscaling acts through the group service (and its per-group queue), like the API; each group's flavor says
  // which labels a new machine will carry.
  const autoscaler: Autoscaler = new Autoscaler({
    docker,
    logger,
    groups: async () =>
      (await store.list()).map((v) => ({ spec: v.spec, status: controller.status(v.id), flavor: plugins.flavors.get(v.spec.flavor.kind), autoscaled: v.state?.autoscaled })),
    scaleUp: async (id, count, _reason, autoscaled) => void (await service.scaleUp(id, count, { autoscaled })),
    removeInstance: async (id, instanceId, _reason, autoscaled) => void (await service.destroyInstances(id, [instanceId], { autoscaled })),
  });
  const groups = groupMethods({ service, store, controller, validate, autoscaler });

  leadership.onNodeEvent(() => controller.healthChanged());
  const terms = new Terms({ leadership, store, controller, followers: [autoscaler], logger });

  const listen = parseListen();
  const server = createRpcServer({
    store,
    controller,
    validate,
    groups,
    storeProblems: () => store.problems(),
    loading: () => terms.loading(),
    recover: () => recoverQuorum(createDocker(undefined, RECOVER_TIMEOUT_MS)).then((r) => (logger.warn({ event: 'swarm.recovered', ...r }, 'Swarm re-initialised from this manager'), r)),
    leadership,
    logger,
    version,
    ...(tls ? { tls } : {}),
    ready: async () => terms.loading() === undefined && Boolean(await docker.ping().catch(() => false)) && leadership.status().leaderNodeId !== undefined,
  });
  await server.listen(listen);
  const { maxGroupSize: largest, allow, simulator } = settings;
  logger.info(
    { event: 'serving', listen, tls: tls !== undefined, version, node: nodeId, maxGroupSize: largest, allowEndpoints: allow.endpoints, allowPrivileged: allow.privileged, simulator },
    `capstan ${version} listening on ${tls ? 'https' : 'http'}://${listen.host}:${listen.port}`,
  );
  await leadership.start();
  await stopped;
  // Stop starting work; work in flight stops at its next write (fenced) and is given a bounded time to get there.
  leadership.stop();
  autoscaler.stop();
  const settled = await Promise.race([controller.stop().then(() => true), delay(SHUTDOWN_GRACE_MS).then(() => false)]);
  logger.info({ event: 'shutdown.done', settled }, settled ? 'work in flight settled' : `work in flight did not settle within ${SHUTDOWN_GRACE_MS} ms`);
  await server.close();
}
