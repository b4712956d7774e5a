/**
 * VoCo parity with every group of ../shared/fixtures/voco_small (README there): position labels
 * and boxes exactly; projector outputs, logits, each loss term, the total, one EMA step and the
 * gradients (the reference's detach pattern) at rtol 1e-4 / atol 1e-5. The backbone group is in
 * test/models/swin-unetr.test.ts; here the projector runs on the fixture's embeddings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../helpers.js';
import { fromTypedArray, manualSeed, noGrad } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { baseBoxes, drawCenter, positionLabels, randomBox, vocoSample, assembleRows, volumeShape, type Box } from '../../src/ssl/voco/crops.js';
import { VoCoModel, vocoHeadDefaults, type VoCoBackbone } from '../../src/ssl/voco/head.js';
import { ceLossCvpr, ceLossTpami, onlineAssign, regularizationLoss, vocoLossCvpr, vocoLossTpami, type VoCoLayout } from '../../src/ssl/voco/losses.js';
import { bernoulliKeepMask } from '../../src/nn/layers/drop-path.js';
import { Module } from '../../src/nn/module.js';
import { Linear } from '../../src/nn/layers/linear.js';
import { f32, i64, shapeOf, vocoMeta, weightsUnder, hashVolumeDHW } from './voco-fixture.js';

const RTOL = 1e-4, ATOL = 1e-5;
const L: VoCoLayout = { volumes: 2, randomPerVolume: 2, bases: 9 };
const scal = vocoMeta.meta.scalars as unknown as {
  tpami: { intra: number; inter: number; reg: number; total: number; per_volume: { intra: number; intra_pos: number; intra_neg: number; inter: number; reg: number }[] };
  tpami_nodrop: { intra: number; inter: number; reg: number; total: number };
  cvpr_loss_on_same_outputs: { pos: number; neg: number; reg: number; total: number; per_volume: { pos: number; neg: number; reg: number }[] };
};
const close = (a: number, b: number, what: string): void => assertClose([a], [b], RTOL, ATOL, what);
const boxOf = (r: number[]): Box => ({ w: [r[0]!, r[1]!], h: [r[2]!, r[3]!], d: [r[4]!, r[5]!] });
const t = (name: string): Tensor => fromTypedArray(f32(name), shapeOf(name));

test('position labels of every fixture case are exact (TPAMI and CVPR, boundary centres, base_roi 96 with roi 64)', () => {
  for (const [name, c] of Object.entries(vocoMeta.meta.position_label_cases)) {
    const center = i64(`poslabel/${name}/center`) as [number, number];
    assert.deepEqual(center, c.center, `${name} centre`);
    const got = positionLabels(center, c.kwargs.roi, c.kwargs.base_roi ?? c.kwargs.roi, c.kwargs.num_crops);
    assert.deepEqual([...got], c.labels, `${name} labels (float64)`);
    assert.deepEqual(Float32Array.from(got), f32(`poslabel/${name}/labels`), `${name} labels (float32 file)`);
    if (c.variant === 'tpami' && c.kwargs.roi === c.kwargs.base_roi) assert.ok(Math.abs(got.reduce((a, b) => a + b, 0) - 1) < 1e-12, `${name} sums to 1`);
  }
});

test('base-crop boxes and the vanilla random boxes/labels are exact', () => {
  const flat = (bs: Box[]): number[] => bs.flatMap((b) => [b.w[0], b.w[1], b.h[0], b.h[1], b.d[0], b.d[1]]);
  assert.deepEqual(flat(baseBoxes({ grid: 3, roi: 64, depth: 64 })), i64('boxes/tpami_roi64_n3'));
  assert.deepEqual(flat(baseBoxes({ grid: 4, roi: 96, depth: 96 })), i64('boxes/cvpr_roi96_n4'));
  for (const [v, g, n] of [['tpami', { grid: 3, roi: 64, depth: 64 }, 3], ['cvpr', { grid: 4, roi: 96, depth: 96 }, 2]] as const) {
    const boxes = i64(`poslabel/${v}_vanilla_seed11/boxes`);
    const labels = f32(`poslabel/${v}_vanilla_seed11/labels`);
    const k = g.grid * g.grid;
    for (let r = 0; r < n; r++) {
      const b = boxOf(boxes.slice(r * 6, r * 6 + 6));
      const center: [number, number] = [b.w[0] + g.roi / 2, b.h[0] + g.roi / 2];
      assert.deepEqual(randomBox(center, g), b);
      assert.deepEqual(Float32Array.from(positionLabels(center, g.roi, g.roi, g.grid)), labels.subarray(r * k, (r + 1) * k));
    }
  }
  // The model batch: random boxes, centres and labels of data/*.
  const rb = i64('data/random_boxes'), rc = i64('data/random_centers'), lab = f32('data/labels');
  const g = { grid: 3, roi: 64, depth: 64 };
  for (let i = 0; i < 4; i++) {
    const c: [number, number] = [rc[2 * i]!, rc[2 * i + 1]!];
    assert.deepEqual(randomBox(c, g), boxOf(rb.slice(6 * i, 6 * i + 6)));
    assert.deepEqual(Float32Array.from(positionLabels(c, 64, 64, 3)), lab.subarray(9 * i, 9 * i + 9));
  }
});

test('random centres cover [half, max - half - 1] and never the far edge; vocoSample assembles rows in the reference order', () => {
  const g = { grid: 3, roi: 64, depth: 64 };
  const rng = new Rng(5);
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < 4000; i++) { const [x, y] = drawCenter(rng, g); lo = Math.min(lo, x, y); hi = Math.max(hi, x, y); }
  assert.equal(lo, 32); assert.equal(hi, 159);
  const vols = [hashVolumeDHW(0), hashVolumeDHW(1)];
  const samples = vols.map((v, i) => vocoSample(v, g, 2, new Rng(i)));
  const rows = assembleRows(samples);
  assert.equal(rows.length, 22);
  assert.equal(rows[1], samples[0]!.random[1]);
  assert.equal(rows[2], samples[1]!.random[0]);
  assert.equal(rows[4], samples[0]!.bases[0]);
  assert.equal(rows[13], samples[1]!.bases[0]);
  assert.deepEqual(volumeShape(g), [64, 192, 192]);
  // Labels follow the drawn centres.
  assert.deepEqual(samples[1]!.labels[1], positionLabels(samples[1]!.centers[1]!, 64, 64, 3));
});

/** A backbone stand-in: VoCoModel with the fixture's projectors (the backbone is tested elsewhere). */
class NoBackbone extends Module implements VoCoBackbone {
  readonly embeddingDim = 144;
  embed(): Tensor { throw new Error('not used'); }
}

