/**
 * Prediction benchmark: misfm's slab-wise sliding window (duplicates weighted, labels finalised
 * slab by slab) against the reference approach (PyMIC's Inferer: every window of the reference
 * loop, duplicates computed again, full-resolution float accumulators of all classes for the
 * logits AND the weights, out/weight, softmax, argmax), measured in the same run. Each variant
 * runs in its own child process, so process.resourceUsage().maxRSS is that variant's peak.
 *
 * Scenarios (--scenarios, comma-separated; default all three):
 *   ct-paper   real CT (../shared/data/01_totalseg_abdomen_ct/ct.nii.gz, 112x101x122), PCT-Net
 *              paper config (random weights: timing only), read -> ct-window -> windows -> write
 *   syn-conv   synthetic 512x512x300 volume, a 5-class 3x3x3 conv as the network, window
 *              32x64x64 at 50% overlap: isolates the inferer's own cost (accumulation, finalising)
 *   syn-small  synthetic 512x512x300, PCT-Net small preset (window 32x64x64); by default at overlap
 *              0 (640 windows) because 50% overlap means ~4900 windows, ~50 min per variant here
 *   syn-paper  synthetic 512x512x300, PCT-Net paper config (window 64x128x128, overlap 0.5). Every
 *              window is placed, weighted, accumulated and finalised for real, but only the first
 *              --max-windows (default 4) network calls run; later calls replay the last output
 *              (a 2-core CPU needs ~6 s per call: ~45 min per variant in full). Peak RSS is measured
 *              as is (accumulators, one window's activations); the time is projected by adding the
 *              mean measured network time for each replayed call. Labels are not comparable.
 *
 * Timings on a shared machine are noisy: the CPU time of each child is reported beside the wall time.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/predict.js [--scenarios ct-paper,syn-conv,syn-small]
 *     [--threads 2] [--batch 1] [--overlap-small 0] [--size 512,512,300] [--max-windows 4]
 *     [--variants reference,slab,slab-bf16-fold]
 *
 * Variants: reference (PyMIC's loop, fp32), slab (misfm's inferer, fp32, BatchNorm unfolded: the
 * configuration of the earlier figures), slab-bf16-fold (misfm's inferer with the network in bf16
 * and its BatchNorms folded, as `misfm predict --precision bf16` runs a PCT-Net; the scenarios with a
 * PCT-Net only).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cat, fromTypedArray, manualSeed, noGrad, rand, randn, setNumThreads, zeros } from '../src/engine/creation.js';
import { dispose, keep, tidy } from '../src/engine/scope.js';
import { conv3d, pad as padTensor } from '../src/engine/functional.js';
import type { Tensor } from '../src/engine/tensor.js';
import { createModel, preset } from '../src/models/index.js';
import { readImage, writeLike } from '../src/io/image/index.js';
import { clipAndScale } from '../src/transforms/intensity.js';
import { volumeToBatch } from '../src/transforms/volume-tensor.js';
import { gaussianImportanceMap, overlapToStride, padToWindow, windowStarts, type Triple3 } from '../src/infer/windows.js';
import { modelPredictor, slidingWindowSegment, type Predictor } from '../src/infer/sliding-window.js';
import { predictCase } from '../src/infer/predict.js';
import type { ModelBundle } from '../src/infer/model.js';
import { resolveModelConfig } from '../src/models/config.js';
import { foldBatchNorms } from '../src/nn/fuse.js';
import { withPrecision } from '../src/engine/precision.js';
import type { Module } from '../src/nn/module.js';
// @ts-expect-error plain JS module shared with the launcher
import { allocatorEnv } from '../../bin/allocator.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = ((): string => { let d = here; for (let i = 0; i < 5; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); } return process.cwd(); })();
const CT = path.resolve(repoRoot, '../shared/data/01_totalseg_abdomen_ct/ct.nii.gz');
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const THREADS = Number(opt('threads', '2'));
const BATCH = Number(opt('batch', '1'));
const SIZE = opt('size', '512,512,300').split(',').map(Number) as [number, number, number];
const VARIANTS = opt('variants', 'reference,slab').split(',');

interface ChildResult {
  scenario: string; variant: string; seconds: number; cpuSeconds: number; windowSeconds: number; windows: number; peakRssGb: number; labelsFile: string; histogram: number[]; sha1: string;
  /** syn-paper: network calls run, calls replayed, and the mean seconds of a run call. */
  netCalls?: number; replayed?: number; netSecondsPerCall?: number;
}

