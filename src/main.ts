// The composition root: the one place that wires Docker, leadership, the spec store, the plugins, the controller
// and the API together. Everything else receives what it needs.
import { Autoscaler } from './autoscale/index.js';
import { Controller } from './group/controller.js';
import { configHash } from './group/identity.js';
import { validateSpec } from './group/spec.js';
import { createLogger } from './log.js';
import { vanillaFlavorKind } from './flavors/vanilla.js';
import { swarmFlavorKinds } from './flavors/swarm.js';
import { awsProviderKind } from './providers/aws/index.js';
import { dockerProviderKind } from './providers/docker/index.js';
import { simulatorProviderKind } from './providers/simulator/index.js';
import { groupMethods } from './rpc/methods.js';
import { createRpcServer, parseListen } from './rpc/server.js';
import { packageVersion as version } from './package.js';
import type { FlavorKind, Plugins, ProviderKind } from './spi/index.js';
import { createDocker } from './swarm/docker.js';
import { Leadership } from './swarm/leader.js';
import { SwarmSpecStore } from './swarm/store.js';

/** `capstan serve`: runs until SIGTERM or SIGINT. Configured by DOCKER_HOST, CAPSTAN_LISTEN, CAPSTAN_TOKEN_FILE. */
export async function serve(): Promise<void> {
  const logger = createLogger();
  const docker = createDocker();
  const providers: ProviderKind[] = [dockerProviderKind({ logger }), awsProviderKind({ logger }), simulatorProviderKind()];
  const flavors: FlavorKind[] = [vanillaFlavorKind, ...swarmFlavorKinds({ docker, logger })];
  const plugins: Plugins = { providers: new Map(providers.map((p) => [p.name, p])), flavors: new Map(flavors.map((f) => [f.name, f])) };
  const validate = (raw: unknown) => validateSpec(raw, plugins);
  const store = new SwarmSpecStore({ docker, parse: validate, logger });
  const leadership = new Leadership({ docker, logger });
  const nodeId = (await docker.info().catch(() => undefined))?.Swarm?.NodeID as string | undefined;

  const controller: Controller = new Controller({
    plugins,
    logger,
    ...(nodeId ? { selfLink: nodeId } : {}),
    // Under `onFailure: rollback` the last version with another machine config is committed again.
    rollback: async (id, reason) => {
      const history = await store.history(id);
      const current = history.at(-1);
      const previous = history.findLast((v) => current && configHash(v.spec) !== configHash(current.spec));
      if (!current || !previous) return;
      const committed = await store.commit(previous.spec, current.version);
      logger.warn({ event: 'update.rolledBack', group: id, from: current.version, to: previous.version, version: committed.version, reason }, `rolled back ${id}`);
      controller.apply(committed);
    },
  });

  // Autoscaling acts through the same group methods (and per-group queue) as the API.
  const autoscaler: Autoscaler = new Autoscaler({
    docker,
    logger,
    groups: async () => (await store.list()).map((v) => ({ spec: v.spec, status: controller.status(v.id) })),
    scaleUp: async (id, count) => void (await groups.get('group.scaleUp')!({ id, count })),
    removeInstance: async (id, instanceId) => void (await groups.get('group.destroyInstances')!({ id, instanceIds: [instanceId] })),
  });
  const groups = groupMethods({ store, controller, validate, logger, autoscaler });

  leadership.onNodeEvent(() => controller.healthChanged());
  leadership.onChange((leading) => {
    if (!leading) {
      autoscaler.stop();
      controller.stop();
      logger.warn({ event: 'leadership.lost' }, 'not the leader: standing by');
      return;
    }
    logger.info({ event: 'leadership.gained' }, 'leading: loading every group spec');
    store
      .list()
      // Leadership may have moved again while the specs loaded.
      .then((versions) => {
        if (!leadership.leading) return;
        versions.forEach((v) => controller.apply(v));
        autoscaler.start();
      })
      .catch((err) => logger.error({ event: 'store.error', err: String(err) }, 'could not load specs'));
  });

  const listen = parseListen();
  const server = createRpcServer({
    store,
    controller,
    validate,
    groups,
    storeProblems: () => store.problems(),
    leadership,
    logger,
    version,
    ready: async () => Boolean(await docker.ping().catch(() => false)) && leadership.status().leaderNodeId !== undefined,
  });
  await server.listen(listen);
  logger.info({ event: 'serving', listen, version, node: nodeId }, `capstan ${version} listening on ${listen.host}:${listen.port}`);
  await leadership.start();

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info({ event: 'shutdown', signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
  leadership.stop();
  autoscaler.stop();
  controller.stop();
  await server.close();
}
