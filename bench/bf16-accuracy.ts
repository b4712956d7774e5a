/**
 * bf16 vs fp32 on a real CT: sliding-window label maps of the same network in both precisions,
 * per-class Dice between the two maps, and the largest logit difference of the first window.
 *
 * Network: the PCT-Net parity fixture (../shared/fixtures/pctnet_small, mode 1, 32x64x64, 5
 * classes; its weights are not a trained segmenter), BN folded as predict does. Image: a centred
 * crop of the real abdomen CT ../shared/data/01_totalseg_abdomen_ct/ct.nii.gz, HU window
 * [-1000, 1000] scaled to [-1, 1]. An untrained network's logits are close to ties in many
 * voxels, which makes this a harder agreement test than a trained model's confident maps.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/bf16-accuracy.js [--crop 48,96,96] [--threads 2]
 *
 * Trained-model mode (the proof; experiments/bf16-accuracy.sh runs it): a misfm model on a
 * whole scan through `predictCase`, as `misfm predict` runs it, once in fp32 and once in bf16, no
 * post-processing; per-class Dice between the two label maps, each map's Dice against the ground
 * truth (aligned onto the prediction's grid), and the largest logit difference over every window of
 * the scan (each window of the fp32 pass also runs in bf16 and is compared; the fp32 map is made
 * from the fp32 logits).
 *
 *   node dist/bench/bf16-accuracy.js --model CKPT --input SCAN_OR_SERIES --labels GT --out DIR [--threads 2]
 */
import path from 'node:path';
import os from 'node:os';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { fromTypedArray, noGrad, setNumThreads } from '../src/engine/creation.js';
import { withPrecision, type Precision } from '../src/engine/precision.js';
import type { Tensor } from '../src/engine/tensor.js';
import { readImage } from '../src/io/image/index.js';
import { readSafetensors } from '../src/io/checkpoint/index.js';
import { PCTNet } from '../src/models/pctnet/index.js';
import { foldBatchNorms } from '../src/nn/fuse.js';
import { modelPredictor, slidingWindowSegment } from '../src/infer/sliding-window.js';
import { loadModelForInference } from '../src/infer/model.js';
import { predictCase } from '../src/infer/predict.js';
import { alignToGrid } from '../src/io/image/align.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = ((): string => { let d = here; for (let i = 0; i < 5; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); } return process.cwd(); })();
const shared = path.resolve(repoRoot, '../shared');
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };

/** Dice of class value c between two label arrays (NaN when both are empty). */
function diceOf(a: ArrayLike<number>, b: ArrayLike<number>, c: number): number {
  let inter = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    const pa = a[i] === c, pb = b[i] === c;
    if (pa) na++; if (pb) nb++; if (pa && pb) inter++;
  }
  return na + nb === 0 ? NaN : (2 * inter) / (na + nb);
}

