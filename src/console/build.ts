// Bundles the web console (src/console/page/) with esbuild: `npm run build` runs this file with Node (types
// stripped) after tsc, into dist/src/console/assets, which the image ships with the rest of dist/src. The tests call
// bundleConsole() into a directory of their own.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const page = join(dirname(fileURLToPath(import.meta.url)), 'page');

/** Writes index.html, app.js, app.css and icon.svg into `outdir`; nothing of the page is fetched from elsewhere. */
export async function bundleConsole(outdir: string): Promise<void> {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [
      { in: join(page, 'main.ts'), out: 'app' },
      { in: join(page, 'style.css'), out: 'app' },
    ],
    outdir,
    bundle: true,
    minify: true,
    format: 'esm',
    // Browsers of the last few years: native <dialog>, TextDecoderStream, fetch streaming.
    target: ['chrome110', 'firefox115', 'safari16.4'],
    legalComments: 'eof',
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'icon.svg']) copyFileSync(join(page, f), join(outdir, f));
}

// `node src/console/build.ts [OUTDIR]`: the bundle into OUTDIR (default dist/src/console/assets); tsc's per-file output
// of the page is dropped, since only the bundle is served.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const top = join(dirname(fileURLToPath(import.meta.url)), '../..');
  await bundleConsole(process.argv[2] ?? join(top, 'dist/src/console/assets'));
  rmSync(join(top, 'dist/src/console/page'), { recursive: true, force: true });
}
