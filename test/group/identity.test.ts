import t from 'tap';
import { readFileSync } from 'node:fs';
import { configHash, ownInstances, TAG } from '../../src/group/identity.js';
import { validateSpec } from '../../src/group/spec.js';
import { vanillaFlavorKind } from '../../src/flavors/vanilla.js';
import { swarmFlavorKinds } from '../../src/flavors/swarm.js';
import { dockerProviderKind } from '../../src/providers/docker/index.js';
import { silentLogger } from '../../src/log.js';
import type { Instance, Plugins } from '../../src/spi/index.js';

const inst = (id: string, cluster?: string): Instance => ({
  id,
  state: 'running',
  launchedAt: 0,
  tags: { [TAG.group]: 'workers', [TAG.config]: 'c', ...(cluster ? { [TAG.cluster]: cluster } : {}) },
});
const ids = (is: readonly Instance[]) => is.map((i) => i.id);

t.test('cluster identity: another cluster\'s instances are neither own nor untagged', async (t) => {
  const { own, untagged } = ownInstances([inst('a1', 'A'), inst('b1', 'B'), inst('a2', 'A')], 'A');
  t.same(ids(own), ['a1', 'a2']);
  t.same(untagged, []);
});

t.test('untagged instances (an older release) are set apart, whoever else uses the group: only evidence makes them own', async (t) => {
  const alone = ownInstances([inst('a1', 'A'), inst('old')], 'A');
  t.same(ids(alone.own), ['a1']);
  t.same(ids(alone.untagged), ['old']);
  const shared = ownInstances([inst('a1', 'A'), inst('b1', 'B'), inst('old')], 'A');
  t.same(ids(shared.own), ['a1']);
  t.same(ids(shared.untagged), ['old']);
});

t.test('without a cluster id every instance of the group is its own', async (t) => {
  t.same(ids(ownInstances([inst('x', 'B'), inst('y')], undefined).own), ['x', 'y']);
});

// GOLDEN: these hashes are the `capstan.config` tags of running fleets. Changing them (a change in what is hashed,
// in canonical JSON, or a default written into the spec) replaces every machine of every fleet on upgrade.
t.test('config hashes of the example specs are stable across releases', async (t) => {
  const plugins: Plugins = {
    // The examples name the lab's infrastructure engine, which the lab's operator allows (swarm/lab.sh).
    providers: new Map([['docker', dockerProviderKind({ logger: silentLogger, allow: { endpoints: ['unix:///run/capstan-infra/docker.sock'] } })]]),
    flavors: new Map([['vanilla', vanillaFlavorKind], ...swarmFlavorKinds({ docker: {} as never, logger: silentLogger }).map((f) => [f.name, f] as const)]),
  };
  const hashOf = (file: string) => configHash(validateSpec(JSON.parse(readFileSync(new URL(`../../swarm/examples/${file}`, import.meta.url), 'utf8')), plugins));
  t.equal(hashOf('workers.json'), 'f50f73b2ddf30bbb', 'swarm/examples/workers.json');
  const written = { id: 'w', allocation: { size: 1 }, instance: { provider: 'docker', properties: {} }, flavor: { kind: 'vanilla', properties: {} } };
  const spec = validateSpec(written, plugins);
  t.same(spec.instance.properties, {}, 'provider defaults are not written into the spec');
  t.equal(configHash(spec), configHash({ instance: { provider: 'docker', properties: {} }, flavor: { kind: 'vanilla', properties: {} } }), 'the hash covers what the operator wrote');
});
