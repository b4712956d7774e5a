/**
 * Module: the base of every layer and model, with PyTorch's contract.
 *
 * Parameters, buffers and child modules are registered under explicit names, so state-dict keys
 * (`layer.0.weight`, `bn.running_mean`, `bn.num_batches_tracked`) are identical to PyTorch's and
 * never depend on TypeScript property names. stateDict() orders keys as PyTorch does: a module's own
 * parameters, then its persistent buffers, then each child in registration order.
 */
import { Tensor } from '../engine/tensor.js';
import { fromTypedArray, noGrad } from '../engine/creation.js';
import { keep } from '../engine/scope.js';
import { callOp } from '../engine/call.js';
import { isFloating, typedView, type RawTensor } from '../engine/dtype.js';
import { MisfmError, fmtShape } from '../util/errors.js';
import { native } from '../engine/native.js';

/**
 * Throw a clear error unless `device` is 'cpu', or 'cuda' / 'cuda:N' with a CUDA build of the
 * engine and that many devices.
 */
export function checkDevice(device: string): void {
  if (device === 'cpu') return;
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (m === null) throw new MisfmError('ARGUMENT', `device must be 'cpu', 'cuda' or 'cuda:N', got '${device}'`);
  const info = native().info();
  if (!info.cudaAvailable) {
    throw new MisfmError('ENGINE', `device '${device}' requested but this build of the engine has no CUDA (libtorch ${info.torchVersion}, CPU only); use --device cpu, or build against a CUDA LibTorch (README, "Using a GPU")`);
  }
  const index = m[1] === undefined ? 0 : Number(m[1]);
  if (index >= info.cudaDeviceCount) throw new MisfmError('ENGINE', `device '${device}' requested but ${info.cudaDeviceCount} CUDA device(s) are visible`);
}

/** What loadStateDict did with every key. Nothing is skipped silently. */
export interface LoadReport {
  /** Keys copied into the module. */
  loaded: string[];
  /** Module keys absent from the source. */
  missing: string[];
  /** Source keys the module does not have. */
  unexpected: string[];
  /** Keys present in both with different shapes (left at their current value). */
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

export interface LoadOptions {
  /**
   * strict (default): any missing, unexpected or mismatched key throws, listing all of them.
   * 'filter': load what matches by name and shape and report the rest (PyMIC's pretrained-weight rule).
   */
  mode?: 'strict' | 'filter';
}

export type StateValue = Tensor | RawTensor;

export abstract class Module {
  /** Training mode (dropout on, BN batch statistics). */
  training = true;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, { t: Tensor | null; persistent: boolean }>();
  readonly #modules = new Map<string, Module>();

