/**
 * Values that exist only while the pickle VM runs (class references, storages, half-built numpy
 * arrays), and the conversion that keeps them out of the result.
 */
import type { DType, RawTensor } from '../../engine/dtype.js';
import { PyTuple, type PyValue } from './pyvalue.js';

/** Base of every VM-internal value. */
export abstract class VmObject {
  abstract describe(): string;
}

/** A whitelisted global (class or function) named by GLOBAL / STACK_GLOBAL. */
export class PyGlobal extends VmObject {
  constructor(readonly module: string, readonly name: string) {
    super();
  }
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
  describe(): string {
    return `reference to ${this.qualname}`;
  }
}

/** A tuple holding VM-internal values (e.g. REDUCE arguments, persistent ids). */
export class VmTuple extends VmObject {
  constructor(readonly items: readonly VmValue[]) {
    super();
  }
  describe(): string {
    return 'tuple of internal objects';
  }
}

/** A loaded torch storage: raw bytes plus the element type its storage class implies. */
export class StorageRef extends VmObject {
  constructor(readonly key: string, readonly dtype: DType, readonly bytes: Uint8Array) {
    super();
  }
  describe(): string {
    return `torch storage '${this.key}'`;
  }
}

/** A numpy dtype: `descr` like 'f8'; BUILD fills in the byte order. */
export class NpDtype extends VmObject {
  byteorder = '=';
  constructor(readonly descr: string) {
    super();
  }
  describe(): string {
    return `numpy.dtype('${this.descr}')`;
  }
}

/** A numpy array between `_reconstruct` (empty) and BUILD (filled). */
export class NpArray extends VmObject {
  tensor: RawTensor | null = null;
  describe(): string {
    return 'numpy.ndarray';
  }
}

export type VmValue = PyValue | VmObject;

/** Tuple constructor that yields a PyTuple when it can (the common case) and a VmTuple otherwise. */
export function makeTuple(items: VmValue[]): PyTuple | VmTuple {
  const py: PyValue[] = [];
  for (const it of items) {
    const p = it instanceof NpArray && it.tensor !== null ? it.tensor : it;
    if (p instanceof VmObject) return new VmTuple(items);
    py.push(p);
  }
  return new PyTuple(py);
}

/** Items of a tuple-like VM value, or null. */
export function tupleItems(v: VmValue): readonly VmValue[] | null {
  if (v instanceof PyTuple || v instanceof VmTuple) return v.items;
  return null;
}

/** Plain-message error for malformed pickle data; the VM adds the file and byte position. */
export class PickleDataError extends Error {}

/** Convert a VM value to a result value, refusing VM-internal objects. */
export function toPy(v: VmValue, where: string): PyValue {
  if (v instanceof NpArray) {
    if (v.tensor === null) throw new PickleDataError(`${where}: a numpy array that was never filled by BUILD`);
    return v.tensor;
  }
  if (v instanceof VmObject) throw new PickleDataError(`${where}: a ${v.describe()} cannot appear as a value`);
  return v;
}
