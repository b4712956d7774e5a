/**
 * The globals the pickle VM accepts, and what calling them means. Nothing is ever executed: each
 * whitelisted name maps to a small data constructor here. Any other name is refused by the VM.
 */
import { ITEMSIZE, type DType, type RawTensor } from '../../engine/dtype.js';
import { PyDict, PyTuple, isRawTensor, pyTypeName, type PyKey, type PyValue } from './pyvalue.js';
import {
  NpArray, NpDtype, PickleDataError, PyGlobal, StorageRef, toPy, tupleItems, type VmValue,
} from './pickle-objects.js';
import { contiguousStrides, rawTensorFromView } from './tensor-view.js';

/** Plain-message error; the VM adds the file and position. */
export class GlobalError extends PickleDataError {}

/** torch storage classes and the element type each implies. */
export const STORAGE_DTYPES: ReadonlyMap<string, DType> = new Map<string, DType>([
  ['DoubleStorage', 'float64'], ['FloatStorage', 'float32'], ['HalfStorage', 'float16'],
  ['BFloat16Storage', 'bfloat16'], ['LongStorage', 'int64'], ['IntStorage', 'int32'],
  ['ShortStorage', 'int16'], ['CharStorage', 'int8'], ['ByteStorage', 'uint8'], ['BoolStorage', 'bool'],
  ['UntypedStorage', 'uint8'],
]);

/** Storage class name for a dtype (inverse of STORAGE_DTYPES, without UntypedStorage). */
export function storageClassFor(dtype: DType): string {
  for (const [k, v] of STORAGE_DTYPES) if (v === dtype && k !== 'UntypedStorage') return k;
  throw new GlobalError(`no torch storage class for ${dtype}`);
}

/** numpy descr (kind + itemsize) -> dtype. */
const NUMPY_DTYPES: ReadonlyMap<string, DType> = new Map<string, DType>([
  ['f8', 'float64'], ['f4', 'float32'], ['f2', 'float16'], ['i8', 'int64'], ['i4', 'int32'],
  ['i2', 'int16'], ['i1', 'int8'], ['u1', 'uint8'], ['b1', 'bool'],
]);

const CALLABLE = new Set([
  'collections.OrderedDict', 'builtins.set', 'builtins.frozenset', 'builtins.bytes', 'builtins.bytearray',
  '_codecs.encode', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2', 'torch.device', 'torch.Size',
  'numpy.dtype', 'numpy.core.multiarray.scalar', 'numpy.core.multiarray._reconstruct', 'numpy.core.numeric._frombuffer',
]);
/** Globals that only appear as arguments (types), never called by the pickle. */
const MARKERS = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter', 'numpy.ndarray']);

/** Python 2 module names that protocol-2 pickles use, and numpy 2's renamed core. */
const MODULE_ALIASES: ReadonlyMap<string, string> = new Map([
  ['__builtin__', 'builtins'], ['copy_reg', 'copyreg'], ['numpy._core.multiarray', 'numpy.core.multiarray'],
  ['numpy._core.numeric', 'numpy.core.numeric'],
]);

/** Resolve a GLOBAL; null when it is not on the whitelist. */
export function resolveGlobal(module: string, name: string): PyGlobal | null {
  const mod = MODULE_ALIASES.get(module) ?? module;
  const q = `${mod}.${name}`;
  if (CALLABLE.has(q) || MARKERS.has(q)) return new PyGlobal(mod, name);
  if (mod === 'torch' && STORAGE_DTYPES.has(name)) return new PyGlobal(mod, name);
  return null;
}

function int(v: VmValue | undefined, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new GlobalError(`${what} must be an int, got ${pyTypeName(v)}`);
}

function intTuple(v: VmValue | undefined, what: string): number[] {
  const items = v === undefined ? null : tupleItems(v);
  if (items === null) throw new GlobalError(`${what} must be a tuple, got ${pyTypeName(v)}`);
  return items.map((x, i) => int(x, `${what}[${i}]`));
}

function py(v: VmValue | undefined, what: string): PyValue {
  return toPy(v ?? null, what);
}

