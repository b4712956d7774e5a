/**
 * Python values as the checkpoint reader produces them and the writer accepts them.
 *
 * Mapping (Python -> JS):
 *   None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 *   str -> string, bytes -> Uint8Array, list -> array, tuple -> PyTuple,
 *   dict / OrderedDict -> PyDict (insertion-ordered Map; `ordered` marks an OrderedDict),
 *   set / frozenset -> Set, torch.Tensor / nn.Parameter / numpy.ndarray -> RawTensor,
 *   torch.device -> string ('cpu', 'cuda:0'), numpy scalars -> number / bigint / boolean.
 *
 * Python floats with integral values read back as JS integers; the writer emits an integral
 * number as a Python int, so wrap a value in PyFloat to force a float (e.g. `lr: new PyFloat(1)`).
 */
import type { RawTensor } from '../../engine/dtype.js';
import { DTYPES, type DType } from '../../engine/dtype.js';

/** Dict keys that checkpoints use: str for state dicts, int for optimizer state. */
export type PyKey = string | number | bigint;

/** A Python dict. Insertion order is preserved, as in Python. */
export class PyDict extends Map<PyKey, PyValue> {
  /** True for collections.OrderedDict (what `state_dict()` returns), false for a plain dict. */
  ordered: boolean;
  /**
   * Instance attributes set by a pickle BUILD (PyTorch attaches `_metadata`, the per-module
   * version numbers, to every state_dict). Written back on save so round trips are faithful.
   */
  attrs: Map<string, PyValue> | null = null;

  constructor(entries?: Iterable<readonly [PyKey, PyValue]>, ordered = false) {
    super(entries);
    this.ordered = ordered;
  }
}

/** A Python tuple (kept apart from lists so that writing back reproduces the same types). */
export class PyTuple {
  readonly items: readonly PyValue[];
  constructor(items: readonly PyValue[]) {
    this.items = items;
  }
}

/** Forces the writer to emit a Python float even for an integral value. */
export class PyFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

/** Every value the reader can produce. */
export type PyValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PyValue[] | PyTuple | PyDict | Set<PyKey> | RawTensor | PyFloat;

/**
 * What the writer accepts: PyValue plus plain JS objects (written as str-keyed dicts) and any
 * Map (a plain Map is written as a dict).
 */
export type PyInput =
  | PyValue
  | readonly PyInput[]
  | ReadonlyMap<PyKey, PyInput>
  | { readonly [key: string]: PyInput };

/** Structural check for RawTensor (tensors are plain objects, not class instances). */
export function isRawTensor(v: unknown): v is RawTensor {
  if (typeof v !== 'object' || v === null) return false;
  const t = v as Partial<RawTensor>;
  return typeof t.dtype === 'string' && (DTYPES as readonly string[]).includes(t.dtype)
    && Array.isArray(t.shape) && t.data instanceof Uint8Array;
}

/** True for a dict read from a checkpoint. */
export function isPyDict(v: unknown): v is PyDict {
  return v instanceof PyDict;
}

/** Short Python-style type name for messages. */
export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return v.ordered ? 'OrderedDict' : 'dict';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof PyFloat) return 'float';
  if (isRawTensor(v)) return 'Tensor';
  return typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v;
}

/** Look up a str key in a dict-like value; undefined when absent or not a dict. */
export function dictGet(v: PyValue | undefined, key: PyKey): PyValue | undefined {
  return v instanceof PyDict ? v.get(key) : undefined;
}

/** The DType names, re-exported for callers that check dtypes of values. */
export type { DType };
