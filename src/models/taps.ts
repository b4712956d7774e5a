/**
 * Activation taps: a way to observe intermediate activations of a forward pass (parity checks,
 * debugging, feature extraction) without forward hooks on every module.
 *
 * A model calls `tap(module, tensor)` at the points it exposes. Unless a forward runs inside
 * `withTaps(fn, ...)`, that is one null check. The callback receives the live tensor under the
 * module's dotted path in the model (e.g. `pyramid_ct.convtrans_e2.trans.blocks.0`); the tensor is
 * disposed after the callback returns, so copy what you need (`t.dataF32()`, or `keep(t.clone())`).
 */
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';

/** Receives (module path, activation). */
export type TapFn = (name: string, t: Tensor) => void;

let active: TapFn | null = null;
const names = new WeakMap<Module, string>();

/** Record the dotted path of every module under `root`, so taps can name them. */
export function registerTapNames(root: Module): void {
  for (const [p, m] of root.namedModules()) names.set(m, p);
}

/** Report `t` as the output of `m` if a tap is active; returns `t`. */
export function tap(m: Module, t: Tensor): Tensor {
  if (active !== null) active(names.get(m) ?? m.constructor.name, t);
  return t;
}

/** Report `t` under `<path of m>.<suffix>` (for values that are not a module's output). */
export function tapAs(m: Module, suffix: string, t: Tensor): Tensor {
  if (active !== null) active(`${names.get(m) ?? m.constructor.name}.${suffix}`, t);
  return t;
}

/** Run fn with `fn` taps active (nesting restores the outer tap). */
export function withTaps<T>(tapFn: TapFn | undefined, fn: () => T): T {
  if (tapFn === undefined) return fn();
  const prev = active;
  active = tapFn;
  try { return fn(); } finally { active = prev; }
}