function fixtureModel(): VoCoModel {
  const m = new VoCoModel(() => new NoBackbone(), { ...vocoHeadDefaults('tpami'), hiddenDim: 64, outDim: 64 });
  m.student.loadStateDict(weightsUnder('student'));
  m.teacher.loadStateDict(weightsUnder('teacher'));
  return m;
}

const rowsOf = (x: Tensor, start: number, n: number): Float32Array => { const s = x.narrow(0, start, n); try { return s.dataF32(); } finally { s.dispose(); } };

test('TPAMI step on the fixture embeddings: projector layers, EMA, teacher, logits, each loss term, total', () => {
  const m = fixtureModel();
  const emb = t('features/embeddings');
  const labels = t('data/labels');
  const keep = fromTypedArray(Float32Array.from(i64('features/dropout_keep')), [22]);
  try {
    m.eval();
    // Projector layers on the recorded dropout input (the step below replays the same mask).
    const rec = new Map<string, Float32Array>();
    const sIn = t('features/student_input');
    noGrad(() => m.student.forward(sIn, (n, x) => rec.set(n, x.dataF32()))).dispose();
    assertClose(rec.get('layer1')!, f32('features/student_layer1'), RTOL, ATOL, 'student layer1');
    assertClose(rec.get('layer2')!, f32('features/student_layer2'), RTOL, ATOL, 'student layer2');
    sIn.dispose();

    const r = m.step(emb, labels, L, { embeddings: emb, dropoutKeep: keep });
    assertClose(r.student.dataF32(), f32('features/student'), RTOL, ATOL, 'student');
    assertClose(r.teacher.dataF32(), f32('features/teacher'), RTOL, ATOL, 'teacher (post-EMA weights, clean embeddings)');
    for (const k of weightsUnder('teacher').keys()) assertClose(m.teacher.stateDict().get(k)!.dataF32(), f32(`ema/teacher_after/${k}`), RTOL, ATOL, `EMA ${k}`);
    const tl = new Map<string, Float32Array>();
    const eIn = t('features/embeddings');
    noGrad(() => m.teacher.forward(eIn, (n, x) => tl.set(n, x.dataF32()))).dispose();
    eIn.dispose();
    assertClose(tl.get('layer1')!, f32('features/teacher_layer1'), RTOL, ATOL, 'teacher layer1');
    assertClose(tl.get('layer2')!, f32('features/teacher_layer2'), RTOL, ATOL, 'teacher layer2');
    for (let i = 0; i < 2; i++) {
      const j = (i + 1) % 2;
      const sr = r.student.narrow(0, 2 * i, 2), tr = r.teacher.narrow(0, 2 * i, 2);
      const tb = r.teacher.narrow(0, 4 + 9 * i, 9), tbj = r.teacher.narrow(0, 4 + 9 * j, 9), sbj = r.student.narrow(0, 4 + 9 * j, 9);
      const intra = onlineAssign(sr, tb), p1 = onlineAssign(tr, tbj), p2 = onlineAssign(sr, sbj);
      assertClose(intra.dataF32(), f32(`logits/tpami_intra_vol${i}`), RTOL, ATOL, `intra logits ${i}`);
      assertClose(p1.dataF32(), f32(`logits/tpami_inter_pred1_vol${i}`), RTOL, ATOL, `inter pred1 ${i}`);
      assertClose(p2.dataF32(), f32(`logits/tpami_inter_pred2_vol${i}`), RTOL, ATOL, `inter pred2 ${i}`);
      const y = labels.select(0, i);
      const ce = ceLossTpami(y, intra);
      const pv = scal.tpami.per_volume[i]!;
      close(ce.pos.item(), pv.intra_pos, `intra pos ${i}`); close(ce.neg.item(), pv.intra_neg, `intra neg ${i}`); close(ce.total.item(), pv.intra, `intra ${i}`);
      close(ceLossTpami(p1, p2).total.item(), pv.inter, `inter ${i}`);
      const sb = r.student.narrow(0, 4 + 9 * i, 9);
      close(regularizationLoss(sb).item(), pv.reg, `reg ${i}`);
      for (const x of [sr, tr, tb, tbj, sbj, sb, intra, p1, p2, y, ce.pos, ce.neg, ce.total]) x.dispose();
    }
    close(r.terms['intra']!.item(), scal.tpami.intra, 'intra');
    close(r.terms['inter']!.item(), scal.tpami.inter, 'inter');
    close(r.terms['reg']!.item(), scal.tpami.reg, 'reg');
    close(r.total.item(), scal.tpami.total, 'total');
  } finally { m.dispose(); emb.dispose(); labels.dispose(); keep.dispose(); }
});

