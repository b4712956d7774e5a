/**
 * PCT-Net benchmark, paper configuration (mode 1, 45.3 M parameters, input [1,1,64,128,128],
 * 5 classes, deep supervision): forward (eval, no grad), forward+backward (train), and
 * forward+backward with activation checkpointing; time per run and peak RSS, on N threads
 * (default 2). Each variant runs in a fresh child process so its peak RSS is its own. With
 * /usr/bin/python3 + torch, the same model written in plain PyTorch (bench/pctnet_ref.py, from the
 * spec) is timed in the same run. An op-level section compares contiguous vs channels_last_3d and
 * BatchNorm vs a fused per-channel affine (what conv+BN folding would save) at the paper's shapes.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/pctnet.js [--reps 2] [--threads 2]
 *     [--variants eval,train,ckpt] [--no-python] [--no-ops] [--malloc jemalloc|tuned|default|both|all|a,b]
 *
 * Variants: eval, train, ckpt, each optionally suffixed -bf16 (the bf16 compute policy,
 * src/engine/precision.ts) and/or -fold (BatchNorm folded into the convolutions, src/nn/fuse.ts;
 * eval only), e.g. eval-bf16-fold. PyTorch runs the plain fp32 eager model for eval/train.
 * --rounds R repeats the whole sequence R times, interleaving misfm and PyTorch, so ratios are taken
 * between runs that saw the same machine load. Besides wall time each child reports its CPU time
 * (all threads): on a shared machine wall time mostly measures the wait for a core.
 *
 * --malloc picks the allocator of both implementations' children: jemalloc (default; what
 * bin/misfm.js uses when libjemalloc2 is installed), tuned (glibc with MALLOC_MMAP_THRESHOLD_ /
 * MALLOC_TRIM_THRESHOLD_ raised, so freed activation memory is reused instead of mmap/munmap-ing
 * and page-faulting every large tensor), default (plain glibc).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { randn, manualSeed, noGrad, setNumThreads, getNumThreads, full, zeros, rand } from '../src/engine/creation.js';
import { callOp } from '../src/engine/call.js';
import { dispose, tidy } from '../src/engine/scope.js';
import * as F from '../src/engine/functional.js';
import type { Tensor } from '../src/engine/tensor.js';
import { createModel, preset, PCTNet } from '../src/models/index.js';
import { setComputePrecision } from '../src/engine/precision.js';
import { foldBatchNorms } from '../src/nn/fuse.js';
// @ts-expect-error plain JS module shared with the launcher
import { JEMALLOC_CONF, JEMALLOC_PATHS } from '../../bin/allocator.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = ((): string => { let d = here; for (let i = 0; i < 5; i++) { if (existsSync(path.join(d, 'package.json'))) return d; d = path.dirname(d); } return process.cwd(); })();
const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const REPS = Number(opt('reps', '2'));
/** Untimed warm-up runs per child (default 1; 0 on a crowded machine to save CPU time). */
const WARMUP = Number(opt('warmup', '1'));
const THREADS = Number(opt('threads', '2'));
/** pctnet-paper (default) or pctnet-small: the same preset on both sides. */
const PRESET = opt('preset', 'pctnet-paper');
const TUNED_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(16 * 2 ** 30), MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30) };
const JEMALLOC = { LD_PRELOAD: JEMALLOC_PATHS.find((p: string) => existsSync(p)) ?? '', MALLOC_CONF: JEMALLOC_CONF };
/** Allocator environment of a child; the parent's own allocator variables are dropped first. */
function mallocEnv(m: string): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['LD_PRELOAD', 'MALLOC_CONF', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']) delete base[k];
  if (m === 'tuned') return { ...base, ...TUNED_MALLOC };
  if (m === 'jemalloc') { if (JEMALLOC.LD_PRELOAD === '') throw new Error('--malloc jemalloc: libjemalloc2 is not installed'); return { ...base, ...JEMALLOC }; }
  return base;
}

interface Result { impl: string; mode: string; seconds: number[]; cpu_seconds: number[]; peak_rss_gb: number; params: number; threads: number; malloc?: string; round?: number }

function lossOf(outs: Tensor[]): Tensor {
  return tidy(() => outs.map((o, i) => o.square().mean().mul(0.5 ** i)).reduce((a, b) => a.add(b)));
}

