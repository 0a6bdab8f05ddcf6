// In CI the run leaves nothing behind; on a developer's machine the engine stays up for the next run.
// CI: the engine stops (engine.sh stop: its daemon, files, build cache, bridges, iptables rules), a lab a crashed test
// left is torn down (swarm/lab.sh down), then whatever else the run added to /tmp under a name the tests use is
// removed, and anything new that is not theirs is named.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TMP_RECORD } from './tmp-record.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

if (process.env.CI) {
  execFileSync('bash', [here('./engine.sh'), 'stop'], { stdio: 'inherit' });
  const before = existsSync(TMP_RECORD) ? new Set(readFileSync(TMP_RECORD, 'utf8').split('\n')) : undefined;
  rmSync(TMP_RECORD, { force: true });
  if (before !== undefined) {
    const added = readdirSync('/tmp').filter((name) => !before.has(name));
    const others: string[] = [];
    for (const name of added) {
      const path = join('/tmp', name);
      if (existsSync(join(path, 'lab.env'))) {
        process.stderr.write(`after: a lab was left at ${path}: swarm/lab.sh down\n`);
        try {
          execFileSync('bash', [here('../../swarm/lab.sh'), 'down'], { env: { ...process.env, LAB: path }, stdio: 'inherit', timeout: 300_000 });
        } catch {
          process.stderr.write(`after: lab.sh down of ${path} failed\n`);
        }
      }
      if (/^(capstan|capl-)/.test(name)) rmSync(path, { recursive: true, force: true });
      else others.push(path);
    }
    if (others.length > 0) process.stderr.write(`after: new in /tmp and not the tests' (left alone): ${others.join(' ')}\n`);
  }
}
