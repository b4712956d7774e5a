/**
 * Supervoxels (SLIC stand-in for Algorithm 2) and the research supervoxel point sampler
 * (zero-shot training targets): invariants of each mode on synthetic label maps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { slicSupervoxels, removeLargestAir } from '../../src/train/vista3d/supervoxels.js';
import { SupervoxelPointSampler } from '../../src/train/vista3d/supervoxel-sampler.js';
import { erode3d, morph, samplePromptPairs, type Shape3 } from '../../src/train/vista3d/sampler.js';
import { patchPrompts, VISTA3D_STAGES } from '../../src/train/vista3d/step.js';
import { Rng } from '../../src/util/rng.js';
import { presetConfig } from '../../src/config/defaults.js';
import { checkVista3dRecipe } from '../../src/config/vista3d.js';

const S: Shape3 = [32, 32, 32];
const N = 32 * 32 * 32;
const idx = (x: number, y: number, z: number): number => (x * 32 + y) * 32 + z;
const xyz = (j: number): [number, number, number] => [Math.floor(j / 1024), Math.floor(j / 32) % 32, j % 32];

/** Supervoxels: a grid of 8³ cubes, ids 1..64. */
function cubeSv(): Int32Array {
  const sv = new Int32Array(N);
  for (let j = 0; j < N; j++) { const [x, y, z] = xyz(j); sv[j] = 1 + Math.floor(x / 8) * 16 + Math.floor(y / 8) * 4 + Math.floor(z / 8); }
  return sv;
}
/** Organ 1: a ball of radius 8.5 at (14,14,14), cutting through supervoxels; organ 5 a small box elsewhere; the rest unlabelled. */
function organs(): Uint8Array {
  const l = new Uint8Array(N);
  for (let j = 0; j < N; j++) {
    const [x, y, z] = xyz(j);
    if ((x - 14) ** 2 + (y - 14) ** 2 + (z - 14) ** 2 <= 8.5 ** 2) l[j] = 1;
    else if (x >= 24 && x < 30 && y >= 0 && y < 8 && z >= 0 && z < 8) l[j] = 5;
  }
  return l;
}
const sampler = (seed: number, vrange: [number, number, number, number], o: { minSize?: number } = {}): SupervoxelPointSampler =>
  new SupervoxelPointSampler(organs(), cubeSv(), S, new Rng(seed), { offset: 2, minSize: o.minSize ?? 200, vrange });

test('SLIC supervoxels cover the volume with ~K labels and follow an intensity edge', () => {
  const img = new Float32Array(N);
  for (let j = 0; j < N; j++) img[j] = xyz(j)[0] < 13 ? 0.2 : 0.8; // an edge between x = 12 and 13, off the seed grid
  const sv = slicSupervoxels(img, S, { segments: 27, compactness: 0.05 });
  const ids = new Set(sv);
  assert.ok(!ids.has(0), 'every voxel labelled');
  assert.ok(ids.size >= 14 && ids.size <= 40, `${ids.size} supervoxels for 27 requested`);
  const side = new Map<number, Set<boolean>>();
  for (let j = 0; j < N; j++) { const s = side.get(sv[j]!) ?? new Set(); s.add(xyz(j)[0] < 13); side.set(sv[j]!, s); }
  assert.ok([...side.values()].every((s) => s.size === 1), 'no supervoxel straddles the intensity edge');
  // Deterministic.
  assert.deepEqual(slicSupervoxels(img, S, { segments: 27, compactness: 0.05 }), sv);
});

test('the largest (closed) air component gets supervoxel 0, smaller air pockets keep theirs', () => {
  const img = new Float32Array(N).fill(0.5);
  for (let j = 0; j < N; j++) { const [x, y] = xyz(j); if (x < 6) img[j] = 0.01; if (x > 28 && y < 3) img[j] = 0.02; }
  const sv = new Int32Array(N).fill(7);
  removeLargestAir(sv, img, S, 0.05);
  for (let j = 0; j < N; j++) {
    const [x, y] = xyz(j);
    if (x < 6) assert.equal(sv[j], 0, `air voxel ${j}`);
    if (x > 28 && y < 3) assert.equal(sv[j], 7, 'a smaller pocket stays');
  }
});