/** Child: one variant of the misfm model. */
function runChild(variant: string): void {
  setNumThreads(THREADS);
  manualSeed(0);
  const net = createModel(preset(PRESET)) as PCTNet;
  const x = randn([1, 1, ...net.inputSize]);
  const parts = variant.split('-');
  const mode = parts[0]!;
  const precision = parts.includes('bf16') ? 'bf16' : 'fp32';
  if (parts.includes('fold')) { net.eval(); foldBatchNorms(net); }
  const seconds: number[] = [], cpuSeconds: number[] = [];
  setComputePrecision(precision);
  for (let r = 1 - WARMUP; r <= REPS; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    if (mode === 'eval') {
      net.eval();
      dispose(noGrad(() => net.forwardAll(x)));
    } else if (mode === 'train') {
      net.train();
      const outs = net.forwardAll(x);
      const loss = lossOf(outs);
      dispose(outs);
      loss.backward();
      loss.dispose();
      net.zeroGrad();
    } else {
      net.train();
      const h = net.forwardCheckpointed(x);
      const loss = lossOf(h.outputs);
      dispose(h.outputs);
      loss.backward();
      loss.dispose();
      h.backward();
      net.zeroGrad();
    }
    if (r > 0) {
      seconds.push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cpuSeconds.push((c.user + c.system) / 1e6);
    }
  }
  const res: Result = { impl: 'misfm', mode: variant, seconds, cpu_seconds: cpuSeconds, peak_rss_gb: process.resourceUsage().maxRSS / 1e6, params: net.numParameters(), threads: getNumThreads() };
  console.log(JSON.stringify(res));
}

function lastJson(out: string): Result | null {
  const line = out.trim().split('\n').pop() ?? '';
  try { return JSON.parse(line) as Result; } catch { return null; }
}

