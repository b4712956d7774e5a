/**
 * Per-stage profile of the PCT-Net eval forward: wall time, FLOPs (convolutions, transposed
 * convolutions, linear layers and the two attention matmuls) and achieved GFLOP/s per stage
 * (embedding, each pyramid block with its conv branch, Swin branch and attention, heads), in fp32
 * and bf16, with and without BatchNorm folding. A "machine" line times one 48-channel 3x3x3 conv at
 * [1,48,32,64,64] in both precisions, the yardstick for the distance to what the CPU can do.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/profile-pctnet.js [--preset pctnet-paper|pctnet-small]
 *     [--threads 2] [--precisions fp32,bf16] [--fold] [--json FILE]
 *
 * Stage times are inclusive (a block contains its attention). Times are from the second of two
 * forwards (the first warms up oneDNN's primitive caches and the allocator).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { manualSeed, noGrad, randn, setNumThreads, zeros } from '../src/engine/creation.js';
import { dispose } from '../src/engine/scope.js';
import * as F from '../src/engine/functional.js';
import { withPrecision, type Precision } from '../src/engine/precision.js';
import type { Tensor } from '../src/engine/tensor.js';
import { createModel, preset, PCTNet } from '../src/models/index.js';
import { Conv3d, ConvTranspose3d } from '../src/nn/layers/conv.js';
import { Linear } from '../src/nn/layers/linear.js';
import { WindowAttention } from '../src/models/pctnet/swin.js';
import { foldBatchNorms } from '../src/nn/fuse.js';
import type { Module } from '../src/nn/module.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const THREADS = Number(opt('threads', '2'));
const PRESET = opt('preset', 'pctnet-paper');
const PRECISIONS = opt('precisions', 'fp32,bf16').split(',') as Precision[];

interface Stage { label: string; ms: number; cpuMs: number; flops: number; calls: number }

const prod = (a: readonly number[]): number => a.reduce((p, v) => p * v, 1);

/** FLOPs of one call of a leaf module from its input and output shapes (multiply-add = 2). */
function leafFlops(m: Module, input: Tensor, out: Tensor): number {
  if (m instanceof ConvTranspose3d) return 2 * m.inChannels * (m.outChannels / m.groups) * prod(m.kernelSize) * prod(input.shape.slice(2)) * input.shape[0]!;
  if (m instanceof Conv3d) return 2 * m.outChannels * (m.inChannels / m.groups) * prod(m.kernelSize) * prod(out.shape.slice(2)) * out.shape[0]!;
  if (m instanceof Linear) return 2 * m.inFeatures * m.outFeatures * (input.numel / m.inFeatures);
  return 0;
}

/** Wrap forward methods: leaves add FLOPs to every open stage; stages time themselves (inclusive). */
function instrument(net: PCTNet, stageOf: Map<Module, string>): { stages: Map<string, Stage>; reset(): void } {
  const stages = new Map<string, Stage>();
  const open: Stage[] = [];
  const add = (f: number): void => { for (const s of open) s.flops += f; };
  for (const [, m] of net.namedModules()) {
    const leaf = m instanceof Conv3d || m instanceof ConvTranspose3d || m instanceof Linear;
    const label = stageOf.get(m);
    const attn = m instanceof WindowAttention;
    if (!leaf && label === undefined && !attn) continue;
    const orig = (m as unknown as { forward: (...a: unknown[]) => unknown }).forward.bind(m);
    let st: Stage | undefined;
    if (label !== undefined) { st = { label, ms: 0, cpuMs: 0, flops: 0, calls: 0 }; stages.set(label, st); }
    (m as unknown as { forward: (...a: unknown[]) => unknown }).forward = (...a: unknown[]): unknown => {
      if (st !== undefined) open.push(st);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      try {
        const out = orig(...a);
        if (leaf) add(leafFlops(m, a[0] as Tensor, out as Tensor));
        if (attn) {
          // q·kᵀ and attn·v: 2 x (2 · windows · heads · N · N · head_dim) = 4 · B·nW · N² · C.
          const x = a[0] as Tensor;
          add(4 * x.shape[0]! * x.shape[1]! * x.shape[1]! * x.shape[2]!);
        }
        return out;
      } finally {
        if (st !== undefined) {
          const c = process.cpuUsage(c0);
          st.ms += performance.now() - t0; st.cpuMs += (c.user + c.system) / 1000; st.calls++; open.pop();
        }
      }
    };
  }
  return { stages, reset: () => { for (const s of stages.values()) { s.ms = 0; s.cpuMs = 0; s.flops = 0; s.calls = 0; } } };
}

