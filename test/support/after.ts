// In CI the run leaves nothing behind; on a developer's machine the engine stays up for the next run.
// CI: the engine stops (engine.sh stop: its daemon, files, build cache, bridges, iptables rules), a lab a crashed test
// left is torn down (swarm/lab.sh down), the labs' image build cache goes if the run made it (swarm/lab.sh clean),
// then whatever else the run added to /tmp under a name the tests use is removed, and anything new not theirs named.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_BUILD_CACHE, TMP_RECORD, type TmpRecord } from './tmp-record.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

if (process.env.CI) {
  try {
    execFileSync('bash', [here('./engine.sh'), 'stop'], { stdio: 'inherit' });
  } catch (error) {
    process.stderr.write(`after: engine.sh stop failed (${(error as Error).message.split('\n')[0]}); going on with the rest\n`);
    process.exitCode = 1;
  }
  const record = existsSync(TMP_RECORD) ? (JSON.parse(readFileSync(TMP_RECORD, 'utf8')) as TmpRecord) : undefined;
  rmSync(TMP_RECORD, { force: true });
  if (record !== undefined) {
    const before = new Set(record.tmp);
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
      // the tests' folders, and node's compile cache that the run's own node processes made
      if (/^(capstan|capl-|v8-compile-cache)/.test(name)) rmSync(path, { recursive: true, force: true });
      else others.push(path);
    }
    if (others.length > 0) process.stderr.write(`after: new in /tmp and not the tests' (left alone): ${others.join(' ')}\n`);
    if (!record.buildCache && existsSync(LAB_BUILD_CACHE)) {
      try {
        execFileSync('bash', [here('../../swarm/lab.sh'), 'clean'], { env: { ...process.env, LAB: '/tmp/.capstan-no-lab', CAPSTAN_BUILD_DIR: LAB_BUILD_CACHE }, stdio: 'inherit' });
      } catch {
        process.stderr.write(`after: lab.sh clean of ${LAB_BUILD_CACHE} failed\n`);
        process.exitCode = 1;
      }
    }
  }
}
