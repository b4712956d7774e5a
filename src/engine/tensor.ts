/**
 * Tensor: a TypeScript handle on a libtorch at::Tensor.
 *
 * Methods are thin typed wrappers over ATen ops (see ./call.ts); their names and semantics follow
 * PyTorch (camelCase). Shapes are number[]; dims may be negative. Arithmetic broadcasts like PyTorch.
 * Memory is released by dispose(), by tidy() scopes (./scope.ts), or by GC as a fallback.
 */
import { native, type Handle } from './native.js';
import { track } from './scope.js';
import { callOp, call1 } from './call.js';
import { dtypeFromCode, SCALAR_TYPE, type DType, type AnyTypedArray, typedView } from './dtype.js';
import { MisfmError, ShapeError, fmtShape } from '../util/errors.js';
import { lowPrecisionFor, runInBf16 } from './precision.js';

/** A scalar or a tensor operand. */
export type Operand = Tensor | number | boolean;

/** torch memory formats. */
export type MemoryFormat = 'contiguous' | 'preserve' | 'channelsLast' | 'channelsLast3d';
export const MEMORY_FORMAT: Readonly<Record<MemoryFormat, number>> = { contiguous: 0, preserve: 1, channelsLast: 2, channelsLast3d: 3 };

export class Tensor {
  /** @internal */
  readonly __isTensor = true;
  /** @internal Native handle; use only inside the engine. */
  readonly handle: Handle;
  #shape: number[] | undefined;
  #dtype: DType | undefined;
  #disposed = false;

  /** @internal Tensors are created by ops and factory functions, not by `new`. */
  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  // ---------------------------------------------------------------- metadata

