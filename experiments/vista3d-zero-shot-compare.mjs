// One plot of the held-out class's Dice after 1..N clicks from several evaluations of
// experiments/vista3d-real.sh (their vista3d-eval.json), so models trained differently can be
// compared on the same scan.
// Usage: node experiments/vista3d-zero-shot-compare.mjs --out FILE.png [--title T] NAME=EVAL.json ...
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { plotLines } from '../dist/src/util/plot.js';

const { values: v, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, title: { type: 'string' } } });
if (v.out === undefined || positionals.length === 0) {
  console.error('usage: node experiments/vista3d-zero-shot-compare.mjs --out FILE.png [--title T] NAME=EVAL.json ...');
  process.exit(2);
}
const series = [];
let held = null, clicks = 0;
for (const arg of positionals) {
  const eq = arg.indexOf('=');
  if (eq <= 0) { console.error(`vista3d-zero-shot-compare: '${arg}' is not NAME=EVAL.json`); process.exit(2); }
  const file = arg.slice(eq + 1);
  let r;
  try { r = JSON.parse(readFileSync(file, 'utf8')); } catch (err) { console.error(`vista3d-zero-shot-compare: ${file}: ${err instanceof Error ? err.message : String(err)}`); process.exit(1); }
  const zs = r.zeroShot;
  if (zs == null || !Array.isArray(zs.dice) || zs.dice.length === 0) { console.error(`vista3d-zero-shot-compare: ${file} has no zero-shot result`); process.exit(1); }
  if (held !== null && zs.name !== held) { console.error(`vista3d-zero-shot-compare: ${file} holds out ${zs.name}, the others ${held}`); process.exit(1); }
  held = zs.name; clicks = Math.max(clicks, zs.dice.length);
  series.push({ name: arg.slice(0, eq), points: zs.dice.map((d, i) => [i + 1, d]) });
  console.log(`${arg.slice(0, eq)}: ${zs.dice.map((d) => d.toFixed(3)).join(' ')}`);
}
writeFileSync(v.out, plotLines(series, { title: v.title ?? `VISTA3D zero-shot: ${held} (never trained), Dice vs clicks`, xLabel: 'clicks', yLabel: 'Dice', yMin: 0, yMax: 1, xMin: 1, xMax: clicks }));
console.log(`wrote ${v.out}`);