/** The cube min / max read directly from the definition (erosion pads with 1, dilation with 0). */
function cubeReference(m: Uint8Array, k: number, op: 'erode' | 'dilate'): Uint8Array {
  const h = Math.floor(k / 2), out = new Uint8Array(N);
  for (let j = 0; j < N; j++) {
    const [x, y, z] = xyz(j);
    let v = op === 'erode' ? 1 : 0;
    for (let dx = -h; dx <= h; dx++) for (let dy = -h; dy <= h; dy++) for (let dz = -h; dz <= h; dz++) {
      const a = x + dx, b = y + dy, c = z + dz;
      const inside = a >= 0 && a < 32 && b >= 0 && b < 32 && c >= 0 && c < 32;
      const w = inside ? m[idx(a, b, c)]! : op === 'erode' ? 1 : 0;
      if (op === 'erode' && w === 0) v = 0;
      if (op === 'dilate' && w !== 0) v = 1;
    }
    out[j] = v;
  }
  return out;
}

test('morph (and erode3d) equal the k³ cube min / max with the research padding', () => {
  const rng = new Rng(3);
  const m = new Uint8Array(N), sparse = new Uint8Array(N);
  for (let j = 0; j < N; j++) { m[j] = rng.uniform() < 0.8 ? 1 : 0; sparse[j] = rng.uniform() < 0.01 ? 1 : 0; }
  assert.deepEqual(erode3d(m, S), cubeReference(m, 3, 'erode'));
  assert.deepEqual(morph(m, S, 5, 'erode'), cubeReference(m, 5, 'erode'));
  assert.deepEqual(morph(sparse, S, 3, 'dilate'), cubeReference(sparse, 3, 'dilate'));
  assert.deepEqual(morph(sparse, S, 5, 'dilate'), cubeReference(sparse, 5, 'dilate'));
  assert.ok(morph(new Uint8Array(N).fill(1), S, 3, 'erode').every((v) => v === 1), 'a full mask does not erode at the border');
});

test('regular: positives inside the eroded organ, away from the border; nothing changes', () => {
  const s = sampler(1, [1, 1, 1, 1]);
  const r = s.sample([1], 3);
  assert.equal(s.modes.get(1), 'regular');
  assert.deepEqual(r.labels, [[1, 1, 1]]);
  for (const [x, y, z] of r.coords[0]!) { assert.equal(organs()[idx(x!, y!, z!)], 1); assert.ok((x! - 14) ** 2 + (y! - 14) ** 2 + (z! - 14) ** 2 <= 7.6 ** 2, 'inside the eroded ball'); }
  assert.equal(s.shifted.size, 0);
  assert.deepEqual(s.label, Uint16Array.from(organs()));
  // No supervoxels: always regular.
  const none = new SupervoxelPointSampler(organs(), null, S, new Rng(1), { vrange: [0, 0, 0, 0] });
  none.sample([1], 1);
  assert.equal(none.modes.get(1), 'regular');
});

test('special classes always take the regular mode, with labels 3', () => {
  const l = organs().map((v) => (v === 1 ? 23 : v));
  const s = new SupervoxelPointSampler(l, cubeSv(), S, new Rng(2), { offset: 2, minSize: 200, vrange: [0, 0, 0, 0] });
  const r = s.sample([23], 2);
  assert.equal(s.modes.get(23), 'regular');
  assert.deepEqual(r.labels, [[3, 3]]);
});

