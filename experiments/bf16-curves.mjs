// Volume Fusion pretraining in fp32 and bf16 side by side, for experiments/bf16-accuracy.sh: the
// training loss (moving mean of 10 iterations) and the pseudo-segmentation Dice on the held-out
// crops of both runs on one chart, and a Markdown summary on stdout.
// Usage: node experiments/bf16-curves.mjs OUT PNG   (reads OUT/pretrain-{fp32,bf16}/metrics.jsonl)
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { plotLines } from '../dist/src/util/plot.js';

const [out, png] = process.argv.slice(2);
if (out === undefined || png === undefined) { console.error('usage: bf16-curves.mjs OUT PNG'); process.exit(2); }
const runs = ['fp32', 'bf16'].map((p) => {
  const recs = readFileSync(path.join(out, `pretrain-${p}`, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // A resumed run logs the iterations after the checkpoint again: the last record of an iteration wins.
  const last = (ev) => [...new Map(recs.filter((r) => r.event === ev).map((r) => [r.iteration, r])).values()].sort((a, b) => a.iteration - b.iteration);
  const train = last('train'), valid = last('valid');
  const smooth = train.map((r, i) => { const w = train.slice(Math.max(0, i - 9), i + 1); return [r.iteration, w.reduce((s, x) => s + x.loss, 0) / w.length]; });
  const stepMs = train.slice(1).map((r) => r.stepMs).sort((a, b) => a - b);
  return { p, train, valid, smooth, medianStepMs: stepMs[Math.floor(stepMs.length / 2)] ?? NaN };
});
const series = runs.flatMap((r, k) => [
  { name: `${r.p} training loss (mean of 10)`, points: r.smooth, color: k === 0 ? [31, 119, 180] : [255, 127, 14] },
  { name: `${r.p} held-out pseudo-segmentation Dice`, points: r.valid.map((v) => [v.iteration, v.score]), color: k === 0 ? [44, 160, 44] : [214, 39, 40] },
]);
mkdirSync(path.dirname(png), { recursive: true });
writeFileSync(png, plotLines(series, { title: 'Volume Fusion, small PCT-Net: fp32 vs bf16', xLabel: 'iteration', yLabel: 'loss / Dice', yMin: 0 }));
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
console.log('| precision | loss, first 10 it | loss, last 50 it | held-out Dice at each validation | best | median step |');
console.log('|---|---:|---:|---|---:|---:|');
for (const r of runs) {
  console.log(`| ${r.p} | ${mean(r.train.slice(0, 10).map((x) => x.loss)).toFixed(4)} | ${mean(r.train.slice(-50).map((x) => x.loss)).toFixed(4)} | ${r.valid.map((v) => v.score.toFixed(3)).join(', ')} | ${Math.max(...r.valid.map((v) => v.score)).toFixed(3)} | ${(r.medianStepMs / 1000).toFixed(2)} s |`);
}
console.log(`\nplot: ${png}`);
