import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binaryMetrics } from '../../src/metrics/binary.js';
import type { MetricName } from '../../src/metrics/binary.js';
import { defaultClassName, evaluateCase, evaluateCases, finiteStats, resolveSettings, summarize } from '../../src/metrics/evaluate.js';
import { formatSummary, reportToCsv, reportToJson, writeReportCsv, writeReportJson } from '../../src/metrics/report.js';
import type { Shape3, Spacing3 } from '../../src/metrics/types.js';
import { MisfmError } from '../../src/util/errors.js';
import { readMaskFixture, relDiff, rng, sharedPath } from './helpers.js';

const ALL: MetricName[] = ['dice', 'iou', 'assd', 'hd95', 'nsd', 'rve', 'volume'];

/** A label map with a few ellipsoid blobs (labels 1..4), one touching the array border. */
function blobs(shape: Shape3, seed: number): Int16Array {
  const r = rng(seed);
  const [D, H, W] = shape;
  const m = new Int16Array(D * H * W);
  const centres = [[D / 2, H / 3, W / 3], [D / 3, (2 * H) / 3, W / 2], [0, H / 2, W - 2], [D - 1, 1, 1]];
  centres.forEach(([cz, cy, cx], k) => {
    const rz = 2 + 3 * r(), ry = 2 + 4 * r(), rx = 2 + 4 * r();
    for (let z = 0; z < D; z++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const q = ((z - cz!) / rz) ** 2 + ((y - cy!) / ry) ** 2 + ((x - cx!) / rx) ** 2;
      if (q <= 1 + 0.3 * (r() - 0.5)) m[(z * H + y) * W + x] = k + 1;
    }
  });
  return m;
}

function binOf(a: ArrayLike<number>, values: number[]): Uint8Array {
  const m = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) m[i] = values.includes(a[i]!) ? 1 : 0;
  return m;
}

test('per-class values (cropped internally) equal binary metrics on the full arrays', () => {
  const shape: Shape3 = [14, 20, 22];
  const spacing: Spacing3 = [2.5, 0.8, 0.9];
  const pred = blobs(shape, 1), gt = blobs(shape, 2);
  // label 5 is absent from both maps, label 6 only in the prediction
  pred[5] = 6;
  const specs = [1, 2, 3, 4, [1, 2], 5, 6, [3, 4, 9]];
  const settings = resolveSettings({ labels: specs, metrics: ALL });
  for (const mode of ['reference', 'raw'] as const) {
    const st = resolveSettings({ labels: specs, metrics: ALL, mode, nsdTolerance: 1.5 });
    const res = evaluateCase('c', pred, gt, shape, spacing, st);
    specs.forEach((spec, ci) => {
      const vals = typeof spec === 'number' ? [spec] : spec;
      const want = binaryMetrics(binOf(pred, vals), binOf(gt, vals), shape, spacing, ALL, { ...st.surface, nsdTolerance: 1.5 });
      const got = res.classes[ci]!;
      for (const m of ALL) {
        const a = got[m], b = want[m];
        assert.ok(Object.is(a, b) || Math.abs(a - b) <= 1e-12 * Math.abs(b), `${mode} class ${JSON.stringify(spec)} ${m}: ${a} vs ${b}`);
      }
    });
    // average over classes uses finite values only
    for (const m of ALL) assert.equal(res.average?.[m], finiteStats(res.classes.map((v) => v[m])).mean);
  }
  assert.deepEqual(settings.classes.map((c) => c.name), ['1', '2', '3', '4', 'class_1_2', '5', '6', 'class_3_4_9']);
});

test('fixture parity through the multi-class evaluator (float labels, unit spacing too)', () => {
  const dir = sharedPath('fixtures', 'metrics');
  const meta = (JSON.parse(readFileSync(`${dir}/tensors.json`, 'utf8')) as { meta: { metrics: Record<string, number> } }).meta.metrics;
  const seg = Float32Array.from(readMaskFixture(`${dir}/seg.bin`));
  const gt = Float32Array.from(readMaskFixture(`${dir}/gt.bin`));
  const shape: Shape3 = [24, 40, 36];
  const rep = evaluateCases([
    { name: 'aniso', pred: seg, gt, shape, spacing: [2.5, 0.8, 0.9] },
    { name: 'unit', pred: seg, gt, shape, spacing: [1, 1, 1] },
  ], { labels: [1], metrics: ['dice', 'assd', 'hd95'] });
  const [a, u] = rep.cases;
  assert.ok(relDiff(a!.classes[0]!.dice, meta['dice']!) < 1e-12);
  assert.ok(relDiff(a!.classes[0]!.assd, meta['assd_spacing']!) < 1e-9);
  assert.ok(relDiff(a!.classes[0]!.hd95, meta['hd95_spacing']!) < 1e-9);
  assert.ok(relDiff(u!.classes[0]!.assd, meta['assd_unit']!) < 1e-9);
  assert.ok(relDiff(u!.classes[0]!.hd95, meta['hd95_unit']!) < 1e-9);
  assert.equal(a!.average, undefined); // one class: no average, as PyMIC
  assert.deepEqual(rep.summary.rows, ['1']);
  const s = rep.summary.stats['1']!.hd95;
  assert.ok(relDiff(s.mean, (meta['hd95_spacing']! + meta['hd95_unit']!) / 2) < 1e-9);
  assert.ok(relDiff(s.std, Math.abs(meta['hd95_spacing']! - meta['hd95_unit']!) / 2) < 1e-9); // population std
});

