/** Where before.ts notes, in CI, what /tmp held before the run (after.ts reads it and removes it). */
export const TMP_RECORD = '/tmp/.capstan-tests-tmp-before';