async function trainedModel(model: string, input: string, labelsFile: string, out: string): Promise<void> {
  mkdirSync(out, { recursive: true });
  const bundle = await loadModelForInference(model);
  const net = bundle.model as unknown as { forward(x: Tensor): Tensor | Tensor[] };
  const forward = net.forward.bind(net);
  let maxDiff = 0, maxAbs = 0, windows = 0;
  const first = (y: Tensor | Tensor[]): Tensor => (Array.isArray(y) ? y[0]! : y);
  // fp32 pass: each network call also runs in bf16 and the two logits are compared.
  net.forward = (x: Tensor): Tensor | Tensor[] => {
    const a = withPrecision('fp32', () => forward(x));
    const b = withPrecision('bf16', () => forward(x));
    const la = first(a).dataF32(), lb = first(b).dataF32();
    for (let i = 0; i < la.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(la[i]! - lb[i]!)); maxAbs = Math.max(maxAbs, Math.abs(la[i]!)); }
    windows += first(a).shape[0]!;
    for (const t of Array.isArray(b) ? b : [b]) t.dispose();
    return a;
  };
  const files = { fp32: path.join(out, 'pred-fp32.nii.gz'), bf16: path.join(out, 'pred-bf16.nii.gz') };
  const t0 = performance.now();
  const ra = await predictCase(bundle, input, files.fp32, { keepLargest: 'none', sidecar: false });
  const msDual = performance.now() - t0;
  net.forward = forward;
  const rb = await predictCase(bundle, input, files.bf16, { keepLargest: 'none', sidecar: false, precision: 'bf16' });
  const [pa, pb, raw] = await Promise.all([readImage(files.fp32), readImage(files.bf16), readImage(labelsFile)]);
  const gt = alignToGrid(raw, pa, ['labels', 'prediction']);
  const values = bundle.labelValues ?? [];
  const names = bundle.classNames ?? values.map(String);
  const rows = values.map((v, i) => {
    const between = diceOf(pa.data as ArrayLike<number>, pb.data as ArrayLike<number>, v);
    const gA = diceOf(pa.data as ArrayLike<number>, gt.data as ArrayLike<number>, v), gB = diceOf(pb.data as ArrayLike<number>, gt.data as ArrayLike<number>, v);
    let nA = 0; const da = pa.data as ArrayLike<number>; for (let j = 0; j < da.length; j++) if (da[j] === v) nA++;
    return { value: v, name: names[i] ?? String(v), voxelsFp32: nA, diceBetween: between, diceGtFp32: gA, diceGtBf16: gB };
  });
  let same = 0;
  for (let i = 0; i < pa.data.length; i++) if (pa.data[i] === pb.data[i]) same++;
  const result = {
    model: path.relative(repoRoot, path.resolve(model)), input: path.relative(repoRoot, path.resolve(input)), cpu: os.cpus()[0]?.model ?? '',
    windows, maxLogitDiff: maxDiff, maxLogit: maxAbs, identicalVoxels: same / pa.data.length,
    seconds: { fp32PlusBf16Check: msDual / 1000, bf16: rb.timings.total / 1000, fp32Inference: ra.timings.inference / 1000, bf16Inference: rb.timings.inference / 1000 },
    classes: rows,
  };
  writeFileSync(path.join(out, 'bf16-accuracy.json'), `${JSON.stringify(result, null, 2)}\n`);
  const f = (x: number): string => (Number.isNaN(x) ? 'n/a' : x.toFixed(4));
  console.log(`${result.model} on ${result.input}: ${windows} windows; max |logit bf16 - fp32| ${maxDiff.toFixed(4)} (max |logit| ${maxAbs.toFixed(2)}); identical labels ${(100 * same / pa.data.length).toFixed(4)}%`);
  console.log('| class | voxels (fp32) | Dice bf16 vs fp32 | Dice vs GT, fp32 | Dice vs GT, bf16 | difference |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.name} | ${r.voxelsFp32} | ${f(r.diceBetween)} | ${f(r.diceGtFp32)} | ${f(r.diceGtBf16)} | ${Number.isNaN(r.diceGtBf16 - r.diceGtFp32) ? 'n/a' : (r.diceGtBf16 - r.diceGtFp32).toFixed(4)} |`);
  console.log(`network time on this scan: fp32 ${result.seconds.fp32Inference.toFixed(1)} s (incl. the bf16 check of every window), bf16 ${result.seconds.bf16Inference.toFixed(1)} s`);
  bundle.model.dispose();
}

