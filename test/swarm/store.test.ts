import t from 'tap';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type Docker from 'dockerode';
import { configName, MAX_CONFIG_BYTES, MAX_STATE_BYTES, SwarmSpecStore } from '../../src/swarm/store.js';
import { createDocker } from '../../src/docker.js';
import { CapstanError, InvalidError, type Problem } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { GroupSpec, VersionState } from '../../src/spi/index.js';
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

/** Every config named like one of the group's versions, whatever its labels (Swarm's `name` filter is a prefix). */
async function namedConfigs(id: string) {
  return docker.listConfigs({ filters: { name: [`capstan.group.${id}.`] } });
}

/** The tests' Docker client with some methods replaced. */
function wrapped(overrides: Record<string, unknown>): Docker {
  return Object.assign(Object.create(docker) as Docker, overrides);
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
  const id = groupId('dup');
  const specs = store();
  t.teardown(() => specs.remove(id));
  await specs.commit(spec(id, 1), 0);
  // A store whose read missed version 2 (another leader's commit landed between its read and its write): only
  // Swarm's 409 stops it.
  const stale = new SwarmSpecStore({
    docker: wrapped({
      listConfigs: async (options: object) => (await docker.listConfigs(options)).filter((c) => c.Spec?.Name !== configName(id, 2)),
    }),
    parse,
    logger: silentLogger,
  });
  await specs.commit(spec(id, 2), 1);
  t.match(await caught(stale.commit(spec(id, 3), 1)), { kind: 'conflict', message: /version 2 already exists/ });
  t.same((await specs.get(id))?.spec, spec(id, 2), 'version 2 is intact');
  t.equal((await configsOf(id)).length, 2);
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

  t.same(await specs.get(id), good, 'get serves the last good version (a commit steps over the bad ones)');
  t.same(
    (await specs.list()).filter((v) => v.id === id),
    [],
    'a leader does not load the group: an older version would bring back an old size or old machines',
  );
  t.ok(lines.some((l) => l.includes('"event":"store.held"')), 'the hold is logged');
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
  t.same((await specs.list()).filter((v) => v.id === id).map((v) => v.version), [5], 'a good commit ends the hold');
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

t.test('operation state is stored with a version and read back by get, history, list and a new leader', async (t) => {
  const specs = store();
  const id = groupId('state');
  t.teardown(() => specs.remove(id));
  const v1 = await specs.commit(spec(id, 3), 0);
  t.notOk('state' in v1, 'a commit without state has none');

  // Every field of the state: a field the store forgets is lost to the next leader (the machines of a group's former
  // location orphaned, the autoscaler's cooldown restarted).
  const state: VersionState = {
    paused: true,
    failure: 'instance i-9 not healthy within 5m',
    removing: ['i-1', 'i-2'],
    note: 'pause',
    former: [{ instance: { provider: 'docker', properties: { engine: 'tcp://10.0.0.9:2375' } }, flavor: { kind: 'vanilla', properties: { init: 'echo old' } } }],
    autoscaled: { at: 1_764_000_000_000, action: 'scale-up' },
  };
  const v2 = await specs.commit(spec(id, 3), 1, state);
  t.same(v2.state, state);
  const v3 = await specs.commit(spec(id, 2), 2, { note: 'scaleDown: size 3 -> 2' });
  t.same(await specs.get(id), v3);
  t.same(
    (await specs.history(id)).map((h) => h.state),
    [undefined, state, { note: 'scaleDown: size 3 -> 2' }],
  );
  t.same(
    (await specs.list()).filter((v) => v.id === id),
    [v3],
  );

  const leader = store();
  t.strictSame(await leader.history(id), [v1, v2, v3], 'a new store instance (a new leader) reads the same versions and state');
  const [, second] = await configsOf(id);
  t.same(JSON.parse(second!.Spec!.Labels['capstan.state']!), state, 'the state is JSON in the capstan.state label');
  t.notOk('capstan.state' in (await configsOf(id))[0]!.Spec!.Labels, 'no label without state');

  // Fields a newer Capstan may add are dropped, not fatal: skipping the version would put an older one in force.
  const v4 = await specs.commit(spec(id, 2), 3, { paused: false, later: 1 } as VersionState);
  t.same(v4.state, { paused: false });
  t.same((await leader.get(id))?.state, { paused: false });
});

t.test('a state label over 64 KiB is refused before writing; the largest fits beside the largest spec', async (t) => {
  const specs = store();
  const id = groupId('bigstate');
  t.teardown(() => specs.remove(id));
  t.equal(MAX_STATE_BYTES, 64 * 1024);
  const note = (bytes: number): VersionState => ({ note: 'x'.repeat(bytes - JSON.stringify({ note: '' }).length) });
  const err = await caught(specs.commit(spec(id, 1), 0, note(MAX_STATE_BYTES + 1)));
  t.match(err, { kind: 'tooLarge', message: /65537 bytes/, data: { bytes: 65537, limit: 65536 } });
  const ids = Array.from({ length: 5000 }, (_, i) => `i-${i.toString(16).padStart(17, '0')}`);
  t.match(await caught(specs.commit(spec(id, 1), 0, { removing: ids })), { kind: 'tooLarge' }, 'a long removal list too');
  t.same(await namedConfigs(id), [], 'nothing written');

  const base = JSON.stringify(spec(id, 1, { note: '' })).length;
  const largest = spec(id, 1, { note: 'x'.repeat(MAX_CONFIG_BYTES - 1 - base) });
  const v1 = await specs.commit(largest, 0, note(MAX_STATE_BYTES));
  t.equal(v1.version, 1);
  t.equal(Buffer.byteLength((await configsOf(id))[0]!.Spec!.Labels['capstan.state']!), MAX_STATE_BYTES);
  t.same((await store().get(id))?.state, note(MAX_STATE_BYTES));
});

t.test('a malformed state label makes its version a store problem; the last good version stays in force', async (t) => {
  const specs = store();
  const id = groupId('badstate');
  t.teardown(() => specs.remove(id));
  const good = await specs.commit(spec(id, 1), 0, { paused: true });
  const labels = (v: number, state: string) => ({ 'capstan.group': id, 'capstan.version': String(v), 'capstan.state': state });
  await createRaw(configName(id, 2), JSON.stringify(spec(id, 2)), labels(2, '{"paused": tru'));
  await createRaw(configName(id, 3), JSON.stringify(spec(id, 3)), labels(3, '{"paused": "yes"}'));
  await createRaw(configName(id, 4), JSON.stringify(spec(id, 4)), labels(4, '{"removing": ["i-1", 2]}'));
  await createRaw(configName(id, 5), JSON.stringify(spec(id, 5)), labels(5, '["paused"]'));
  await createRaw(configName(id, 6), JSON.stringify(spec(id, 6)), labels(6, '{"former": [{"instance": {"provider": "docker"}}]}'));
  await createRaw(configName(id, 7), JSON.stringify(spec(id, 7)), labels(7, '{"autoscaled": {"at": "yesterday", "action": "scale-up"}}'));

  t.same(await specs.get(id), good);
  t.same(
    (await specs.list()).filter((v) => v.id === id),
    [],
    'held until a good commit',
  );
  t.match(
    specs.problems().filter((p) => p.id === id),
    [
      { version: 2, message: /capstan.state is malformed: not JSON/ },
      { version: 3, message: /paused must be a boolean/ },
      { version: 4, message: /removing must be a list of instance ids/ },
      { version: 5, message: /must be a JSON object/ },
      { version: 6, message: /former must be a list of \{instance, flavor\} sections/ },
      { version: 7, message: /autoscaled must be \{at, action\}/ },
    ],
  );
  t.equal((await specs.commit(spec(id, 9), 1)).version, 8, 'a commit steps over them');
});

for (const [name, labels, upper] of [
  ['only a group label', true, false],
  ['no labels at all', false, false],
  ['no labels and an upper-case name (Swarm compares names ignoring case)', false, true],
] as const) {
  t.test(`a hand-made config named like a version with ${name} is skipped and reported, and commits step over it`, async (t) => {
    const specs = store();
    const id = groupId('hand');
    t.teardown(() => specs.remove(id));
    const handName = upper ? `Capstan.Group.${id.toUpperCase()}.V3` : configName(id, 3);
    await createRaw(handName, JSON.stringify(spec(id, 7)), labels ? { 'capstan.group': id } : {});

    t.equal(await specs.get(id), undefined, 'not served');
    t.match(specs.problems().filter((p) => p.id === id), [{ id, version: 3, config: handName, message: /not labelled by Capstan/ }]);
    const v4 = await specs.commit(spec(id, 1), 0);
    t.equal(v4.version, 4, 'the first commit steps over its name');
    t.equal((await specs.commit(spec(id, 2), 4)).version, 5);
    t.same((await specs.get(id))?.spec, spec(id, 2));

    const other = store();
    t.same((await other.list()).find((v) => v.id === id)?.version, 5, 'list serves the good versions');
    t.match(other.problems().filter((p) => p.id === id), [{ version: 3, config: handName }], 'and reports the hand-made one');

    await specs.remove(id);
    t.same(await namedConfigs(id), [], 'remove takes it too');
    t.same(specs.problems().filter((p) => p.id === id), []);
  });
}

t.test('an interrupted remove never puts an older version in force; a retried remove finishes the job', async (t) => {
  // Four good versions and a hand-made unlabelled v5: every point where the fifth remove can fail.
  for (let failAt = 1; failAt <= 5; failAt++) {
    const id = groupId('rmfail');
    const specs = store();
    t.teardown(() => specs.remove(id));
    for (let v = 1; v <= 4; v++) await specs.commit(spec(id, v), v - 1);
    await createRaw(configName(id, 5), 'hand-made');

    let removes = 0;
    const failing = new SwarmSpecStore({
      docker: wrapped({
        getConfig: (configId: string) => {
          const config = docker.getConfig(configId);
          return Object.assign(Object.create(config) as Docker.Config, {
            remove: async () => {
              if (++removes === failAt) throw new Error('injected: the daemon went away');
              return config.remove();
            },
          });
        },
      }),
      parse,
      logger: silentLogger,
    });
    await t.rejects(failing.remove(id), /injected/, `remove fails at remove ${failAt}`);
    t.equal(removes, failAt, 'nothing is removed after a failure');
    t.equal((await namedConfigs(id)).length, 5 - (failAt - 1), 'what is left is the newest configs');

    const after = await store().get(id);
    t.ok(after === undefined || after.version === 4, `after failing at ${failAt}: no older version in force`);
    if (failAt <= 4) t.same(after?.spec, spec(id, 4), 'the newest stays in force until it goes itself');
    else t.equal(after, undefined, 'every good version is gone; only the hand-made one was left');

    await store().remove(id);
    t.same(await namedConfigs(id), [], 'a retried remove leaves nothing');
    t.equal(await specs.get(id), undefined);
  }
});