function child(cmd: string, cargs: string[], env: NodeJS.ProcessEnv): Result | null {
  const r = spawnSync(cmd, cargs, { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const res = lastJson(r.stdout ?? '');
  if (r.status !== 0 || res === null) console.error(`  ${cmd} ${cargs.join(' ')} failed (${r.status}): ${(r.stderr ?? '').slice(-800)}`);
  return res;
}

/** Op-level timings at the paper's shapes: memory formats and BN vs fused affine. */
function opSection(): void {
  setNumThreads(THREADS);
  manualSeed(0);
  const time = (fn: () => Tensor, n = 3): number => {
    dispose(fn());
    const t0 = performance.now();
    for (let i = 0; i < n; i++) dispose(fn());
    return (performance.now() - t0) / n;
  };
  const row = (name: string, a: number, b: number): void => console.log(`  ${name.padEnd(44)} ${a.toFixed(1).padStart(8)} ${b.toFixed(1).padStart(8)}   x${(a / b).toFixed(2)}`);
  console.log('\nop level (ms): contiguous NCDHW vs channels_last_3d, forward, no grad');
  console.log(`  ${'op'.padEnd(44)} ${'NCDHW'.padStart(8)} ${'CL3d'.padStart(8)}   speed-up of CL`);
  noGrad(() => {
    const shapes: [number, number[], number[]][] = [[24, [64, 128, 128], [1, 3, 3]], [48, [64, 64, 64], [3, 3, 3]], [128, [32, 32, 32], [3, 3, 3]], [256, [16, 16, 16], [3, 3, 3]]];
    for (const [c, s, k] of shapes) {
      const x = randn([1, c, ...s]);
      const xc = x.contiguous('channelsLast3d');
      const w = randn([c, c, ...k]).mul(0.02);
      const b = zeros([c]);
      const pad = k.map((v) => (v - 1) / 2);
      const tag = `C${c} ${s.join('x')}`;
      row(`conv ${k.join('x')} ${tag}`, time(() => F.conv3d(x, w, b, { padding: pad })), time(() => F.conv3d(xc, w, b, { padding: pad })));
      const rm = zeros([c]), rv = full([c], 1);
      row(`batchnorm (eval) ${tag}`, time(() => F.batchNorm(x, rm, rv, { weight: rv, bias: rm, training: false })), time(() => F.batchNorm(xc, rm, rv, { weight: rv, bias: rm, training: false })));
      const pw = full([1], 0.25);
      row(`prelu ${tag}`, time(() => F.prelu(x, pw)), time(() => F.prelu(xc, pw)));
      row(`maxpool 2 ${tag}`, time(() => F.maxPool3d(x, 2)), time(() => F.maxPool3d(xc, 2)));
      const wt = randn([c, Math.max(1, c / 2), 2, 2, 2]).mul(0.02);
      row(`conv-transpose 2x2x2 ${tag}`, time(() => F.convTranspose3d(x, wt, null, { stride: 2 })), time(() => F.convTranspose3d(xc, wt, null, { stride: 2 })));
      dispose([x, xc, w, b, rm, rv, pw, wt]);
    }
    console.log('\nop level (ms): BatchNorm in eval vs one fused per-channel affine (the pass conv+BN folding removes)');
    for (const [c, s] of [[24, [64, 128, 128]], [48, [64, 64, 64]], [128, [32, 32, 32]]] as const) {
      const x = randn([1, c, ...s]);
      const rm = randn([c]), rv = rand([c]).add(0.5), w = randn([c]), b = randn([c]);
      const bn = time(() => F.batchNorm(x, rm, rv, { weight: w, bias: b, training: false }));
      const sc = w.div(rv.add(1e-5).sqrt()).view([1, c, 1, 1, 1]), sh = b.view([1, c, 1, 1, 1]);
      const fused = time(() => callOp('addcmul', [sh, x, sc, 1]) as Tensor);
      console.log(`  C${c} ${s.join('x')}: batch_norm ${bn.toFixed(1)} ms, fused affine ${fused.toFixed(1)} ms`);
      dispose([x, rm, rv, w, b, sc, sh]);
    }
  });
}

const mean = (s: readonly number[]): number => s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
function summarise(r: Result): string {
  const s = r.seconds;
  return `${r.impl.padEnd(8)} ${r.mode.padEnd(15)} ${(r.malloc ?? 'default').padEnd(8)} wall ${s.map((v) => v.toFixed(2)).join(' / ').padEnd(14)} CPU ${r.cpu_seconds.map((v) => v.toFixed(2)).join(' / ').padEnd(14)} peak RSS ${r.peak_rss_gb.toFixed(2)} GB`;
}

/** misfm variant / PyTorch fp32 eager of the same mode and allocator, per round, by CPU and wall time. */
function ratios(results: readonly Result[]): void {
  console.log('\nratios misfm / PyTorch eager fp32 (same round, same allocator; CPU time, wall time in brackets)');
  for (const r of results.filter((x) => x.impl === 'misfm')) {
    const base = r.mode.split('-')[0];
    const py = results.find((x) => x.impl === 'pytorch' && x.mode === base && x.malloc === r.malloc && x.round === r.round);
    if (py === undefined) continue;
    console.log(`  round ${r.round} ${(r.malloc ?? '').padEnd(8)} ${r.mode.padEnd(15)} x${(mean(r.cpu_seconds) / mean(py.cpu_seconds)).toFixed(2)} (x${(mean(r.seconds) / mean(py.seconds)).toFixed(2)})   peak RSS ${r.peak_rss_gb.toFixed(2)} vs ${py.peak_rss_gb.toFixed(2)} GB`);
  }
}

function main(): void {
  const c = args.indexOf('--child');
  if (c >= 0) {
    if (args[c + 1] === 'ops') opSection(); else runChild(args[c + 1] ?? 'eval');
    return;
  }
  const variants = opt('variants', 'eval,train,ckpt').split(',').filter((v) => v !== '');
  const mopt = opt('malloc', 'jemalloc');
  const mallocs = mopt === 'both' ? ['default', 'tuned'] : mopt === 'all' ? ['default', 'tuned', 'jemalloc'] : mopt.split(',');
  const py = !args.includes('--no-python') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  console.log(`PCT-Net ${PRESET}, ${THREADS} threads, warm-up + ${REPS} runs; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const results: Result[] = [];
  const rounds = Number(opt('rounds', '1'));
  // PyTorch runs once per mode and round (its fp32 eager model is the baseline of every variant).
  const pyModes = [...new Set(variants.map((v) => v.split('-')[0]!))].filter((m) => m !== 'ckpt');
  for (let round = 1; round <= rounds; round++) {
    for (const m of mallocs) {
      const env = { ...mallocEnv(m), MISFM_NUM_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) };
      for (const v of variants) {
        const r = child(process.execPath, [fileURLToPath(import.meta.url), '--child', v, '--reps', String(REPS), '--threads', String(THREADS), '--preset', PRESET, '--warmup', String(WARMUP)], env);
        if (r !== null) { r.malloc = m; r.round = round; results.push(r); console.log(summarise(r)); }
        const base = v.split('-')[0]!;
        if (py && pyModes.includes(base) && !results.some((x) => x.impl === 'pytorch' && x.mode === base && x.malloc === m && x.round === round)) {
          const p = child('/usr/bin/python3', [path.join(repoRoot, 'bench', 'pctnet_ref.py'), 'bench', base, String(REPS), String(THREADS), PRESET, String(WARMUP)], env);
          if (p !== null) { p.malloc = m; p.round = round; results.push(p); console.log(summarise(p)); }
        }
      }
    }
  }
  ratios(results);
  console.log(`load average at the end ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  if (!args.includes('--no-ops')) {
    // In a child with the last malloc setting, so large outputs do not pay page faults differently.
    const m = mallocs[mallocs.length - 1];
    const env = { ...mallocEnv(m!), MISFM_NUM_THREADS: String(THREADS) };
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', 'ops', '--threads', String(THREADS)], { encoding: 'utf8', env });
    console.log(`\n(op level: malloc ${m})${r.stdout}`);
  }
  console.log(`\n${JSON.stringify(results)}`);
}

main();
