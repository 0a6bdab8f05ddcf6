// Files shipped with the package: its JSON Schemas and its version.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root, found from this file whether it runs from src/ (tests) or dist/src/ (built). */
const root = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'schemas')) || !existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error(`no package root (schemas/ beside package.json) above ${fileURLToPath(import.meta.url)}`);
    dir = dirname(dir);
  }
  return dir;
})();

/** A JSON Schema from schemas/, e.g. readSchema('group.json'). */
export function readSchema(name: string): object {
  return JSON.parse(readFileSync(join(root, 'schemas', name), 'utf8')) as object;
}

/** package.json's version. */
export const packageVersion: string = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