test('TPAMI gradients follow the reference detach pattern (embeddings, student outputs, student parameters; teacher none)', () => {
  const m = fixtureModel();
  const emb = t('features/embeddings').requiresGrad_(true);
  const labels = t('data/labels');
  const keep = fromTypedArray(Float32Array.from(i64('features/dropout_keep')), [22]);
  try {
    const r = m.step(emb, labels, L, { embeddings: emb, dropoutKeep: keep });
    r.total.backward();
    assertClose(emb.grad!.dataF32(), f32('grads/d_total_d_embeddings'), RTOL, ATOL, 'd total / d embeddings');
    for (const [k, p] of m.student.stateDict()) assertClose(p.grad!.dataF32(), f32(`grads/student_params/${k}`), RTOL, ATOL, `d total / d student.${k}`);
    for (const [, p] of m.teacher.stateDict()) assert.equal(p.grad, null, 'the teacher gets no gradient');
    // d total / d student output: the same losses on leaf copies of the outputs.
    const s = t('features/student').requiresGrad_(true), te = t('features/teacher');
    vocoLossTpami(s, te, labels, L).total.backward();
    assertClose(s.grad!.dataF32(), f32('grads/d_total_d_student'), RTOL, ATOL, 'd total / d student');
    assert.equal(te.grad, null);
    s.dispose(); te.dispose();
  } finally { m.dispose(); emb.dispose(); labels.dispose(); keep.dispose(); }
});


test('no feature dropout (run 3): student output and the four scalars', () => {
  const m = fixtureModel();
  const emb = t('features/embeddings');
  const labels = t('data/labels');
  try {
    const r = m.step(emb, labels, L, { embeddings: emb, featureDropout: 0 });
    assertClose(r.student.dataF32(), f32('features/student_nodrop'), RTOL, ATOL, 'student (no dropout)');
    const want = scal.tpami_nodrop;
    close(r.terms['intra']!.item(), want.intra, 'intra'); close(r.terms['inter']!.item(), want.inter, 'inter');
    close(r.terms['reg']!.item(), want.reg, 'reg'); close(r.total.item(), want.total, 'total');
  } finally { m.dispose(); emb.dispose(); labels.dispose(); }
});

