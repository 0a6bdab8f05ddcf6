// tap runs this once before any test file: the Docker-backed tests share one real engine.
// In CI it first notes what /tmp holds and whether the labs' image build cache exists, so that after.ts can take
// away what the run left.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { engineHost } from './engine.js';
import { LAB_BUILD_CACHE, TMP_RECORD, type TmpRecord } from './tmp-record.js';

if (process.env.CI && !existsSync(TMP_RECORD)) {
  const record: TmpRecord = { tmp: readdirSync('/tmp'), buildCache: existsSync(LAB_BUILD_CACHE) };
  writeFileSync(TMP_RECORD, JSON.stringify(record));
}
// CAPSTAN_ENGINE=0: a run of files that need no Docker (npm run test:quick) starts no engine.
if (process.env.CAPSTAN_ENGINE !== '0') engineHost();
