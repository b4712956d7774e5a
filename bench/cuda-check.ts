/**
 * Checks a CUDA build of the addon on a GPU machine (README, "Using a GPU"): the same code on the
 * GPU gives the CPU's (and the fixtures') numbers, NCCL forms a group, and how fast the GPU path is.
 * Not a test: CI has no GPU. Prints one JSON object; exits 1 if a correctness check fails.
 *
 *   node dist/bench/cuda-check.js [--fixtures ../shared/fixtures] [--model models/pctnet-small-abdomen8/model.pt]
 *     [--reps 5] [--python python3] [--device cuda] [--skip-timing]
 *
 * Correctness (tolerances: GPU convolutions may use TF32, libtorch's default for cuDNN, so results
 * are compared relative to the largest magnitude, 2e-3, besides the fixtures' own CPU tolerance):
 *  - VISTA3D small fixture on the GPU: automatic and point forward against MONAI's stored logits,
 *    and a session (automatic classes, then a click) on the GPU against the same on the CPU;
 *  - the bundled PCT-Net: GPU vs CPU logits (fp32) and GPU bf16 vs GPU fp32; sliding-window logits
 *    with the network on the GPU vs all on the CPU;
 *  - a PCT-Net small training step: every parameter gradient, GPU vs CPU;
 *  - process groups of one rank: NCCL (CUDA tensors) and Gloo (CPU tensors) all-reduce/broadcast/barrier.
 * Timing: paper PCT-Net (64x128x128) eval forward fp32 and bf16 and a training step on the GPU, and
 * the same model in PyTorch eager on the same GPU (bench/pctnet_ref.py) when python3 has torch.
 */
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { native } from '../src/engine/native.js';
import { fromTypedArray, manualSeed, noGrad, randn } from '../src/engine/creation.js';
import { dispose } from '../src/engine/scope.js';
import { withPrecision } from '../src/engine/precision.js';
import type { Tensor } from '../src/engine/tensor.js';
import { readSafetensors } from '../src/io/checkpoint/index.js';
import { VISTA3D } from '../src/models/vista3d/index.js';
import { saveVista3dCheckpoint } from '../src/models/vista3d/checkpoint.js';
import { openVista3dSession } from '../src/infer/vista3d/session.js';
import type { Volume } from '../src/io/volume.js';
import { createModel, preset, type PCTNet } from '../src/models/index.js';
import { loadModelForInference } from '../src/infer/model.js';
import { modelPredictor, slidingWindowLogits } from '../src/infer/sliding-window.js';
import { ProcessGroup, availableBackends } from '../src/distributed/group.js';
import { freePort } from '../src/distributed/launch.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const { values: v } = parseArgs({ options: {
  fixtures: { type: 'string', default: path.resolve(root, '../shared/fixtures') },
  model: { type: 'string', default: path.join(root, 'models/pctnet-small-abdomen8/model.pt') },
  reps: { type: 'string', default: '5' }, python: { type: 'string', default: 'python3' }, device: { type: 'string', default: 'cuda' },
  'skip-timing': { type: 'boolean', default: false },
} });
const device = v.device!;
const reps = Number(v.reps);
const out: Record<string, unknown> = {};
const failures: string[] = [];
const REL = 2e-3;

/** max |a-b|, max |b| and whether max |a-b| <= rel * max |b| (NaN anywhere fails). */
function compare(name: string, a: Float32Array, b: Float32Array, rel = REL): { maxAbsDiff: number; maxAbs: number; ok: boolean } {
  let d = 0, m = 0, nan = false;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]!) || Number.isNaN(b[i]!)) { nan ||= Number.isNaN(a[i]!) !== Number.isNaN(b[i]!); continue; }
    // VISTA3D's -9999 marks windows without a prompt: exact, and not a magnitude.
    if (b[i] === -9999 || a[i] === -9999) { nan ||= a[i] !== b[i]; continue; }
    d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!));
  }
  const ok = a.length === b.length && !nan && d <= rel * Math.max(m, 1e-6);
  if (!ok) failures.push(`${name}: max |diff| ${d} vs max |ref| ${m}${nan ? ' (NaN or -9999 mismatch)' : ''}`);
  return { maxAbsDiff: d, maxAbs: m, ok };
}
/** The fixtures' CPU tolerance |a-b| <= 1e-5 + 1e-4 |b| (-9999 exact): how many voxels miss it (reported, not failed). */
function outsideCpuTolerance(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (y === -9999 ? x !== -9999 : !(Math.abs(x - y) <= 1e-5 + 1e-4 * Math.abs(y))) n++;
  }
  return n;
}
const sync = (t: Tensor): void => { const s = t.sum(); s.dataF32(); s.dispose(); };
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
function time(fn: () => void, n = reps): number {
  fn();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) { const t = performance.now(); fn(); ts.push(performance.now() - t); }
  return +median(ts).toFixed(2);
}
async function step(name: string, fn: () => Promise<unknown> | unknown): Promise<void> {
  try { out[name] = await fn(); } catch (err) { failures.push(`${name}: ${(err as Error).message}`); out[name] = { error: (err as Error).message }; }
}

