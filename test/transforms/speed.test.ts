/**
 * Engine vs JS timings for resampling and intensity ops, with agreement checks between the two.
 * Default volume 128x128x64 (x,y,z) to keep the suite fast; MISFM_BENCH=1 uses 256x256x128 (the
 * D,H,W = 128x256x256 case the figures in the docs refer to). Timings are reported as test
 * diagnostics (best of `reps`); only agreement is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Mat3, Vec3 } from '../../src/io/volume.js';
import { fromTypedArray } from '../../src/engine/creation.js';
import { callOp } from '../../src/engine/call.js';
import { interpolate } from '../../src/engine/functional.js';
import { tidy } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { resampleToReference, resampleToSpacing, gridForSpacing } from '../../src/transforms/resample.js';
import { clipAndScale, clipAndScaleTensor, normalizeMeanStd, percentiles } from '../../src/transforms/intensity.js';
import { volumeToTensor } from '../../src/transforms/volume-tensor.js';
import { assertClose } from '../helpers.js';
import { lcg, makeVolume } from './helpers.js';

const FULL = process.env['MISFM_BENCH'] === '1';
const SIZE: Vec3 = FULL ? [256, 256, 128] : [128, 128, 64];
const reps = FULL ? 3 : 1;

function time<T>(fn: () => T): { ms: number; value: T } {
  let best = Infinity;
  let value: T | undefined;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    value = fn();
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, value: value as T };
}

const r = lcg(1);
const ct = makeVolume((n) => new Float32Array(n), SIZE, (i, j, k) => Math.round(-1000 + 1500 * Math.sin(i / 17) * Math.cos(j / 23) + k + 200 * r()));
const lab = makeVolume((n) => new Uint8Array(n), SIZE, (i, j, k) => ((i >> 4) + (j >> 4) + (k >> 3)) % 60);
const target: Vec3 = [1.25, 1.25, 0.8];

test(`resample ${SIZE.join('x')} (x,y,z) to spacing ${target.join('x')}: JS vs engine`, (t) => {
  const js = time(() => resampleToSpacing(ct, target, { backend: 'js' }));
  const en = time(() => resampleToSpacing(ct, target, { backend: 'engine' }));
  assertClose(en.value.data, js.value.data, 1e-6, 1e-3, 'linear engine vs js');
  const g = gridForSpacing(ct, target);
  // Raw speed references: F.interpolate (align_corners=true, not the same physical map) and
  // the general grid_sampler_3d path (forced by a direction 1e-5 off).
  const interp = time(() => tidy(() => {
    const x = volumeToTensor(ct).view([1, 1, SIZE[2], SIZE[1], SIZE[0]]);
    return interpolate(x, [g.size[2], g.size[1], g.size[0]], 'trilinear', true).dataF32().length;
  }));
  const tilt = [...g.direction] as Mat3;
  tilt[1] = 1e-5;
  const affine = time(() => resampleToReference(ct, { ...g, direction: tilt }));
  assertClose(affine.value.data, js.value.data, 0, 2, 'grid_sampler vs separable (1e-5 rad apart: up to 0.003 voxel shift x 200/voxel noise)');
  const nnJs = time(() => resampleToSpacing(lab, target, { interpolation: 'nearest', backend: 'js' }));
  const nnEn = time(() => resampleToSpacing(lab, target, { interpolation: 'nearest', backend: 'engine' }));
  assert.deepEqual(nnEn.value.data, nnJs.value.data);
  t.diagnostic(`linear separable: JS ${js.ms.toFixed(0)} ms, engine ${en.ms.toFixed(0)} ms (incl. copies); ` +
    `F.interpolate ${interp.ms.toFixed(0)} ms; grid_sampler_3d ${affine.ms.toFixed(0)} ms; output ${g.size.join('x')}`);
  t.diagnostic(`nearest (uint8 labels): JS ${nnJs.ms.toFixed(0)} ms, engine ${nnEn.ms.toFixed(0)} ms`);
});

test(`intensity ops on ${SIZE.join('x')}: JS vs engine`, (t) => {
  const js = time(() => clipAndScale(ct));
  const en = time(() => tidy(() => { const x = volumeToTensor(ct); return clipAndScaleTensor(x).dataF32(); }));
  assertClose(en.value, js.value.data, 0, 1e-6, 'clip+scale');
  const x = volumeToTensor(ct);
  const enOnly = time(() => tidy(() => { clipAndScaleTensor(x); return 0; }));
  const mjs = time(() => normalizeMeanStd(ct));
  const men = time(() => tidy(() => {
    const y = volumeToTensor(ct);
    const m = y.mean().item(), s = y.std(undefined, false).item();
    return y.sub(m).div(s + 1e-5).dataF32();
  }));
  assertClose(men.value, mjs.value.data, 1e-4, 1e-4, 'mean/std');
  const pjs = time(() => percentiles(ct.data, [0.5, 99.5]));
  const pen = time(() => tidy(() => {
    const n = ct.data.length;
    const flat = fromTypedArray(ct.data, [n]);
    // numpy linear percentile from the k-th and (k+1)-th order statistics.
    return [0.5, 99.5].map((q) => {
      const pos = (q / 100) * (n - 1), k = Math.floor(pos), f = pos - k;
      const a = (callOp('kthvalue', [flat, k + 1, 0, false]) as Tensor[])[0]!.item();
      const b = (callOp('kthvalue', [flat, Math.min(k + 2, n), 0, false]) as Tensor[])[0]!.item();
      return a + (b - a) * f;
    });
  }));
  assertClose(pen.value, pjs.value, 1e-6, 1e-3, 'percentiles');
  const psort = time(() => Float32Array.from(ct.data).sort()[0]);
  x.dispose();
  t.diagnostic(`clip+scale: JS ${js.ms.toFixed(0)} ms, engine ${en.ms.toFixed(0)} ms with copies, ${enOnly.ms.toFixed(0)} ms tensor-only`);
  t.diagnostic(`mean/std normalise: JS ${mjs.ms.toFixed(0)} ms, engine ${men.ms.toFixed(0)} ms with copies`);
  t.diagnostic(`percentiles p0.5+p99.5: JS quickselect ${pjs.ms.toFixed(0)} ms, engine kthvalue ${pen.ms.toFixed(0)} ms, full sort ${psort.ms.toFixed(0)} ms`);
});
