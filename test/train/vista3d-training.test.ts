/**
 * VISTA3D training pieces: the loss (fixture `loss`), the validation centre-click sampler (fixture
 * `sampler_val`), prompt-sampling statistics, iterative next clicks, and the TotalSegmentator ->
 * VISTA3D class mapping of ../shared/data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fromTypedArray } from '../../src/engine/creation.js';
import { vista3dDiceCE } from '../../src/train/vista3d/loss.js';
import { sampleCentrePoints, samplePromptPairs, nextPoints, convertPointLabel, erode3d, indicesByLabel, nthOutside } from '../../src/train/vista3d/sampler.js';
import { mapLabelNames, globalClassOf } from '../../src/train/vista3d/labelmap.js';
import { Rng } from '../../src/util/rng.js';
import { dataDir } from '../helpers.js';
import { f32, i64, shape } from '../models/vista3d-helpers.js';

test('DiceCE loss equals MONAI on the fixture (rtol 1e-5) and has gradients', () => {
  const logits = fromTypedArray(f32('loss/logits'), shape('loss/logits')).requiresGrad_(true);
  const target = fromTypedArray(Float32Array.from(i64('loss/target')), shape('loss/target'));
  const l = vista3dDiceCE(logits, target);
  const want = f32('loss/value')[0]!;
  assert.ok(Math.abs(l.item() - want) <= 1e-5 * Math.abs(want), `${l.item()} vs ${want}`);
  l.backward();
  assert.ok(logits.grad !== null && logits.grad.abs().sum().item() > 0);
  l.dispose(); logits.dispose(); target.dispose();
});

test('validation sampler: centre clicks equal MONAI exactly', () => {
  const labels = i64('sampler_val/labels');
  const set = i64('sampler_val/label_set');
  const p = sampleCentrePoints(labels, [20, 20, 20], set);
  assert.deepEqual(p.coords.flat(2), Array.from(f32('sampler_val/point_coords')));
  assert.deepEqual(p.labels.flat(), Array.from(f32('sampler_val/point_labels')));
  assert.deepEqual(convertPointLabel({ coords: [[[1, 1, 1]], [[0, 0, 0]]], labels: [[1], [-1]] }, [23, 23]).labels, [[3], [-1]]);
});

test('prompt points: the counting-sort sampler draws exactly the voxels the per-class index lists gave', () => {
  // nthOutside against enumeration.
  const inside = Int32Array.from([0, 3, 4, 9]);
  const outside = Array.from({ length: 12 }, (_, i) => i).filter((i) => !inside.includes(i));
  outside.forEach((v, j) => assert.equal(nthOutside(inside, j), v));
  // The sampler against the straightforward lists (the earlier implementation), same draws.
  const sh = [10, 11, 12] as const;
  const n = 10 * 11 * 12;
  const gen = new Rng(11);
  const labels = Uint16Array.from({ length: n }, () => { const u = gen.uniform(); return u < 0.5 ? 0 : u < 0.8 ? 1 : u < 0.95 ? 23 : 600; });
  const byLabel = indicesByLabel(labels);
  for (const c of [0, 1, 23, 600, 5]) assert.deepEqual(Array.from(byLabel.of(c)), Array.from({ length: n }, (_, i) => i).filter((i) => labels[i] === c));
  for (let seed = 0; seed < 40; seed++) {
    const got = samplePromptPairs(labels, sh, [1, 3, 23, 600], new Rng(seed), { maxPoint: 3, dropLabelProb: 0, dropPointProb: 0 })!;
    // Replay the same draws with explicit positive/negative lists.
    const rng = new Rng(seed);
    const sigma = 1;
    const np = Math.min(3, Math.floor(Math.abs(rng.normal(0, sigma))) + 1), nn = Math.min(3, Math.floor(Math.abs(rng.normal(0, sigma))));
    const xyz = (i: number): number[] => [Math.floor(i / (11 * 12)), Math.floor(i / 12) % 11, i % 12];
    for (const [row, c] of [1, 23, 600].entries()) {
      const pos: number[] = [], neg: number[] = [];
      for (let i = 0; i < n; i++) (labels[i] === c ? pos : neg).push(i);
      const want = [...Array.from({ length: np }, () => xyz(pos[rng.randint(0, pos.length - 1)]!)), ...Array.from({ length: nn }, () => xyz(neg[rng.randint(0, neg.length - 1)]!))];
      assert.deepEqual(got.points!.coords[row], want, `seed ${seed}, class ${c}`);
    }
  }
});

test('training prompts follow the spec statistics; point-only and auto-only drops', () => {
  const sh = [12, 12, 12] as const;
  const labels = new Uint8Array(12 ** 3);
  for (let i = 0; i < 300; i++) labels[i] = 1;
  for (let i = 900; i < 1000; i++) labels[i] = 23;
  const rng = new Rng(5);
  const counts = [0, 0, 0, 0];
  let pointOnly = 0, autoOnly = 0;
  const n = 3000;
  for (let k = 0; k < n; k++) {
    const s = samplePromptPairs(labels, sh, [1, 3, 23], rng, { maxPoint: 3, dropLabelProb: 0.2, dropPointProb: 0.2 })!;
    if (s.labelPrompt === null) { pointOnly++; assert.deepEqual(s.promptClass, [1, 23]); continue; }
    if (s.points === null) { autoOnly++; continue; }
    assert.deepEqual(s.labelPrompt, [1, 23, 3]);
    const pos = s.points.labels[0]!.filter((v) => v === 1).length;
    counts[pos]!++;
    assert.ok(s.points.labels[1]!.every((v) => v === 3 || v === 2), 'special class uses 2/3');
    assert.ok(s.points.labels[2]!.every((v) => v === -1), 'absent class: padding only');
    for (const [i, c] of s.points.coords[0]!.entries()) if (s.points.labels[0]![i] === 1) assert.equal(labels[(c[0]! * 12 + c[1]!) * 12 + c[2]!], 1);
  }
  assert.ok(Math.abs(pointOnly / n - 0.2) < 0.03 && Math.abs(autoOnly / n - 0.16) < 0.03, `${pointOnly} ${autoOnly}`);
  const tot = counts[1]! + counts[2]! + counts[3]!;
  assert.ok(Math.abs(counts[1]! / tot - 0.683) < 0.04 && Math.abs(counts[2]! / tot - 0.272) < 0.04, counts.join(','));
});

test('next clicks come from eroded false negatives / positives away from the border', () => {
  const sh = [40, 40, 8] as const;
  const vol = 40 * 40 * 8;
  const at = (c: readonly number[]): number => (c[0]! * 40 + c[1]!) * 8 + c[2]!;
  const gt = new Uint8Array(vol), pred = new Float32Array(vol);
  for (let x = 12; x < 20; x++) for (let y = 12; y < 20; y++) for (let z = 1; z < 7; z++) gt[at([x, y, z])] = 1;
  for (let x = 16; x < 28; x++) for (let y = 12; y < 20; y++) for (let z = 0; z < 8; z++) pred[at([x, y, z])] = 0.9;
  const r = nextPoints(pred, [gt], [1], sh, { coords: [[[15, 15, 3]]], labels: [[1]] }, new Rng(1));
  assert.deepEqual(r.labels[0], [1, 1, 0]);
  const [fn, fp] = [r.coords[0]![1]!, r.coords[0]![2]!];
  assert.ok(gt[at(fn)] === 1 && pred[at(fn)]! < 0.5, `fn ${fn}`);
  assert.ok(gt[at(fp)] === 0 && pred[at(fp)]! > 0.5, `fp ${fp}`);
  const none = nextPoints(Float32Array.from(gt), [gt], [1], sh, { coords: [[[15, 15, 3]]], labels: [[1]] }, new Rng(1));
  assert.deepEqual(none.labels[0], [1, -1, -1], 'a perfect prediction gives padding clicks');
  assert.equal(erode3d(gt, sh).reduce((a, b) => a + b, 0), 6 * 6 * 4);
});

test("every TotalSegmentator CT class of ../shared/data maps onto the VISTA3D class table", () => {
  const ts = JSON.parse(readFileSync(path.join(dataDir, 'totalseg_classmap.json'), 'utf8')) as { total: Record<string, string> };
  const m = mapLabelNames(ts.total);
  assert.deepEqual(m.unmapped, []);
  assert.equal(m.map.size, 117);
  assert.equal(globalClassOf('kidney_right'), 5);
  assert.equal(globalClassOf('liver'), 1);
  assert.equal(globalClassOf('rib_left_3'), globalClassOf('left rib 3'));
  assert.equal(globalClassOf('urinary_bladder'), globalClassOf('bladder'));
  assert.equal(new Set(m.map.values()).size, 117, 'no two TotalSegmentator classes share a VISTA3D class');
});

/** A tiny VISTA3D (seeded) and a 16³ patch holding one box of class 1. */
async function tinyPatch(seed: number) {
  const { VISTA3D } = await import('../../src/models/vista3d/index.js');
  const { manualSeed } = await import('../../src/engine/creation.js');
  manualSeed(seed);
  const net = new VISTA3D({ initFilters: 4, featureSize: 8, blocksDown: [1, 1, 1], mlpDim: 16 });
  const sh = [16, 16, 16] as const;
  const img = new Float32Array(16 ** 3), lab = new Uint8Array(16 ** 3);
  for (let x = 4; x < 11; x++) for (let y = 5; y < 12; y++) for (let z = 3; z < 10; z++) { const i = (x * 16 + y) * 16 + z; img[i] = 1; lab[i] = 1; }
  return { net, sh, lab, image: fromTypedArray(img, [1, 1, ...sh]) };
}

