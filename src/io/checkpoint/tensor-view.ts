/**
 * Turning a (storage, offset, size, stride) view, as PyTorch and numpy pickle it, into a contiguous
 * RawTensor.
 */
import { ITEMSIZE, numelOf, type DType, type RawTensor } from '../../engine/dtype.js';
import { fmtShape } from '../../util/errors.js';

/** Thrown with a plain message; callers wrap it with the file name. */
export class ViewError extends Error {}

function checkDims(what: string, dims: readonly number[]): void {
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ViewError(`${what} ${fmtShape(dims)} has an invalid entry ${d}`);
  }
}

/** Row-major strides of a contiguous tensor. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = (s[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return s;
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const n = shape[i] ?? 1;
    if (n !== 1 && stride[i] !== expected) return false;
    expected *= n;
  }
  return true;
}

/**
 * Materialise a strided view of `storage` (raw little-endian bytes of `dtype` elements).
 * A view that is already contiguous is returned as a subarray of `storage` without copying, so
 * tensors that shared a storage in PyTorch share memory here too; any other view is gathered
 * into a fresh array.
 */
export function rawTensorFromView(
  storage: Uint8Array, dtype: DType, offset: number, shape: readonly number[], stride: readonly number[],
): RawTensor {
  checkDims('size', shape);
  checkDims('stride', stride);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new ViewError(`invalid storage offset ${offset}`);
  if (shape.length !== stride.length) {
    throw new ViewError(`size ${fmtShape(shape)} and stride ${fmtShape(stride)} have different lengths`);
  }
  const isz = ITEMSIZE[dtype];
  const numel = numelOf(shape);
  const out: RawTensor = { dtype, shape: [...shape], data: new Uint8Array(0) };
  if (numel === 0) return out;
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += ((shape[i] ?? 1) - 1) * (stride[i] ?? 0);
  const storageNumel = Math.floor(storage.byteLength / isz);
  if (last >= storageNumel) {
    throw new ViewError(`view (offset ${offset}, size ${fmtShape(shape)}, stride ${fmtShape(stride)}) `
      + `reaches element ${last} of a ${storageNumel}-element ${dtype} storage`);
  }
  if (isContiguous(shape, stride)) {
    out.data = storage.subarray(offset * isz, (offset + numel) * isz);
    return out;
  }
  out.data = gather(storage, isz, offset, shape, stride, numel);
  return out;
}

function gather(
  src: Uint8Array, isz: number, offset: number, shape: readonly number[], stride: readonly number[], numel: number,
): Uint8Array {
  const dst = new Uint8Array(numel * isz);
  const nd = shape.length;
  const inner = shape[nd - 1] ?? 1;
  const innerStride = stride[nd - 1] ?? 1;
  const outer = numel / inner;
  const idx = new Array<number>(Math.max(nd - 1, 0)).fill(0);
  let base = offset;
  let o = 0;
  for (let k = 0; k < outer; k++) {
    if (innerStride === 1) {
      dst.set(src.subarray(base * isz, (base + inner) * isz), o);
      o += inner * isz;
    } else {
      for (let j = 0; j < inner; j++) {
        const s = (base + j * innerStride) * isz;
        for (let b = 0; b < isz; b++) dst[o++] = src[s + b] ?? 0;
      }
    }
    // Odometer over the outer dimensions, last one fastest.
    for (let d = nd - 2; d >= 0; d--) {
      const i = (idx[d] ?? 0) + 1;
      const st = stride[d] ?? 0;
      if (i < (shape[d] ?? 1)) {
        idx[d] = i;
        base += st;
        break;
      }
      idx[d] = 0;
      base -= (i - 1) * st;
    }
  }
  return dst;
}
