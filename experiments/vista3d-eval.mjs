// The evaluation step of experiments/vista3d-real.sh (src/infer/vista3d/evaluate.ts): the three
// window protocols per class and the held-out class after 1..N clicks on one labelled scan.
// Usage: node experiments/vista3d-eval.mjs --model CKPT --image SCAN --labels LABELS
//          --label-table FILE#key --classes 1,3,...|all [--held-out K] --spacing X,Y,Z --roi X,Y,Z
//          [--fit-window] [--overlap F] [--clicks N] [--threads N] --out DIR
import { parseArgs } from 'node:util';
import { evaluateVista3d, markdownOf } from '../dist/src/infer/vista3d/evaluate.js';

const { values: v } = parseArgs({ options: { ...Object.fromEntries(['model', 'image', 'labels', 'label-table', 'classes', 'held-out', 'spacing', 'roi', 'overlap', 'clicks', 'threads', 'out'].map((k) => [k, { type: 'string' }])), 'fit-window': { type: 'boolean' } } });
const nums = (s, what) => { const a = String(s ?? '').split(',').map(Number); if (a.some((x) => !Number.isFinite(x))) { console.error(`vista3d-eval: --${what} must be numbers, got '${s}'`); process.exit(2); } return a; };
for (const k of ['model', 'image', 'labels', 'label-table', 'classes', 'spacing', 'roi', 'out']) if (v[k] === undefined) { console.error(`vista3d-eval: --${k} is required`); process.exit(2); }
try {
  const r = await evaluateVista3d({
    model: v.model, image: v.image, labels: v.labels, labelTable: v['label-table'], classes: v.classes === 'all' ? 'all' : nums(v.classes, 'classes'),
    heldOut: v['held-out'] === undefined ? null : Number(v['held-out']), spacing: nums(v.spacing, 'spacing'), roi: nums(v.roi, 'roi'),
    ...(v.overlap !== undefined ? { overlap: Number(v.overlap) } : {}), ...(v.clicks !== undefined ? { clicks: Number(v.clicks) } : {}),
    ...(v.threads !== undefined ? { threads: Number(v.threads) } : {}), fitWindow: v['fit-window'] === true, out: v.out,
  });
  process.stdout.write(markdownOf(r));
} catch (err) {
  console.error(`vista3d-eval: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
