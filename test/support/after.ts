// In CI the run leaves nothing behind; on a developer's machine the engine stays up for the next run.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
if (process.env.CI) execFileSync('bash', [fileURLToPath(new URL('./engine.sh', import.meta.url)), 'stop'], { stdio: 'inherit' });