const info = native().info();
out['engine'] = { torch: info.torchVersion, cudaAvailable: info.cudaAvailable, cudaDevices: info.cudaDeviceCount, backends: availableBackends() };
if (device !== 'cpu' && !info.cudaAvailable) {
  console.log(JSON.stringify(out, null, 1));
  console.error(`cuda-check: this addon's libtorch has no CUDA (${info.config.split('\n')[0]}); build against a CUDA LibTorch (README, "Using a GPU")`);
  process.exit(1);
}

await step('vista3dFixture', () => {
  const dir = path.join(v.fixtures!, 'vista3d_small');
  if (!existsSync(dir)) return { skipped: `no ${dir}` };
  const meta = JSON.parse(readFileSync(path.join(dir, 'tensors.json'), 'utf8')) as { tensors: Record<string, { file: string; shape: number[] }> };
  const raw = (k: string): Buffer => readFileSync(path.join(dir, meta.tensors[k]!.file));
  const f32 = (k: string): Float32Array => { const b = raw(k); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
  const i64 = (k: string): number[] => { const b = raw(k); return Array.from(new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), Number); };
  const net = new VISTA3D({ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] });
  net.loadStateDict(readSafetensors(path.join(dir, 'weights.safetensors')).tensors);
  net.eval().toDevice(device);
  const x = fromTypedArray(f32('input'), meta.tensors['input']!.shape, { device });
  try {
    const auto = noGrad(() => net.forward(x, { classVector: i64('auto/class_vector') }));
    const autoDevice = auto.device, a = auto.dataF32(); auto.dispose();
    const n = meta.tensors['point/point_labels']!.shape[1]!;
    const flat = i64('point/point_coords'), lab = i64('point/point_labels');
    const coords = Array.from({ length: lab.length / n }, (_, b) => Array.from({ length: n }, (_, j) => flat.slice((b * n + j) * 3, (b * n + j) * 3 + 3)));
    const labels = Array.from({ length: lab.length / n }, (_, b) => lab.slice(b * n, (b + 1) * n));
    const pt = noGrad(() => net.forward(x, { points: { coords, labels }, promptClass: i64('point/prompt_class') }));
    const p = pt.dataF32(); pt.dispose();
    return {
      outputDevice: autoDevice,
      auto: { ...compare('vista3d auto', a, f32('auto/out')), outsideCpuTolerance: outsideCpuTolerance(a, f32('auto/out')) },
      point: { ...compare('vista3d point', p, f32('point/out')), outsideCpuTolerance: outsideCpuTolerance(p, f32('point/out')) },
    };
  } finally { x.dispose(); net.dispose(); }
});

