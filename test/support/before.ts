// tap runs this once before any test file: the Docker-backed tests share one real engine.
// In CI it first notes what /tmp holds, so that after.ts can take away what the run left there.
import { readdirSync, writeFileSync } from 'node:fs';
import { engineHost } from './engine.js';
import { TMP_RECORD } from './tmp-record.js';

if (process.env.CI) writeFileSync(TMP_RECORD, readdirSync('/tmp').join('\n'));
// CAPSTAN_ENGINE=0: a run of files that need no Docker (npm run test:quick) starts no engine.
if (process.env.CAPSTAN_ENGINE !== '0') engineHost();