test('summary: population std, NaN left out and counted', () => {
  assert.deepEqual(finiteStats([1, 2, 3, NaN]), { mean: 2, std: Math.sqrt(2 / 3), n: 3 });
  assert.deepEqual(finiteStats([NaN]), { mean: NaN, std: NaN, n: 0 });
  const shape: Shape3 = [1, 1, 6];
  const gt = Uint8Array.from([1, 1, 0, 2, 2, 0]);
  const predA = Uint8Array.from([1, 1, 0, 2, 0, 0]);
  const predB = Uint8Array.from([1, 0, 0, 0, 0, 0]); // class 2 missing: raw ASSD undefined
  const settings = resolveSettings({ labels: [1, 2], names: ['a', 'b'], metrics: ['assd', 'dice'], mode: 'raw' });
  const cases = [evaluateCase('A', predA, gt, shape, [1, 1, 1], settings), evaluateCase('B', predB, gt, shape, [1, 1, 1], settings)];
  const sum = summarize(cases, settings);
  assert.deepEqual(sum.rows, ['a', 'b', 'average']);
  assert.equal(sum.stats['b']!.assd.n, 1);
  assert.ok(Number.isNaN(cases[1]!.classes[1]!.assd));
  assert.equal(cases[1]!.average!.assd, cases[1]!.classes[0]!.assd);
  assert.equal(sum.stats['a']!.dice.n, 2);
});

test('settings validation names the problem', () => {
  const isErr = (re: RegExp) => (e: unknown): boolean => e instanceof MisfmError && e.code === 'ARGUMENT' && re.test(e.message);
  assert.throws(() => resolveSettings({ labels: [], metrics: ['dice'] }), isErr(/no labels/));
  assert.throws(() => resolveSettings({ labels: [1, 2], names: ['x'], metrics: ['dice'] }), isErr(/1 class names for 2 labels/));
  assert.throws(() => resolveSettings({ labels: [1, 2], names: ['x', 'x'], metrics: ['dice'] }), isErr(/unique/));
  assert.throws(() => resolveSettings({ labels: [[]], metrics: ['dice'] }), isErr(/non-empty list/));
  assert.throws(() => resolveSettings({ labels: [1], metrics: ['dice', 'jaccard'] }), isErr(/unknown metric 'jaccard'/));
  assert.throws(() => resolveSettings({ labels: [1], metrics: ['nsd'], nsdTolerance: -2 }), isErr(/tolerance/));
  assert.throws(() => evaluateCase('x', new Uint8Array(5), new Uint8Array(6), [1, 2, 3], [1, 1, 1], resolveSettings({ labels: [1], metrics: ['dice'] })),
    (e: unknown) => e instanceof MisfmError && /prediction.*5 elements/.test(e.message));
  assert.equal(defaultClassName([2, 7]), 'class_2_7');
});

test('CSV / JSON reports: content, NaN handling, atomic write', () => {
  const shape: Shape3 = [1, 1, 6];
  const gt = Uint8Array.from([1, 1, 0, 2, 2, 0]);
  const rep = evaluateCases([
    { name: 'A,1', pred: Uint8Array.from([1, 1, 0, 2, 0, 0]), gt, shape, spacing: [1, 1, 1] },
    { name: 'B', pred: Uint8Array.from([1, 0, 0, 0, 0, 0]), gt, shape, spacing: [1, 1, 1] },
  ], { labels: [1, 2], metrics: ['dice', 'assd'], mode: 'raw' });
  const csv = reportToCsv(rep).trimEnd().split('\n');
  assert.equal(csv[0], 'case,class,dice,assd');
  assert.equal(csv.length, 1 + 2 * 3 + 2 * 3);
  assert.equal(csv[1], `"A,1",1,1,0`);
  assert.match(csv[5]!, /^B,2,[0-9.e-]+,nan$/);
  assert.match(csv[7]!, /^mean,1,/);
  assert.match(csv[12]!, /^std,average,/);
  const json = JSON.parse(reportToJson(rep)) as { settings: { mode: string; surface: { clip: boolean } }; cases: { case: string; classes: Record<string, { assd: number | null }> }[]; summary: Record<string, { assd: { n: number } }> };
  assert.equal(json.settings.mode, 'raw');
  assert.equal(json.settings.surface.clip, false);
  assert.equal(json.cases[1]!.classes['2']!.assd, null);
  assert.equal(json.summary['2']!.assd.n, 1);
  assert.match(formatSummary(rep), /average/);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-eval-'));
  try {
    writeReportCsv(path.join(dir, 'r.csv'), rep);
    writeReportJson(path.join(dir, 'r.json'), rep);
    assert.equal(readFileSync(path.join(dir, 'r.csv'), 'utf8'), reportToCsv(rep));
    assert.deepEqual(readdirSync(dir).sort(), ['r.csv', 'r.json']); // no temp files left
    const bad = path.join(dir, 'missing-folder', 'r.csv');
    assert.throws(() => writeReportCsv(bad, rep), (e: unknown) => e instanceof MisfmError && e.message.includes(bad));
    assert.equal(existsSync(bad), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