function stageMap(net: PCTNet): Map<Module, string> {
  const m = new Map<Module, string>();
  const e = net.embedding, h = net.predHead, p = net.pyramidCt;
  m.set(e, 'embedding');
  m.set(e.proj, '  emb.proj'); m.set(e.conv0, '  emb.conv0'); m.set(e.down1, '  emb.down1'); m.set(e.conv1, '  emb.conv1'); m.set(e.down2, '  emb.down2');
  m.set(p, 'pyramid');
  const blocks: [string, Module][] = [['e2', p.convtransE2], ['down3', p.down3], ['e3', p.convtransE3], ['down4', p.down4], ['e4', p.convtransE4],
    ['up4', p.up4], ['d3', p.convtransD3], ['up3', p.up3], ['d2', p.convtransD2]];
  for (const [n, b] of blocks) {
    m.set(b, `  pct.${n}`);
    const ct = b as Partial<{ conv: Module; trans: Module & { blocks: Iterable<{ attn: Module; mlp: Module }> } }>;
    if (ct.trans !== undefined && ct.conv !== undefined) {
      m.set(ct.conv, `    pct.${n}.conv-branch`);
      m.set(ct.trans, `    pct.${n}.swin-branch`);
      let i = 0;
      for (const blk of ct.trans.blocks) { m.set(blk.attn, `      pct.${n}.attention${i}`); m.set(blk.mlp, `      pct.${n}.mlp${i}`); i++; }
    }
  }
  m.set(h, 'head');
  m.set(h.up2, '  head.up2'); m.set(h.conv1, '  head.conv1'); m.set(h.up1, '  head.up1'); m.set(h.conv0, '  head.conv0'); m.set(h.outConv0, '  head.out_conv0');
  return m;
}

/** One 48-channel 3x3x3 conv, the throughput yardstick: GFLOP/s in fp32 and bf16. */
function machineLine(): Record<Precision, number> {
  const x = randn([1, 48, 32, 64, 64]), w = randn([48, 48, 3, 3, 3]).mul(0.05), b = zeros([48]);
  const flops = 2 * 48 * 48 * 27 * 32 * 64 * 64;
  const out = {} as Record<Precision, number>;
  for (const p of PRECISIONS) {
    withPrecision(p, () => noGrad(() => {
      dispose(F.conv3d(x, w, b, { padding: 1 }));
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      for (let i = 0; i < 3; i++) dispose(F.conv3d(x, w, b, { padding: 1 }));
      const c = process.cpuUsage(c0);
      void t0;
      out[p] = flops / ((c.user + c.system) / 1e6 / 3 / THREADS) / 1e9;
    }));
  }
  dispose([x, w, b]);
  return out;
}

function main(): void {
  setNumThreads(THREADS);
  manualSeed(0);
  const net = createModel(preset(PRESET)) as PCTNet;
  net.multiscalePred = false;
  net.eval();
  const fold = args.includes('--fold');
  if (fold) console.log(`folded ${foldBatchNorms(net)} BatchNorms`);
  const { stages, reset } = instrument(net, stageMap(net));
  const x = randn([1, 1, ...net.inputSize]);
  console.log(`${PRESET} eval forward, input [1,1,${net.inputSize.join(',')}], ${THREADS} threads, ${os.cpus()[0]?.model ?? '?'}, load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}${fold ? ', BN folded' : ''}`);
  const machine = machineLine();
  console.log(`machine yardstick (48-ch 3x3x3 conv, [1,48,32,64,64], from CPU time): ${PRECISIONS.map((p) => `${p} ${machine[p].toFixed(0)} GFLOP/s`).join(', ')}`);
  const report: Record<string, unknown> = { preset: PRESET, threads: THREADS, fold, machine, load: os.loadavg(), profiles: {} };
  for (const p of PRECISIONS) {
    let total = 0, cpu = 0;
    withPrecision(p, () => noGrad(() => {
      dispose(net.forwardAll(x));
      reset();
      const t0 = performance.now(), c0 = process.cpuUsage();
      dispose(net.forwardAll(x));
      total = performance.now() - t0;
      const c = process.cpuUsage(c0);
      cpu = (c.user + c.system) / 1000;
    }));
    const rows = [...stages.values()].filter((s) => s.calls > 0);
    const flops = (stages.get('embedding')?.flops ?? 0) + (stages.get('pyramid')?.flops ?? 0) + (stages.get('head')?.flops ?? 0);
    // On a shared machine wall time mostly measures the queue for a core; CPU time (all threads)
    // is the robust measure, and "GFLOP/s at full use" = FLOPs / (CPU time / threads).
    const rate = (f: number, cpuMs: number): number => f / (cpuMs / THREADS) / 1e6;
    console.log(`\n${p}: wall ${(total / 1000).toFixed(2)} s, CPU ${(cpu / 1000).toFixed(2)} s, ${(flops / 1e9).toFixed(1)} GFLOP, ${rate(flops, cpu).toFixed(1)} GFLOP/s at full use of ${THREADS} threads`);
    console.log(`${'stage'.padEnd(30)} ${'wall ms'.padStart(8)} ${'CPU ms'.padStart(8)} ${'% CPU'.padStart(6)} ${'GFLOP'.padStart(8)} ${'GFLOP/s'.padStart(8)}`);
    for (const s of rows) {
      console.log(`${s.label.padEnd(30)} ${s.ms.toFixed(0).padStart(8)} ${s.cpuMs.toFixed(0).padStart(8)} ${(100 * s.cpuMs / cpu).toFixed(1).padStart(6)} ${(s.flops / 1e9).toFixed(2).padStart(8)} ${rate(s.flops, s.cpuMs).toFixed(1).padStart(8)}`);
    }
    (report['profiles'] as Record<string, unknown>)[p] = { wallMs: total, cpuMs: cpu, gflop: flops / 1e9, stages: rows.map((s) => ({ ...s, label: s.label.trim() })) };
  }
  const j = opt('json', '');
  if (j !== '') writeFileSync(j, JSON.stringify(report, null, 1));
  x.dispose();
  net.dispose();
}

main();
