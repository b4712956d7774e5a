/**
 * channels_last_3d per network: the eval forward with the input (and every Conv3d weight) converted
 * to channels_last_3d at the network boundary, against the contiguous NCDHW forward, in fp32 and
 * under the bf16 policy. Reports CPU time (all threads; the machine may be shared) and the largest
 * output difference (exactness within fp32 rounding). Decides whether misfm converts by default.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/channels-last.js [--threads 2] [--reps 2]
 *     [--nets pctnet-small,unet3d-volf,fmunet,vista3d-small,vista3d-official,pctnet-paper]
 */
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { manualSeed, noGrad, randn, setNumThreads } from '../src/engine/creation.js';
import { callOp } from '../src/engine/call.js';
import { dispose } from '../src/engine/scope.js';
import { withPrecision, type Precision } from '../src/engine/precision.js';
import type { Tensor } from '../src/engine/tensor.js';
import { createModel, preset } from '../src/models/index.js';
import { createVista3d } from '../src/models/registry.js';
import type { SegmentationNetwork } from '../src/models/types.js';
import { Conv3d } from '../src/nn/layers/conv.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? (args[i + 1] ?? def) : def; };
const THREADS = Number(opt('threads', '2'));
const REPS = Number(opt('reps', '2'));
/** --nets a,b: only these (default: all but pctnet-paper, which takes minutes). */
const NETS = opt('nets', 'pctnet-small,unet3d-volf,fmunet,vista3d-small,vista3d-official').split(',');

/**
 * Re-lay every Conv3d weight out as channels_last_3d in place (same values, other strides), and make
 * each conv see a channels_last_3d input. The second part matters: a 1-channel network input is
 * contiguous and channels-last at once, so converting it alone at the boundary changes nothing; where
 * the layout propagates, the per-conv conversion is a no-op after the first conv.
 */
function convWeightsChannelsLast(net: SegmentationNetwork): () => void {
  const undo: (() => void)[] = [];
  noGrad(() => {
    for (const [, m] of net.namedModules()) {
      if (!(m instanceof Conv3d)) continue;
      const cl = m.weight.contiguous('channelsLast3d');
      callOp('set_.source_Tensor', [m.weight, cl]);
      cl.dispose();
      const orig = m.forward.bind(m);
      m.forward = (x: Tensor): Tensor => { const xc = x.contiguous('channelsLast3d'); try { return orig(xc); } finally { xc.dispose(); } };
      undo.push(() => {
        m.forward = orig;
        const c = m.weight.contiguous();
        callOp('set_.source_Tensor', [m.weight, c]);
        c.dispose();
      });
    }
  });
  return () => noGrad(() => undo.forEach((u) => u()));
}


function first(o: Tensor | Tensor[]): Tensor { return Array.isArray(o) ? o[0]! : o; }

function timeForward(net: SegmentationNetwork, x: Tensor, cl: boolean): { cpu: number; wall: number; out: Float32Array } {
  let out: Float32Array = new Float32Array();
  const run = (): void => {
    const xin = cl ? x.contiguous('channelsLast3d') : x;
    const y = noGrad(() => net.forward(xin));
    const y0 = first(y);
    const yc = y0.contiguous();
    out = yc.dataF32();
    dispose([y, yc]);
    if (xin !== x) xin.dispose();
  };
  run();
  const c0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < REPS; i++) run();
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6 / REPS, wall: (performance.now() - t0) / 1000 / REPS, out };
}

/** A VISTA3D whose forward is its image encoder's automatic-branch features (for timing). */
function vista3dEncoder(name: string): SegmentationNetwork {
  const v = createVista3d(name);
  const net = v as unknown as SegmentationNetwork & { forward(x: Tensor): Tensor };
  net.forward = (x: Tensor): Tensor => {
    const f = v.encode(x, false, true);
    f.pointLow?.dispose();
    return f.autoMapped!;
  };
  return net;
}

function main(): void {
  setNumThreads(THREADS);
  console.log(`channels_last_3d vs NCDHW, eval forward, ${THREADS} threads, ${REPS} timed runs after a warm-up; ${os.cpus()[0]?.model ?? '?'}, load ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const nets = ([
    ['pctnet-small', () => createModel(preset('pctnet-small')), [1, 1, 32, 64, 64]],
    ['unet3d-volf', () => createModel(preset('unet3d-volf')), [1, 1, 32, 64, 64]],
    ['fmunet', () => createModel(preset('fmunet')), [1, 1, 32, 64, 64]],
    // VISTA3D's image encoder (SegResNetDS2 and its automatic-branch decoder), the part that runs
    // per window; the prompt heads are a small share of its time.
    ['vista3d-small', () => vista3dEncoder('vista3d-small'), [1, 1, 64, 64, 64]],
    ['vista3d-official', () => vista3dEncoder('vista3d-official'), [1, 1, 64, 64, 64]],
    ['pctnet-paper', () => createModel(preset('pctnet-paper')), [1, 1, 64, 128, 128]],
  ] as [string, () => SegmentationNetwork, number[]][]).filter(([name]) => NETS.includes(name));
  const rows: unknown[] = [];
  for (const [name, make, shape] of nets) {
    manualSeed(0);
    const net = make();
    net.multiscalePred = false;
    net.eval();
    const x = randn(shape);
    for (const p of ['fp32', 'bf16'] as Precision[]) {
      const a = withPrecision(p, () => timeForward(net, x, false));
      const restore = convWeightsChannelsLast(net);
      const b = withPrecision(p, () => timeForward(net, x, true));
      restore();
      let d = 0, s = 0;
      for (let i = 0; i < a.out.length; i++) { d = Math.max(d, Math.abs(a.out[i]! - b.out[i]!)); s = Math.max(s, Math.abs(a.out[i]!)); }
      console.log(`  ${name.padEnd(13)} ${p}  NCDHW CPU ${a.cpu.toFixed(2)} s (wall ${a.wall.toFixed(2)})  CL3d CPU ${b.cpu.toFixed(2)} s (wall ${b.wall.toFixed(2)})  CL/NCDHW x${(b.cpu / a.cpu).toFixed(2)}  max |diff| ${d.toExponential(2)} (max |out| ${s.toFixed(2)})`);
      rows.push({ name, precision: p, ncdhwCpu: a.cpu, clCpu: b.cpu, ratio: b.cpu / a.cpu, maxDiff: d, maxOut: s });
    }
    x.dispose();
    net.dispose();
  }
  console.log(JSON.stringify(rows));
}

main();
