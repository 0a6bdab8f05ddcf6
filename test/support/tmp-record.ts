/** Where before.ts notes, in CI, what /tmp held before the run (after.ts reads it and removes it). */
export const TMP_RECORD = '/tmp/.capstan-tests-before.json';
/** The image build cache the end-to-end tests' labs share (swarm/lab.sh's default CAPSTAN_BUILD_DIR). */
export const LAB_BUILD_CACHE = process.env.CAPSTAN_BUILD_DIR ?? '/var/cache/capstan/build';

export interface TmpRecord {
  readonly tmp: string[];
  readonly buildCache: boolean;
}
