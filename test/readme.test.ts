// The README is whole: every section in its contents and every link there resolves, the layout table names what
// the tree has, and the `capstan` commands it shows are the CLI's. Reads files only.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const TOP = join(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(TOP, 'README.md'), 'utf8');
/** README text outside fenced code blocks. */
const prose = readme.replace(/^```[\s\S]*?^```/gm, '');

/** GitHub's anchor for a heading. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');

t.test('sections: each ## heading starts a line, is in the contents, and every #link resolves', async (t) => {
  const headings = [...prose.matchAll(/^(#{2,4}) (.+)$/gm)].map((m) => ({ level: m[1]!.length, text: m[2]! }));
  const anchors = new Set(headings.map((h) => anchor(h.text)));
  const contents = /^\*\*Contents:\*\*([\s\S]*?)\n\n/m.exec(readme)?.[1] ?? '';
  t.ok(contents, 'a contents line near the top');
  const listed = [...contents.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
  t.same(listed, headings.filter((h) => h.level === 2).map((h) => anchor(h.text)), 'the contents list every ## section in order');
  const links = [...prose.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
  t.same(links.filter((l) => !anchors.has(l)), [], 'every #link names a heading');
  t.same(prose.split('\n').filter((l) => /[^\s#]#{2,} [A-Z]/.test(l)), [], 'no heading glued to the end of a line');
  const files = [...prose.matchAll(/\]\(((?:src|swarm|schemas|test|bench)\/[^)#]+|stack\.yml|Dockerfile)\)/g)].map((m) => m[1]!);
  t.same(files.filter((f) => { try { statSync(join(TOP, f)); return false; } catch { return true; } }), [], 'every linked file exists');
});

t.test('layout: the table names every directory of src/, every script of swarm/, every top-level directory', async (t) => {
  const layout = readme.slice(readme.indexOf('## Layout'));
  const paths = [...layout.matchAll(/^\| `([^`]+)`(?:, `([^`]+)`)? \|/gm)].flatMap((m) => [m[1]!, m[2]].filter((p): p is string => p !== undefined));
  // a row covers a path it names, a directory row what is under it, `src/providers/<name>/` each provider
  const covered = (p: string) =>
    paths.some((l) => l === p || (l.endsWith('/') && p.startsWith(l)) || p.startsWith(l.split('<name>')[0]!.replace(/\*.*$/, '')) && l !== l.split('<name>')[0]) ||
    (p.endsWith('/') && paths.some((l) => l.startsWith(p)));
  const tracked = execFileSync('git', ['ls-files'], { cwd: TOP, encoding: 'utf8' }).trim().split('\n');
  const dirs = new Set<string>();
  for (const f of tracked) {
    const parts = f.split('/');
    if (parts.length > 1 && !parts[0]!.startsWith('.')) dirs.add(`${parts[0]}/`);
    if (parts[0] === 'src' && parts.length > 2) dirs.add(`src/${parts[1]}/`);
  }
  const wanted = [...dirs, ...readdirSync(join(TOP, 'swarm')).filter((f) => f.endsWith('.sh')).map((f) => `swarm/${f}`)];
  t.same(wanted.filter((p) => !covered(p)).sort(), [], 'each is in the layout table');
});

t.test('the capstan commands the README shows are the CLI\'s', async (t) => {
  const usage = readFileSync(join(TOP, 'src/cli/main.ts'), 'utf8');
  const commands = new Set([...usage.matchAll(/^ {2}((?:group )?[a-z][a-z-]*)\b/gm)].map((m) => m[1]!));
  const shown = [...readme.matchAll(/`capstan\s+((?:group\s+)?[a-z][a-z-]*)/g), ...readme.matchAll(/^\$ capstan\s+((?:group\s+)?[a-z][a-z-]*)/gm)].map((m) => m[1]!.replace(/\s+/g, ' '));
  t.ok(shown.length > 10, `${shown.length} commands shown`);
  t.same([...new Set(shown.filter((c) => !commands.has(c)))], [], 'each is in `capstan --help`');
  t.same(prose.match(/`(describe|list|scale|pause|resume|history|rollback) ID/g) ?? [], [], 'no command named without its `capstan group` prefix');
});