async function main(): Promise<void> {
  setNumThreads(Number(opt('threads', '2')));
  if (args.includes('--model')) {
    await trainedModel(opt('model', ''), opt('input', ''), opt('labels', ''), opt('out', 'bf16-accuracy'));
    return;
  }
  const crop = opt('crop', '48,96,96').split(',').map(Number) as [number, number, number];
  const fx = path.join(shared, 'fixtures', 'pctnet_small');
  const meta = JSON.parse((await import('node:fs')).readFileSync(path.join(fx, 'tensors.json'), 'utf8')) as { meta: { network_params: Record<string, unknown> } };
  const p = meta.meta.network_params as Record<string, unknown>;
  const net = new PCTNet({
    inChannels: p['in_chns'] as number, classNum: p['class_num'] as number, inputSize: p['input_size'] as [number, number, number],
    featureChns: p['feature_chns'] as number[], dropout: p['dropout'] as number[], depths: p['depths'] as [number, number, number],
    numHeads: p['num_heads'] as [number, number, number], windowSizes: p['window_sizes'] as [number, number, number],
    resolutionMode: p['resolution_mode'] as 0 | 1 | 2, multiscalePred: false,
  });
  net.loadStateDict(readSafetensors(path.join(fx, 'weights.safetensors')).tensors, { mode: 'filter' });
  net.multiscalePred = false;
  net.eval();
  const folded = foldBatchNorms(net);
  const file = path.join(shared, 'data', '01_totalseg_abdomen_ct', 'ct.nii.gz');
  const vol = await readImage(file);
  const [sx, sy, sz] = vol.size;
  const [cd, ch, cw] = crop;
  const z0 = Math.floor((sz - cd) / 2), y0 = Math.floor((sy - ch) / 2), x0 = Math.floor((sx - cw) / 2);
  const data = new Float32Array(cd * ch * cw);
  let t = 0;
  for (let z = 0; z < cd; z++) for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) {
    const hu = Number(vol.data[((z0 + z) * sy + (y0 + y)) * sx + (x0 + x)]);
    data[t++] = Math.min(1000, Math.max(-1000, hu)) / 1000;
  }
  const image = fromTypedArray(data, [1, 1, cd, ch, cw]);
  const window = net.inputSize as [number, number, number];
  const run = (prec: Precision): { labels: Uint8Array | Uint16Array; ms: number; logits: Float32Array } => withPrecision(prec, () => {
    const t0 = performance.now();
    const seg = slidingWindowSegment(modelPredictor(net), image, { window, overlap: 0.5 });
    const ms = performance.now() - t0;
    const w0 = image.crop([null, null, [0, window[0]], [0, window[1]], [0, window[2]]]).contiguous();
    const y = noGrad(() => net.forward(w0)) as Tensor;
    const logits = y.dataF32();
    y.dispose(); w0.dispose();
    return { labels: seg.labels, ms, logits };
  });
  const a = run('fp32'), b = run('bf16');
  const k = net.classNum;
  const dice = Array.from({ length: k }, (_, c) => diceOf(a.labels, b.labels, c));
  let maxDiff = 0, maxAbs = 0;
  for (let i = 0; i < a.logits.length; i++) { maxDiff = Math.max(maxDiff, Math.abs(a.logits[i]! - b.logits[i]!)); maxAbs = Math.max(maxAbs, Math.abs(a.logits[i]!)); }
  let same = 0;
  for (let i = 0; i < a.labels.length; i++) if (a.labels[i] === b.labels[i]) same++;
  const counts = new Array<number>(k).fill(0);
  for (const v of a.labels) counts[v] = (counts[v] ?? 0) + 1;
  console.log(`fixture PCT-Net (${folded} BN folded) on ${path.relative(shared, file)} crop ${crop.join('x')} at z,y,x ${z0},${y0},${x0}; window ${window.join('x')}, overlap 0.5`);
  console.log(`fp32 ${(a.ms / 1000).toFixed(1)} s, bf16 ${(b.ms / 1000).toFixed(1)} s (wall, shared machine)`);
  console.log(`voxels per class (fp32 map): ${counts.join(', ')}`);
  console.log(`per-class Dice bf16 vs fp32 label maps: ${dice.map((d) => d.toFixed(4)).join(', ')}; identical labels ${(100 * same / a.labels.length).toFixed(3)}%`);
  console.log(`max |logit bf16 - fp32| on the first window: ${maxDiff.toFixed(4)} (max |logit| ${maxAbs.toFixed(3)})`);
  console.log(JSON.stringify({ crop, dice, identical: same / a.labels.length, maxLogitDiff: maxDiff, maxLogit: maxAbs, counts }));
  image.dispose();
  net.dispose();
}

await main();