  get shape(): number[] {
    this.assertLive('shape');
    if (this.#shape === undefined) this.#shape = native().shape(this.handle);
    return this.#shape.slice();
  }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get dtype(): DType {
    this.assertLive('dtype');
    if (this.#dtype === undefined) this.#dtype = dtypeFromCode(native().meta(this.handle)[1]);
    return this.#dtype;
  }
  get device(): string { this.assertLive('device'); return native().meta(this.handle)[2]; }
  get isView(): boolean { this.assertLive('isView'); return native().meta(this.handle)[4]; }
  /** Size of one dim (negative dims count from the end). */
  size(dim: number): number {
    const s = this.shape;
    const d = normDim(dim, s.length, 'size');
    return s[d]!;
  }

  /**
   * Take `source`'s values, dtype and device in place, keeping this tensor object, its handle and
   * its requires-grad flag (PyTorch's `t.data = source`, on which Module.to(dtype) rests).
   */
  setData_(source: Tensor): this {
    this.assertLive('setData_');
    native().setData(this.handle, source.handle);
    this.#dtype = undefined;
    this.#shape = undefined;
    return this;
  }

  get isDisposed(): boolean { return this.#disposed; }

  /** Release the native memory now. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    native().dispose(this.handle);
  }
  [Symbol.dispose](): void { this.dispose(); }

  private assertLive(what: string): void {
    if (this.#disposed) throw new MisfmError('DISPOSED', `${what}: tensor is disposed`);
  }

  toString(): string {
    return this.#disposed ? 'Tensor(<disposed>)' : `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.device})`;
  }

  // ---------------------------------------------------------------- data out

  /** Copy the data out as the dtype's typed array (float16/bfloat16 as raw Uint16 bits). */
  data(): AnyTypedArray {
    this.assertLive('data');
    return typedView(this.dtype, new Uint8Array(native().toBytes(this.handle)));
  }
  /** Alias of data(). */
  toTypedArray(): AnyTypedArray { return this.data(); }
  /** Data as float32 (converting if needed). */
  dataF32(): Float32Array {
    if (this.dtype === 'float32') return this.data() as Float32Array;
    const t = this.to('float32');
    try { return t.data() as Float32Array; } finally { t.dispose(); }
  }
  /** Contiguous little-endian bytes. */
  bytes(): Uint8Array { this.assertLive('bytes'); return new Uint8Array(native().toBytes(this.handle)); }
  /** Copy into an existing typed array of exactly the right byte length (avoids an allocation). */
  copyInto(out: ArrayBufferView): void { this.assertLive('copyInto'); native().copyInto(this.handle, out); }
  /** The value of a one-element tensor. */
  item(): number {
    const v = callOp('item', [this]);
    return typeof v === 'boolean' ? (v ? 1 : 0) : (v as number);
  }
  /** Nested JS arrays (for small tensors: printing, tests). */
  toArray(): unknown {
    const flat = Array.from(this.data() as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
    const shape = this.shape;
    const build = (dim: number, offset: number): unknown => {
      if (dim === shape.length) return flat[offset];
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[dim]! }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  // ---------------------------------------------------------------- autograd

  get requiresGrad(): boolean { this.assertLive('requiresGrad'); return native().meta(this.handle)[3]; }
  /** Set requires_grad in place; returns this. */
  requiresGrad_(flag = true): this { this.assertLive('requiresGrad_'); native().setRequiresGrad(this.handle, flag); return this; }
  /** The accumulated gradient (a new handle on it), or null. */
  get grad(): Tensor | null {
    this.assertLive('grad');
    const g = native().grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) { this.assertLive('grad'); native().setGrad(this.handle, g === null ? null : g.handle); }
  /** Backpropagate from this tensor (a scalar unless `gradient` is given). */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    this.assertLive('backward');
    if (gradient === undefined && this.numel !== 1) {
      throw new ShapeError('backward', `grad can be implicitly created only for scalar outputs, got shape ${fmtShape(this.shape)}`);
    }
    try {
      native().backward([this.handle], [gradient === undefined ? null : gradient.handle], opts.retainGraph ?? false);
    } catch (err) {
      throw new MisfmError('NATIVE', `backward: ${(err as Error).message}`, { cause: err });
    }
  }
  detach(): Tensor { return call1('detach', [this]); }
  /** detach_() in place. */
  detach_(): this { callOp('detach_', [this]); return this; }
  clone(memoryFormat?: MemoryFormat): Tensor { return call1('clone', [this, memoryFormat === undefined ? undefined : MEMORY_FORMAT[memoryFormat]]); }

  // ---------------------------------------------------------------- conversion

  /** Convert dtype and/or device ('cpu', 'cuda', 'cuda:1'). Returns a new tensor (a copy even if unchanged). */
  to(target: DType | string, opts: { copy?: boolean } = {}): Tensor {
    if (isDType(target)) return call1('to.dtype', [this, SCALAR_TYPE[target], false, opts.copy ?? true]);
    return call1('to.device', [this, target, SCALAR_TYPE[this.dtype], false, opts.copy ?? true]);
  }
  float(): Tensor { return this.to('float32'); }
  long(): Tensor { return this.to('int64'); }
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return call1('contiguous', [this, MEMORY_FORMAT[memoryFormat]]);
  }

  // ---------------------------------------------------------------- shape

  reshape(shape: readonly number[]): Tensor { return call1('reshape', [this, shape]); }
  view(shape: readonly number[]): Tensor {
    try { return call1('view', [this, shape]); } catch (err) {
      throw new ShapeError('view', `cannot view ${fmtShape(this.shape)} as ${fmtShape(shape)}: ${(err as Error).message}`);
    }
  }
  permute(dims: readonly number[]): Tensor {
    if (dims.length !== this.ndim) throw new ShapeError('permute', `got ${dims.length} dims ${fmtShape(dims)} for a tensor of shape ${fmtShape(this.shape)}`);
    return call1('permute', [this, dims]);
  }
  transpose(d0: number, d1: number): Tensor { return call1('transpose.int', [this, d0, d1]); }
  flatten(startDim = 0, endDim = -1): Tensor { return call1('flatten.using_ints', [this, startDim, endDim]); }
  squeeze(dim?: number): Tensor { return dim === undefined ? call1('squeeze', [this]) : call1('squeeze.dim', [this, dim]); }
  unsqueeze(dim: number): Tensor { return call1('unsqueeze', [this, dim]); }
  expand(shape: readonly number[]): Tensor { return call1('expand', [this, shape]); }
  expandAs(other: Tensor): Tensor { return this.expand(other.shape); }
  repeat(repeats: readonly number[]): Tensor { return call1('repeat', [this, repeats]); }
  /** A view of `length` elements along dim starting at `start`. */
  narrow(dim: number, start: number, length: number): Tensor {
    const s = this.shape;
    const d = normDim(dim, s.length, 'narrow');
    if (start < 0 || length < 0 || start + length > s[d]!) {
      throw new ShapeError('narrow', `range [${start}, ${start + length}) is outside dim ${dim} of size ${s[d]} (shape ${fmtShape(s)})`);
    }
    return call1('narrow', [this, d, start, length]);
  }
  /** Python-style slice along one dim: t[..., start:end:step]. Negative/None bounds as in Python. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return call1('slice.Tensor', [this, dim, start ?? null, end ?? null, step]);
  }
  /** Slice several dims at once: ranges[i] = [start, end] or null for "all". */
  crop(ranges: readonly ([number, number] | null)[]): Tensor {
    let t: Tensor = this;
    const owned: Tensor[] = [];
    ranges.forEach((r, d) => {
      if (r === null) return;
      t = t.narrow(d, r[0], r[1] - r[0]);
      owned.push(t);
    });
    owned.pop();
    for (const o of owned) o.dispose();
    return t === this ? this.view(this.shape) : t;
  }
  select(dim: number, index: number): Tensor { return call1('select.int', [this, dim, index]); }
  indexSelect(dim: number, index: Tensor): Tensor { return call1('index_select', [this, dim, index]); }
  gather(dim: number, index: Tensor): Tensor { return call1('gather', [this, dim, index, false]); }
  split(sizeOrSections: number | readonly number[], dim = 0): Tensor[] {
    return (typeof sizeOrSections === 'number'
      ? callOp('split.Tensor', [this, sizeOrSections, dim])
      : callOp('split_with_sizes', [this, sizeOrSections, dim])) as Tensor[];
  }
  chunk(chunks: number, dim = 0): Tensor[] { return callOp('chunk', [this, chunks, dim]) as Tensor[]; }
  roll(shifts: number | readonly number[], dims: number | readonly number[]): Tensor {
    return call1('roll', [this, typeof shifts === 'number' ? [shifts] : shifts, typeof dims === 'number' ? [dims] : dims]);
  }
  flip(dims: readonly number[]): Tensor { return call1('flip', [this, dims]); }

  // ---------------------------------------------------------------- elementwise

  add(o: Operand, alpha = 1): Tensor { return o instanceof Tensor ? call1('add.Tensor', [this, o, alpha]) : call1('add.Scalar', [this, o, alpha]); }
  sub(o: Operand, alpha = 1): Tensor { return o instanceof Tensor ? call1('sub.Tensor', [this, o, alpha]) : call1('sub.Scalar', [this, o, alpha]); }
  mul(o: Operand): Tensor { return o instanceof Tensor ? call1('mul.Tensor', [this, o]) : call1('mul.Scalar', [this, o]); }
  div(o: Operand): Tensor { return o instanceof Tensor ? call1('div.Tensor', [this, o]) : call1('div.Scalar', [this, o]); }
  /** Integer (floor) division. */
  floorDiv(o: Operand): Tensor { return o instanceof Tensor ? call1('div.Tensor_mode', [this, o, 'floor']) : call1('div.Scalar_mode', [this, o, 'floor']); }
  remainder(o: Operand): Tensor { return o instanceof Tensor ? call1('remainder.Tensor', [this, o]) : call1('remainder.Scalar', [this, o]); }
  /** scalar - this. */
  rsub(s: number): Tensor { return call1('rsub.Scalar', [this, s, 1]); }
  neg(): Tensor { return call1('neg', [this]); }
  pow(e: Operand): Tensor { return e instanceof Tensor ? call1('pow.Tensor_Tensor', [this, e]) : call1('pow.Tensor_Scalar', [this, e]); }
  exp(): Tensor { return call1('exp', [this]); }
  log(): Tensor { return call1('log', [this]); }
  sqrt(): Tensor { return call1('sqrt', [this]); }
  rsqrt(): Tensor { return call1('rsqrt', [this]); }
  abs(): Tensor { return call1('abs', [this]); }
  sign(): Tensor { return call1('sign', [this]); }
  floor(): Tensor { return call1('floor', [this]); }
  ceil(): Tensor { return call1('ceil', [this]); }
  round(): Tensor { return call1('round', [this]); }
  sigmoid(): Tensor { return call1('sigmoid', [this]); }
  erf(): Tensor { return call1('erf', [this]); }
  erfinv(): Tensor { return call1('erfinv', [this]); }
  tanh(): Tensor { return call1('tanh', [this]); }
  sin(): Tensor { return call1('sin', [this]); }
  cos(): Tensor { return call1('cos', [this]); }
  relu(): Tensor { return call1('relu', [this]); }
  reciprocal(): Tensor { return call1('reciprocal', [this]); }
  square(): Tensor { return call1('square', [this]); }
  clamp(min?: number | null, max?: number | null): Tensor { return call1('clamp', [this, min ?? null, max ?? null]); }
  maximum(o: Tensor): Tensor { return call1('maximum', [this, o]); }
  minimum(o: Tensor): Tensor { return call1('minimum', [this, o]); }
  eq(o: Operand): Tensor { return o instanceof Tensor ? call1('eq.Tensor', [this, o]) : call1('eq.Scalar', [this, o]); }
  ne(o: Operand): Tensor { return o instanceof Tensor ? call1('ne.Tensor', [this, o]) : call1('ne.Scalar', [this, o]); }
  lt(o: Operand): Tensor { return o instanceof Tensor ? call1('lt.Tensor', [this, o]) : call1('lt.Scalar', [this, o]); }
  le(o: Operand): Tensor { return o instanceof Tensor ? call1('le.Tensor', [this, o]) : call1('le.Scalar', [this, o]); }
  gt(o: Operand): Tensor { return o instanceof Tensor ? call1('gt.Tensor', [this, o]) : call1('gt.Scalar', [this, o]); }
  ge(o: Operand): Tensor { return o instanceof Tensor ? call1('ge.Tensor', [this, o]) : call1('ge.Scalar', [this, o]); }
  logicalAnd(o: Tensor): Tensor { return call1('logical_and', [this, o]); }
  logicalOr(o: Tensor): Tensor { return call1('logical_or', [this, o]); }
  logicalNot(): Tensor { return call1('logical_not', [this]); }
  isnan(): Tensor { return call1('isnan', [this]); }
  isfinite(): Tensor { return call1('isfinite', [this]); }
  /** this where cond else other. */
  where(cond: Tensor, other: Operand): Tensor {
    return other instanceof Tensor ? call1('where.self', [cond, this, other]) : call1('where.ScalarOther', [cond, this, other]);
  }
  maskedFill(mask: Tensor, value: number): Tensor { return call1('masked_fill.Scalar', [this, mask, value]); }
  lerp(end: Tensor, weight: Operand): Tensor {
    return weight instanceof Tensor ? call1('lerp.Tensor', [this, end, weight]) : call1('lerp.Scalar', [this, end, weight]);
  }

  // ---------------------------------------------------------------- reductions

  /** Sum over all elements, or over `dims`. */
  sum(dims?: number | readonly number[], keepdim = false): Tensor {
    return dims === undefined ? call1('sum', [this]) : call1('sum.dim_IntList', [this, typeof dims === 'number' ? [dims] : dims, keepdim]);
  }
  mean(dims?: number | readonly number[], keepdim = false): Tensor {
    return dims === undefined ? call1('mean', [this]) : call1('mean.dim', [this, typeof dims === 'number' ? [dims] : dims, keepdim]);
  }
  /** Max of all elements. */
  max(): Tensor;
  /** Max along a dim: [values, indices]. */
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? call1('max', [this]) : (callOp('max.dim', [this, dim, keepdim]) as [Tensor, Tensor]);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? call1('min', [this]) : (callOp('min.dim', [this, dim, keepdim]) as [Tensor, Tensor]);
  }
  amax(dims: number | readonly number[], keepdim = false): Tensor { return call1('amax', [this, typeof dims === 'number' ? [dims] : dims, keepdim]); }
  amin(dims: number | readonly number[], keepdim = false): Tensor { return call1('amin', [this, typeof dims === 'number' ? [dims] : dims, keepdim]); }
  argmax(dim?: number, keepdim = false): Tensor { return call1('argmax', [this, dim ?? null, keepdim]); }
  argmin(dim?: number, keepdim = false): Tensor { return call1('argmin', [this, dim ?? null, keepdim]); }
  /** Standard deviation (unbiased like torch by default). */
  std(dims?: number | readonly number[], unbiased = true, keepdim = false): Tensor {
    return call1('std.correction', [this, dims === undefined ? null : typeof dims === 'number' ? [dims] : dims, unbiased ? 1 : 0, keepdim]);
  }
  var(dims?: number | readonly number[], unbiased = true, keepdim = false): Tensor {
    return call1('var.correction', [this, dims === undefined ? null : typeof dims === 'number' ? [dims] : dims, unbiased ? 1 : 0, keepdim]);
  }
  norm(p = 2): Tensor { return call1('norm.Scalar', [this, p]); }
  any(): Tensor { return call1('any', [this]); }
  all(): Tensor { return call1('all', [this]); }
  cumsum(dim: number): Tensor { return call1('cumsum', [this, dim]); }
  softmax(dim: number): Tensor { return call1('softmax.int', [this, dim]); }
  logSoftmax(dim: number): Tensor { return call1('log_softmax.int', [this, dim]); }

  // ---------------------------------------------------------------- linear algebra

  /** Matrix product; under the bf16 compute policy (./precision.ts) float32 operands run in bfloat16. */
  matmul(o: Tensor): Tensor {
    if (lowPrecisionFor(this.dtype)) return runInBf16([this, o], ([a, b]) => call1('matmul', [a, b]));
    return call1('matmul', [this, o]);
  }
  bmm(o: Tensor): Tensor {
    if (this.ndim !== 3 || o.ndim !== 3) throw new ShapeError('bmm', `expected two rank-3 tensors, got ${fmtShape(this.shape)} and ${fmtShape(o.shape)}`);
    if (lowPrecisionFor(this.dtype)) return runInBf16([this, o], ([a, b]) => call1('bmm', [a, b]));
    return call1('bmm', [this, o]);
  }

  // ---------------------------------------------------------------- in place (optimizers, loading)

  add_(o: Operand, alpha = 1): this { callOp(o instanceof Tensor ? 'add_.Tensor' : 'add_.Scalar', [this, o, alpha]); return this; }
  sub_(o: Operand, alpha = 1): this { callOp(o instanceof Tensor ? 'sub_.Tensor' : 'sub_.Scalar', [this, o, alpha]); return this; }
  mul_(o: Operand): this { callOp(o instanceof Tensor ? 'mul_.Tensor' : 'mul_.Scalar', [this, o]); return this; }
  div_(o: Operand): this { callOp(o instanceof Tensor ? 'div_.Tensor' : 'div_.Scalar', [this, o]); return this; }
  /** this += value * t1 * t2 */
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this { callOp('addcmul_', [this, t1, t2, value]); return this; }
  /** this += value * t1 / t2 */
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this { callOp('addcdiv_', [this, t1, t2, value]); return this; }
  lerp_(end: Tensor, weight: number): this { callOp('lerp_.Scalar', [this, end, weight]); return this; }
  clamp_(min?: number | null, max?: number | null): this { callOp('clamp_', [this, min ?? null, max ?? null]); return this; }
  sqrt_(): this { callOp('sqrt_', [this]); return this; }
  zero_(): this { callOp('zero_', [this]); return this; }
  fill_(v: number): this { callOp('fill_.Scalar', [this, v]); return this; }
  /** Copy src into this (broadcasting, converting dtype). */
  copy_(src: Tensor): this {
    const a = this.shape, b = src.shape;
    if (a.length !== b.length || a.some((s, i) => s !== b[i])) {
      if (b.length > a.length || b.some((s, i) => s !== 1 && s !== a[a.length - b.length + i])) {
        throw new ShapeError('copy_', `cannot copy a tensor of shape ${fmtShape(b)} into one of shape ${fmtShape(a)}`);
      }
    }
    callOp('copy_', [this, src, false]);
    return this;
  }
  uniform_(from = 0, to = 1): this { callOp('uniform_', [this, from, to, null]); return this; }
  normal_(mean = 0, std = 1): this { callOp('normal_', [this, mean, std, null]); return this; }
}

function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(SCALAR_TYPE, s);
}

/** Normalise a possibly negative dim. */
export function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= ndim || !Number.isInteger(d)) throw new ShapeError(op, `dim ${dim} is out of range for a tensor of rank ${ndim}`);
  return d;
}
