/**
 * Data types. Names follow PyTorch (`float32`, `int64`, ...). The numeric codes are c10::ScalarType
 * values, which is what the native addon and checkpoint formats speak.
 */
export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

/** c10::ScalarType codes. */
export const SCALAR_TYPE: Readonly<Record<DType, number>> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7, bool: 11, bfloat16: 15,
};

const FROM_CODE = new Map<number, DType>(Object.entries(SCALAR_TYPE).map(([k, v]) => [v, k as DType]));

export function dtypeFromCode(code: number): DType {
  const d = FROM_CODE.get(code);
  if (d === undefined) throw new Error(`unsupported c10::ScalarType code ${code}`);
  return d;
}

/** Bytes per element. */
export const ITEMSIZE: Readonly<Record<DType, number>> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

/** The JS typed array each dtype is read into. Half types come out as raw Uint16 bit patterns. */
export type TypedArrayFor<D extends DType> =
  D extends 'float32' ? Float32Array :
  D extends 'float64' ? Float64Array :
  D extends 'int64' ? BigInt64Array :
  D extends 'int32' ? Int32Array :
  D extends 'int16' ? Int16Array :
  D extends 'int8' ? Int8Array :
  D extends 'uint8' | 'bool' ? Uint8Array :
  Uint16Array;

export type AnyTypedArray =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

/** View raw little-endian bytes as the typed array of `dtype` (copies only when misaligned). */
export function typedView(dtype: DType, bytes: Uint8Array): AnyTypedArray {
  const size = ITEMSIZE[dtype];
  if (bytes.byteLength % size !== 0) throw new Error(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const n = b.byteLength / size;
  switch (dtype) {
    case 'float32': return new Float32Array(b.buffer, b.byteOffset, n);
    case 'float64': return new Float64Array(b.buffer, b.byteOffset, n);
    case 'int64': return new BigInt64Array(b.buffer, b.byteOffset, n);
    case 'int32': return new Int32Array(b.buffer, b.byteOffset, n);
    case 'int16': return new Int16Array(b.buffer, b.byteOffset, n);
    case 'int8': return new Int8Array(b.buffer, b.byteOffset, n);
    case 'uint8': case 'bool': return new Uint8Array(b.buffer, b.byteOffset, n);
    case 'float16': case 'bfloat16': return new Uint16Array(b.buffer, b.byteOffset, n);
  }
}

/** The dtype a typed array holds by default (Uint16Array is ambiguous and must be named). */
export function dtypeOfArray(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Uint8Array) return 'uint8';
  throw new Error('a Uint16Array is float16 or bfloat16 bits: pass the dtype explicitly');
}

/**
 * A tensor as plain bytes, outside the engine: what checkpoint readers produce and writers take.
 * `data` is contiguous, row-major, little-endian.
 */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
