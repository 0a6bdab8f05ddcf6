// The Swarm flavors' init script with hostile label values and fragments, no Docker: every rendered script is valid
// sh (dash, and busybox sh as in the machine image), its header gives the shell exactly the values rendered, and the
// script's own labelling code writes those labels into daemon.json byte for byte under each awk here. The script on
// a real machine: test/flavors/swarm.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { checkProperties } from '../../src/flavors/swarm.js';
import { renderInit, renderSeedInit, shellQuote, type InitProperties, type TemplateVariable } from '../../src/flavors/swarm-init.js';

const BODY = readFileSync(new URL('../../src/flavors/swarm-init.sh', import.meta.url), 'utf8');
const TOKEN = 'SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef-0123456789abcdefghijklmnop';
const VARS: Record<TemplateVariable, string> = {
  JOIN_ADDR: '10.0.0.1:2377',
  LINK_ID: '6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e',
  GROUP_ID: 'web',
  LOGICAL_ID: 'w-1',
  ROLE: 'worker',
  CONFIG_HASH: 'abc123',
};
const ADDRS = ['10.0.0.1:2377', '[fd00::2]:2377', 'manager-3.example:2377'];

/** Keys as the schema allows them; values anything a shell, awk, printf or JSON could take for syntax. */
const HOSTILE_LABELS: Record<string, string> = {
  quotes: `it's "quoted" ''' """ '\\''`,
  backslashes: 'a\\b \\\\c \\n \\" \\u0041 \\',
  substitution: '$(touch /tmp/capstan-pwned) ${HOME} `id` $((1+1)) $1 $@',
  newlines: 'line 1\nline 2\r\n\ttab\n',
  punctuation: ';|&<>(){}[]*?~#! %s %d %% \\0',
  unicode: 'ünïcødé ✓ 🚀 日本語 \u200b',
  equals: 'a=b==c=',
  empty: '',
  json: '{"labels":["x=y"]},]}',
  awk: '& \\& \\\\& \\1 $0 ENVIRON["HOME"]',
  'dots.and-dashes_9': "{{GROUP_ID}}'s {{LINK_ID}} {{.Swarm.NodeID}}",
};
/** The labels the engine should carry for HOSTILE_LABELS: Capstan's two, then these with variables substituted. */
const expectedLabels = (labels: Record<string, string>, vars = VARS): string[] => [
  `capstan.instance=${vars.LINK_ID}`,
  `capstan.group=${vars.GROUP_ID}`,
  ...Object.entries(labels).map(([k, v]) => `${k}=${v.replace(/\{\{GROUP_ID\}\}/g, vars.GROUP_ID).replace(/\{\{LINK_ID\}\}/g, vars.LINK_ID)}`),
];

/** Valid sh that a careless wrapping would break: braces, here-documents, a last line that is a comment, etc. */
const FRAGMENTS: (string | undefined)[] = [
  undefined,
  '',
  '# only a comment',
  'echo done # no newline after this comment',
  'echo done\n\n\n',
  "echo 'single' \"double\" \\\\ \\$HOME '}' ')' ']' '\"' \"'\"",
  "cat <<'EOF'\n}\n' \" $(not run) `nor this`\nEOF",
  'cat <<EOF\nsubstituted: $(echo {{GROUP_ID}}) ${HOME:-none}\nEOF',
  'f() {\n  echo nested function\n}\nf',
  'case "{{ROLE}}" in\n  worker) echo w ;;\n  *) echo other ;;\nesac',
  "if true; then\n  echo 'it''s'\nfi",
  "docker info --format '{{.Swarm.NodeID}} {{json .Labels}}' || exit 1",
  'set -e; trap \'echo bye\' EXIT',
  "echo 'ünï 🚀'; x=$(printf '%s' \"{{LOGICAL_ID}}\"); echo \"$x\"",
  'return 0',
  'echo continued \\',
  '{ echo grouped; }; ( echo sub ); echo {{CONFIG_HASH}} {{JOIN_ADDR}}',
];

const have = (cmd: string) => spawnSync(cmd, ['--help'], { stdio: 'ignore' }).error === undefined;
const BUSYBOX = have('busybox');

