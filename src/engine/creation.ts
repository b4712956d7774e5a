/**
 * Tensor factories. Random factories draw from libtorch's global CPU generator: seed it with
 * manualSeed(); save/restore it with getRngState()/setRngState() for exact resume.
 */
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { call1 } from './call.js';
import { SCALAR_TYPE, ITEMSIZE, dtypeOfArray, numelOf, type DType, type AnyTypedArray } from './dtype.js';
import { ShapeError, fmtShape } from '../util/errors.js';

export interface CreateOptions { dtype?: DType; device?: string; requiresGrad?: boolean; }

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad === true) t.requiresGrad_(true);
  return t;
}
function dt(o: CreateOptions, def: DType = 'float32'): number { return SCALAR_TYPE[o.dtype ?? def]; }

function checkShape(op: string, shape: readonly number[]): void {
  if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new ShapeError(op, `shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

export function zeros(shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('zeros', shape);
  return finish(call1('zeros', [shape, dt(o), undefined, o.device]), o);
}
export function ones(shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('ones', shape);
  return finish(call1('ones', [shape, dt(o), undefined, o.device]), o);
}
export function empty(shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('empty', shape);
  return finish(call1('empty.memory_format', [shape, dt(o), undefined, o.device]), o);
}
export function full(shape: readonly number[], value: number, o: CreateOptions = {}): Tensor {
  checkShape('full', shape);
  return finish(call1('full', [shape, { float: value }, dt(o), undefined, o.device]), o);
}
export function zerosLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return finish(call1('zeros_like', [t, o.dtype === undefined ? undefined : SCALAR_TYPE[o.dtype]]), o);
}
export function onesLike(t: Tensor, o: CreateOptions = {}): Tensor {
  return finish(call1('ones_like', [t, o.dtype === undefined ? undefined : SCALAR_TYPE[o.dtype]]), o);
}
export function fullLike(t: Tensor, value: number, o: CreateOptions = {}): Tensor {
  return finish(call1('full_like', [t, { float: value }, o.dtype === undefined ? undefined : SCALAR_TYPE[o.dtype]]), o);
}
/** Values start, start+step, ... < end. Integer arguments give int64 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [a, b] = end === undefined ? [0, start] : [start, end];
  const allInt = Number.isInteger(a) && Number.isInteger(b) && Number.isInteger(step);
  return finish(call1('arange.start_step', [a, b, step, dt(o, allInt ? 'int64' : 'float32'), undefined, o.device]), o);
}
export function linspace(start: number, end: number, steps: number, o: CreateOptions = {}): Tensor {
  return finish(call1('linspace', [start, end, steps, dt(o), undefined, o.device]), o);
}
export function eye(n: number, o: CreateOptions = {}): Tensor {
  return finish(call1('eye', [n, dt(o), undefined, o.device]), o);
}
/** Standard normal samples. */
export function randn(shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('randn', shape);
  return finish(call1('randn', [shape, dt(o), undefined, o.device]), o);
}
/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('rand', shape);
  return finish(call1('rand', [shape, dt(o), undefined, o.device]), o);
}
/** Integers uniformly in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('randint', shape);
  return finish(call1('randint.low', [low, high, shape, dt(o, 'int64'), undefined, o.device]), o);
}
/** A random permutation of 0..n-1. */
export function randperm(n: number): Tensor { return call1('randperm', [n, SCALAR_TYPE.int64]); }

/** A 0-d tensor. */
export function scalar(value: number, o: CreateOptions = {}): Tensor {
  return finish(call1('scalar_tensor', [{ float: value }, dt(o), undefined, o.device]), o);
}

/**
 * A tensor holding a copy of `data` with the given shape. The dtype defaults to the array's
 * (Uint16Array needs dtype 'float16' or 'bfloat16'); a different dtype converts.
 */
export function fromTypedArray(data: AnyTypedArray | readonly number[], shape: readonly number[], o: CreateOptions = {}): Tensor {
  checkShape('fromTypedArray', shape);
  const arr: AnyTypedArray = Array.isArray(data) ? new Float32Array(data as number[]) : (data as AnyTypedArray);
  const own: DType = arr instanceof Uint16Array ? (o.dtype === 'bfloat16' ? 'bfloat16' : 'float16') : dtypeOfArray(arr);
  if (arr.length !== numelOf(shape)) {
    throw new ShapeError('fromTypedArray', `${arr.length} values cannot fill shape ${fmtShape(shape)} (${numelOf(shape)} elements)`);
  }
  if (arr.byteLength !== arr.length * ITEMSIZE[own]) throw new ShapeError('fromTypedArray', 'typed array byte length mismatch');
  let t = new Tensor(native().fromBytes(arr, SCALAR_TYPE[own], shape));
  if (o.dtype !== undefined && o.dtype !== own) {
    const c = t.to(o.dtype);
    t.dispose();
    t = c;
  }
  if (o.device !== undefined && o.device !== 'cpu') {
    const c = t.to(o.device);
    t.dispose();
    t = c;
  }
  return finish(t, o);
}

/** A tensor from nested JS arrays or a number (float32 unless dtype says otherwise). */
export function tensor(values: number | boolean | readonly unknown[], o: CreateOptions = {}): Tensor {
  if (typeof values === 'number' || typeof values === 'boolean') return scalar(Number(values), o);
  const shape: number[] = [];
  let level: unknown = values;
  while (Array.isArray(level)) { shape.push(level.length); level = level[0]; }
  const flat = (values as unknown[]).flat(Infinity) as number[];
  return fromTypedArray(new Float64Array(flat.map(Number)), shape, { ...o, dtype: o.dtype ?? 'float32' });
}

// ---------------------------------------------------------------- joining

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('cat', 'needs at least one tensor');
  return call1('cat', [tensors, dim]);
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('stack', 'needs at least one tensor');
  return call1('stack', [tensors, dim]);
}
/** Elementwise select: a where cond else b. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return call1('where.self', [cond, a, b]);
  if (a instanceof Tensor) return call1('where.ScalarOther', [cond, a, b]);
  if (b instanceof Tensor) return call1('where.ScalarSelf', [cond, a, b]);
  return call1('where.Scalar', [cond, a, b]);
}

// ---------------------------------------------------------------- RNG and threads

/** Seed libtorch's global CPU generator (all random factories, dropout, init). */
export function manualSeed(seed: number): void { native().manualSeed(seed); }
/** Exact generator state (a uint8 tensor) for checkpoints. */
export function getRngState(): Tensor { return new Tensor(native().getRngState()); }
export function setRngState(state: Tensor): void { native().setRngState(state.handle); }
export function setNumThreads(n: number): void { native().setNumThreads(n); }
export function getNumThreads(): number { return native().getNumThreads(); }
/** Number of live native tensors (leak checks). */
export function liveTensors(): number { return native().liveCount(); }

/** Grad-mode control. */
export function isGradEnabled(): boolean { return native().isGradEnabled(); }
/** Run fn with autograd recording disabled (inference, optimizer updates, weight loading). */
export function noGrad<T>(fn: () => T): T {
  const prev = native().setGradEnabled(false);
  try { return fn(); } finally { native().setGradEnabled(prev); }
}
export function enableGrad<T>(fn: () => T): T {
  const prev = native().setGradEnabled(true);
  try { return fn(); } finally { native().setGradEnabled(prev); }
}