function listItems(v: VmValue | undefined, what: string): readonly VmValue[] {
  if (Array.isArray(v)) return v;
  const t = v === undefined ? null : tupleItems(v);
  if (t === null) throw new GlobalError(`${what} must be a list or tuple, got ${pyTypeName(v)}`);
  return t;
}

function rebuildTensor(args: readonly VmValue[]): PyValue {
  const st = args[0];
  if (!(st instanceof StorageRef)) throw new GlobalError(`tensor storage must be a persistent storage, got ${pyTypeName(st)}`);
  return rawTensorFromView(st.bytes, st.dtype, int(args[1], 'storage_offset'), intTuple(args[2], 'size'),
    intTuple(args[3], 'stride'));
}

function asKey(k: PyValue): PyKey {
  if (typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint') return k;
  throw new GlobalError(`unsupported dict key of type ${pyTypeName(k)}`);
}

function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new GlobalError('_codecs.encode: character outside latin-1');
    b[i] = c;
  }
  return b;
}

function npDtype(v: VmValue | undefined): DType {
  if (!(v instanceof NpDtype)) throw new GlobalError(`expected a numpy dtype, got ${pyTypeName(v)}`);
  const d = NUMPY_DTYPES.get(v.descr);
  if (d === undefined) throw new GlobalError(`unsupported numpy dtype '${v.descr}'`);
  if (v.byteorder === '>') throw new GlobalError(`big-endian numpy data ('>${v.descr}') is not supported`);
  return d;
}