test('training patches: stage 1 (5 click rounds) lowers the loss; stage 3 trains only up_layers_auto and the class head', async () => {
  const { AdamW } = await import('../../src/optim/adam.js');
  const { trainPatch, trainableParameters, VISTA3D_STAGES } = await import('../../src/train/vista3d/step.js');
  const { net, sh, lab, image } = await tinyPatch(0);
  try {
    const rng = new Rng(3);
    const s1 = VISTA3D_STAGES[1];
    const opt = new AdamW(trainableParameters(net, s1), { lr: 3e-3 });
    const first = trainPatch(net, opt, image, lab, [1], s1, rng);
    assert.ok(first.length >= 1 && first.length <= 5);
    let last: number[] = first;
    for (let k = 0; k < 6; k++) last = trainPatch(net, opt, image, lab, [1], s1, rng);
    assert.ok(last[last.length - 1]! < first[0]!, `loss ${first[0]} -> ${last[last.length - 1]}`);
    const s3 = VISTA3D_STAGES[3];
    const params3 = trainableParameters(net, s3);
    const frozen = [...net.namedParameters()].filter(([k]) => !(k.startsWith('image_encoder.up_layers_auto.') || k.startsWith('class_head.')));
    const before = frozen.map(([, t]) => t.dataF32().slice());
    const headBefore = net.classHead.mlp.l0.weight.dataF32().slice();
    const opt3 = new AdamW(params3, { lr: 3e-3 });
    const l3 = trainPatch(net, opt3, image, lab, [1, 3], s3, rng);
    assert.equal(l3.length, 1);
    frozen.forEach(([k, t], i) => assert.deepEqual(t.dataF32(), before[i], `${k} frozen in stage 3`));
    assert.notDeepEqual(net.classHead.mlp.l0.weight.dataF32(), headBefore);
  } finally { image.dispose(); net.dispose(); }
});

