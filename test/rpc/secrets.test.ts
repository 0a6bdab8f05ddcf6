// Secrets stay secret (issue 12 item 7): through a whole scenario on the real engine (a swarm-worker machine joins
// with the join token, the group is described, previewed, scaled, its history read, bad calls made), every log line
// at debug level and every answer is collected and searched for the Swarm's join tokens, the API token and the
// AWS secret key in the environment.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { Controller } from '../../src/group/controller.js';
import { maxGroupSize, validateSpec } from '../../src/group/spec.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { swarmFlavorKinds } from '../../src/flavors/swarm.js';
import { SwarmSpecStore } from '../../src/swarm/store.js';
import type { Plugins } from '../../src/spi/index.js';
import { engine, engineHost } from '../support/engine.js';
import { until } from '../support/until.js';
import { startServer, token } from './harness.js';

process.env.AWS_SECRET_ACCESS_KEY = `secret-${randomBytes(12).toString('hex')}`;
const docker = engine();
const id = `t-sec-${randomBytes(3).toString('hex')}`;
await docker.createNetwork({ Name: id, Labels: { 'capstan.test': id } });
const managerAddr = `${(await docker.getNetwork(id).inspect()).IPAM!.Config![0]!.Gateway as string}:2377`;

let seen = '';
const logger = pino({ level: 'debug' }, new Writable({ write: (chunk, _e, done) => ((seen += String(chunk)), done()) }));
const plugins: Plugins = {
  providers: new Map([['docker', dockerProviderKind({ logger, allow: { endpoints: [engineHost()] } })]]),
  flavors: new Map(swarmFlavorKinds({ docker, logger, pollMs: 200 }).map((f) => [f.name, f] as const)),
  checks: [maxGroupSize(5)],
};
const validate = (raw: unknown) => validateSpec(raw, plugins);
const store = new SwarmSpecStore({ docker, parse: validate, logger });
const controller = new Controller({ plugins, logger, busyMs: 200, intervalMs: 500 });

t.teardown(async () => {
  await controller.stop();
  const left = await docker.listContainers({ all: true, filters: { label: [`capstan.group=${id}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  for (const n of await docker.listNodes()) if (n.Description?.Engine?.Labels?.['capstan.group'] === id) await docker.getNode(n.ID).remove({ force: true }).catch(() => undefined);
  await store.remove(id);
  await docker.getNetwork(id).remove().catch(() => undefined);
});

t.test('no secret in any log line or answer of a whole scenario', async (t) => {
  const h = await startServer(t, { store, controller, validate, logger });
  const answer = async (method: string, params: unknown, auth?: string | null) => (seen += JSON.stringify(await h.call(method, params, auth)));
  const spec = (size: number) => ({
    id,
    allocation: { size },
    bounds: { min: 0, max: 2 },
    instance: { provider: 'docker', properties: { engine: engineHost(), network: id, env: { NOTE: 'no secret here' } } },
    flavor: { kind: 'swarm-worker', properties: { managerAddr, drainTimeout: '10s', after: 'echo joined {{GROUP_ID}}' } },
  });
  await answer('group.commit', { spec: spec(1), pretend: true });
  await answer('group.commit', { spec: spec(1) });
  await until('a worker joined', () => controller.status(id)?.converged === true, 90_000);
  await answer('group.describe', { id });
  await answer('group.commit', { spec: spec(2), pretend: true });
  await answer('group.history', { id });
  await answer('group.list', {});
  await answer('manager.status', {});
  await answer('manager.status', {}, null);
  await answer('group.scale', { id, size: 999 });
  await answer('group.destroyInstances', { id, instanceIds: ['nope'] });
  await answer('group.commit', { spec: { ...spec(1), flavor: { kind: 'swarm-worker', properties: { before: '{{JOIN_TOKEN}}' } } } });
  await answer('group.list', {}, 'wrong-token');
  await answer('group.scale', { id, size: 0 });
  await until('the worker gone', () => controller.status(id)?.instances.length === 0, 60_000);

  const tokens = ((await docker.swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } }).JoinTokens;
  const secrets = { 'worker join token': tokens.Worker, 'manager join token': tokens.Manager, 'API token': token, 'AWS secret key': process.env.AWS_SECRET_ACCESS_KEY! };
  t.ok(seen.length > 2_000, `collected ${seen.length} characters of logs and answers`);
  t.match(seen, /instance\.provisioned/, 'the logs include the machine that joined');
  for (const [what, value] of Object.entries(secrets)) t.notOk(seen.includes(value), `the ${what} appears nowhere`);
  t.notOk(seen.includes(tokens.Worker.split('-').at(-1)!), 'nor the secret part of the join token alone');
});
