import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';

const script = fileURLToPath(new URL('./engine.sh', import.meta.url));

/** DOCKER_HOST of the tests' own engine, started on first use (idempotent, shared by parallel test files). */
export function engineHost(): string {
  return execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** A dockerode client of the tests' engine. */
export function engine(): Docker {
  return new Docker({ socketPath: engineHost().replace(/^unix:\/\//, '') });
}
