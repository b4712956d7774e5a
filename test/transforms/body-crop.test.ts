import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Volume } from '../../src/io/volume.js';
import { MisfmError } from '../../src/util/errors.js';
import { readImage } from '../../src/io/image/index.js';
import { axialAxis, binaryOpening2d, bodyBox, bodyCrop, components2d, largestComponent2d } from '../../src/transforms/body-crop.js';
import { pasteBack } from '../../src/transforms/box.js';
import { permuteFlip } from '../../src/transforms/orientation.js';
import { at, assertSamePoint, CT01, CT01_LABELS, makeVolume, RAS_DIR, world } from './helpers.js';

/** A w x h 0/1 image from rectangles [x0, x1, y0, y1). */
function rects(w: number, h: number, rs: number[][]): Uint8Array {
  const m = new Uint8Array(w * h);
  for (const [x0, x1, y0, y1] of rs as [number, number, number, number][]) for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

test('opening (3x3, 2 iterations) keeps 5x5 squares, removes 4x4 squares and 2-pixel lines', () => {
  const img = rects(20, 12, [[1, 6, 1, 6], [10, 14, 2, 6], [0, 20, 9, 11]]);
  const o = binaryOpening2d(img, 20, 12, 2);
  assert.deepEqual(o, rects(20, 12, [[1, 6, 1, 6]]));
  // One iteration keeps the 4x4 square (3x3 fits) but still drops the 2-pixel line.
  assert.deepEqual(binaryOpening2d(img, 20, 12, 1), rects(20, 12, [[1, 6, 1, 6], [10, 14, 2, 6]]));
});

test('components are 4-connected and numbered in scan order; the largest wins (first on ties)', () => {
  // Two squares touching only at a corner are separate under 4-connectivity.
  const img = rects(8, 8, [[0, 3, 0, 3], [3, 5, 3, 5], [6, 8, 0, 8]]);
  const { labels, sizes } = components2d(img, 8, 8);
  assert.deepEqual(sizes, [0, 9, 16, 4]);
  assert.equal(labels[0], 1);
  assert.equal(labels[6], 2);
  assert.equal(labels[3 * 8 + 3], 3);
  assert.deepEqual(largestComponent2d(img, 8, 8), rects(8, 8, [[6, 8, 0, 8]]));
  assert.deepEqual(largestComponent2d(rects(6, 2, [[0, 2, 0, 2], [4, 6, 0, 2]]), 6, 2), rects(6, 2, [[0, 2, 0, 2]]));
});

/** 30 x 22 x 10 CT: body [3,15)x[3,15), a 7x7 blob, a 2-pixel table; `extra` paints more. */
function phantom(extra?: (i: number, j: number, k: number) => number | undefined): Volume {
  const inR = (i: number, j: number, r: number[]): boolean => i >= r[0]! && i < r[1]! && j >= r[2]! && j < r[3]!;
  return makeVolume((n) => new Int16Array(n), [30, 22, 10], (i, j, k) => {
    const e = extra?.(i, j, k);
    if (e !== undefined) return e;
    if (inR(i, j, [3, 15, 3, 15])) return 40;
    if (inR(i, j, [19, 26, 4, 11])) return 300;
    if (inR(i, j, [1, 29, 18, 20])) return 200;
    return -1000;
  }, { spacing: [0.8, 0.8, 2.5], origin: [100, -40, 7], direction: RAS_DIR });
}

test('synthetic CT: the box is the body rectangle, full z; the crop moves the origin; pasteBack restores it', () => {
  const v = phantom();
  assert.equal(axialAxis(v), 2);
  const { volume, box } = bodyCrop(v);
  assert.deepEqual(box, { start: [3, 3, 0], end: [15, 15, 10] });
  assert.deepEqual(volume.size, [12, 12, 10]);
  assert.ok(volume.data instanceof Int16Array);
  assert.ok(Array.from(volume.data).every((x) => x === 40));
  // Same anatomical point before and after: cropped voxel (i,j,k) is original (i+3, j+3, k).
  for (const [i, j, k] of [[0, 0, 0], [11, 5, 9], [4, 11, 3]] as const) assertSamePoint(world(volume, i, j, k), world(v, i + 3, j + 3, k), 1e-9, 'crop origin');
  const back = pasteBack(volume, box, v, -1000);
  for (let k = 0; k < 10; k++) for (let j = 0; j < 22; j++) for (let i = 0; i < 30; i++) {
    const inside = i >= 3 && i < 15 && j >= 3 && j < 15;
    assert.equal(at(back, i, j, k), inside ? at(v, i, j, k) : -1000);
  }
  assert.deepEqual(back.origin, v.origin);
  // margin widens the box within the volume.
  assert.deepEqual(bodyBox(v, { margin: 4 }), { start: [0, 0, 0], end: [19, 19, 10] });
});

test('the axial axis is found from the direction: a volume stored z-first gives the same body', () => {
  const v = phantom();
  // New axis 0 = old z, axis 1 = old x, axis 2 = old y (geometry updated, same anatomy).
  const p = permuteFlip(v, { perm: [2, 0, 1], flip: [false, false, false] });
  assert.equal(axialAxis(p), 0);
  assert.deepEqual(bodyBox(p), { start: [0, 3, 3], end: [10, 15, 15] });
  // Forcing the wrong axis projects through the body sideways and finds something else.
  assert.notDeepEqual(bodyBox(p, { axis: 2 }), bodyBox(p));
});

test('density: a region above threshold in only half the slices is not body', () => {
  // A big slab (larger than the body) present in slices 0..4 only: 50% < 60%.
  const v = phantom((i, j, k) => (i >= 16 && i < 30 && j >= 0 && j < 17 && k < 5 ? 500 : undefined));
  assert.deepEqual(bodyBox(v), { start: [3, 3, 0], end: [15, 15, 10] });
  assert.deepEqual(bodyBox(v, { density: 0.4 }), { start: [16, 0, 0], end: [30, 17, 10] });
});

test('no body: a clear DATA error', () => {
  const air = makeVolume((n) => new Int16Array(n), [8, 8, 4], () => -1000);
  assert.throws(() => bodyBox(air), (e: unknown) => e instanceof MisfmError && e.code === 'DATA' && /no body region found.*HU/.test(e.message));
});

test('real CT 01: the box keeps every labelled voxel and cuts away mostly air', { skip: !(existsSync(CT01) && existsSync(CT01_LABELS)) && 'no shared data' }, async () => {
  const ct = await readImage(CT01);
  const lab = await readImage(CT01_LABELS);
  const { volume, box } = bodyCrop(ct);
  assert.deepEqual([box.start[2], box.end[2]], [0, ct.size[2]]);
  const [nx, ny, nz] = ct.size;
  let labelsOut = 0, removed = 0, removedAir = 0, airTotal = 0;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    const p = i + nx * (j + ny * k);
    const inside = i >= box.start[0] && i < box.end[0] && j >= box.start[1] && j < box.end[1];
    const air = ct.data[p]! < -600;
    if (air) airTotal++;
    if (inside) continue;
    removed++;
    if (air) removedAir++;
    if (lab.data[p] !== 0) labelsOut++;
  }
  assert.equal(labelsOut, 0, 'labelled voxels outside the body box');
  assert.ok(removed > 0.15 * nx * ny * nz, `only ${removed} voxels cropped`);
  assert.ok(removedAir / removed > 0.85, `cropped voxels are ${(100 * removedAir / removed).toFixed(1)}% air`);
  // Air outside the body (connected to the slice border): more than half is cut away; the rest
  // sits in the corners of the bounding rectangle around the round body.
  let external = 0, externalOut = 0;
  const seen = new Uint8Array(nx * ny);
  const stack: number[] = [];
  for (let k = 0; k < nz; k++) {
    seen.fill(0);
    const air = (p: number): boolean => ct.data[p + nx * ny * k]! < -600;
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
      const p = i + nx * j;
      if ((i === 0 || j === 0 || i === nx - 1 || j === ny - 1) && air(p)) { seen[p] = 1; stack.push(p); }
    }
    while (stack.length > 0) {
      const p = stack.pop()!;
      const i = p % nx, j = (p - i) / nx;
      external++;
      if (!(i >= box.start[0] && i < box.end[0] && j >= box.start[1] && j < box.end[1])) externalOut++;
      for (const q of [i > 0 ? p - 1 : -1, i < nx - 1 ? p + 1 : -1, j > 0 ? p - nx : -1, j < ny - 1 ? p + nx : -1]) {
        if (q >= 0 && seen[q] === 0 && air(q)) { seen[q] = 1; stack.push(q); }
      }
    }
  }
  assert.ok(externalOut / external > 0.5, `removed ${(100 * externalOut / external).toFixed(1)}% of the air outside the body`);
  assert.ok(removedAir / airTotal > 0.45, `removed ${(100 * removedAir / airTotal).toFixed(1)}% of all air (the rest is lungs, bowel gas and box corners)`);
  // Geometry: the crop's voxel 0 is the original's box.start.
  assertSamePoint(world(volume, 0, 0, 0), world(ct, box.start[0], box.start[1], 0), 1e-6, 'crop origin');
  assert.equal(at(volume, 10, 20, 30), at(ct, box.start[0] + 10, box.start[1] + 20, 30));
});
