// The seed manager of a self-managed Swarm (swarm/lab.sh up --self-managed): one machine made by Capstan's own docker
// provider, tagged as a member of the managers group, whose first boot runs the swarm-manager flavor's own init
// script (its labels, link id and fragments) with a new Swarm started instead of a join (renderSeedInit). When
// Capstan, deployed on it, commits the managers group, the seed is a member by the adoption rule (README: "Adopting
// a first manager"): nothing about it is a lab trick.
//   node swarm/seed.mjs SPEC_FILE ADDRESS_POOL    prints the seed's container id; needs `npm run build` first
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dockerProviderKind } from '../dist/src/providers/docker/index.js';
import { configHash, groupTags } from '../dist/src/group/identity.js';
import { LINK_TAG } from '../dist/src/flavors/swarm-api.js';
import { renderSeedInit } from '../dist/src/flavors/swarm-init.js';
import { checkProperties } from '../dist/src/flavors/swarm.js';
import { silentLogger } from '../dist/src/log.js';

const [file, pool] = process.argv.slice(2);
if (!file || !pool) {
  console.error('usage: seed.mjs SPEC_FILE ADDRESS_POOL');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(file, 'utf8'));
const { engine } = spec.instance.properties;
const kind = dockerProviderKind({ logger: silentLogger, allow: { endpoints: [engine] } });
const problems = kind.validate(spec.instance.properties);
if (problems.length) throw new Error(`instance.properties: ${problems.join('; ')}`);

const flavor = spec.flavor.properties ?? {};
const flavorProblems = checkProperties('manager', flavor, spec.allocation);
if (flavorProblems.length) throw new Error(`flavor.properties: ${flavorProblems.join('; ')}`);
const link = randomUUID();
const hash = configHash(spec);
const vars = { JOIN_ADDR: '', LINK_ID: link, GROUP_ID: spec.id, LOGICAL_ID: '', ROLE: 'manager', CONFIG_HASH: hash };
// The flavor's own script, labels and fragments included; the seed advertises eth0 unless the spec says otherwise
// (a lab machine has docker0 too, and `swarm init` will not choose between them).
const init = renderSeedInit({ ...flavor, advertiseAddr: flavor.advertiseAddr ?? 'eth0' }, vars, pool);
const provider = kind.create(spec.instance.properties);
// The tags of a member of the group made now: the group, the spec's config (so the seed is current, not outdated),
// no cluster (there is none yet: an untagged machine is adopted by the Swarm whose node it is, the one it starts).
const tags = { ...groupTags(spec, hash), [LINK_TAG]: link };
const [seed] = await provider.provision([{ tags, init }], `seed-${link}`);
console.log(seed.id);
