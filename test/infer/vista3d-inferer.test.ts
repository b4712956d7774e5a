/**
 * VISTA3D inference parity with MONAI (fixture vista3d_small/inferer): the bundle's automatic
 * sliding window, point_based_window_inferer point-only and auto+point with prev_mask, and the
 * post-processing; the feature cache is used by a later click and changes nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors } from '../../src/engine/creation.js';
import { autoLogits, pointLogits, vistaPostprocess } from '../../src/infer/vista3d/inferer.js';
import { FeatureCache } from '../../src/infer/vista3d/cache.js';
import { clickWindows, reusableWindow, slidingWindows } from '../../src/infer/vista3d/windows.js';
import { f32, i64, tensorOf, pointsOf, smallModel, logitMismatches, fixtureMeta } from '../models/vista3d-helpers.js';

const ROI = [16, 24, 32] as const;
const SHAPE = [12, 40, 48] as const;
const nearLimit = Number((fixtureMeta['near_threshold'] as Record<string, number>)['inferer_voxels_abs_logit_below_1e-4']);

function countDiff(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!(a[i] === b[i] || (Number.isNaN(a[i]!) && Number.isNaN(b[i]!)))) n++;
  return n;
}

test('window geometry: MONAI scan order and click-centred windows', () => {
  const w = slidingWindows([16, 40, 48], ROI, 0.25);
  // interval int(roi*0.75) = (12,18,24): axis0 [0], axis1 [0,16], axis2 [0,16].
  assert.deepEqual(w.map((x) => x.start), [[0, 0, 0], [0, 0, 16], [0, 16, 0], [0, 16, 16]]);
  const c = clickWindows([[3, 2, 40], [15, 39, 0]], ROI, [16, 40, 48]);
  assert.deepEqual(c.map((x) => [x.start, x.stop]), [[[0, 0, 16], [16, 24, 48]], [[0, 16, 0], [16, 40, 32]]]);
});

test('reused click windows: a computed window holding the click with the margin, nearest centre first; else MONAI\'s', () => {
  const size = [16, 40, 48] as const;
  const a = { start: [0, 0, 16] as [number, number, number], stop: [16, 24, 48] as [number, number, number] };
  const b = { start: [0, 8, 16] as [number, number, number], stop: [16, 32, 48] as [number, number, number] };
  // Both hold y 15 and y 17 with a margin of 5; the window whose centre (y 12 or 20) is nearer wins.
  assert.deepEqual(reusableWindow([8, 15, 30], ROI, size, [b, a], 5), a);
  assert.deepEqual(reusableWindow([8, 17, 30], ROI, size, [a, b], 5), b);
  // y 15 is 8 voxels from a's inner face (24 - 1 - 15) and 7 from b's start.
  assert.deepEqual(reusableWindow([8, 15, 30], ROI, size, [b, a], 8), a, 'b misses the margin (7 < 8)');
  assert.equal(reusableWindow([8, 15, 30], ROI, size, [a, b], 9), null);
  // Faces on the image border need no margin (x spans the whole padded axis, z ends at 48).
  assert.deepEqual(reusableWindow([0, 10, 47], ROI, size, [a], 5), a);
  assert.equal(reusableWindow([8, 15, 30], [16, 24, 16], size, [a], 0), null, 'another window size');
  // In clickWindows: the centred window is kept when computed, else replaced; later clicks may reuse earlier ones.
  const pts = [[8, 15, 30], [8, 17, 30]];
  const monai = clickWindows(pts, ROI, size);
  assert.deepEqual(monai.map((w) => w.start), [[0, 3, 14], [0, 5, 14]]);
  const r = clickWindows(pts, ROI, size, true, 5, true, { computed: [a], margin: 5 });
  assert.deepEqual(r, [a], 'both clicks in the computed window, listed once');
  const fresh = clickWindows(pts, ROI, size, true, 5, true, { computed: [], margin: 5 });
  assert.deepEqual(fresh.map((w) => w.start), [[0, 3, 14]], 'the second click reuses the first click\'s window');
});

test('automatic sliding window and its post-processing match MONAI (bundle settings)', () => {
  const net = smallModel();
  try {
    const img = tensorOf('inferer/image');
    const classes = i64('inferer/sw_auto_class_vector');
    const before = liveTensors();
    const r = autoLogits({ model: net }, img, classes, { roi: ROI, overlap: 0.25, blend: 'constant' });
    assert.equal(liveTensors(), before, 'no tensor leaks');
    assert.equal(r.windowsComputed, 4);
    const bad = logitMismatches(r.logits, f32('inferer/sw_auto_out'));
    assert.equal(bad.length, 0, `sw_auto_out: ${bad.length} voxels off`);
    const post = vistaPostprocess(r.logits, classes.length, SHAPE, classes);
    assert.ok(countDiff(post, f32('inferer/sw_auto_post')) <= nearLimit);
    img.dispose();
  } finally { net.dispose(); }
});

test('point_based_window_inferer: point-only (NaN outside windows, summed overlaps), post-processing, auto+point with prev_mask', () => {
  const net = smallModel();
  try {
    const img = tensorOf('inferer/image');
    const p = pointsOf('inferer', 'pbwi_point_coords', 'pbwi_point_labels');
    const pts = { coords: p.coords[0]!, labels: p.labels[0]! };
    const r = pointLogits({ model: net }, img, pts, { roi: ROI });
    assert.equal(r.windowsComputed, 3);
    const bad = logitMismatches(r.logits, f32('inferer/pbwi_point_out'));
    assert.equal(bad.length, 0, `pbwi_point_out: ${bad.length} voxels off, first ${bad[0]}: ${r.logits[bad[0] ?? 0]} vs ${f32('inferer/pbwi_point_out')[bad[0] ?? 0]}`);
    assert.ok(r.logits.some((v) => Number.isNaN(v)), 'voxels no window reached are NaN');
    const post = vistaPostprocess(r.logits, 1, SHAPE, null, p);
    assert.ok(countDiff(post, f32('inferer/pbwi_point_post')) <= nearLimit, `pbwi_point_post: ${countDiff(post, f32('inferer/pbwi_point_post'))}`);
    // 'mean' stitching differs where windows overlap (MONAI sums).
    const m = pointLogits({ model: net }, img, pts, { roi: ROI, stitch: 'mean' });
    assert.ok(logitMismatches(m.logits, f32('inferer/pbwi_point_out')).length > 0);
    const prev = f32('inferer/pbwi_auto_prev_mask');
    const a = pointLogits({ model: net }, img, pts, { roi: ROI, classVector: [3], promptClass: [3], prevMask: prev });
    const out = f32('inferer/pbwi_auto_out');
    const badA = logitMismatches(a.logits, out);
    assert.ok(badA.length <= nearLimit, `pbwi_auto_out: ${badA.length} voxels off`);
    assert.ok(!a.logits.some((v) => Number.isNaN(v)), 'prev_mask fills what no window reached');
    img.dispose();
  } finally { net.dispose(); }
});

test('the feature cache: a later click in computed windows runs only the heads, with identical results', () => {
  const net = smallModel();
  try {
    const img = tensorOf('inferer/image');
    const p = pointsOf('inferer', 'pbwi_point_coords', 'pbwi_point_labels');
    const pts = { coords: p.coords[0]!, labels: p.labels[0]! };
    const cache = new FeatureCache(64 << 20);
    const first = pointLogits({ model: net, cache }, img, pts, { roi: ROI });
    assert.equal(first.windowsComputed, 3);
    assert.equal(first.cacheHits, 0);
    // A fourth click whose centred window is the second click's window (padded start [0,16,0]).
    const second = pointLogits({ model: net, cache }, img, { coords: [...pts.coords, [9, 29, 12]], labels: [...pts.labels, 0] }, { roi: ROI, pointStart: 3 });
    assert.equal(second.windowsComputed, 0, 'no encoder run for a click in a computed window');
    assert.equal(second.cacheHits, 1);
    const uncached = pointLogits({ model: net }, img, { coords: [...pts.coords, [9, 29, 12]], labels: [...pts.labels, 0] }, { roi: ROI, pointStart: 3 });
    assert.equal(uncached.windowsComputed, 1);
    assert.equal(countDiff(second.logits, uncached.logits), 0, 'identical with and without the cache');
    assert.equal(countDiff(first.logits, pointLogits({ model: net }, img, pts, { roi: ROI }).logits), 0);
    // Auto reuses the same cache for windows it shares; a budget below one window caches nothing.
    const tiny = new FeatureCache(1000);
    const t = pointLogits({ model: net, cache: tiny }, img, pts, { roi: ROI });
    assert.equal(tiny.size, 0);
    assert.equal(t.windowsComputed, 3);
    assert.ok(cache.bytes <= 64 << 20 && cache.size === 3);
    // LRU: a budget of one window keeps only the most recent.
    const one = new FeatureCache(cache.bytes / 3 + 1);
    pointLogits({ model: net, cache: one }, img, pts, { roi: ROI });
    assert.equal(one.size, 1);
    cache.clear(); one.clear();
    img.dispose();
  } finally { net.dispose(); }
});

test('FeatureCache evicts the least recently used window first and frees what it evicts', async () => {
  const { zeros } = await import('../../src/engine/creation.js');
  const feat = (): { pointLow: ReturnType<typeof zeros>; autoMapped: null; size: [number, number, number] } => ({ pointLow: zeros([1, 1, 10, 10, 10]), autoMapped: null, size: [20, 20, 20] });
  const c = new FeatureCache(3 * 4000);
  const a = feat(), b = feat(), d = feat(), e = feat();
  assert.ok(c.put('a', a) && c.put('b', b) && c.put('d', d));
  assert.ok(c.get('a', true, false) !== undefined, 'a used again: b is now the oldest');
  assert.equal(c.get('a', false, true), undefined, 'a miss when the needed branch is absent');
  c.put('e', e);
  assert.deepEqual(['a', 'b', 'd', 'e'].map((k) => c.has(k)), [true, false, true, true]);
  assert.throws(() => b.pointLow.sum(), 'the evicted tensor is freed');
  assert.equal(c.bytes, 3 * 4000);
  c.clear();
  assert.equal(c.size, 0);
});
