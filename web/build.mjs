// Builds the dashboard's committed assets: assets/app.css (Tailwind CLI, minified) and
// assets/chart.umd.min.js (+ its licence) copied from the pinned chart.js package.
// Run `npm ci && npm run build` in web/ after changing index.html, app.js or src/app.css.
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, 'node_modules', '.bin', 'tailwindcss');
execFileSync(bin, ['-c', 'tailwind.config.js', '-i', 'src/app.css', '-o', 'assets/app.css', '--minify'], {
  cwd: here,
  stdio: 'inherit',
});
const chart = join(here, 'node_modules', 'chart.js');
copyFileSync(join(chart, 'dist', 'chart.umd.min.js'), join(here, 'assets', 'chart.umd.min.js'));
copyFileSync(join(chart, 'LICENSE.md'), join(here, 'assets', 'chart.js.LICENSE.md'));
console.log('built assets/app.css, copied assets/chart.umd.min.js');
