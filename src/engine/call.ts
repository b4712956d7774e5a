/**
 * Calls ATen ops by name through the addon. Op ids are looked up once and cached. Tensor arguments
 * are unwrapped to handles and tensor results wrapped; a libtorch error becomes a MisfmError that
 * names the op and the shapes of its tensor arguments.
 */
import { native, type Handle } from './native.js';
import { MisfmError, fmtShape } from '../util/errors.js';
import { Tensor } from './tensor.js';

const ids = new Map<string, number>();

/** Integer id of `aten::<name>[.<overload>]`, e.g. `opId('add.Tensor')`. */
export function opId(qualified: string): number {
  let id = ids.get(qualified);
  if (id === undefined) {
    const dot = qualified.indexOf('.');
    const name = dot < 0 ? qualified : qualified.slice(0, dot);
    const overload = dot < 0 ? '' : qualified.slice(dot + 1);
    id = native().opId(`aten::${name}`, overload);
    ids.set(qualified, id);
  }
  return id;
}

/** The schema string of an op, for docs and error messages. */
export function opSchema(qualified: string): string {
  return native().opSchema(opId(qualified));
}

function unwrapArg(a: unknown): unknown {
  if (a instanceof Tensor) return a.handle;
  if (Array.isArray(a) && a.length > 0 && a.some((x) => x instanceof Tensor)) return a.map((x) => (x instanceof Tensor ? x.handle : x));
  return a;
}

function isHandle(v: unknown): v is Handle {
  // napi Externals are objects with a null prototype and no own keys.
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === null;
}

function wrapResult(v: unknown): unknown {
  if (isHandle(v)) return new Tensor(v);
  if (Array.isArray(v)) return v.map(wrapResult);
  return v;
}

function describeArgs(args: readonly unknown[]): string {
  const parts: string[] = [];
  for (const a of args) {
    if (a instanceof Tensor) parts.push(a.isDisposed ? '<disposed>' : `${fmtShape(a.shape)} ${a.dtype}`);
    else if (Array.isArray(a) && a.some((x) => x instanceof Tensor)) parts.push(`[${a.map((x) => (x instanceof Tensor ? fmtShape(x.shape) : String(x))).join(', ')}]`);
    else if (a === undefined) continue;
    else parts.push(JSON.stringify(a) ?? String(a));
  }
  return parts.join(', ');
}

/** Call an ATen op. `undefined` arguments take the schema default. */
export function callOp(qualified: string, args: readonly unknown[]): unknown {
  const id = opId(qualified);
  let raw: unknown;
  try {
    raw = native().call(id, args.map(unwrapArg));
  } catch (err) {
    const msg = (err as Error).message;
    const code = /disposed/.test(msg) ? 'DISPOSED' : /shape|size|dimension|match|expected|channels|must be/i.test(msg) ? 'SHAPE' : 'NATIVE';
    throw new MisfmError(code, `${msg.startsWith('aten::') ? msg : `aten::${qualified}: ${msg}`} (arguments: ${describeArgs(args)})`, { cause: err });
  }
  return wrapResult(raw);
}

/** callOp for ops returning one tensor. */
export function call1(qualified: string, args: readonly unknown[]): Tensor {
  return callOp(qualified, args) as Tensor;
}
