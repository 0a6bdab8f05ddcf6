import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The API token from a file (a Docker secret in production); surrounding whitespace is not part of it. */
export function readTokenFile(path: string): string {
  const token = readFileSync(path, 'utf8').trim();
  if (!token) throw new Error(`token file ${path} is empty`);
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Checks an Authorization header against the token. Comparing fixed-length digests keeps
 * timingSafeEqual's equal-length requirement from leaking the token's length.
 */
export function bearerChecker(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    const match = authorization === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };
}
