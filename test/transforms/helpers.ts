/** Helpers for the transform tests: small synthetic volumes with awkward geometry, real-data paths. */
import * as path from 'node:path';
import assert from 'node:assert/strict';
import type { Mat3, Vec3, Volume, VoxelArray } from '../../src/io/volume.js';
import { voxelToWorld } from '../../src/io/volume.js';
import { dataDir } from '../helpers.js';

export const CT01 = path.join(dataDir, '01_totalseg_abdomen_ct', 'ct.nii.gz');
export const CT01_LABELS = path.join(dataDir, '01_totalseg_abdomen_ct', 'labels_total_fast.nii.gz');

function rot(axis: 0 | 1 | 2, a: number): Mat3 {
  const c = Math.cos(a), s = Math.sin(a);
  if (axis === 0) return [1, 0, 0, 0, c, -s, 0, s, c];
  if (axis === 1) return [c, 0, s, 0, 1, 0, -s, 0, c];
  return [c, -s, 0, s, c, 0, 0, 0, 1];
}

export function matmul3(a: Mat3, b: Mat3): Mat3 {
  const o = [0, 0, 0, 0, 0, 0, 0, 0, 0] as Mat3;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) o[r * 3 + c] = o[r * 3 + c]! + a[r * 3 + k]! * b[k * 3 + c]!;
  return o;
}

/** Slightly oblique, left-handed (one axis flipped), closest to 'RAS'-like axes permuted: 'PLI'-ish. */
export const TILTED: Mat3 = matmul3(matmul3(rot(2, 0.15), rot(0, -0.1)), [0, -1, 0, 1, 0, 0, 0, 0, -1]);
/** The RAS-style direction TotalSegmentator NIfTI files have in LPS. */
export const RAS_DIR: Mat3 = [-1, 0, 0, 0, -1, 0, 0, 0, 1];

/** A volume whose voxel (i,j,k) holds f(i,j,k). */
export function makeVolume<A extends VoxelArray>(alloc: (n: number) => A, size: Vec3, f: (i: number, j: number, k: number) => number,
  geom: Partial<Pick<Volume, 'spacing' | 'origin' | 'direction'>> = {}): Volume & { data: A } {
  const data = alloc(size[0] * size[1] * size[2]);
  let t = 0;
  for (let k = 0; k < size[2]; k++) for (let j = 0; j < size[1]; j++) for (let i = 0; i < size[0]; i++) data[t++] = f(i, j, k);
  return { data, size: [...size], spacing: geom.spacing ?? [1, 1, 1], origin: geom.origin ?? [0, 0, 0], direction: geom.direction ?? [1, 0, 0, 0, 1, 0, 0, 0, 1] };
}

/** Value at voxel (i,j,k). */
export function at(v: Volume, i: number, j: number, k: number): number {
  return v.data[i + v.size[0] * (j + v.size[1] * k)]!;
}

/** Assert two world points agree to `tol` mm. */
export function assertSamePoint(a: Vec3, b: Vec3, tol: number, what: string): void {
  const d = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
  assert.ok(d <= tol, `${what}: ${a.map((x) => x.toFixed(6)).join(',')} vs ${b.map((x) => x.toFixed(6)).join(',')} (${d} mm apart)`);
}

/** World point of voxel (i,j,k). */
export function world(v: Volume, i: number, j: number, k: number): Vec3 {
  return voxelToWorld(v, [i, j, k]);
}

/** Deterministic pseudo-random integers in [0, n) (a small LCG; tests only). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
}
