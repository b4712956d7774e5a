/**
 * The dataset plan: nnU-Net's spacing rule on synthetic datasets against hand-computed targets,
 * the fingerprint written by `prepare` (axis order of the cache, reuse on re-runs), the patch size
 * for free networks, and the CLI's --spacing plan|native and -q.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planSpacing, planPatchSize, estimateTrainingBytes, poolIntensity, readPlan, PLAN_NAME } from '../../src/data/plan.js';
import { prepare } from '../../src/data/prepare.js';
import { loadManifest } from '../../src/data/manifest.js';
import { runPrepare } from '../../src/cli/commands/prepare.js';
import { CacheVolume } from '../../src/data/reader.js';
import { readImage } from '../../src/io/image/index.js';
import { reorient } from '../../src/transforms/orientation.js';
import type { Mat3, Vec3 } from '../../src/io/volume.js';
import { tempDir, writeVolume } from '../infer/helpers.js';
import { assertSameValues } from './helpers.js';

const tmp = tempDir('plan');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const c = (spacing: Vec3, size: Vec3): { spacing: Vec3; size: Vec3 } => ({ spacing, size });

test('spacing rule, isotropic dataset: the per-axis median (numpy\'s, interpolated for an even count)', () => {
  const d = planSpacing([c([1, 1, 1], [100, 100, 100]), c([1.5, 1.5, 1.5], [80, 80, 80]), c([0.8, 0.8, 0.8], [120, 120, 120])]);
  assert.deepEqual(d.target, [1, 1, 1]);
  assert.equal(d.rule, 'median');
  assert.equal(d.lowResAxis, null);
  // Two cases: the median is the mean of the two (the demo's 3 mm abdomen and 1.5 mm chest CTA give 2.25 mm).
  const two = planSpacing([c([3, 3, 3], [122, 101, 112]), c([1.5, 1.5, 1.5], [120, 126, 164])]);
  assert.deepEqual(two.target, [2.25, 2.25, 2.25]);
  assert.deepEqual(two.medianSize, [121, 113.5, 138]);
});

test('spacing rule, anisotropic dataset: the coarse axis takes the 10th percentile of its spacings', () => {
  // In-plane ~0.75 mm, slices 4..10 mm, few slices: median z = 5 > 3 x 0.78 and 24 slices x 3 < 256.
  const cases = [
    c([0.7, 0.7, 5], [256, 256, 24]), c([0.75, 0.75, 6], [256, 256, 20]), c([0.8, 0.8, 10], [256, 256, 12]),
    c([0.78, 0.78, 4], [256, 256, 30]), c([0.72, 0.72, 5], [256, 256, 24]),
  ];
  const d = planSpacing(cases);
  assert.equal(d.rule, 'anisotropic');
  assert.equal(d.lowResAxis, 2);
  // x, y: medians of (0.7,0.75,0.8,0.78,0.72) = 0.75. z: sorted (4,5,5,6,10), position 0.1 x 4 = 0.4: 4 + 0.4 x (5 - 4) = 4.4.
  assert.deepEqual(d.target.slice(0, 2), [0.75, 0.75]);
  assert.ok(Math.abs(d.target[2] - 4.4) < 1e-12, String(d.target[2]));
  assert.deepEqual(d.medianSpacing, [0.75, 0.75, 5]);
  // The axis is whichever is coarse: the same dataset with x as the slice axis.
  const rot = planSpacing(cases.map((k) => c([k.spacing[2], k.spacing[0], k.spacing[1]], [k.size[2], k.size[0], k.size[1]])));
  assert.equal(rot.lowResAxis, 0);
  assert.ok(Math.abs(rot.target[0] - 4.4) < 1e-12);
});

test('spacing rule: the low percentile never goes finer than the other axes (nnU-Net adds 1e-5 to that floor)', () => {
  // z spacings (0.6, 0.6, 4, 4, 4): median 4 > 3 x 1, 10th percentile 0.6 < 1, so z = 1 + 1e-5.
  const d = planSpacing([0.6, 0.6, 4, 4, 4].map((z) => c([1, 1, z], [200, 200, 30])));
  assert.equal(d.rule, 'anisotropic');
  assert.ok(Math.abs(d.target[2] - (1 + 1e-5)) < 1e-12, String(d.target[2]));
});

test('spacing rule, mixed dataset: anisotropic spacing alone (many slices) or few slices alone keep the median', () => {
  // Coarse z (5 mm > 3 x 1 mm) but 100 slices: 100 x 3 = 300 >= 256 voxels in plane, so not anisotropic in voxels.
  const manySlices = planSpacing([c([1, 1, 5], [256, 256, 100]), c([1, 1, 5], [256, 256, 110]), c([1, 1, 2], [256, 256, 120])]);
  assert.equal(manySlices.rule, 'median');
  assert.deepEqual(manySlices.target, [1, 1, 5]);
  // Few slices but z only 2.5x the in-plane spacing.
  const mild = planSpacing([c([1, 1, 2.5], [256, 256, 20]), c([1.2, 1.2, 3], [256, 256, 20]), c([1, 1, 2], [256, 256, 20])]);
  assert.equal(mild.rule, 'median');
  assert.deepEqual(mild.target, [1, 1, 2.5]);
  assert.throws(() => planSpacing([]), /without readable cases/);
});

test('pooled intensity: exact mean and std from per-case moments; percentiles are the cases\' median', () => {
  // Case A: values {0, 2} (mean 1, std 1), 2 voxels; case B: values {10} x 2 (mean 10, std 0). Pooled {0,2,10,10}: mean 5.5.
  const s = (mean: number, std: number, p: number) => ({ min: 0, max: 10, mean, std, p00_5: p, p99_5: p + 1, sampled: 2 });
  const p = poolIntensity([{ s: s(1, 1, 0), n: 2 }, { s: s(10, 0, 10), n: 2 }])!;
  assert.equal(p.mean, 5.5);
  const want = Math.sqrt((0 + 4 + 100 + 100) / 4 - 5.5 * 5.5);
  assert.ok(Math.abs(p.std - want) < 1e-12);
  assert.equal(p.p00_5, 5);
  assert.equal(poolIntensity([]), undefined);
});

test('patch size for a free network: follows the spacing, clipped to the image, multiples of the divisor, within the budget', () => {
  const chns = [32, 64, 128, 256, 320];
  const budget = 2 * 2 ** 30;
  const p = planPatchSize({ spacing: [0.8, 0.8, 2.5], medianSize: [400, 400, 100], divisor: [16, 16, 16], featureChns: chns, batchSize: 2, budgetBytes: budget });
  const [d, h, w] = p.patchSize;
  for (const s of p.patchSize) assert.equal(s % 16, 0);
  assert.ok(p.estimatedBytes <= budget && p.estimatedBytes === estimateTrainingBytes(p.patchSize, chns, 2));
  assert.ok(d < h && h === w, `coarse z gets fewer voxels: ${p.patchSize.join('x')}`);
  // One more divisor step on the longest-in-mm axis would exceed the budget (the fit is tight).
  const grown = [d, h, w];
  let pick = 0;
  for (let a = 1; a < 3; a++) if (grown[a]! * [2.5, 0.8, 0.8][a]! < grown[pick]! * [2.5, 0.8, 0.8][pick]!) pick = a;
  grown[pick]! += 16;
  assert.ok(estimateTrainingBytes(grown, chns, 2) > budget || grown[pick]! > [112, 400, 400][pick]!);
  // A small image clips the patch (rounded up to the divisor so one patch covers it).
  const small = planPatchSize({ spacing: [1, 1, 1], medianSize: [40, 40, 20], divisor: [16, 16, 16], featureChns: chns, batchSize: 2, budgetBytes: 64 * 2 ** 30 });
  assert.deepEqual(small.patchSize, [32, 48, 48]);
});

/** A bright-centre int16 volume (values 0..1000) with the given spacing and direction. */
async function writeCase(file: string, size: Vec3, spacing: Vec3, direction: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1]): Promise<void> {
  await writeVolume(file, size, (i, j, k) => ((i + 2 * j + 3 * k) % 11) * 100, { spacing, direction });
}

