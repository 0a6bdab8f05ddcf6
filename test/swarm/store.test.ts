import t from 'tap';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configName, MAX_CONFIG_BYTES, SwarmSpecStore } from '../../src/swarm/store.js';
import { createDocker } from '../../src/swarm/docker.js';
import { CapstanError, InvalidError, type Problem } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { GroupSpec } from '../../src/spi/index.js';
import { engineHost } from '../support/engine.js';

const host = engineHost();
const docker = createDocker(host);

/** A stand-in for the real validator (src/group/spec.ts): only the shape the store relies on. */
function parse(raw: unknown): GroupSpec {
  const problems: Problem[] = [];
  const spec = raw as Record<string, unknown> | null;
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new InvalidError('invalid group spec', [{ path: '/', message: 'must be object' }]);
  if (typeof spec.id !== 'string') problems.push({ path: '/id', message: 'must be string' });
  if (typeof spec.allocation !== 'object' || spec.allocation === null) problems.push({ path: '/allocation', message: 'is required' });
  if (problems.length) throw new InvalidError('invalid group spec', problems);
  return spec as unknown as GroupSpec;
}

let seq = 0;
/** Unique per test and per run: test files share one engine and run in parallel. */
function groupId(name: string): string {
  return `${name}-${process.pid.toString(36)}${(seq++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

function spec(id: string, size: number, extra: object = {}): GroupSpec {
  return {
    id,
    allocation: { size },
    instance: { provider: 'aws', properties: { region: 'us-east-1' } },
    flavor: { kind: 'swarm-worker', properties: {} },
    update: { maxUnavailable: 1, maxSurge: 1, healthTimeout: '5m', healthyFor: '30s', onFailure: 'pause' },
    ...extra,
  };
}

function store(logger = silentLogger, keep?: number): SwarmSpecStore {
  return new SwarmSpecStore({ docker, parse, logger, ...(keep ? { keep } : {}) });
}

/** The group's configs straight from Swarm, by version. */
async function configsOf(id: string) {
  const all = await docker.listConfigs({ filters: { label: [`capstan.group=${id}`] } });
  return all.sort((a, b) => Number(a.Spec!.Labels['capstan.version']) - Number(b.Spec!.Labels['capstan.version']));
}

async function createRaw(name: string, data: string, labels: Record<string, string> = {}): Promise<string> {
  const created = (await docker.createConfig({ Name: name, Labels: labels, Data: Buffer.from(data).toString('base64') })) as { id: string };
  return created.id;
}

/** What `promise` rejects with; a promise that resolves is a test failure. */
async function caught(promise: Promise<unknown>): Promise<CapstanError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  if (!(outcome.error instanceof CapstanError)) throw outcome.error;
  return outcome.error;
}

t.test('commit and read back; versions only grow; a stale expected version is a conflict', async (t) => {
  const specs = store();
  const id = groupId('rw');
  t.teardown(() => specs.remove(id));

  t.equal(await specs.get(id), undefined);
  const v1 = await specs.commit(spec(id, 3), 0);
  t.equal(v1.id, id);
  t.equal(v1.version, 1);
  t.same(v1.spec, spec(id, 3));
  t.ok(Date.parse(v1.createdAt) > Date.now() - 60_000, 'createdAt is an ISO time');
  t.same(await specs.get(id), v1);
  t.same(
    (await specs.list()).filter((v) => v.id === id),
    [v1],
    'list has the group once',
  );

  const v2 = await specs.commit(spec(id, 5), 1);
  t.equal(v2.version, 2);
  t.same((await specs.get(id))?.spec, spec(id, 5));

  t.match(await caught(specs.commit(spec(id, 7), 1)), { kind: 'conflict', message: /version 2/ });
  t.match(await caught(specs.commit(spec(id, 7), 3)), { kind: 'conflict' });
  t.equal((await specs.get(id))?.version, 2, 'refused commits wrote nothing');
  t.equal((await configsOf(id)).length, 2);
});

t.test('two commits at the same expected version: exactly one wins, the stored one is intact', async (t) => {
  const id = groupId('race');
  const a = store();
  const b = store();
  t.teardown(() => a.remove(id));
  await a.commit(spec(id, 1), 0);
  for (let round = 1; round <= 5; round++) {
    const results = await Promise.allSettled([a.commit(spec(id, 100 + round), round), b.commit(spec(id, 200 + round), round)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.equal(won.length, 1, `round ${round}: one winner`);
    t.equal(lost.length, 1, `round ${round}: one loser`);
    t.equal((lost[0]?.reason as CapstanError).kind, 'conflict');
    const winner = (won[0] as PromiseFulfilledResult<{ version: number; spec: GroupSpec }>).value;
    t.equal(winner.version, round + 1);
    const stored = await b.get(id);
    t.same(stored?.spec, winner.spec, `round ${round}: the winner's spec is stored`);
  }
  t.equal((await configsOf(id)).length, 6, 'one config per version, nothing extra');
});