await step('vista3dSession', async () => {
  // The session path (misfm segment / serve): automatic classes then a click, GPU vs CPU label maps.
  const dir = path.join(v.fixtures!, 'vista3d_small');
  if (!existsSync(dir)) return { skipped: `no ${dir}` };
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-cuda-check-'));
  try {
    const net = new VISTA3D({ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] });
    net.loadStateDict(readSafetensors(path.join(dir, 'weights.safetensors')).tensors);
    const ckpt = path.join(tmp, 'vista3d.pt');
    saveVista3dCheckpoint(net, ckpt); net.dispose();
    manualSeed(5);
    const size: [number, number, number] = [40, 36, 32];
    const noise = randn([size[0] * size[1] * size[2]]);
    const data = Float32Array.from(noise.dataF32(), (x) => 300 * x); noise.dispose();
    const image = { data, size, spacing: [1.5, 1.5, 1.5], origin: [0, 0, 0], direction: [1, 0, 0, 0, 1, 0, 0, 0, 1] } as unknown as Volume;
    const run = async (device: string): Promise<{ auto: Uint8Array | Uint16Array; click: Uint8Array | Uint16Array }> => {
      const s = await openVista3dSession(ckpt, image, { device, roi: [32, 32, 32] });
      try {
        const auto = await s.autoSegment([1, 3]);
        const c = await s.click([{ label: 1, positive: true, ijk: [20, 18, 16] }], auto);
        return { auto: auto.data as Uint8Array, click: c.labels.data as Uint8Array };
      } finally { s.dispose(); }
    };
    const c = await run('cpu'), g = await run(device);
    const differ = (a: ArrayLike<number>, b: ArrayLike<number>): number => { let n = 0; for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++; return n; };
    const res = { voxels: data.length, autoDiffering: differ(c.auto, g.auto), clickDiffering: differ(c.click, g.click) };
    // Logits within TF32 rounding may flip a voxel sitting at 0; more than 0.1 % is a failure.
    if (res.autoDiffering + res.clickDiffering > 0.001 * data.length) failures.push(`vista3d session: ${res.autoDiffering} + ${res.clickDiffering} voxels differ between GPU and CPU`);
    return res;
  } finally { rmSync(tmp, { recursive: true, force: true }); }
});

await step('pctnetBundled', async () => {
  if (!existsSync(v.model!)) return { skipped: `no ${v.model}` };
  const cpu = await loadModelForInference(v.model!, { device: 'cpu' });
  const gpu = await loadModelForInference(v.model!, { device });
  manualSeed(1);
  const win = [...(cpu.model as PCTNet).inputSize];
  const x = randn([1, 1, ...win]);
  const xg = x.to(device);
  const first = (o: Tensor | Tensor[]): Tensor => { if (!Array.isArray(o)) return o; o.slice(1).forEach((t) => t.dispose()); return o[0]!; };
  const run = (m: typeof cpu, t: Tensor): Float32Array => noGrad(() => { const y = first(m.model.forward(t)); try { return y.dataF32(); } finally { y.dispose(); } });
  const c = run(cpu, x), g = run(gpu, xg);
  const gb = withPrecision('bf16', () => run(gpu, xg));
  // Sliding window over a volume larger than one window: network on the GPU, image on the host.
  const vol = randn([1, 1, win[0]! + 8, win[1]! + 24, win[2]! + 24]);
  const swOpts = { window: win as [number, number, number], overlap: 0.5 };
  const sc = slidingWindowLogits(modelPredictor(cpu.model), vol, swOpts);
  const sg = slidingWindowLogits(modelPredictor(gpu.model), vol, { ...swOpts, device });
  const res = {
    window: win, gpuVsCpu: compare('pctnet gpu vs cpu', g, c), bf16VsFp32: compare('pctnet gpu bf16 vs fp32', gb, g, 5e-2),
    slidingWindow: { resultDevice: sg.device, ...compare('pctnet sliding window gpu vs cpu', sg.dataF32(), sc.dataF32()) },
  };
  dispose([x, xg, vol, sc, sg]);
  cpu.model.dispose(); gpu.model.dispose();
  return res;
});