/** Runs the network for the first `max` calls and replays the last output afterwards, timing the calls run. */
function cappedPredictor(inner: Predictor, max: number): { predictor: Predictor; stats: { calls: number; replayed: number; seconds: number; first: number }; release: () => void } {
  // `first` is the warm-up call (oneDNN primitive creation): left out of the mean when others ran.
  const stats = { calls: 0, replayed: 0, seconds: 0, first: 0 };
  let last: Tensor | null = null;
  const predictor: Predictor = (x) => {
    if (stats.calls < max || last === null || last.shape[0] !== x.shape[0]) {
      const t = performance.now();
      const raw = inner(x);
      const y = Array.isArray(raw) ? raw[0]! : raw;
      const dt = (performance.now() - t) / 1000;
      if (stats.calls === 0) stats.first = dt;
      stats.seconds += dt;
      stats.calls++;
      if (last !== null) last.dispose();
      last = keep(y.clone());
      return y;
    }
    stats.replayed++;
    return last.clone();
  };
  return { predictor, stats, release: () => { if (last !== null) last.dispose(); } };
}

/**
 * The reference approach, as PyMIC's Inferer does it (spec 3.2) plus the padding PCT-Net needs:
 * [1,K,D,H,W] float accumulators for logits*g and for g, every start of the reference loop,
 * output/weight, softmax, argmax.
 */
function referenceSegment(predictor: Predictor, image: Tensor, window: Triple3, stride: Triple3, batch: number, padValue: number): { labels: Uint8Array; windows: number } {
  return noGrad(() => {
    const s = image.shape;
    const size: Triple3 = [s[2]!, s[3]!, s[4]!];
    const pad = padToWindow(size, window);
    const padded = pad.before.some((v, i) => v + pad.after[i]! > 0)
      ? padTensor(image, [pad.before[2], pad.after[2], pad.before[1], pad.after[1], pad.before[0], pad.after[0]], 'constant', padValue) : image;
    const starts = windowStarts(pad.paddedSize, window, stride);
    const g = fromTypedArray(gaussianImportanceMap(window), [1, 1, ...window]);
    let out: Tensor | null = null, weight: Tensor | null = null;
    for (let i = 0; i < starts.length; i += batch) {
      const group = starts.slice(i, i + batch);
      tidy(() => {
        const patches = group.map((st) => padded.crop([null, null, [st[0], st[0] + window[0]], [st[1], st[1] + window[1]], [st[2], st[2] + window[2]]]).contiguous());
        const raw = predictor(patches.length === 1 ? patches[0]! : cat(patches, 0));
        const y = Array.isArray(raw) ? raw[0]! : raw;
        if (out === null) {
          const k = y.shape[1]!;
          out = keep(zeros([1, k, ...pad.paddedSize]));
          weight = keep(zeros([1, k, ...pad.paddedSize]));
        }
        group.forEach((st, j) => {
          const region: ([number, number] | null)[] = [null, null, [st[0], st[0] + window[0]], [st[1], st[1] + window[1]], [st[2], st[2] + window[2]]];
          (out as Tensor).crop(region).add_(y.narrow(0, j, 1).mul(g));
          (weight as Tensor).crop(region).add_(g.expand(y.narrow(0, j, 1).shape));
        });
      });
    }
    const o = out as Tensor | null, w = weight as Tensor | null;
    if (o === null || w === null) throw new Error('no windows');
    const avg = o.div(w);
    dispose([o, w]);
    const prob = avg.softmax(1);
    avg.dispose();
    const lab = tidy(() => prob.argmax(1).crop([null, [pad.before[0], pad.before[0] + size[0]], [pad.before[1], pad.before[1] + size[1]], [pad.before[2], pad.before[2] + size[2]]]).to('uint8'));
    prob.dispose();
    const labels = lab.data() as Uint8Array;
    dispose([lab, g]);
    if (padded !== image) padded.dispose();
    return { labels, windows: starts.length };
  });
}

function summary(labels: Uint8Array, k: number): { histogram: number[]; sha1: string } {
  const histogram = new Array<number>(k).fill(0);
  for (let i = 0; i < labels.length; i++) histogram[labels[i]!]!++;
  return { histogram, sha1: createHash('sha1').update(labels).digest('hex').slice(0, 16) };
}

function paperBundle(): ModelBundle {
  manualSeed(0);
  const config = preset('pctnet-paper', { multiscalePred: false });
  const model = createModel(config);
  model.eval();
  return {
    model, modelConfig: resolveModelConfig(config), classNames: null, labelValues: null, device: 'cpu', inference: null,
    preprocess: { intensity: { kind: 'ct-window', window: [-1000, 1000] }, reorient: false, bodyCrop: false, spacing: null },
    provenance: { checkpoint: 'random weights (bench)', kind: 'misfm', iteration: null, configHash: '-', preprocessSource: 'bench' },
  };
}

