/**
 * VISTA3D forward: misfm against MONAI's own code in PyTorch, on the same weights, window and prompts,
 * in one run (issue 13). Two calls, each timed as the median of --reps after one warm-up: an
 * automatic call (class prompts 1..K) and a one-click call (a positive point at the window centre,
 * point branch only). Both outputs are compared with MONAI's (max |difference|), so the timing is of
 * the same computation. Random weights (timing does not depend on them), seeded.
 *
 * MONAI is imported from a source snapshot (--monai, or $MONAI_SRC), e.g.
 *   git -C MONAI-mirror archive HEAD monai | tar -x -C /tmp/monai-src
 * and runs under the same machine's python3 + torch (Debian's python3-torch here; CUDA torch on a GPU).
 * Allocators (--malloc): `user` (default) gives each side what its user gets: misfm the launcher's
 * (bin/misfm.js: jemalloc when installed), PyTorch the default glibc; `same` runs PyTorch under
 * misfm's allocator too.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/vista3d-monai.js [--preset vista3d-official] [--roi 64]
 *     [--classes 3] [--reps 3] [--threads 2] [--device cpu|cuda] [--monai /tmp/monai-src] [--python /usr/bin/python3]
 *     [--malloc user|same]
 */
import path from 'node:path';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
// @ts-expect-error plain JS module shared with the launcher
import { allocatorEnv } from '../../bin/allocator.js';
import { manualSeed, noGrad, randn, setNumThreads } from '../src/engine/creation.js';
import type { Tensor } from '../src/engine/tensor.js';
import { createVista3d } from '../src/models/registry.js';
import { saveVista3dCheckpoint } from '../src/models/vista3d/checkpoint.js';
import { VISTA3D_PRESETS, resolveVista3dOptions } from '../src/models/vista3d/options.js';

const { values: v } = parseArgs({ options: {
  preset: { type: 'string', default: 'vista3d-official' }, roi: { type: 'string', default: '64' }, classes: { type: 'string', default: '3' },
  reps: { type: 'string', default: '3' }, threads: { type: 'string', default: '2' }, device: { type: 'string', default: 'cpu' },
  monai: { type: 'string', default: process.env['MONAI_SRC'] ?? '/tmp/monai-src' }, python: { type: 'string', default: process.env['PYTHON'] ?? '/usr/bin/python3' }, malloc: { type: 'string', default: 'user' },
} });
// The launcher's allocator for this process (bin/misfm.js does the same re-execution).
if (process.env['MISFM_ALLOCATOR_SET'] === undefined) {
  const env = { ...process.env, ...allocatorEnv(process.env, existsSync), MISFM_ALLOCATOR_SET: '1', MISFM_PARENT_ENV: JSON.stringify({ LD_PRELOAD: process.env['LD_PRELOAD'] ?? null, MALLOC_CONF: process.env['MALLOC_CONF'] ?? null }) };
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env });
  process.exit(r.status ?? 1);
}
const roi = Number(v.roi), reps = Number(v.reps), threads = Number(v.threads), device = v.device!;
const classes = Array.from({ length: Number(v.classes) }, (_, i) => i + 1);
const centre = Math.floor(roi / 2);
setNumThreads(threads);
const opts = resolveVista3dOptions(VISTA3D_PRESETS[v.preset!] ?? {});
const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-vista3d-monai-'));
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
function maxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i]! - b[i]!); if (d > m || Number.isNaN(d)) m = Number.isNaN(d) ? Infinity : d; }
  return m;
}
try {
  manualSeed(0);
  const net = createVista3d(v.preset!);
  saveVista3dCheckpoint(net, path.join(dir, 'model.pt'));
  net.eval().toDevice(device);
  const xCpu = randn([1, 1, roi, roi, roi]);
  writeFileSync(path.join(dir, 'input.bin'), xCpu.dataF32());
  const x = device === 'cpu' ? xCpu : xCpu.to(device);
  const calls: Record<string, () => Tensor> = {
    auto: () => net.forward(x, { classVector: classes }),
    point: () => net.forward(x, { points: { coords: [[[centre, centre, centre]]], labels: [[1]] }, promptClass: [1] }),
  };
  const ours: Record<string, { ms: number; out: Float32Array }> = {};
  for (const [kind, call] of Object.entries(calls)) {
    // dataF32 copies back to the host, which also synchronises a GPU (as .cpu() does in the reference).
    const once = (): Float32Array => noGrad(() => { const y = call(); try { return y.dataF32(); } finally { y.dispose(); } });
    const out = once();
    const times: number[] = [];
    for (let r = 0; r < reps; r++) { const t = performance.now(); once(); times.push(performance.now() - t); }
    ours[kind] = { ms: median(times), out };
  }
  const misfmRssMB = Math.round(process.resourceUsage().maxRSS / 1024);
  net.dispose();
  const args = {
    monai: path.resolve(v.monai!), weights: path.join(dir, 'model.pt'), input: path.join(dir, 'input.bin'), roi, initFilters: opts.initFilters,
    featureSize: opts.featureSize, blocksDown: opts.blocksDown, classes, point: [centre, centre, centre], reps, threads, device, out: dir,
  };
  writeFileSync(path.join(dir, 'args.json'), JSON.stringify(args));
  const ref = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/vista3d_monai_ref.py');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads) };
  if (v.malloc !== 'same') {
    // What a PyTorch user gets: the allocator variables this process was started with, not the launcher's.
    const parent = JSON.parse(process.env['MISFM_PARENT_ENV'] ?? '{}') as Record<string, string | null>;
    for (const k of ['LD_PRELOAD', 'MALLOC_CONF', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']) delete childEnv[k];
    for (const [k, val] of Object.entries(parent)) if (val !== null) childEnv[k] = val;
  }
  const r = spawnSync(v.python!, [ref, path.join(dir, 'args.json')], { encoding: 'utf8', env: childEnv });
  if (r.status !== 0) throw new Error(`MONAI reference failed (${v.python} ${ref}):\n${r.stderr}`);
  const torchRes = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number | string>;
  const row = (kind: string): Record<string, number> => {
    const b = readFileSync(path.join(dir, `${kind}.bin`));
    const theirs = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const t = torchRes[`${kind}Ms`] as number;
    return { misfmMs: Math.round(ours[kind]!.ms), torchMs: Math.round(t), ratio: +(ours[kind]!.ms / t).toFixed(3), maxAbsDiff: maxDiff(ours[kind]!.out, theirs) };
  };
  console.log(JSON.stringify({
    preset: v.preset, roi, classes: classes.length, reps, threads, device, torch: torchRes['torch'],
    malloc: { misfm: process.env['LD_PRELOAD']?.includes('jemalloc') === true ? 'jemalloc' : 'glibc', torch: (childEnv['LD_PRELOAD'] ?? '').includes('jemalloc') ? 'jemalloc' : 'glibc' },
    auto: row('auto'), point: row('point'),
    peakRssMB: { misfm: misfmRssMB, torch: torchRes['peakRssMB'] }, ...(torchRes['peakGpuMB'] !== undefined ? { torchPeakGpuMB: torchRes['peakGpuMB'] } : {}),
  }, null, 1));
} finally { rmSync(dir, { recursive: true, force: true }); }