/** `sh -n` of a script on stdin: '' when it is valid, else the shell's complaint. */
function syntax(script: string, busybox = false): string {
  const r = busybox ? spawnSync('busybox', ['sh', '-n'], { input: script }) : spawnSync('sh', ['-n'], { input: script });
  return r.status === 0 ? '' : `exit ${r.status}: ${r.stderr.toString()}`;
}

/** The rendered header (everything before the fragments), run by sh: the values it assigns, as raw bytes. */
const NAMES = ['CAPSTAN_ROLE', 'CAPSTAN_GROUP_ID', 'CAPSTAN_LINK_ID', 'CAPSTAN_LINK_LABEL', 'CAPSTAN_LABELS', 'CAPSTAN_JOIN_ADDRS', 'CAPSTAN_JOIN_ATTEMPTS', 'CAPSTAN_ADVERTISE_ADDR', 'CAPSTAN_TOKEN', 'CAPSTAN_NEW_SWARM'] as const;
function headerValues(script: string): Record<(typeof NAMES)[number], Buffer> {
  const end = script.indexOf('\ncapstan_before()');
  if (end < 0) throw new Error('no capstan_before in the script');
  const r = spawnSync('sh', ['-s'], { input: `${script.slice(0, end)}\nprintf '%s\\0' ${NAMES.map((n) => `"$${n}"`).join(' ')}\n` });
  if (r.status !== 0) throw new Error(`the header failed: ${r.stderr.toString()}`);
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = r.stdout.indexOf(0); at >= 0; at = r.stdout.indexOf(0, from)) {
    parts.push(r.stdout.subarray(from, at));
    from = at + 1;
  }
  return Object.fromEntries(NAMES.map((n, i) => [n, parts[i]])) as Record<(typeof NAMES)[number], Buffer>;
}

function render(p: InitProperties, vars = VARS, token = TOKEN, addrs = ADDRS): string {
  return renderInit('worker', p, vars, token, addrs);
}

t.test('the body is the static file; the header quotes; the token is only assigned', async (t) => {
  const script = render({ labels: HOSTILE_LABELS, before: 'echo b', after: 'echo a' });
  t.ok(script.startsWith('#!/bin/sh\n'));
  t.ok(script.endsWith(`\n${BODY}`), 'the body follows, unchanged');
  t.equal(script.split(TOKEN).length, 2, 'the token appears once');
  t.ok(script.includes(`CAPSTAN_TOKEN='${TOKEN}'\n`), 'in its assignment');
  const uses = BODY.split('\n').filter((l) => l.includes('CAPSTAN_TOKEN') && !l.startsWith('#'));
  t.same(uses.map((l) => l.replace(/"\$CAPSTAN_TOKEN".*/, '"$CAPSTAN_TOKEN"').trim()), [...Array(2).fill('docker swarm join --token "$CAPSTAN_TOKEN"'), 'unset CAPSTAN_TOKEN'], 'the body passes the token to docker swarm join only');
  t.equal(shellQuote(`a'b`), `'a'\\''b'`);
  t.throws(() => shellQuote('a\0b'), /NUL/);
  t.throws(() => render({}, VARS, TOKEN, []), /no manager address/);
  t.throws(() => render({}, VARS, TOKEN, ['a:1\nb:2']), /white space/);
});