test("mixed prompts (the bundle's fine-tune recipe): the blend equals VISTA3D.forward's gaussian_combine, trains both heads, drops at 0.25", async () => {
  const { noGrad } = await import('../../src/engine/creation.js');
  const { roundLoss, patchPrompts, VISTA3D_STAGES } = await import('../../src/train/vista3d/step.js');
  const { checkVista3dRecipe } = await import('../../src/config/vista3d.js');
  const { net, sh, lab, image } = await tinyPatch(1);
  const stage = { ...VISTA3D_STAGES[4], prompts: 'mixed' as const, train: 'all' as const };
  try {
    // Both kinds: class 1 clicked, class 3 absent (padding points, class logits only).
    const p = { classes: [1, 3], labelPrompt: [1, 3], points: { coords: [[[6, 8, 5], [1, 1, 1]], [[0, 0, 0], [0, 0, 0]]], labels: [[1, 0], [-1, -1]] },
      targets: [lab, new Uint8Array(lab.length)] };
    net.train();
    const { loss, logits } = roundLoss(net, image, p, p.points, stage);
    net.eval();
    const ref = noGrad(() => net.forward(image, { classVector: [1, 3], points: p.points, promptClass: [1, 3] }));
    const a = logits.dataF32(), b = ref.dataF32();
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    assert.ok(worst < 1e-5, `blend vs forward's gaussian_combine: ${worst}`);
    loss!.backward();
    const g = (t: { grad: { abs(): { sum(): { item(): number } } } | null }): number => t.grad?.abs().sum().item() ?? 0;
    assert.ok(g(net.classHead.mlp.l0.weight) > 0, 'the class head learns');
    assert.ok(g(net.pointHead.maskTokens.weight) > 0, 'the point head learns');
    loss!.dispose(); logits.dispose(); ref.dispose();
    net.zeroGrad();
    // Drop statistics with a present class: points only 0.25, labels only 0.75 x 0.25, both the rest.
    const rng = new Rng(9);
    let pointOnly = 0, labelOnly = 0, both = 0;
    for (let k = 0; k < 2000; k++) {
      const q = patchPrompts(lab, sh, [1, 3], stage, rng)!;
      if (q.labelPrompt === null) pointOnly++; else if (q.points === null) labelOnly++; else both++;
    }
    assert.ok(Math.abs(pointOnly / 2000 - 0.25) < 0.03 && Math.abs(labelOnly / 2000 - 0.1875) < 0.03, `${pointOnly} ${labelOnly} ${both}`);
    // Config: 'mixed' is a prompt kind with one round.
    const r = checkVista3dRecipe({ stages: [{}, {}, {}, { prompts: 'mixed', train: 'all', maxPoint: 5 }] }, 'vista3d', 512);
    assert.equal(r.stages[3]!.prompts, 'mixed');
    assert.throws(() => checkVista3dRecipe({ stages: [{}, {}, {}, { prompts: 'mixed', iterNum: 5 }] }, 'vista3d', 512), /iterNum.*must be 1 for mixed/);
  } finally { image.dispose(); net.dispose(); }
});
