// Prints the test files that need no Docker engine, lab or moto_server (npm run test:quick runs them): a file is
// left out when it, or a test helper it imports (relative imports, followed), imports support/engine, support/lab or
// support/moto, or is under test/e2e.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const top = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const heavy = /support\/(engine|lab|moto)\.js['"]/;

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

const seen = new Map();
function needsEngine(file) {
  if (seen.has(file)) return seen.get(file);
  seen.set(file, false);
  const text = readFileSync(file, 'utf8');
  let result = heavy.test(text);
  for (const m of text.matchAll(/from\s+['"](\.{1,2}\/[^'"]+)['"]/g)) {
    if (result) break;
    const target = resolve(dirname(file), m[1].replace(/\.js$/, '.ts'));
    if (target.startsWith(join(top, 'test')) && existsSync(target)) result = needsEngine(target);
  }
  seen.set(file, result);
  return result;
}

const quick = files(join(top, 'test'))
  .filter((f) => f.endsWith('.test.ts') && !f.includes('/test/e2e/') && !needsEngine(f))
  .map((f) => relative(process.cwd(), f))
  .sort();
process.stdout.write(`${quick.join('\n')}\n`);
