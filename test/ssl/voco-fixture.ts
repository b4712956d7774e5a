/** Access to ../shared/fixtures/voco_small (see its README): tensors, weights and the hash volumes. */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fixturesDir } from '../helpers.js';
import { readSafetensors } from '../../src/io/checkpoint/index.js';
import type { RawTensor } from '../../src/engine/dtype.js';

export const vocoDir = path.join(fixturesDir, 'voco_small');

interface TensorDesc { file: string; shape: number[]; dtype: string }
interface Meta {
  meta: {
    position_label_cases: Record<string, { variant: string; kwargs: { roi: number; base_roi?: number; max_roi: number; num_crops: number }; center: number[]; labels: number[] }>;
    scalars: Record<string, Record<string, unknown>>;
    dropout_seed: number;
  };
  tensors: Record<string, TensorDesc>;
}

export const vocoMeta: Meta = JSON.parse(readFileSync(path.join(vocoDir, 'tensors.json'), 'utf8')) as Meta;

function desc(name: string): TensorDesc {
  const d = vocoMeta.tensors[name];
  if (d === undefined) throw new Error(`voco_small has no tensor ${name}`);
  return d;
}
export function shapeOf(name: string): number[] { return desc(name).shape; }
export function f32(name: string): Float32Array {
  const d = desc(name);
  const b = readFileSync(path.join(vocoDir, d.file));
  if (d.dtype !== 'float32') throw new Error(`${name} is ${d.dtype}`);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
export function i64(name: string): number[] {
  const d = desc(name);
  const b = readFileSync(path.join(vocoDir, d.file));
  if (d.dtype !== 'int64') throw new Error(`${name} is ${d.dtype}`);
  return [...new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))].map(Number);
}

let weights: Map<string, RawTensor> | null = null;
/** The fixture's 157 tensors (backbone.*, student.*, teacher.*). */
export function vocoWeights(): Map<string, RawTensor> {
  weights ??= readSafetensors(path.join(vocoDir, 'weights.safetensors')).tensors;
  return weights;
}
/** Entries under `prefix.` with the prefix removed. */
export function weightsUnder(prefix: string): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [k, v] of vocoWeights()) if (k.startsWith(`${prefix}.`)) out.set(k.slice(prefix.length + 1), v);
  return out;
}

/**
 * hash_volume(b) of the fixture generator as a misfm (D, H, W) = (Z, Y, X) array of shape
 * (64, 192, 192); the generator's array is (C, X, Y, Z) = (1, 192, 192, 64).
 */
export function hashVolumeDHW(b: number): Float32Array {
  const X = 192, Y = 192, Z = 64;
  const out = new Float32Array(X * Y * Z);
  for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) {
    const n = (x * Y * Z + y * Z + z + b * X * Y * Z) >>> 0;
    let h = Math.imul(n, 0x9e3779b1) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    const k = (Math.floor(x / 16) + Math.floor(y / 16) + Math.floor(z / 16) + b) % 8;
    out[(z * Y + y) * X + x] = ((h >>> 11) + (k << 21)) / 2 ** 24;
  }
  return out;
}
