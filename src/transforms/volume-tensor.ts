/**
 * Volume <-> engine Tensor. A Volume's x-fastest voxels are, unchanged, a C-order tensor of shape
 * (D,H,W) = (size[2], size[1], size[0]); the conversions copy the bytes once and never reorder.
 * The geometry travels beside the tensor (TensorVolume) so that a result can be written back
 * with the grid it belongs to.
 */
import type { Volume, VoxelArray } from '../io/volume.js';
import { Tensor } from '../engine/tensor.js';
import { fromTypedArray } from '../engine/creation.js';
import type { AnyTypedArray, DType } from '../engine/dtype.js';
import { MisfmError, ShapeError, fmtShape } from '../util/errors.js';
import { checkVolume, geometryOf, type Geometry } from './grid.js';

/** A tensor (D,H,W) or (1,1,D,H,W) with the grid its voxels live on. */
export interface TensorVolume {
  tensor: Tensor;
  geometry: Geometry;
}

/**
 * How voxels become tensor elements: 'image' gives float32; 'label' keeps integer voxels
 * integer (uint8/int8/int16/int32 as they are, uint16 -> int32, uint32 -> int64, float voxels
 * holding whole numbers -> int32); a DType converts to that dtype.
 */
export type TensorKind = 'image' | 'label' | DType;

/** Voxel array types a tensor can be written back as. */
export type VoxelTypeName = 'float32' | 'float64' | 'int32' | 'uint32' | 'int16' | 'uint16' | 'int8' | 'uint8';

/** The tensor dtype `volumeToTensor` produces for these voxels under `kind`. */
export function tensorDTypeFor(data: VoxelArray, kind: TensorKind = 'image'): DType {
  if (kind === 'image') return 'float32';
  if (kind !== 'label') return kind;
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int32Array || data instanceof Uint16Array) return 'int32';
  if (data instanceof Uint32Array) return 'int64';
  return 'int32';
}

function nonIntegerIndex(d: Float32Array | Float64Array): number {
  for (let i = 0; i < d.length; i++) {
    const x = d[i]!;
    if (!Number.isInteger(x) || x > 2147483647 || x < -2147483648) return i;
  }
  return -1;
}

/** The voxels as an array the engine accepts directly (uint16/uint32 have no engine dtype: widened). */
function engineArray(data: VoxelArray): AnyTypedArray {
  if (data instanceof Uint16Array) return Int32Array.from(data);
  if (data instanceof Uint32Array) return BigInt64Array.from(data, (x) => BigInt(x));
  return data;
}

/** The voxels of `v` as a (D,H,W) tensor (copied). See TensorKind for the dtype. */
export function volumeToTensor(v: Volume, kind: TensorKind = 'image'): Tensor {
  checkVolume('volumeToTensor', v);
  const dtype = tensorDTypeFor(v.data, kind);
  if (kind === 'label' && (v.data instanceof Float32Array || v.data instanceof Float64Array)) {
    const bad = nonIntegerIndex(v.data);
    if (bad >= 0) {
      throw new MisfmError('DTYPE', `volumeToTensor: label voxel ${bad} is ${v.data[bad]}, not an int32 class value; a label map must hold whole numbers`);
    }
  }
  return fromTypedArray(engineArray(v.data), [v.size[2], v.size[1], v.size[0]], { dtype });
}

/** The voxels of `v` as a (1,1,D,H,W) batch of one single-channel volume. */
export function volumeToBatch(v: Volume, kind: TensorKind = 'image'): Tensor {
  const t = volumeToTensor(v, kind);
  const b = t.view([1, 1, ...t.shape]);
  t.dispose();
  return b;
}

/** Tensor and geometry in one (the tensor is (D,H,W), or (1,1,D,H,W) when batch is true). */
export function toTensorVolume(v: Volume, kind: TensorKind = 'image', batch = false): TensorVolume {
  return { tensor: batch ? volumeToBatch(v, kind) : volumeToTensor(v, kind), geometry: geometryOf(v) };
}

function toVoxelArray(t: Tensor, as: VoxelTypeName | undefined): VoxelArray {
  const dt = t.dtype;
  const target: VoxelTypeName = as ?? (
    dt === 'float64' ? 'float64' : dt === 'int32' || dt === 'int64' ? 'int32' : dt === 'int16' ? 'int16'
      : dt === 'int8' ? 'int8' : dt === 'uint8' || dt === 'bool' ? 'uint8' : 'float32');
  if (dt === 'int64' && as === undefined) {
    // int64 labels come back as int32: refuse values that would wrap.
    const mn = t.min(), mx = t.max();
    const lo = mn.item(), hi = mx.item();
    mn.dispose(); mx.dispose();
    if (lo < -2147483648 || hi > 2147483647) {
      throw new MisfmError('DTYPE', `tensorToVolume: int64 values ${lo}..${hi} do not fit int32 voxels; pass voxelType`);
    }
  }
  const engineDt: Record<VoxelTypeName, DType> = {
    float32: 'float32', float64: 'float64', int32: 'int32', uint32: 'int64', int16: 'int16', uint16: 'int32', int8: 'int8', uint8: 'uint8',
  };
  const want = engineDt[target];
  const c = dt === want ? t : t.to(want);
  try {
    const raw = c.data();
    if (target === 'uint16') return Uint16Array.from(raw as Int32Array);
    if (target === 'uint32') return Uint32Array.from(raw as BigInt64Array, (x) => Number(BigInt.asUintN(32, x)));
    return raw as VoxelArray;
  } finally {
    if (c !== t) c.dispose();
  }
}

/**
 * A Volume from a tensor of shape (D,H,W), (1,D,H,W) or (1,1,D,H,W) on `geometry` (whose size
 * must match). The voxel type follows the tensor dtype (int64 -> int32 when in range, bool ->
 * uint8, half types -> float32) unless `voxelType` names one (values convert like a torch cast).
 */
export function tensorToVolume(t: Tensor, geometry: Geometry, voxelType?: VoxelTypeName): Volume {
  const s = t.shape;
  const dhw = s.slice(-3);
  const lead = s.slice(0, -3);
  const want = [geometry.size[2], geometry.size[1], geometry.size[0]];
  if (s.length < 3 || lead.some((x) => x !== 1) || dhw.some((x, i) => x !== want[i])) {
    throw new ShapeError('tensorToVolume', `tensor ${fmtShape(s)} does not fit a volume of size ${geometry.size.join('x')} (expected ${fmtShape(want)} with optional leading 1s)`);
  }
  return { data: toVoxelArray(t, voxelType), ...geometryOf(geometry) };
}

/** tensorToVolume for a TensorVolume. */
export function fromTensorVolume(tv: TensorVolume, voxelType?: VoxelTypeName): Volume {
  return tensorToVolume(tv.tensor, tv.geometry, voxelType);
}