test('zeroshot_unseen: an unlabelled supervoxel becomes class id+512 with positive clicks inside; organs untouched', () => {
  for (const seed of [1, 2, 3]) {
    const s = sampler(seed, [0, 0, 0, 1]);
    const r = s.sample([1], 2);
    assert.equal(s.modes.get(1), 'zeroshot_unseen');
    assert.equal(s.shifted.get(1), 513);
    const before = organs(), sv = cubeSv();
    const svs = new Set<number>();
    for (let j = 0; j < N; j++) if (s.label[j] === 513) { assert.equal(before[j], 0, 'only unlabelled voxels'); svs.add(sv[j]!); }
    assert.equal(svs.size, 1, 'one supervoxel');
    for (let j = 0; j < N; j++) if (before[j] !== 0) assert.equal(s.label[j], before[j]);
    for (const c of r.coords[0]!) assert.equal(s.label[idx(c[0]!, c[1]!, c[2]!)], 513);
    assert.deepEqual(r.labels[0], [1, 1]);
  }
  // Supervoxels smaller than minSize never qualify: regular instead.
  const small = sampler(1, [0, 0, 0, 1], { minSize: 10_000 });
  small.sample([1], 1);
  assert.equal(small.modes.get(1), 'regular');
  assert.equal(small.shifted.size, 0);
});

test('organ_sub: one supervoxel piece of the organ split off, one negative click in the other part', () => {
  let shifted = 0, removed = 0;
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const s = sampler(seed, [0, 1, 1, 1]);
    const r = s.sample([1], 2);
    assert.equal(s.modes.get(1), 'organ_sub');
    const labs = r.labels[0]!;
    assert.equal(labs.filter((v) => v === 0).length, 1, 'exactly one negative (max(1, Nn))');
    const before = organs();
    if (s.shifted.has(1)) {
      shifted++;
      // The positive part is relabelled 513, within the organ; the negative click lies in the rest of the organ.
      for (let j = 0; j < N; j++) if (s.label[j] === 513) assert.equal(before[j], 1);
      r.coords[0]!.forEach((c, i) => assert.equal(s.label[idx(c[0]!, c[1]!, c[2]!)], labs[i] === 1 ? 513 : 1));
    } else {
      removed++;
      // The negative piece was removed from the organ (label 0); positives stay on class 1.
      r.coords[0]!.forEach((c, i) => assert.equal(s.label[idx(c[0]!, c[1]!, c[2]!)], labs[i] === 1 ? 1 : 0));
      for (let j = 0; j < N; j++) if (s.label[j] !== before[j]) { assert.equal(before[j], 1); assert.equal(s.label[j], 0); }
    }
  }
  assert.ok(shifted > 0 && removed > 0, `both outcomes occur (${shifted} zero-shot, ${removed} removed)`);
});

test('organ_add: a neighbouring unlabelled supervoxel joins the organ; all clicks positive', () => {
  for (const seed of [1, 2, 3, 4]) {
    const s = sampler(seed, [0, 0, 1, 1]);
    const r = s.sample([1], 1);
    assert.equal(s.modes.get(1), 'organ_add');
    assert.ok(r.labels[0]!.every((v) => v === 1));
    const target = s.shifted.has(1) ? 513 : 1;
    const before = organs();
    let grown = 0;
    for (let j = 0; j < N; j++) {
      if (before[j] === 1) assert.equal(s.label[j], target, 'the organ keeps (or shifts) its voxels');
      if (s.label[j] === target && before[j] !== 1) { assert.equal(before[j], 0); grown++; }
    }
    assert.ok(grown > 0, 'the organ grew');
  }
  // The research loop skips the last component: single-component candidates never join (regular instead).
  const q = new SupervoxelPointSampler(organs(), cubeSv(), S, new Rng(1), { offset: 2, minSize: 200, vrange: [0, 0, 1, 1], quirks: 'research' });
  q.sample([1], 1);
  assert.equal(q.modes.get(1), 'regular');
});

