/** Fixture access for the VISTA3D tests (`../shared/fixtures/vista3d_small`). */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { fixturesDir } from '../helpers.js';
import { fromTypedArray } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { VISTA3D } from '../../src/models/vista3d/index.js';
import { readSafetensors } from '../../src/io/checkpoint/index.js';

export const vistaDir = path.join(fixturesDir, 'vista3d_small');

interface Entry { file: string; shape: number[]; dtype: 'float32' | 'int64'; }
const meta = JSON.parse(readFileSync(path.join(vistaDir, 'tensors.json'), 'utf8')) as { meta: Record<string, unknown>; tensors: Record<string, Entry> };
export const fixtureMeta = meta.meta;

export function entry(key: string): Entry {
  const e = meta.tensors[key];
  if (e === undefined) throw new Error(`vista3d fixture has no tensor ${key}`);
  return e;
}
function bytes(key: string): Buffer { return readFileSync(path.join(vistaDir, entry(key).file)); }
export function f32(key: string): Float32Array {
  const b = bytes(key);
  assert.equal(entry(key).dtype, 'float32', key);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
export function i64(key: string): number[] {
  const b = bytes(key);
  assert.equal(entry(key).dtype, 'int64', key);
  return Array.from(new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), Number);
}
export function shape(key: string): number[] { return entry(key).shape; }
export function tensorOf(key: string): Tensor { return fromTypedArray(f32(key), shape(key)); }

/** A flat array as rows of `n`. */
export function rows<T>(flat: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < flat.length; i += n) out.push(flat.slice(i, i + n));
  return out;
}
/** int64 [B,N,3] -> coords[b][n] and int64 [B,N] -> labels[b]. */
export function pointsOf(prefix: string, coordsKey = 'point_coords', labelsKey = 'point_labels'): { coords: number[][][]; labels: number[][] } {
  const n = shape(`${prefix}/${labelsKey}`)[1]!;
  return { coords: rows(rows(i64(`${prefix}/${coordsKey}`), 3), n), labels: rows(i64(`${prefix}/${labelsKey}`), n) };
}

/** The fixture's small model with its weights (from the safetensors file). */
export function smallModel(): VISTA3D {
  const net = new VISTA3D({ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] });
  net.loadStateDict(readSafetensors(path.join(vistaDir, 'weights.safetensors')).tensors);
  net.eval();
  return net;
}

/**
 * The README's logit tolerance |a−b| ≤ 1e-5 + 1e-4·|b|, −9999 exact, NaN at the same voxels.
 * Returns the indices that fail (callers decide what may fail).
 */
export function logitMismatches(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  assert.equal(a.length, b.length, 'length');
  const bad: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(y) || Number.isNaN(x)) { if (Number.isNaN(x) !== Number.isNaN(y)) bad.push(i); continue; }
    if (y === -9999) { if (x !== -9999) bad.push(i); continue; }
    if (!(Math.abs(x - y) <= 1e-5 + 1e-4 * Math.abs(y))) bad.push(i);
  }
  return bad;
}
export function assertLogits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  const bad = logitMismatches(a, b);
  assert.equal(bad.length, 0, `${what}: ${bad.length} voxels out of tolerance, first at ${bad[0]}: ${a[bad[0] ?? 0]} vs ${b[bad[0] ?? 0]}`);
}
/** Bit-exact equality including NaN positions. */
export function assertExact(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (!Object.is(x, y) && x !== y) assert.fail(`${what}: element ${i} differs: ${x} vs ${y}`);
  }
}
