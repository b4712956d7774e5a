/**
 * VISTA3D parity with MONAI (fixture vista3d_small): encoder levels, both decoders, class embedding,
 * every point-head intermediate, and VISTA3D.forward for auto / point / point_noclass /
 * both_gaussian / both_cc / point_prev, within the README's tolerances; Algorithm 1 bit-exact on the
 * synthetic cases and on the stored pre-merge logits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { noGrad, liveTensors } from '../../src/engine/creation.js';
import { loadCheckpointFile, readSafetensors } from '../../src/io/checkpoint/index.js';
import { VISTA3D, connectedComponentsCombine, keepMergeComponentsWithPoints, type CombineDetail } from '../../src/models/vista3d/index.js';
import type { Tensor } from '../../src/engine/tensor.js';
import {
  vistaDir, f32, i64, shape, tensorOf, pointsOf, smallModel, assertLogits, assertExact, logitMismatches, fixtureMeta,
} from './vista3d-helpers.js';

const SMALL = { initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] };
const WHOLE = { start: [0, 0, 0] as const, stop: [16, 24, 32] as const };

test('state_dict.pt and weights.safetensors load strictly with identical values', async () => {
  const pt = (await loadCheckpointFile(path.join(vistaDir, 'state_dict.pt'))).stateDict;
  const st = readSafetensors(path.join(vistaDir, 'weights.safetensors')).tensors;
  const a = new VISTA3D(SMALL), b = new VISTA3D(SMALL);
  try {
    const ra = a.loadStateDict(pt), rb = b.loadStateDict(st);
    assert.equal(ra.loaded.length, pt.size);
    assert.equal(rb.loaded.length, st.size);
    assert.deepEqual([...a.stateDict().keys()], [...pt.keys()], 'key order equals MONAI state_dict order');
    assert.equal(a.numParameters(), fixtureMeta['n_parameters']);
    const sa = a.stateDict(), sb = b.stateDict();
    for (const [k, t] of sa) assertExact(t.dataF32(), sb.get(k)!.dataF32(), k);
  } finally { a.dispose(); b.dispose(); }
});

test('encoder levels and both decoders match MONAI', () => {
  const net = smallModel();
  try {
    const x = tensorOf('input');
    noGrad(() => {
      const levels = net.imageEncoder.encoder.forward(x);
      levels.forEach((t, i) => { assertLogits(t.dataF32(), f32(`intermediates/encoder_level${i}`), `encoder_level${i}`); t.dispose(); });
      const { point, auto } = net.imageEncoder.forward(x);
      assertLogits(point!.dataF32(), f32('intermediates/decoder_point_out'), 'decoder_point_out');
      assertLogits(auto!.dataF32(), f32('intermediates/decoder_auto_out'), 'decoder_auto_out');
      point!.dispose(); auto!.dispose();
      x.dispose();
    });
  } finally { net.dispose(); }
});

test('class-head embedding after the MLP matches MONAI', async () => {
  const net = smallModel();
  const { fromTypedArray } = await import('../../src/engine/creation.js');
  try {
    const cv = fromTypedArray(BigInt64Array.from(i64('auto/class_vector').map(BigInt)), [3, 1]);
    const e = noGrad(() => net.classHead.embed(cv));
    assert.deepEqual(e.shape, shape('intermediates/class_head_class_embedding'));
    assertLogits(e.dataF32(), f32('intermediates/class_head_class_embedding'), 'class embedding');
    e.dispose(); cv.dispose();
  } finally { net.dispose(); }
});

test('forward: auto, point (with every point-head intermediate) and point_noclass', () => {
  const net = smallModel();
  try {
    const x = tensorOf('input');
    const before = liveTensors();
    const auto = noGrad(() => net.forward(x, { classVector: i64('auto/class_vector') }));
    assert.deepEqual(auto.shape, shape('auto/out'));
    assertLogits(auto.dataF32(), f32('auto/out'), 'auto/out');
    auto.dispose();
    const taps = new Map<string, Float32Array>();
    const pt = pointsOf('point');
    const out = noGrad(() => net.forward(x, { points: pt, promptClass: i64('point/prompt_class') }, (name: string, t: Tensor) => taps.set(name, t.dataF32())));
    assert.deepEqual(out.shape, shape('point/out'));
    assertLogits(out.dataF32(), f32('point/out'), 'point/out');
    const o = out.dataF32(), vol = 16 * 24 * 32;
    assert.ok(o.subarray(3 * vol).every((v) => v === -9999), 'all-padding object is -9999');
    out.dispose();
    const names: Record<string, string> = {
      feat_downsample_out: 'point_head_feat_downsample_out', transformer_in_pos_src: 'point_head_transformer_in_pos_src',
      transformer_in_tokens: 'point_head_transformer_in_tokens', transformer_out_queries: 'point_head_transformer_out_queries',
      transformer_out_keys: 'point_head_transformer_out_keys', hyper_in: 'point_head_hyper_in', pe_of_points_obj0: 'point_head_pe_of_points_obj0',
    };
    for (const [tap, file] of Object.entries(names)) {
      const got = taps.get(tap);
      if (tap === 'feat_downsample_out') {
        // forward() encodes through encode(); the half-resolution tokens are checked directly.
        const low = noGrad(() => { const { point } = net.imageEncoder.forward(x, true, false); try { return net.pointHead.downsample(point!); } finally { point!.dispose(); } });
        assertLogits(low.dataF32(), f32(`intermediates/${file}`), file); low.dispose();
        continue;
      }
      assert.ok(got !== undefined, `no tap ${tap}`);
      assertLogits(got, f32(`intermediates/${file}`), file);
    }
    const nc = pointsOf('point_noclass');
    const o2 = noGrad(() => net.forward(x, { points: nc }));
    assertLogits(o2.dataF32(), f32('point_noclass/out'), 'point_noclass/out');
    o2.dispose();
    assert.equal(liveTensors() - before, 0, 'no tensor leaks from forward');
    x.dispose();
  } finally { net.dispose(); }
});

test('forward: both_gaussian (training blend) and its separate branches', () => {
  const net = smallModel();
  try {
    const x = tensorOf('input');
    const cv = i64('both_gaussian/class_vector');
    const pts = pointsOf('both_gaussian');
    const out = noGrad(() => net.forward(x, { classVector: cv, points: pts, promptClass: cv }));
    assertLogits(out.dataF32(), f32('both_gaussian/out'), 'both_gaussian/out');
    out.dispose();
    const auto = noGrad(() => net.forward(x, { classVector: cv }));
    assertLogits(auto.dataF32(), f32('both_gaussian/auto_logits'), 'both_gaussian/auto_logits');
    auto.dispose(); x.dispose();
  } finally { net.dispose(); }
});

test('both_cc and point_prev: merge of the stored pre-merge logits is bit-exact; end to end within tolerance', () => {
  const net = smallModel();
  try {
    const x = tensorOf('input');
    const vol = 16 * 24 * 32;
    // both_cc
    const cv = i64('both_cc/class_vector');
    const pts = pointsOf('both_cc');
    const plan = net.plan([16, 24, 32], { classVector: cv, points: pts, promptClass: cv, patch: WHOLE });
    const merged = connectedComponentsCombine({ data: f32('both_cc/auto_logits'), count: 3, shape: [16, 24, 32] }, f32('both_cc/point_logits'),
      plan.points!.coords, plan.points!.labels, plan.mapping);
    assertExact(merged, f32('both_cc/out'), 'both_cc merge of stored logits');
    const e2e = noGrad(() => net.forward(x, { classVector: cv, points: pts, promptClass: cv, patch: WHOLE }));
    const near = (a: Float32Array, i: number): boolean => Math.abs(a[i]!) < 1e-4;
    const auto = f32('both_cc/auto_logits');
    const bad = logitMismatches(e2e.dataF32(), f32('both_cc/out'));
    assert.ok(bad.length <= Number((fixtureMeta['near_threshold'] as Record<string, number>)['both_cc_voxels_abs_logit_below_1e-4']) &&
      bad.every((i) => near(auto, i)), `both_cc end to end: ${bad.length} voxels off`);
    e2e.dispose();
    // point_prev
    const pp = pointsOf('point_prev');
    const prev = { data: f32('point_prev/prev_mask'), count: 2, shape: [16, 24, 32] as const };
    const planP = net.plan([16, 24, 32], { points: pp, patch: WHOLE });
    const m2 = connectedComponentsCombine(prev, f32('point_prev/point_logits').subarray(0, planP.points!.coords.length * vol), planP.points!.coords, planP.points!.labels, planP.mapping);
    assertExact(m2, f32('point_prev/out'), 'point_prev merge of stored logits');
    const e2 = noGrad(() => net.forward(x, { points: pp, patch: WHOLE, prevMask: prev }));
    const bad2 = logitMismatches(e2.dataF32(), f32('point_prev/out'));
    assert.ok(bad2.length <= 6, `point_prev end to end: ${bad2.length} voxels off`);
    let nans = 0; for (const v of e2.dataF32()) if (Number.isNaN(v)) nans++;
    assert.equal(nans, 3072, 'NaN of prev_mask kept (MONAI)');
    e2.dispose(); x.dispose();
  } finally { net.dispose(); }
});

for (const c of ['alg1_a', 'alg1_b'] as const) {
  test(`Algorithm 1 ${c}: inside, diff masks, cc and out bit-exact (MONAI mode)`, () => {
    const lshape = shape(`${c}/logits`);
    const B = lshape[0]!;
    const pts = pointsOf(c);
    const mapping = i64(`${c}/mapping_index`).map((v) => v === 1);
    let d: CombineDetail | undefined;
    const out = connectedComponentsCombine({ data: f32(`${c}/logits`), count: B, shape: [20, 20, 20] }, f32(`${c}/point_logits`), pts.coords, pts.labels, mapping, 'monai', (x) => { d = x; });
    assert.deepEqual(d!.inside, i64(`${c}/inside`).map((v) => v === 1));
    assert.deepEqual(Array.from(d!.diffPos), i64(`${c}/diff_pos`));
    assert.deepEqual(Array.from(d!.diffNeg), i64(`${c}/diff_neg`));
    assert.deepEqual(Array.from(d!.cc), i64(`${c}/cc`));
    assertExact(out, f32(`${c}/out`), `${c}/out`);
    if (c === 'alg1_b') {
      const per = keepMergeComponentsWithPoints(d!.diffPos, d!.diffNeg, 2, [20, 20, 20], pts.coords, pts.labels, 'corrected');
      assert.deepEqual(Array.from(per), i64('alg1_b/cc_per_object_3d'), 'corrected mode labels each object on its own');
      assert.notDeepEqual(Array.from(per), Array.from(d!.cc));
      const fixed = connectedComponentsCombine({ data: f32(`${c}/logits`), count: B, shape: [20, 20, 20] }, f32(`${c}/point_logits`), pts.coords, pts.labels, mapping, 'corrected');
      assert.equal(fixed.filter((v) => Number.isNaN(v)).length, 0, 'corrected mode fills NaN');
    }
  });
}