/** The network of a slab-bf16-fold variant: BatchNorms folded (as loadModelForInference does), bf16 compute. */
function fast(variant: string, model: Module, predictor: Predictor): Predictor {
  if (variant !== 'slab-bf16-fold') return predictor;
  foldBatchNorms(model);
  return (x) => withPrecision('bf16', () => predictor(x));
}

async function runChild(scenario: string, variant: string, outDir: string): Promise<void> {
  setNumThreads(THREADS);
  const t0 = performance.now();
  let tw = 0, windows = 0, labels: Uint8Array, k = 5;
  let extra: Partial<ChildResult> = {};
  const labelsFile = path.join(outDir, `${scenario}-${variant}.bin`);
  if (scenario === 'ct-paper') {
    const bundle = paperBundle();
    const window = bundle.model.inputSize as Triple3;
    const stride = overlapToStride(window, 0.5);
    const out = path.join(outDir, `${scenario}-${variant}.nii.gz`);
    if (variant.startsWith('slab')) {
      if (variant === 'slab-bf16-fold') foldBatchNorms(bundle.model);
      const r = await predictCase(bundle, CT, out, { overlap: 0.5, batchSize: BATCH, precision: variant === 'slab-bf16-fold' ? 'bf16' : 'fp32' });
      tw = r.timings.inference / 1000;
      windows = r.windowsComputed;
    } else {
      const vol = await readImage(CT);
      const x = volumeToBatch(clipAndScale(vol, { lo: -1000, hi: 1000 }));
      const t1 = performance.now();
      const r = referenceSegment(modelPredictor(bundle.model), x, window, stride, BATCH, -1);
      tw = (performance.now() - t1) / 1000;
      windows = r.windows;
      x.dispose();
      await writeLike(out, r.labels, vol, { dtype: 'uint8' });
    }
    labels = (await readImage(out)).data as Uint8Array;
  } else {
    const [X, Y, Z] = SIZE;
    manualSeed(1);
    // A smooth random volume in [-1, 1] (like a normalised CT), D,H,W = Z,Y,X.
    const image = tidy(() => {
      const coarse = rand([1, 1, Math.ceil(Z / 8), Math.ceil(Y / 8), Math.ceil(X / 8)]).mul(2).sub(1);
      return coarse.reshape([1, 1, coarse.shape[2]!, 1, coarse.shape[3]!, 1, coarse.shape[4]!, 1])
        .expand([1, 1, coarse.shape[2]!, 8, coarse.shape[3]!, 8, coarse.shape[4]!, 8]).reshape([1, 1, coarse.shape[2]! * 8, coarse.shape[3]! * 8, coarse.shape[4]! * 8])
        .crop([null, null, [0, Z], [0, Y], [0, X]]).contiguous();
    });
    let predictor: Predictor, window: Triple3, overlap: number;
    let cleanup = (): void => {};
    let capped: ReturnType<typeof cappedPredictor> | null = null;
    if (scenario === 'syn-paper') {
      const bundle = paperBundle();
      capped = cappedPredictor(fast(variant, bundle.model, modelPredictor(bundle.model)), Number(opt('max-windows', '4')));
      predictor = capped.predictor;
      window = bundle.model.inputSize as Triple3;
      overlap = 0.5;
      cleanup = () => { capped!.release(); bundle.model.dispose(); };
    } else if (scenario === 'syn-conv') {
      const w = keep(randn([5, 1, 3, 3, 3])), b = keep(randn([5]));
      predictor = (x) => conv3d(x, w, b, { padding: 1 });
      window = [32, 64, 64];
      overlap = 0.5;
      cleanup = () => dispose([w, b]);
    } else {
      manualSeed(0);
      const model = createModel(preset('pctnet-small', { multiscalePred: false }));
      model.eval();
      predictor = fast(variant, model, modelPredictor(model));
      window = [32, 64, 64];
      overlap = Number(opt('overlap-small', '0'));
      cleanup = () => model.dispose();
    }
    const t1 = performance.now();
    if (variant.startsWith('slab')) {
      const r = slidingWindowSegment(predictor, image, { window, overlap, batchSize: BATCH, padValue: -1 });
      labels = r.labels as Uint8Array;
      windows = r.windowsComputed;
      k = r.classNum;
    } else {
      const r = referenceSegment(predictor, image, window, overlapToStride(window, overlap), BATCH, -1);
      labels = r.labels;
      windows = r.windows;
    }
    tw = (performance.now() - t1) / 1000;
    image.dispose();
    if (capped !== null) extra = { netCalls: capped.stats.calls, replayed: capped.stats.replayed, netSecondsPerCall: capped.stats.calls > 1 ? (capped.stats.seconds - capped.stats.first) / (capped.stats.calls - 1) : capped.stats.seconds };
    cleanup();
  }
  writeFileSync(labelsFile, labels);
  const ru = process.resourceUsage();
  const res: ChildResult = {
    scenario, variant, seconds: (performance.now() - t0) / 1000, cpuSeconds: (ru.userCPUTime + ru.systemCPUTime) / 1e6, windowSeconds: tw, windows,
    peakRssGb: process.resourceUsage().maxRSS / 1e6, labelsFile, ...summary(labels, k), ...extra,
  };
  console.log(JSON.stringify(res));
}