  /** Register a learnable tensor (marked requires_grad) under `name`. */
  protected registerParameter(name: string, t: Tensor | null): Tensor {
    this.checkName(name);
    if (t !== null) keep(t.requiresGrad_(true));
    this.#params.set(name, t);
    return t as Tensor;
  }
  /** Register a non-learnable tensor; persistent buffers are part of the state dict. */
  protected registerBuffer(name: string, t: Tensor | null, persistent = true): Tensor {
    this.checkName(name);
    if (t !== null) keep(t);
    this.#buffers.set(name, { t, persistent });
    return t as Tensor;
  }
  /** Register a child module under `name` (a dotted-key component). */
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this.#modules.set(name, m);
    return m;
  }
  private checkName(name: string): void {
    if (name.length === 0 || name.includes('.')) throw new MisfmError('ARGUMENT', `invalid module member name '${name}'`);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#modules.has(name)) {
      throw new MisfmError('ARGUMENT', `${this.constructor.name}: '${name}' is already registered`);
    }
  }

  /** Replace a registered buffer's tensor (e.g. a cached mask); disposes the old one. */
  protected setBuffer(name: string, t: Tensor): void {
    const b = this.#buffers.get(name);
    if (b === undefined) throw new MisfmError('ARGUMENT', `no buffer '${name}'`);
    b.t?.dispose();
    b.t = keep(t);
  }

  /** A registered parameter or buffer by local name. */
  protected tensor(name: string): Tensor {
    const t = this.#params.get(name) ?? this.#buffers.get(name)?.t;
    if (t == null) throw new MisfmError('ARGUMENT', `${this.constructor.name} has no tensor '${name}'`);
    return t;
  }

  /** Child module by local name. */
  child<M extends Module = Module>(name: string): M {
    const m = this.#modules.get(name);
    if (m === undefined) throw new MisfmError('ARGUMENT', `${this.constructor.name} has no child '${name}'`);
    return m as M;
  }

  *namedChildren(): IterableIterator<[string, Module]> { yield* this.#modules.entries(); }
  *children(): IterableIterator<Module> { yield* this.#modules.values(); }

  /** Every module in the tree, depth first, with its dotted path ('' for this one). */
  *namedModules(prefix = ''): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.#modules) yield* m.namedModules(prefix === '' ? n : `${prefix}.${n}`);
  }

  *namedParameters(prefix = ''): IterableIterator<[string, Tensor]> {
    for (const [n, t] of this.#params) if (t !== null) yield [prefix === '' ? n : `${prefix}.${n}`, t];
    for (const [n, m] of this.#modules) yield* m.namedParameters(prefix === '' ? n : `${prefix}.${n}`);
  }
  parameters(): Tensor[] { return [...this.namedParameters()].map(([, t]) => t); }

  *namedBuffers(prefix = '', persistentOnly = false): IterableIterator<[string, Tensor]> {
    for (const [n, b] of this.#buffers) if (b.t !== null && (!persistentOnly || b.persistent)) yield [prefix === '' ? n : `${prefix}.${n}`, b.t];
    for (const [n, m] of this.#modules) yield* m.namedBuffers(prefix === '' ? n : `${prefix}.${n}`, persistentOnly);
  }

  /** Number of parameter elements (what PyMIC logs as the parameter count). */
  numParameters(): number {
    let n = 0;
    for (const t of this.parameters()) n += t.numel;
    return n;
  }

  /** The state dict: live tensors (not copies), keyed and ordered as PyTorch's. */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.collectState(prefix, out);
    return out;
  }
  private collectState(prefix: string, out: Map<string, Tensor>): void {
    const key = (n: string): string => (prefix === '' ? n : `${prefix}.${n}`);
    for (const [n, t] of this.#params) if (t !== null) out.set(key(n), t);
    for (const [n, b] of this.#buffers) if (b.t !== null && b.persistent) out.set(key(n), b.t);
    for (const [n, m] of this.#modules) m.collectState(key(n), out);
  }

  /**
   * Copy tensors from `source` into this module by key. Values may be engine tensors or raw
   * checkpoint tensors; dtypes are converted to the module's. Returns what happened to every key.
   */
  loadStateDict(source: Map<string, StateValue>, opts: LoadOptions = {}): LoadReport {
    const mode = opts.mode ?? 'strict';
    const own = this.stateDict();
    const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [] };
    for (const k of source.keys()) if (!own.has(k)) report.unexpected.push(k);
    const toCopy: [Tensor, StateValue][] = [];
    for (const [k, dst] of own) {
      const src = source.get(k);
      if (src === undefined) { report.missing.push(k); continue; }
      const got = src instanceof Tensor ? src.shape : src.shape;
      const expected = dst.shape;
      if (got.length !== expected.length || got.some((s, i) => s !== expected[i])) {
        report.mismatched.push({ key: k, expected, got: [...got] });
        continue;
      }
      toCopy.push([dst, src]);
      report.loaded.push(k);
    }
    if (mode === 'strict' && (report.missing.length + report.unexpected.length + report.mismatched.length) > 0) {
      throw new MisfmError('STATE_DICT', formatLoadErrors(this.constructor.name, report));
    }
    noGrad(() => {
      for (const [dst, src] of toCopy) {
        if (src instanceof Tensor) { dst.copy_(src); continue; }
        const t = rawToTensor(src);
        try { dst.copy_(t); } finally { t.dispose(); }
      }
    });
    return report;
  }

  /**
   * Move every parameter and buffer to `device` ('cpu', 'cuda', 'cuda:N') in place: the tensor
   * objects stay the same (their storage is swapped, like PyTorch's Module.to), so optimizers and
   * any code holding them keep working. Returns this.
   */
  toDevice(device: string): this {
    checkDevice(device);
    noGrad(() => {
      for (const t of [...this.parameters(), ...[...this.namedBuffers()].map(([, b]) => b)]) {
        if (t.device === device || (device === 'cuda' && t.device === 'cuda:0')) continue;
        const moved = t.to(device);
        callOp('set_.source_Tensor', [t, moved]);
        moved.dispose();
      }
    });
    return this;
  }

  /**
   * Convert every floating-point parameter and buffer to `dtype` in place (PyTorch's
   * `module.double()` / `module.to(dtype)`): the tensor objects stay the same; integer buffers such
   * as BatchNorm's batch counter are left alone. Returns this.
   */
  toDtype(dtype: 'float32' | 'float64'): this {
    noGrad(() => {
      for (const t of [...this.parameters(), ...[...this.namedBuffers()].map(([, b]) => b)]) {
        if (t.dtype === dtype || !isFloating(t.dtype)) continue;
        const converted = t.to(dtype);
        t.setData_(converted);
        converted.dispose();
      }
    });
    return this;
  }

  /** Set training mode on this module and all children. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this { return this.train(false); }

  /** Drop all parameter gradients. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Free every parameter and buffer. The module is unusable afterwards. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const t of m.#params.values()) t?.dispose();
      for (const b of m.#buffers.values()) b.t?.dispose();
    }
  }

  /** A PyTorch-like multi-line summary of the module tree. */
  toString(): string {
    const lines: string[] = [];
    const walk = (m: Module, name: string, depth: number): void => {
      const extra = m.extraRepr();
      lines.push(`${'  '.repeat(depth)}${name === '' ? '' : `(${name}): `}${m.constructor.name}(${extra}${m.#modules.size > 0 ? '' : ')'}`);
      for (const [n, c] of m.#modules) walk(c, n, depth + 1);
      if (m.#modules.size > 0) lines.push(`${'  '.repeat(depth)})`);
    };
    walk(this, '', 0);
    return lines.join('\n');
  }
  /** Constructor arguments worth printing (override in layers). */
  protected extraRepr(): string { return ''; }
}

/** An engine tensor holding a copy of a raw checkpoint tensor. */
export function rawToTensor(r: RawTensor): Tensor {
  return fromTypedArray(typedView(r.dtype, r.data), r.shape, r.dtype === 'bool' ? { dtype: 'bool' } : r.dtype === 'bfloat16' ? { dtype: 'bfloat16' } : {});
}

/** A raw (byte) copy of an engine tensor, for checkpoint writers. */
export function tensorToRaw(t: Tensor): RawTensor {
  return { dtype: t.dtype, shape: t.shape, data: t.bytes() };
}

export function formatLoadErrors(owner: string, r: LoadReport): string {
  const parts = [`error(s) loading the state dict into ${owner}:`];
  if (r.missing.length > 0) parts.push(`  missing key(s) (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length > 0) parts.push(`  unexpected key(s) (${r.unexpected.length}): ${list(r.unexpected)}`);
  for (const m of r.mismatched.slice(0, 20)) {
    parts.push(`  size mismatch for ${m.key}: checkpoint has ${fmtShape(m.got)}, the model has ${fmtShape(m.expected)}`);
  }
  if (r.mismatched.length > 20) parts.push(`  ... and ${r.mismatched.length - 20} more size mismatches`);
  return parts.join('\n');
}

function list(keys: string[]): string {
  return keys.length <= 12 ? keys.join(', ') : `${keys.slice(0, 12).join(', ')}, ... (${keys.length - 12} more)`;
}