t.test("Swarm's refusal of a duplicate name is a conflict and overwrites nothing", async (t) => {
  const specs = store();
  const id = groupId('dup');
  // Unlabelled, so the store's own version check cannot see it: only Swarm's 409 stops the commit.
  const squatter = await createRaw(`capstan.group.${id}.v1`, 'squatter');
  t.teardown(async () => {
    await docker.getConfig(squatter).remove();
    await specs.remove(id);
  });
  t.match(await caught(specs.commit(spec(id, 1), 0)), { kind: 'conflict', message: /already exists/ });
  const kept = await docker.getConfig(squatter).inspect();
  t.equal(Buffer.from(kept.Spec!.Data, 'base64').toString(), 'squatter');
  t.equal(await specs.get(id), undefined);
});

t.test('history keeps the last 10 versions, oldest first; rollback commits an old spec as a new version', async (t) => {
  const specs = store();
  const id = groupId('hist');
  t.teardown(() => specs.remove(id));
  for (let v = 1; v <= 12; v++) await specs.commit(spec(id, v), v - 1);

  const history = await specs.history(id);
  t.same(
    history.map((h) => h.version),
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
  t.same(
    history.map((h) => h.spec.allocation),
    [3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((size) => ({ size })),
  );
  t.ok(history.every((h, i) => i === 0 || h.createdAt >= history[i - 1]!.createdAt), 'createdAt grows');
  t.equal((await configsOf(id)).length, 10, 'older configs are removed from Swarm');

  const rollback = await specs.commit(history[0]!.spec, 12);
  t.equal(rollback.version, 13);
  t.same(rollback.spec, spec(id, 3));
  t.same((await specs.get(id))?.spec, spec(id, 3));
  t.same(
    (await specs.history(id)).map((h) => h.version),
    [4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
  );
});

t.test('a smaller keep prunes sooner', async (t) => {
  const specs = store(silentLogger, 2);
  const id = groupId('keep');
  t.teardown(() => specs.remove(id));
  for (let v = 1; v <= 4; v++) await specs.commit(spec(id, v), v - 1);
  t.same(
    (await specs.history(id)).map((h) => h.version),
    [3, 4],
  );
});

t.test('pruning leaves a mislabelled config alone (reported); remove takes it', async (t) => {
  const specs = store(silentLogger, 2);
  const id = groupId('stray');
  t.teardown(() => specs.remove(id));
  await createRaw(`stray-${id}`, JSON.stringify(spec(id, 1)), { 'capstan.group': id, 'capstan.version': '1' });
  // The stray's version label still counts: the first commit steps over it.
  let current = 0;
  for (let size = 1; size <= 4; size++) current = (await specs.commit(spec(id, size), current)).version;
  t.same(
    (await specs.history(id)).map((h) => h.version),
    [4, 5],
  );
  t.same(
    (await configsOf(id)).map((c) => c.Spec!.Name),
    [`stray-${id}`, configName(id, 4), configName(id, 5)],
  );
  t.match(specs.problems().filter((p) => p.id === id), [{ config: `stray-${id}`, message: /name does not match/ }]);
  await specs.remove(id);
  t.same(await configsOf(id), []);
});

t.test('a spec over Swarm’s config limit is refused before anything is written', async (t) => {
  const specs = store();
  const id = groupId('big');
  t.teardown(() => specs.remove(id));
  const padded = (bytes: number): GroupSpec => {
    const base = JSON.stringify(spec(id, 1, { note: '' })).length;
    return spec(id, 1, { note: 'x'.repeat(bytes - base) });
  };
  t.equal(MAX_CONFIG_BYTES, 1_024_000);

  t.match(await caught(specs.commit(padded(MAX_CONFIG_BYTES), 0)), { kind: 'tooLarge', message: /1024000/ });
  t.same(await configsOf(id), [], 'nothing written');

  // One byte less is what Swarm itself still accepts: the store's limit is Swarm's.
  const largest = await specs.commit(padded(MAX_CONFIG_BYTES - 1), 0);
  t.equal(largest.version, 1);
  const [config] = await configsOf(id);
  t.equal(Buffer.from(config!.Spec!.Data, 'base64').length, MAX_CONFIG_BYTES - 1);
});

t.test('specs that do not validate, and ids that cannot name a config, are refused before writing', async (t) => {
  const specs = store();
  const id = groupId('bad');
  t.teardown(() => specs.remove(id));
  const err = await caught(specs.commit({ id } as unknown as GroupSpec, 0));
  t.match(err, { kind: 'invalidParams' });
  t.same((err as InvalidError).problems, [{ path: '/allocation', message: 'is required' }]);
  t.same(await configsOf(id), []);

  const long = `l${'o'.repeat(45)}ng`;
  const tooLong = await caught(specs.commit(spec(long, 1), 0));
  t.match(tooLong, { kind: 'invalidParams', message: /64/ });
  t.equal((tooLong as InvalidError).problems[0]?.path, '/id');
  t.same(await configsOf(long), []);
});

t.test('a corrupt version is skipped and reported; the last good version stays in force', async (t) => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const specs = store(logger);
  const id = groupId('corrupt');
  t.teardown(() => specs.remove(id));
  const good = await specs.commit(spec(id, 2), 0);
  const labels = (v: number) => ({ 'capstan.group': id, 'capstan.version': String(v) });
  await createRaw(`capstan.group.${id}.v2`, '{"id": "half a spec', labels(2));
  await createRaw(`capstan.group.${id}.v3`, JSON.stringify({ id }), labels(3));
  await createRaw(`capstan.group.${id}.v4`, JSON.stringify(spec('someone-else', 1)), labels(4));

  t.same(await specs.get(id), good, 'get serves the last good version');
  t.same(
    (await specs.list()).filter((v) => v.id === id),
    [good],
  );
  t.same(
    (await specs.history(id)).map((h) => h.version),
    [1],
  );

  const problems = specs.problems().filter((p) => p.id === id);
  t.same(
    problems.map((p) => [p.version, p.config]),
    [
      [2, `capstan.group.${id}.v2`],
      [3, `capstan.group.${id}.v3`],
      [4, `capstan.group.${id}.v4`],
    ],
  );
  t.match(problems[0]!.message, /JSON/);
  t.same(problems[1]!.problems, [{ path: '/allocation', message: 'is required' }]);
  t.match(problems[2]!.message, /someone-else/);
  const warned = lines.map((l) => JSON.parse(l) as { msg: string; config?: string }).filter((l) => l.config?.includes(id));
  t.equal(warned.length, 3, 'each bad config is logged once, however often it is read');

  // A commit goes on from the version in force and steps over the corrupt ones.
  const next = await specs.commit(spec(id, 9), 1);
  t.equal(next.version, 5);
  t.same((await specs.get(id))?.spec, spec(id, 9));
  t.same(
    specs.problems().filter((p) => p.id === id).length,
    3,
    'still reported while they exist',
  );
});

t.test('remove deletes every version; removing again is harmless', async (t) => {
  const specs = store();
  const id = groupId('rm');
  t.teardown(() => specs.remove(id));
  for (let v = 1; v <= 3; v++) await specs.commit(spec(id, v), v - 1);
  await createRaw(`capstan.group.${id}.v4`, 'not json', { 'capstan.group': id, 'capstan.version': '4' });
  await specs.get(id);
  await specs.remove(id);
  t.same(await configsOf(id), []);
  t.equal(await specs.get(id), undefined);
  t.same(await specs.history(id), []);
  t.same(
    specs.problems().filter((p) => p.id === id),
    [],
    'problems of removed configs are forgotten',
  );
  await specs.remove(id);
  const again = await specs.commit(spec(id, 1), 0);
  t.equal(again.version, 1, 'a removed group starts over');
});

t.test('`docker config ls --filter label=capstan.group=<id>` shows the history', async (t) => {
  const specs = store();
  const id = groupId('cli');
  t.teardown(() => specs.remove(id));
  await specs.commit(spec(id, 1), 0);
  await specs.commit(spec(id, 2), 1);
  const out = execFileSync('docker', ['-H', host, 'config', 'ls', '--filter', `label=capstan.group=${id}`, '--format', '{{.Name}}'], {
    encoding: 'utf8',
  });
  t.same(out.trim().split('\n').sort(), [`capstan.group.${id}.v1`, `capstan.group.${id}.v2`]);
  for (const config of await configsOf(id)) {
    const labels = config.Spec!.Labels;
    t.equal(labels['capstan.group'], id);
    t.match(labels['capstan.version'], /^[12]$/);
    t.ok(Date.parse(labels['capstan.created']!), 'capstan.created is an ISO time');
  }
});