function npScalar(dtype: DType, b: Uint8Array): PyValue {
  if (b.byteLength !== ITEMSIZE[dtype]) throw new GlobalError(`numpy ${dtype} scalar has ${b.byteLength} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (dtype) {
    case 'float64': return v.getFloat64(0, true);
    case 'float32': return v.getFloat32(0, true);
    case 'int64': {
      const x = v.getBigInt64(0, true);
      return x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
    }
    case 'int32': return v.getInt32(0, true);
    case 'int16': return v.getInt16(0, true);
    case 'int8': return v.getInt8(0);
    case 'uint8': return v.getUint8(0);
    case 'bool': return v.getUint8(0) !== 0;
    default: throw new GlobalError(`unsupported numpy scalar type ${dtype}`);
  }
}

function numpyArray(raw: Uint8Array, dtype: DType, shape: number[], fortran: boolean): RawTensor {
  const strides = fortran ? contiguousStrides([...shape].reverse()).reverse() : contiguousStrides(shape);
  const aligned = raw.byteOffset % ITEMSIZE[dtype] === 0 ? raw : raw.slice();
  return rawTensorFromView(aligned, dtype, 0, shape, strides);
}

/** REDUCE / NEWOBJ: apply a whitelisted global to its arguments. */
export function callGlobal(g: PyGlobal, args: readonly VmValue[]): VmValue {
  switch (g.qualname) {
    case 'collections.OrderedDict': {
      const d = new PyDict(undefined, true);
      if (args[0] !== undefined) {
        for (const pair of listItems(args[0], 'OrderedDict items')) {
          const kv = tupleItems(pair);
          if (kv === null || kv.length !== 2) throw new GlobalError('OrderedDict items must be (key, value) pairs');
          d.set(asKey(py(kv[0], 'key')), py(kv[1], 'value'));
        }
      }
      return d;
    }
    case 'builtins.set': case 'builtins.frozenset':
      return new Set((args[0] === undefined ? [] : listItems(args[0], g.name)).map((x) => asKey(py(x, g.name))));
    case 'builtins.bytes': case 'builtins.bytearray': {
      const a = args[0];
      if (a === undefined) return new Uint8Array(0);
      if (a instanceof Uint8Array) return a;
      return Uint8Array.from(listItems(a, g.name).map((x) => int(x, g.name)));
    }
    case '_codecs.encode': {
      if (typeof args[0] !== 'string') throw new GlobalError('_codecs.encode expects a str');
      if (args[1] !== 'latin1' && args[1] !== 'latin-1') throw new GlobalError(`_codecs.encode: unsupported encoding ${String(args[1])}`);
      return latin1(args[0]);
    }
    case 'torch._utils._rebuild_tensor_v2': case 'torch._utils._rebuild_tensor':
      return rebuildTensor(args);
    case 'torch._utils._rebuild_parameter': case 'torch._utils._rebuild_parameter_with_state': {
      if (!isRawTensor(args[0])) throw new GlobalError(`parameter data must be a tensor, got ${pyTypeName(args[0])}`);
      return args[0];
    }
    case 'torch._tensor._rebuild_from_type_v2': {
      const [fn, type, inner, state] = args;
      if (!(type instanceof PyGlobal) || !MARKERS.has(type.qualname) || type.name === 'ndarray') {
        throw new GlobalError(`tensor subclass ${type instanceof PyGlobal ? type.qualname : pyTypeName(type)} is not supported`);
      }
      if (!(state === null || state === undefined || (state instanceof PyDict && state.size === 0))) {
        throw new GlobalError('tensors with Python attributes (non-empty __dict__) are not supported');
      }
      const innerArgs = inner === undefined ? null : tupleItems(inner);
      if (!(fn instanceof PyGlobal) || innerArgs === null) throw new GlobalError('malformed _rebuild_from_type_v2 call');
      return callGlobal(fn, innerArgs);
    }
    case 'torch.device': {
      const t = args[0];
      if (typeof t !== 'string') throw new GlobalError('torch.device expects a str');
      return args[1] === undefined || args[1] === null ? t : `${t}:${int(args[1], 'device index')}`;
    }
    case 'torch.Size':
      return new PyTuple(intTuple(args[0] ?? new PyTuple([]), 'torch.Size'));
    case 'numpy.dtype': {
      if (typeof args[0] !== 'string') throw new GlobalError('numpy.dtype expects a str');
      return new NpDtype(args[0]);
    }
    case 'numpy.core.multiarray.scalar': {
      const b = args[1];
      if (!(b instanceof Uint8Array)) throw new GlobalError('numpy scalar payload must be bytes');
      return npScalar(npDtype(args[0]), b);
    }
    case 'numpy.core.multiarray._reconstruct': {
      const cls = args[0];
      if (!(cls instanceof PyGlobal) || cls.qualname !== 'numpy.ndarray') {
        throw new GlobalError(`numpy subclass ${cls instanceof PyGlobal ? cls.qualname : pyTypeName(cls)} is not supported`);
      }
      return new NpArray();
    }
    case 'numpy.core.numeric._frombuffer': { // protocol 5 arrays: (buffer, dtype, shape, order)
      const [buf, dt, shape, order] = args;
      if (!(buf instanceof Uint8Array)) throw new GlobalError('numpy buffer must be bytes (out-of-band buffers are not supported)');
      return numpyArray(buf, npDtype(dt), intTuple(shape, 'numpy shape'), order === 'F');
    }
    default:
      throw new GlobalError(`${g.qualname} cannot be called`);
  }
}

/** BUILD: set the state of an object made by REDUCE / NEWOBJ. */
export function buildObject(target: VmValue, state: VmValue): void {
  if (target instanceof PyDict) {
    // PyTorch's state_dict carries {'_metadata': OrderedDict(...)} this way.
    const items = tupleItems(state);
    const dictState = items !== null ? items[0] : state; // (dict_state, slots_state) form
    if (!(dictState instanceof PyDict)) throw new GlobalError(`cannot BUILD a dict with ${pyTypeName(dictState)} state`);
    target.attrs ??= new Map();
    for (const [k, v] of dictState) target.attrs.set(String(k), v);
    return;
  }
  if (target instanceof NpDtype) {
    const items = tupleItems(state);
    const order = items?.[1];
    if (typeof order === 'string') target.byteorder = order;
    return;
  }
  if (target instanceof NpArray) {
    const s = tupleItems(state);
    if (s === null || s.length < 5) throw new GlobalError('malformed numpy array state');
    const shape = intTuple(s[1], 'numpy shape');
    const dtype = npDtype(s[2]);
    const fortran = s[3] === true;
    const raw = s[4];
    if (!(raw instanceof Uint8Array)) throw new GlobalError('numpy arrays of Python objects are not supported');
    target.tensor = numpyArray(raw, dtype, shape, fortran);
    return;
  }
  throw new GlobalError(`cannot BUILD (set state of) a ${pyTypeName(target)} value`);
}

