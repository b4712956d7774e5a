/**
 * Shared helpers for the image I/O tests: paths to the real data, temp folders, synthetic
 * volumes with awkward geometry, and hand-made NIfTI / NRRD files for the error cases.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { Mat3, Vec3, Volume, VoxelArray } from '../../src/io/volume.js';
import type { VoxelType } from '../../src/io/image/index.js';

/** Repository root: dist/test/io/ -> three levels up. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DATA = path.resolve(REPO_ROOT, '../shared/data');
export const dataPath = (...p: string[]): string => path.join(DATA, ...p);

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `misfm-${tag}-`));
}

function rot(axis: 0 | 1 | 2, a: number): Mat3 {
  const c = Math.cos(a), s = Math.sin(a);
  if (axis === 0) return [1, 0, 0, 0, c, -s, 0, s, c];
  if (axis === 1) return [c, 0, s, 0, 1, 0, -s, 0, c];
  return [c, -s, 0, s, c, 0, 0, 0, 1];
}

export function matmul(a: Mat3, b: Mat3): Mat3 {
  const o = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) for (let k = 0; k < 3; k++) o[r * 3 + c]! += a[r * 3 + k]! * b[k * 3 + c]!;
  return o as Mat3;
}

/** Oblique (no axis aligned with the world), right-handed. */
export const OBLIQUE: Mat3 = matmul(matmul(rot(2, 0.5), rot(0, 0.3)), rot(1, -0.2));
/** Oblique with the second axis flipped: determinant -1. */
export const OBLIQUE_FLIPPED: Mat3 = matmul(OBLIQUE, [1, 0, 0, 0, -1, 0, 0, 0, 1]);

const ALLOC: Record<VoxelType, (n: number) => VoxelArray> = {
  uint8: (n) => new Uint8Array(n), int8: (n) => new Int8Array(n), uint16: (n) => new Uint16Array(n), int16: (n) => new Int16Array(n),
  uint32: (n) => new Uint32Array(n), int32: (n) => new Int32Array(n), float32: (n) => new Float32Array(n), float64: (n) => new Float64Array(n),
};

/** Values that exercise each type: extremes, negatives, fractions, plus a varying pattern. */
const SPECIAL: Record<VoxelType, number[]> = {
  uint8: [0, 255, 1, 128], int8: [-128, 127, -1, 0], uint16: [0, 65535, 1, 32768], int16: [-32768, 32767, -1024, 3071],
  uint32: [0, 4294967295, 1, 2147483648], int32: [-2147483648, 2147483647, -1207, 3382],
  float32: [-3.4e38, 3.4e38, 1.17549435e-38, -0.125, Math.fround(Math.PI)], float64: [-1e300, 1e300, 5e-324, Math.PI, -Math.E],
};

/** A small volume of `type` with anisotropic spacing, non-zero origin and the given direction. */
export function syntheticVolume(type: VoxelType, direction: Mat3 = OBLIQUE_FLIPPED, size: Vec3 = [7, 5, 4]): Volume {
  const n = size[0] * size[1] * size[2];
  const data = ALLOC[type](n);
  const sp = SPECIAL[type];
  for (let i = 0; i < n; i++) {
    const pattern = type.startsWith('float') ? (i * 7919 % 1000) / 7 - 50 : (i * 37) % 100 - (type.startsWith('u') ? 0 : 50);
    data[i] = i < sp.length ? sp[i]! : pattern;
  }
  return { data, size, spacing: [0.7, 1.3, 2.5], origin: [12.5, -33.25, 101.125], direction };
}

export function assertGeometryClose(a: Volume, b: Volume, tol: number, what: string): void {
  assert.deepEqual(a.size, b.size, `${what}: size`);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(a.spacing[i]! - b.spacing[i]!) <= tol, `${what}: spacing ${a.spacing} vs ${b.spacing}`);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(a.origin[i]! - b.origin[i]!) <= tol * 100, `${what}: origin ${a.origin} vs ${b.origin}`);
  for (let i = 0; i < 9; i++) assert.ok(Math.abs(a.direction[i]! - b.direction[i]!) <= tol, `${what}: direction ${a.direction} vs ${b.direction}`);
}

export function assertSameVoxels(a: VoxelArray, b: VoxelArray, what: string): void {
  assert.equal(a.constructor.name, b.constructor.name, `${what}: voxel type`);
  assert.equal(a.length, b.length, `${what}: voxel count`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: voxel ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

/** A minimal NIfTI-1 file (sform = diag(1) affine) with arbitrary dims/datatype, for bad-input tests. */
export function writeNifti1(file: string, dims: number[], datatype: number, bitpix: number, data: Uint8Array, gz = false): void {
  const h = Buffer.alloc(352);
  h.writeInt32LE(348, 0);
  h.writeInt16LE(dims.length, 40);
  dims.forEach((d, i) => h.writeInt16LE(d, 42 + 2 * i));
  for (let i = dims.length; i < 7; i++) h.writeInt16LE(1, 42 + 2 * i);
  h.writeInt16LE(datatype, 70);
  h.writeInt16LE(bitpix, 72);
  for (let i = 0; i < 8; i++) h.writeFloatLE(1, 76 + 4 * i);
  h.writeFloatLE(352, 108);
  h.writeFloatLE(1, 112);
  h.writeInt16LE(2, 254); // sform_code
  h.writeFloatLE(1, 280); h.writeFloatLE(1, 300); h.writeFloatLE(1, 320);
  h.write('n+1\0', 344, 'latin1');
  const bytes = Buffer.concat([h, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
  fs.writeFileSync(file, gz ? zlib.gzipSync(bytes) : bytes);
}

/** A raw NRRD with an attached payload (for 2D / 4D / vector cases that reach itk-wasm). */
export function writeNrrd(file: string, fields: Record<string, string>, payload: Uint8Array): void {
  const head = ['NRRD0004', ...Object.entries(fields).map(([k, v]) => `${k}: ${v}`), '', ''].join('\n');
  fs.writeFileSync(file, Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(payload)]));
}

/** Mean of `values` over voxels where `labels` == `label`. */
export function meanInLabel(values: VoxelArray, labels: VoxelArray, label: number): { mean: number; count: number } {
  let s = 0, c = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === label) {
      s += values[i]!;
      c++;
    }
  }
  return { mean: s / c, count: c };
}
