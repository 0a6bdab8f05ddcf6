// The web console's files on the API server: the page at /, its bundle under /console/. Built by `npm run build`
// (src/console/build.ts) into dist/src/console/assets, read once at start; nothing is fetched from elsewhere.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

export interface ConsoleOptions {
  /** The built files; default dist/src/console/assets beside this module once built. */
  readonly assets?: string;
}

/**
 * Only this origin's own files, no inline script or style, no frames, no plugins, no form posts elsewhere. Sent on
 * every answer of the server (an API answer opened in a browser is held to it too).
 */
export const contentSecurityPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const securityHeaders = {
  'content-security-policy': contentSecurityPolicy,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
} as const;

const files = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/console/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/console/app.css', file: 'app.css', type: 'text/css; charset=utf-8' },
  { path: '/console/icon.svg', file: 'icon.svg', type: 'image/svg+xml' },
] as const;

const notBuilt = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Capstan</title><p>The web console was not built: run <code>npm run build</code>. The API answers at <code>/rpc</code>.</p></html>`;

/** Registers the console's routes and the security headers on every answer. */
export function registerConsole(app: FastifyInstance, o: ConsoleOptions = {}): void {
  const dir = o.assets ?? fileURLToPath(new URL('./assets/', import.meta.url));
  const built = existsSync(join(dir, 'index.html'));

  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [name, value] of Object.entries(securityHeaders)) if (!reply.hasHeader(name)) reply.header(name, value);
    return payload;
  });

  for (const f of files) {
    if (!built) {
      if (f.path === '/') app.get('/', async (_req, reply) => reply.code(503).type(f.type).send(notBuilt));
      continue;
    }
    const body = readFileSync(join(dir, f.file));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    app.get(f.path, async (req, reply) => {
      // Revalidated on every load: a new release is picked up at once, an unchanged file costs a 304.
      reply.header('cache-control', 'no-cache').header('etag', etag);
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.type(f.type).send(body);
    });
  }
}