function child(scenario: string, variant: string, outDir: string): ChildResult | null {
  // The allocator the CLI runs under (bin/misfm.js), for both variants alike.
  const env = { ...process.env, ...allocatorEnv(process.env, existsSync), MISFM_NUM_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) };
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', scenario, variant, outDir, ...args], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try { return JSON.parse(line) as ChildResult; } catch {
    console.error(`  ${scenario}/${variant} failed (${r.status}): ${(r.stderr ?? '').slice(-1500)}`);
    return null;
  }
}

/** Measured time plus the mean network time for every replayed call. */
function projected(r: ChildResult): number {
  return r.seconds + (r.replayed ?? 0) * (r.netSecondsPerCall ?? 0);
}

async function main(): Promise<void> {
  const c = args.indexOf('--child');
  if (c >= 0) { await runChild(args[c + 1]!, args[c + 2]!, args[c + 3]!); return; }
  const scenarios = opt('scenarios', 'ct-paper,syn-conv,syn-small').split(',');
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'misfm-bench-predict-'));
  console.log(`predict benchmark: ${THREADS} threads, batch ${BATCH}, synthetic size ${SIZE.join('x')} (x,y,z); ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const all: ChildResult[] = [];
  try {
    for (const sc of scenarios) {
      const res: Record<string, ChildResult> = {};
      for (const v of VARIANTS) {
        if (v === 'slab-bf16-fold' && sc === 'syn-conv') continue;
        const r = child(sc, v, outDir);
        if (r === null) continue;
        res[v] = r;
        all.push(r);
        console.log(`  ${sc.padEnd(10)} ${v.padEnd(14)} total ${r.seconds.toFixed(1).padStart(7)} s (CPU ${r.cpuSeconds.toFixed(1)} s)   windows ${r.windows} in ${r.windowSeconds.toFixed(1)} s   peak RSS ${r.peakRssGb.toFixed(2)} GB   labels ${r.sha1}`);
        if (r.replayed !== undefined) {
          console.log(`  ${sc.padEnd(10)} ${v.padEnd(14)} ${r.netCalls} network calls run (${r.netSecondsPerCall!.toFixed(2)} s each), ${r.replayed} replayed: projected total ${projected(r).toFixed(0)} s`);
        }
      }
      const ref = res['reference'], slab = res['slab'], fastest = res['slab-bf16-fold'];
      if (fastest !== undefined && slab !== undefined && fastest.replayed !== undefined) {
        console.log(`  ${sc.padEnd(10)} slab-bf16-fold/slab: projected time x${(projected(fastest) / projected(slab)).toFixed(2)} (${projected(fastest).toFixed(0)} s vs ${projected(slab).toFixed(0)} s), peak RSS x${(fastest.peakRssGb / slab.peakRssGb).toFixed(2)}`);
      }
      if (ref !== undefined && slab !== undefined && ref.replayed !== undefined) {
        console.log(`  ${sc.padEnd(10)} slab/reference: projected time x${(projected(slab) / projected(ref)).toFixed(2)} (${projected(slab).toFixed(0)} s vs ${projected(ref).toFixed(0)} s), ` +
          `peak RSS x${(slab.peakRssGb / ref.peakRssGb).toFixed(2)}; labels not compared (replayed outputs)`);
      } else if (ref !== undefined && slab !== undefined) {
        const a = readFileSync(ref.labelsFile), b = readFileSync(slab.labelsFile);
        let diff = 0;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
        console.log(`  ${sc.padEnd(10)} slab/reference: time x${(slab.seconds / ref.seconds).toFixed(2)} (windows part x${(slab.windowSeconds / ref.windowSeconds).toFixed(2)}, ` +
          `CPU x${(slab.cpuSeconds / ref.cpuSeconds).toFixed(2)}), ` +
          `peak RSS x${(slab.peakRssGb / ref.peakRssGb).toFixed(2)}; labels differ at ${diff} of ${a.length} voxels`);
      }
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
  console.log(`load average at the end ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  console.log(JSON.stringify(all.map(({ labelsFile: _f, ...r }) => r)));
}

await main();