test('zeroshot_random: a supervoxel (with the unprompted organs it covers) becomes class id+512; the prompted organ is untouched', () => {
  for (const seed of [1, 2, 3]) {
    const s = sampler(seed, [0, 0, 0, 0]);
    const r = s.sample([1], 1);
    assert.equal(s.modes.get(1), 'zeroshot_random');
    const before = organs();
    for (let j = 0; j < N; j++) if (before[j] === 1) assert.equal(s.label[j], 1);
    assert.ok(s.label.some((v) => v === 513));
    assert.ok(r.coords[0]!.every((c) => s.label[idx(c[0]!, c[1]!, c[2]!)] === 513));
  }
});

test('prompt pairs with the supervoxel sampler: prompt classes shifted, targets from the changed label map', () => {
  const labels = organs();
  const s = new SupervoxelPointSampler(labels, cubeSv(), S, new Rng(4), { offset: 2, minSize: 200, vrange: [0, 0, 0, 1] });
  const p = samplePromptPairs(labels, S, [1, 5, 7], new Rng(5), { maxPoint: 3, maxForeprompt: 4, maxBackprompt: 2, dropLabelProb: 0, dropPointProb: 0, pointSampler: s })!;
  assert.deepEqual(p.labelPrompt, [1, 5, 7], 'class prompts keep the original classes');
  assert.deepEqual(p.promptClass, [513, 517, 7]);
  const len = p.points!.labels[0]!.length;
  assert.ok(p.points!.labels.every((l) => l.length === len), 'rows padded to one length');
  assert.ok(p.points!.labels[2]!.every((v) => v === -1), 'the absent class is padding');
  assert.equal(p.labels, s.label);
  // Through patchPrompts (stage 1 with supervoxels): the zero-shot target is the shifted region.
  const stage = { ...VISTA3D_STAGES[1], supervoxels: { segments: 8, compactness: 0.1, minSize: 200, offset: 2 } };
  let sawShift = false;
  for (let seed = 0; seed < 12 && !sawShift; seed++) {
    const pp = patchPrompts(labels, S, [1, 5], stage, new Rng(seed), cubeSv())!;
    pp.classes.forEach((c, i) => {
      const t = pp.targets[i]!;
      if (c > 512) { sawShift = true; assert.ok(t.some((v) => v === 1)); for (let j = 0; j < N; j++) if (t[j]) assert.notEqual(labels[j], c - 512 === 1 ? 5 : 1); }
    });
  }
  assert.ok(sawShift, 'a zero-shot target within 12 patches');
  // Without supervoxels the stage samples as before (no shift).
  const plain = patchPrompts(labels, S, [1, 5], stage, new Rng(0), null)!;
  assert.ok(plain.classes.every((c) => c < 512));
});

test('config: stage 1 draws supervoxels (research values; vista3d-small scaled to 3 mm), partial overrides merge', () => {
  const d = checkVista3dRecipe({}, 'vista3d', 512);
  assert.deepEqual(d.stages[0]!.supervoxels, { segments: 400, compactness: 0.1, minSize: 8000, offset: 10 });
  assert.equal(d.stages[2]!.supervoxels, null);
  assert.deepEqual(presetConfig('vista3d-small').vista3d!.stages[0]!.supervoxels, { segments: 48, compactness: 0.1, minSize: 1000, offset: 5 });
  const r = checkVista3dRecipe({ stages: [{ supervoxels: { minSize: 50 } }, {}, {}, {}] }, 'vista3d', 512);
  assert.deepEqual(r.stages[0]!.supervoxels, { segments: 400, compactness: 0.1, minSize: 50, offset: 10 });
  const off = checkVista3dRecipe({ stages: [{ supervoxels: null }, {}, {}, {}] }, 'vista3d', 512);
  assert.equal(off.stages[0]!.supervoxels, null);
  assert.throws(() => checkVista3dRecipe({ stages: [{ supervoxels: { minSize: 0 } }, {}, {}, {}] }, 'vista3d', 512), /minSize/);
});