t.test('every rendered script is valid sh: hostile labels, hostile but valid fragments', async (t) => {
  t.not(syntax('f() {\n'), '', 'sh -n refuses broken scripts');
  if (!BUSYBOX) t.comment('no busybox here: checked with sh only');
  for (const [i, before] of FRAGMENTS.entries()) {
    const after = FRAGMENTS[FRAGMENTS.length - 1 - i];
    const script = render({ labels: HOSTILE_LABELS, before, after, advertiseAddr: 'eth0', joinAttempts: 3 });
    t.equal(syntax(script), '', `sh -n: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    if (BUSYBOX) t.equal(syntax(script, true), '', `busybox sh -n: before ${JSON.stringify(before)}`);
  }
});

t.test('the shell sees exactly the values rendered, byte for byte', async (t) => {
  const hostileVars = { ...VARS, GROUP_ID: `g'"\\$(x)\n🚀`, LINK_ID: "l'\\''" };
  const token = `tok'en"\\$(id)`;
  const values = headerValues(render({ labels: HOSTILE_LABELS, advertiseAddr: 'eth0', joinAttempts: 7 }, hostileVars, token));
  const labels = expectedLabels(HOSTILE_LABELS, hostileVars);
  t.same(values.CAPSTAN_LABELS, Buffer.from(JSON.stringify(labels)), 'labels: the JSON array, as computed');
  t.same(JSON.parse(values.CAPSTAN_LABELS.toString('utf8')), labels);
  t.same(values.CAPSTAN_GROUP_ID, Buffer.from(hostileVars.GROUP_ID));
  t.same(values.CAPSTAN_LINK_ID, Buffer.from(hostileVars.LINK_ID));
  t.same(values.CAPSTAN_LINK_LABEL, Buffer.from(`capstan.instance=${hostileVars.LINK_ID}`));
  t.same(values.CAPSTAN_ROLE, Buffer.from('worker'));
  t.same(values.CAPSTAN_JOIN_ADDRS, Buffer.from(ADDRS.join('\n')));
  t.same(values.CAPSTAN_JOIN_ATTEMPTS, Buffer.from('7'));
  t.same(values.CAPSTAN_ADVERTISE_ADDR, Buffer.from('eth0'));
  t.same(values.CAPSTAN_TOKEN, Buffer.from(token));
  const defaults = headerValues(render({}));
  t.same(defaults.CAPSTAN_ADVERTISE_ADDR, Buffer.from(''), 'no advertiseAddr: empty');
  t.same(defaults.CAPSTAN_JOIN_ATTEMPTS, Buffer.from('10'));
  t.same(JSON.parse(defaults.CAPSTAN_LABELS.toString('utf8')), expectedLabels({}));
  t.same(JSON.parse(headerValues(render({ labels: { nul: 'a\0b' } })).CAPSTAN_LABELS.toString('utf8')), expectedLabels({ nul: 'a\0b' }), 'JSON escapes NUL');
});

t.test('property: random labels and fragments render valid sh that assigns exactly them', async (t) => {
  const key = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/).filter((k) => !k.startsWith('capstan.'));
  const value = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constantFrom(...Object.values(HOSTILE_LABELS)));
  const labels = fc.dictionary(key, value.filter((v) => !/\{\{[A-Z]/.test(v)), { maxKeys: 8 });
  const fragment = fc.constantFrom(...FRAGMENTS);
  const addrs = fc.array(fc.stringMatching(/^[A-Za-z0-9.:[\]-]{1,30}$/), { minLength: 1, maxLength: 3 });
  fc.assert(
    fc.property(labels, fragment, fragment, addrs, (labels, before, after, addrs) => {
      const script = render({ labels, before, after }, VARS, TOKEN, addrs);
      const complaint = syntax(script);
      if (complaint !== '') throw new Error(complaint);
      const values = headerValues(script);
      const want = expectedLabels(labels);
      if (!values.CAPSTAN_LABELS.equals(Buffer.from(JSON.stringify(want)))) throw new Error(`labels came back as ${values.CAPSTAN_LABELS.toString('utf8')}`);
      if (!values.CAPSTAN_JOIN_ADDRS.equals(Buffer.from(addrs.join('\n')))) throw new Error('addresses changed');
    }),
    { numRuns: 100 },
  );
  t.pass('100 random renderings');
});

t.test("the script's labelling writes daemon.json with exactly the labels, under each awk here", async (t) => {
  // The labelling block of the body as it is, run with daemon.json elsewhere: a fresh file, then a merge.
  const from = BODY.indexOf('mkdir -p /etc/docker\n');
  const to = BODY.indexOf('\nif [ -s /var/run/docker.pid ]');
  t.ok(from > 0 && to > from, 'the labelling block is where this test looks for it');
  const block = BODY.slice(from + 'mkdir -p /etc/docker\n'.length, to);
  t.match(block, /^if \[ ! -s "\$f" \][\s\S]*\nfi$/, 'the whole if ... fi');
  const labels = expectedLabels(HOSTILE_LABELS);
  const dir = mkdtempSync(join(tmpdir(), 'capstan-init-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const awks: [string, string][] = [['awk', process.env.PATH ?? '']];
  if (BUSYBOX) {
    symlinkSync(spawnSync('sh', ['-c', 'command -v busybox']).stdout.toString().trim(), join(dir, 'awk'));
    awks.push(['busybox awk', `${dir}:${process.env.PATH ?? ''}`]);
  }
  const f = join(dir, 'daemon.json');
  const cases: [string, string, unknown][] = [
    ['no file', '', { labels }],
    ['{} with white space', ' {\n\t}\r\n', { labels }],
    ['other settings', '{\n  "debug": false,\n  "log-opts": { "max-size": "10m" }\n}\n', { labels, debug: false, 'log-opts': { 'max-size': '10m' } }],
    ['one line', '{"debug":true}', { labels, debug: true }],
  ];
  for (const [awk, PATH] of awks) {
    for (const [what, before, want] of cases) {
      rmSync(f, { force: true });
      if (before !== '') writeFileSync(f, before);
      const script = `fail() { echo "FAIL: $*" >&2; exit 1; }\nf=${shellQuote(f)}\nCAPSTAN_LABELS=${shellQuote(JSON.stringify(labels))}\n${block}\n`;
      const r = spawnSync('sh', ['-s'], { input: script, env: { PATH } });
      t.equal(r.status, 0, `${awk}, ${what}: ${r.stderr.toString()}`);
      t.same(JSON.parse(readFileSync(f, 'utf8')), want, `${awk}, ${what}: the labels, exactly`);
    }
    writeFileSync(f, '{"labels":["a=b"]}');
    const r = spawnSync('sh', ['-s'], { input: `fail() { echo "FAIL: $*" >&2; exit 1; }\nf=${shellQuote(f)}\nCAPSTAN_LINK_LABEL=x\n${block}\n`, env: { PATH } });
    t.match(r.stderr.toString(), /already sets labels; add x there instead/, `${awk}: labels set by others are not overwritten`);
  }
});

t.test('the schema takes any label value text but lone surrogates', async (t) => {
  t.same(checkProperties('worker', { labels: HOSTILE_LABELS }, { size: 1 }), [], 'hostile values are valid');
  t.match(checkProperties('worker', { labels: { broken: 'a\ud800b' } }, { size: 1 }), [/^\/labels\/broken: /], 'no UTF-8 form: refused');
  t.same(checkProperties('worker', { labels: { pair: 'a\ud83d\ude80b' } }, { size: 1 }), [], 'a surrogate pair is one character');
  t.match(checkProperties('worker', { labels: { 'a=b': 'c' } }, { size: 1 }), [/^\/labels(\/a=b)?: /], 'a key cannot hold =');
});

t.test('prepull: each image pulled before the join, in order; a failed pull is logged and the script goes on', async (t) => {
  const images = ['capstan/busybox:dev', 'registry.example:5000/team/app@sha256:0123abcd', 'missing/image:1'];
  const script = render({ prepull: images });
  t.equal(headerValues(script).CAPSTAN_JOIN_ATTEMPTS.toString(), '10');
  const from = BODY.indexOf('set -f; IFS=\'\n\'; for image in $CAPSTAN_PREPULL');
  const to = BODY.indexOf('\nstate() {');
  t.ok(from > 0 && to > from, 'the prepull block comes before the join');
  const block = BODY.slice(from, to);
  const dir = mkdtempSync(join(tmpdir(), 'capstan-prepull-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A docker that records its arguments and fails for missing/*.
  writeFileSync(join(dir, 'docker'), `#!/bin/sh\necho "$*" >>${shellQuote(join(dir, 'calls'))}\ncase "$3" in missing/*) echo "not found" >&2; exit 1 ;; esac\n`, { mode: 0o755 });
  const header = script.slice(0, script.indexOf('\ncapstan_before()'));
  const run = (h: string) => spawnSync('sh', ['-s'], { input: `${h}\nlog() { echo "LOG $*"; }\n${block}\necho after $?\n`, env: { PATH: `${dir}:${process.env.PATH ?? ''}` } });
  const r = run(header);
  t.equal(r.status, 0, r.stderr.toString());
  t.same(readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n'), images.map((i) => `pull -q ${i}`), 'pulled one after another, as given');
  t.match(r.stdout.toString(), /LOG pulled capstan\/busybox:dev\n[\s\S]*LOG could not pull missing\/image:1: not found\nafter 0/);
  rmSync(join(dir, 'calls'));
  t.equal(run(render({}).slice(0, render({}).indexOf('\ncapstan_before()'))).status, 0);
  t.throws(() => readFileSync(join(dir, 'calls')), 'no prepull: docker pull is never run');
  t.same(checkProperties('worker', { prepull: ['ok/image:1', 'bad image; rm -rf /'] }, {}).length, 1, 'an image reference with shell syntax is refused');
});

t.test('the seed: the same header and labelling, then a new Swarm started instead of a join', async (t) => {
  const seed = renderSeedInit({ labels: HOSTILE_LABELS, advertiseAddr: 'eth0', after: 'echo after' }, { ...VARS, ROLE: 'manager', JOIN_ADDR: '' }, '10.77.128.0/17');
  t.ok(seed.endsWith(`\n${BODY}`), 'the same static body');
  t.equal(syntax(seed), '', 'valid sh');
  const v = headerValues(seed);
  t.equal(v.CAPSTAN_NEW_SWARM.toString(), '10.77.128.0/17', 'the address pool');
  t.equal(v.CAPSTAN_ROLE.toString(), 'manager');
  t.same([v.CAPSTAN_TOKEN.toString(), v.CAPSTAN_JOIN_ADDRS.toString()], ['', ''], 'no token, nobody to join');
  t.same(JSON.parse(v.CAPSTAN_LABELS.toString()), expectedLabels(HOSTILE_LABELS, { ...VARS, ROLE: 'manager', JOIN_ADDR: '' }), 'the flavor’s labels, as every manager gets them');
  t.equal(headerValues(render({})).CAPSTAN_NEW_SWARM.toString(), '', 'an ordinary machine starts no Swarm');
  t.throws(() => renderSeedInit({}, VARS, ''), /not an address pool/);
  t.throws(() => renderSeedInit({}, VARS, '10.0.0.0/8 --force-new-cluster'), /not an address pool/);

  // The body from the Swarm part on, with a docker that records its arguments and whose engine is in a Swarm once
  // it has joined one or started one.
  const block = BODY.slice(BODY.indexOf('\nstate() {'));
  const dir = mkdtempSync(join(tmpdir(), 'capstan-seed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const calls = join(dir, 'calls');
  writeFileSync(
    join(dir, 'docker'),
    `#!/bin/sh\ncase "$1" in info) [ -e ${shellQuote(join(dir, 'in'))} ] && echo active; exit 0 ;; esac\necho "$*" >>${shellQuote(calls)}\ntouch ${shellQuote(join(dir, 'in'))}\n`,
    { mode: 0o755 },
  );
  const run = (script: string) => {
    rmSync(calls, { force: true });
    rmSync(join(dir, 'in'), { force: true });
    const header = script.slice(0, script.indexOf('\n# Body of'));
    const r = spawnSync('sh', ['-s'], { input: `${header}\nlog() { echo "LOG $*"; }\nfail() { echo "FAIL $*"; exit 1; }\nnap() { :; }\n${block}`, env: { PATH: `${dir}:${process.env.PATH ?? ''}` } });
    return { status: r.status, out: r.stdout.toString(), calls: readFileSync(calls, 'utf8').trim().split('\n') };
  };
  const s = run(seed);
  t.equal(s.status, 0, s.out);
  t.same(s.calls, ['swarm init --default-addr-pool 10.77.128.0/17 --advertise-addr eth0'], 'one swarm init, no join');
  t.match(s.out, /LOG started a new Swarm[^\n]*\nafter\n/, 'then the after fragment');
  const w = run(render({}, VARS, TOKEN, ['10.0.0.1:2377']));
  t.equal(w.status, 0, w.out);
  t.same(w.calls, [`swarm join --token ${TOKEN} 10.0.0.1:2377`], 'an ordinary machine joins and starts nothing');
});