await step('pctnetTrainStep', () => {
  const grads = (dev: string): Float32Array[] => {
    manualSeed(3);
    const net = createModel(preset('pctnet-small')) as PCTNet;
    net.train().toDevice(dev);
    manualSeed(4);
    const x0 = randn([2, 1, ...net.inputSize]);
    const x = dev === 'cpu' ? x0 : x0.to(dev);
    const outs = net.forwardAll(x);
    const sq = outs.map((o, i) => { const s = o.square(); const m = s.mean(); s.dispose(); const w = m.mul(0.5 ** i); m.dispose(); return w; });
    let loss = sq[0]!;
    for (const t of sq.slice(1)) { const l = loss.add(t); loss.dispose(); t.dispose(); loss = l; }
    loss.backward();
    // Parameters without a gradient (unused by this loss) give an empty array on both devices.
    const g = net.parameters().map((p) => p.grad?.dataF32() ?? new Float32Array(0));
    dispose([...outs, loss, x0, x]);
    net.dispose();
    return g;
  };
  const c = grads('cpu'), g = grads(device);
  let worst = { index: -1, maxAbsDiff: 0, maxAbs: 0, ok: true };
  const failed = failures.length;
  const unused = c.filter((x) => x.length === 0).length;
  c.forEach((cg, i) => { const r = compare(`pctnet grad ${i}`, g[i]!, cg, 1e-2); if (!r.ok || r.maxAbsDiff / Math.max(r.maxAbs, 1e-12) > worst.maxAbsDiff / Math.max(worst.maxAbs, 1e-12)) worst = { index: i, ...r }; });
  return { parameters: c.length, withoutGradient: unused, failedParameters: failures.length - failed, worstRelative: worst };
});

await step('processGroups', async () => {
  const res: Record<string, unknown> = {};
  for (const backend of ['gloo', 'nccl'] as const) {
    if (!availableBackends()[backend]) { res[backend] = 'not in this build'; continue; }
    const port = await freePort();
    const g = await ProcessGroup.init({ rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: port } as never, { backend, timeoutMs: 60_000 });
    const dev = backend === 'nccl' ? device : 'cpu';
    const t = fromTypedArray(new Float32Array([1, 2, 3]), [3], { device: dev });
    await g.allReduce(t);
    await g.broadcast(t, 0);
    await g.barrier();
    const vals = Array.from(t.dataF32());
    const ok = vals.join() === '1,2,3' && t.device.startsWith(dev);
    if (!ok) failures.push(`${backend}: all-reduce of one rank changed the tensor: ${vals}`);
    t.dispose(); g.destroy();
    res[backend] = { worldSize: 1, tensorDevice: dev, ok };
  }
  return res;
});

if (!v['skip-timing'] && device !== 'cpu') {
  await step('timingPaperPctnet', () => {
    manualSeed(0);
    const net = createModel(preset('pctnet-paper')) as PCTNet;
    net.toDevice(device);
    const x = randn([1, 1, ...net.inputSize], { device });
    const evalOnce = (): void => { net.eval(); const o = noGrad(() => net.forwardAll(x)); sync(o[0]!); dispose(o); };
    const trainOnce = (): void => {
      net.train();
      const o = net.forwardAll(x);
      const l = o[0]!.square().mean(); dispose(o);
      l.backward(); l.dispose();
      const p = net.parameters()[0]!; sync(p.grad!); net.zeroGrad();
    };
    const res: Record<string, unknown> = {
      inputSize: net.inputSize, evalFp32Ms: time(evalOnce), evalBf16Ms: withPrecision('bf16', () => time(evalOnce)), trainFp32Ms: time(trainOnce),
    };
    x.dispose(); net.dispose();
    const ref = path.join(root, 'bench/pctnet_ref.py');
    const py = (mode: string): number | string => {
      const r = spawnSync(v.python!, [ref, 'bench', mode, String(reps), '1', 'pctnet-paper', '1'], { encoding: 'utf8', env: { ...process.env, PCTNET_REF_DEVICE: device } });
      if (r.status !== 0) return `failed: ${r.stderr.trim().split('\n').pop()}`;
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number[] };
      return +(median(j.seconds) * 1000).toFixed(2);
    };
    res['pytorchEvalFp32Ms'] = py('eval');
    res['pytorchTrainFp32Ms'] = py('train');
    if (typeof res['pytorchEvalFp32Ms'] === 'number') res['evalRatio'] = +((res['evalFp32Ms'] as number) / res['pytorchEvalFp32Ms']).toFixed(3);
    if (typeof res['pytorchTrainFp32Ms'] === 'number') res['trainRatio'] = +((res['trainFp32Ms'] as number) / res['pytorchTrainFp32Ms']).toFixed(3);
    return res;
  });
}

out['failures'] = failures;
console.log(JSON.stringify(out, null, 1));
process.exit(failures.length === 0 ? 0 : 1);
