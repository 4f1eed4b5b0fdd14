import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The report page (src/ui) as dist/ui: one bundled script with Chart.js inside, the HTML and
// the stylesheet. Built once here; the service serves the files as they are (src/http/ui.ts).
const root = fileURLToPath(new URL('../../', import.meta.url));
const out = root + 'dist/ui/';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [root + 'src/ui/main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  outfile: out + 'app.js',
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) copyFileSync(root + 'src/ui/' + f, out + f);