test('prepare --spacing plan: fingerprint in the cache\'s axis order, hand-computed target, plan.json, reuse on re-run', async () => {
  const dir = path.join(tmp, 'ds');
  fs.mkdirSync(dir, { recursive: true });
  // c: voxel axes (i, j, k) point along world (y, z, x): spacing (2, 3, 1) is (1, 2, 3) in LPS order.
  const perm: Mat3 = [0, 0, 1, 1, 0, 0, 0, 1, 0];
  await writeCase(path.join(dir, 'a.nii.gz'), [20, 20, 10], [1, 2, 3]);
  await writeCase(path.join(dir, 'b.nii.gz'), [16, 16, 8], [2, 2, 4]);
  await writeCase(path.join(dir, 'c.nii.gz'), [12, 8, 18], [2, 3, 1], perm);
  const out = path.join(tmp, 'cache');
  const r = await prepare([dir], out, { workers: 0, progress: false, preprocess: { spacing: 'plan' } });
  assert.equal(r.report.ok, 3);
  const plan = readPlan(out)!;
  assert.deepEqual(r.plan, plan);
  const byId = Object.fromEntries(plan.fingerprint.cases.map((k) => [k.id, k]));
  assert.deepEqual(byId['c']!.spacing, [1, 2, 3]);
  assert.deepEqual(byId['c']!.size, [18, 12, 8]);
  assert.equal(byId['c']!.orientation, 'PSL');
  assert.deepEqual(byId['a']!.spacing, [1, 2, 3]);
  // Medians of x (1, 2, 1), y (2, 2, 2), z (3, 4, 3): (1, 2, 3); not anisotropic.
  assert.deepEqual(plan.spacing, { target: [1, 2, 3], source: 'plan', planned: [1, 2, 3], rule: 'median', reason: 'median spacing of 3 case(s)' });
  assert.deepEqual(plan.fingerprint.spacingRange, { min: [1, 2, 3], max: [2, 2, 4] });
  assert.deepEqual(plan.fingerprint.modalities, { ct: 0, other: 3 });
  const m = loadManifest(out)!;
  assert.deepEqual(m.preprocess['spacing'], [1, 2, 3]);
  for (const rec of m.cases) assert.deepEqual(rec.geometry!.spacing, [1, 2, 3]);
  // b is resampled (16 x 2 / 1 = 32 voxels along x); a is already at the target and cached unchanged.
  assert.deepEqual(m.cases.find((k) => k.id === 'b')!.image!.shape, [11, 16, 32]);
  const a = m.cases.find((k) => k.id === 'a')!;
  const cv = CacheVolume.open(path.join(out, a.image!.file));
  assertSameValues(cv.readAll(), reorient(await readImage(path.join(dir, 'a.nii.gz')), 'LPS').volume.data, 'case a untouched');
  cv.close();
  // Re-run: nothing read again (no fingerprint pass), nothing prepared again.
  const again = await prepare([dir], out, { workers: 0, progress: false, preprocess: { spacing: 'plan' } });
  assert.equal(again.report.skipped, 3);
  const events = fs.readFileSync(path.join(out, 'prepare.log.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
  assert.equal(events.filter((e) => e === 'fingerprint').length, 1, events.join(','));
  // An explicit spacing wins and the plan still says what it would have chosen.
  const ex = await prepare([dir], path.join(tmp, 'cache-ex'), { workers: 0, progress: false, preprocess: { spacing: [2, 2, 2] } });
  assert.deepEqual(ex.plan!.spacing.target, [2, 2, 2]);
  assert.equal(ex.plan!.spacing.source, 'explicit');
  assert.deepEqual(ex.plan!.spacing.planned, [1, 2, 3]);
});

test('misfm prepare: plan by default, --spacing native, -q accepted, bad --spacing named', async () => {
  const dir = path.join(tmp, 'cli');
  fs.mkdirSync(dir, { recursive: true });
  await writeCase(path.join(dir, 'a.nii.gz'), [12, 12, 6], [1, 1, 2]);
  await writeCase(path.join(dir, 'b.nii.gz'), [12, 12, 6], [3, 3, 2]);
  const lines: string[] = [];
  assert.equal(await runPrepare([dir, '--out', path.join(tmp, 'c1'), '-q', '--workers', '0'], (s) => lines.push(s), () => undefined, false), 0);
  assert.match(lines.join(''), /spacing: 2,2,2 mm \(median spacing of 2 case\(s\)\); plan in plan\.json/);
  assert.ok(fs.existsSync(path.join(tmp, 'c1', PLAN_NAME)));
  lines.length = 0;
  assert.equal(await runPrepare([dir, '--out', path.join(tmp, 'c2'), '--spacing', 'native', '-q', '--workers', '0'], (s) => lines.push(s), () => undefined, false), 0);
  assert.match(lines.join(''), /spacing: native spacing \(the plan's would be 2,2,2 mm/);
  assert.equal(loadManifest(path.join(tmp, 'c2'))!.preprocess['spacing'], undefined);
  await assert.rejects(runPrepare([dir, '--out', path.join(tmp, 'c3'), '--spacing', 'median'], () => undefined, () => undefined, false), /--spacing median: expected plan, native or three/);
});
