// Bundle the `misfm serve` page (viewer/) into dist/viewer/ with esbuild: one ES module with
// NiiVue inside (no CDN at run time), plus the HTML and CSS. Rebuilds only when a source is newer.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'viewer');
const out = join(root, 'dist', 'viewer');
const bundle = join(out, 'app.js');
const sources = readdirSync(src).map((n) => join(src, n));
const lock = join(root, 'package-lock.json');
// The page shares the class colours with the server (src/serve/classes.ts).
const shared = [join(root, 'src', 'serve', 'classes.ts')].filter((f) => existsSync(f));
const newest = Math.max(...[...sources, ...shared, lock].map((f) => statSync(f).mtimeMs));
if (process.argv.includes('--force') || !existsSync(bundle) || statSync(bundle).mtimeMs < newest) {
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(src, 'app.ts')], bundle: true, format: 'esm', target: 'es2022', platform: 'browser',
    outfile: bundle, minify: true, sourcemap: false, logLevel: 'warning', legalComments: 'linked',
  });
  for (const f of ['index.html', 'app.css']) copyFileSync(join(src, f), join(out, f));
  console.error(`build-viewer: ${bundle} (${(statSync(bundle).size / 1e6).toFixed(1)} MB)`);
}
