// The seed manager of a self-managed Swarm (swarm/lab.sh up --self-managed): one machine made by Capstan's own docker
// provider, tagged as a member of the managers group, whose first boot labels its engine with the machine's link id
// (as the swarm-manager flavor's init script does) and then initialises a new Swarm instead of joining one. When
// Capstan, deployed on it, commits the managers group, the seed is a member by the adoption rule (README: "Adopting
// a first manager"): nothing about it is a lab trick.
//   node swarm/seed.mjs SPEC_FILE ADDRESS_POOL    prints the seed's container id; needs `npm run build` first
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dockerProviderKind } from '../dist/src/providers/docker/index.js';
import { configHash, groupTags } from '../dist/src/group/identity.js';
import { GROUP_LABEL, INSTANCE_LABEL, LINK_TAG } from '../dist/src/flavors/swarm-api.js';
import { shellQuote } from '../dist/src/flavors/swarm-init.js';
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

const link = randomUUID();
const labels = JSON.stringify([`${INSTANCE_LABEL}=${link}`, `${GROUP_LABEL}=${spec.id}`]);
const init = `#!/bin/sh
# Capstan seed manager of group ${spec.id}: label this engine with link ${link}, then start a new Swarm.
set -e
labels=${shellQuote(labels)}
pool=${shellQuote(pool)}
until docker version >/dev/null 2>&1; do sleep 0.2; done
printf '{"labels":%s}\\n' "$labels" >/etc/docker/daemon.json
kill -HUP "$(cat /var/run/docker.pid)"
until docker info --format '{{json .Labels}}' | grep -q '${INSTANCE_LABEL}=${link}'; do sleep 0.2; done
docker swarm init --advertise-addr eth0 --default-addr-pool "$pool" >/dev/null
echo "seed: a new Swarm, this engine its first manager"
`;
const provider = kind.create(spec.instance.properties);
// The tags of a member of the group made now: the group, the spec's config (so the seed is current, not outdated),
// no cluster (there is none yet: an untagged member is adopted by the first Swarm that claims the group).
const tags = { ...groupTags(spec, configHash(spec)), [LINK_TAG]: link };
const [seed] = await provider.provision([{ tags, init }], `seed-${link}`);
console.log(seed.id);
