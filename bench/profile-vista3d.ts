/**
 * Per-stage profile of VISTA3D session clicks on a real CT: a first click (its window encoded) and a
 * second click in the same window (features from the cache), with the automatic pass timed in the
 * same run for the ratios. Model stages are timed by wrapping the methods of the classes (encoder +
 * decoders, the heads' image-side layers, point tokens, the dense positional grid, the two-way
 * transformer, the output upscaling, the class head, and `decodeHeads` less the point head, which is
 * Algorithm 1 in the window); the rest of a click (label maps in and out, stitching, JS loops) is what
 * the click took minus those stages. Times are CPU time of the
 * process (user + system), robust to a shared machine; run with 1 thread for a clean split.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/profile-vista3d.js [--preset vista3d-cpu | --model CKPT] [--roi 64]
 *     [--spacing 3] [--threads 1] [--click X,Y,Z] [--reuse-windows N] [--input ../shared/data/01_totalseg_abdomen_ct/ct.nii.gz] [--json FILE]
 */
import { rmSync, writeFileSync } from 'node:fs';
import { benchClicks, parseVista3dBenchArgs, prepareVista3dBench } from './vista3d-setup.js';
import { VISTA3D } from '../src/models/vista3d/model.js';
import { SegResNetDS2 } from '../src/models/vista3d/segresnet.js';
import { PointMappingSAM, PositionEmbeddingRandom } from '../src/models/vista3d/point-head.js';
import { TwoWayTransformer } from '../src/models/vista3d/transformer.js';
import { ClassMappingClassify } from '../src/models/vista3d/class-head.js';
import { openVista3dSession, type ClickPoint } from '../src/infer/vista3d/session.js';

const v = parseVista3dBenchArgs('1');

const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const acc = new Map<string, { ms: number; calls: number }>();
const open: number[] = []; // CPU time of the wrapped calls nested in each open stage (stages are exclusive)
/** Replace `obj[name]` by a wrapper that adds its CPU time, less that of nested stages, to stage `label`. */
function wrap(obj: object, name: string, label: string): void {
  const o = obj as Record<string, unknown>;
  const f = o[name] as (...a: unknown[]) => unknown;
  o[name] = function (this: unknown, ...a: unknown[]) {
    open.push(0);
    const t = cpu();
    try { return f.apply(this, a); } finally {
      const inner = open.pop()!;
      const all = cpu() - t;
      if (open.length > 0) open[open.length - 1]! += all;
      const e = acc.get(label) ?? { ms: 0, calls: 0 };
      e.ms += all - inner; e.calls++; acc.set(label, e);
    }
  };
}
wrap(SegResNetDS2.prototype, 'forward', 'encoder + decoders');
wrap(PointMappingSAM.prototype, 'downsample', 'point head: feat_downsample');
wrap(ClassMappingClassify.prototype, 'mapImage', 'class head: image_post_mapping');
wrap(ClassMappingClassify.prototype, 'logits', 'class head: logits');
wrap(PointMappingSAM.prototype, 'tokens', 'point head: point encoding (tokens)');
wrap(PositionEmbeddingRandom.prototype, 'grid', 'point head: dense positional grid');
wrap(TwoWayTransformer.prototype, 'forward', 'point head: two-way transformer');
wrap(VISTA3D.prototype, 'pointLogits', 'point head: hypernet MLP + matmul (rest of decode)');
// decodeHeads less the point head: Algorithm 1 in the window (sigmoid thresholds, component search, merge) and its copies.
wrap(VISTA3D.prototype, 'decodeHeads', 'Algorithm 1 in the window (+ crop, copies)');

const roi = Number(v.roi), sp = Number(v.spacing);
const { dir, ckpt, image, opts } = await prepareVista3dBench(v, 'profile-vista3d');
try {
  const s = await openVista3dSession(ckpt, image, opts);
  // The output upscaling is a Sequential instance of the model: wrap it there.
  const run = async (label: string, f: () => Promise<unknown>): Promise<{ total: number; stages: Record<string, { ms: number; calls: number }> }> => {
    acc.clear();
    const t = cpu();
    await f();
    const total = cpu() - t;
    const stages = Object.fromEntries([...acc].map(([k, e]) => [k, { ms: Math.round(e.ms), calls: e.calls }]));
    const model = Object.values(stages).reduce((p, e) => p + e.ms, 0);
    stages['rest (label maps in/out, stitching, JS loops)'] = { ms: Math.round(total - model), calls: 1 };
    console.log(`${label}: ${Math.round(total)} ms CPU`);
    for (const [k, e] of Object.entries(stages)) console.log(`  ${k.padEnd(52)} ${String(e.ms).padStart(7)} ms  x${e.calls}`);
    return { total: Math.round(total), stages };
  };
  let auto: Awaited<ReturnType<typeof s.autoSegment>> | null = null;
  const a = await run('automatic pass', async () => { auto = await s.autoSegment(v.classes.split(',')); });
  s.dispose();
  const s2 = await openVista3dSession(ckpt, image, opts);
  const up = (s2 as unknown as { model: VISTA3D }).model.pointHead.outputUpscaling;
  wrap(up as unknown as object, 'forward', 'point head: output_upscaling (full resolution)');
  const at = benchClicks(v, image.size);
  const c1: ClickPoint[] = [{ label: 1, positive: true, ijk: at.c1 }];
  const c2: ClickPoint[] = [...c1, { label: 1, positive: false, ijk: at.c2 }];
  const first = await run('first click', () => s2.click(c1, auto));
  const second = await run('second click (cached window)', () => s2.click(c2, auto));
  s2.dispose();
  const out = { preset: v.model ?? v.preset, click: at.c1, roi, spacing: sp, threads: Number(v.threads), image: image.size, cpuTime: true, auto: a, first, second,
    clickOverAuto: +(first.total / a.total).toFixed(3), secondOverFirst: +(second.total / first.total).toFixed(3) };
  console.log(JSON.stringify({ clickOverAuto: out.clickOverAuto, secondOverFirst: out.secondOverFirst }));
  if (v.json !== undefined) writeFileSync(v.json, JSON.stringify(out, null, 1));
} finally { rmSync(dir, { recursive: true, force: true }); }