test('CVPR loss on the same projector outputs: symmetric logits, pos/neg/reg per volume and total', () => {
  const s = t('features/student'), te = t('features/teacher'), labels = t('data/labels');
  try {
    for (let i = 0; i < 2; i++) {
      const logits = onlineAssign(s.narrow(0, 2 * i, 2), te.narrow(0, 4 + 9 * i, 9)).add(onlineAssign(te.narrow(0, 2 * i, 2), s.narrow(0, 4 + 9 * i, 9))).mul(0.5);
      assertClose(logits.dataF32(), f32(`logits/cvpr_vol${i}`), RTOL, ATOL, `cvpr logits ${i}`);
      const ce = ceLossCvpr(labels.select(0, i), logits);
      const pv = scal.cvpr_loss_on_same_outputs.per_volume[i]!;
      close(ce.pos.item(), pv.pos, `pos ${i}`); close(ce.neg.item(), pv.neg, `neg ${i}`);
    }
    const r = vocoLossCvpr(s, te, labels, L);
    const want = scal.cvpr_loss_on_same_outputs;
    close(r.terms['pos']!.item(), want.pos, 'pos'); close(r.terms['neg']!.item(), want.neg, 'neg');
    close(r.terms['reg']!.item(), want.reg, 'reg'); close(r.total.item(), want.total, 'total');
  } finally { s.dispose(); te.dispose(); labels.dispose(); }
});

test('row dropout zeroes whole rows at rate p and scales kept rows by 1/(1-p); the EMA uses momentum 0.9 from step 0', () => {
  manualSeed(3);
  const m = new VoCoModel(() => new NoBackbone(), { ...vocoHeadDefaults('tpami'), hiddenDim: 8, outDim: 8 });
  try {
    const before = m.teacher.parameters().map((p) => p.dataF32());
    const stu = m.student.parameters().map((p) => p.dataF32());
    m.emaUpdate();
    m.teacher.parameters().forEach((p, i) => assertClose(p.dataF32(), before[i]!.map((v, k) => 0.9 * v + 0.1 * stu[i]![k]!), 1e-6, 1e-7, 'EMA'));
    // Dropout statistics over many rows.
    const n = 4000, ones = fromTypedArray(new Float32Array(n * 3).fill(1), [n, 3]);
    const mask = bernoulliKeepMask(ones, 0.8);
    const v = mask.dataF32();
    const kept = v.filter((x) => x !== 0);
    assert.ok(kept.every((x) => Math.abs(x - 1.25) < 1e-6));
    assert.ok(Math.abs(kept.length / n - 0.8) < 0.03, `kept fraction ${kept.length / n}`);
    mask.dispose(); ones.dispose();
  } finally { m.dispose(); }
});

/** A tiny deterministic backbone for the CVPR wiring test: embedding = Linear(flattened crop). */
class LinearBackbone extends Module implements VoCoBackbone {
  readonly embeddingDim = 6;
  readonly fc: Linear;
  constructor() { super(); this.fc = this.registerModule('fc', new Linear(8, 6)); }
  embed(x: Tensor): Tensor { return this.fc.forward(x.flatten(1)); }
}

test('CVPR variant: whole-network EMA (teacher backbone too), no feature dropout, the CVPR loss on the step outputs', () => {
  manualSeed(11);
  const m = new VoCoModel(() => new LinearBackbone(), { ...vocoHeadDefaults('cvpr'), hiddenDim: 8, outDim: 8 });
  const layout: VoCoLayout = { volumes: 2, randomPerVolume: 1, bases: 4 };
  const x = fromTypedArray(Float32Array.from({ length: 10 * 8 }, (_, i) => Math.sin(i * 0.7)), [10, 1, 2, 2, 2]);
  const labels = fromTypedArray(Float32Array.from([0.5, 0.5, 0, 0, 0, 0, 0.25, 0.75]), [2, 1, 4]);
  try {
    assert.ok(m.teacherBackbone !== null);
    assert.deepEqual([...m.stateDict().keys()].filter((k) => k.startsWith('teacher_backbone.')), ['teacher_backbone.fc.weight', 'teacher_backbone.fc.bias']);
    const sb = m.backbone.parameters().map((p) => p.dataF32()), tb = m.teacherBackbone.parameters().map((p) => p.dataF32());
    const r = m.step(x, labels, layout);
    m.teacherBackbone.parameters().forEach((p, i) => assertClose(p.dataF32(), tb[i]!.map((v, k) => 0.9 * v + 0.1 * sb[i]![k]!), 1e-6, 1e-7, 'teacher backbone EMA'));
    // No dropout: the student output is the student head on the clean embedding.
    const again = noGrad(() => m.student.forward(m.backbone.embed(x)));
    assertClose(r.student.dataF32(), again.dataF32(), 1e-6, 1e-7, 'student without dropout');
    const ref = vocoLossCvpr(r.student, r.teacher, labels, layout);
    close(r.total.item(), ref.total.item(), 'CVPR total');
    assert.deepEqual(Object.keys(r.terms), ['pos', 'neg', 'reg']);
    r.total.backward();
    assert.ok(m.backbone.parameters().every((p) => p.grad !== null), 'the student backbone learns');
    assert.ok(m.teacherBackbone.parameters().every((p) => p.grad === null), 'the teacher backbone gets no gradient');
    again.dispose();
  } finally { m.dispose(); x.dispose(); labels.dispose(); }
});
