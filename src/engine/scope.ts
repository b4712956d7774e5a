/**
 * Deterministic memory management for native tensors, in the spirit of tf.tidy.
 *
 * Every tensor created while a scope is open is recorded in it. `tidy(fn)` disposes, when fn returns,
 * every tensor created inside except those it returns (found in arrays, plain objects and Maps) and
 * those passed to `keep()`. Returned tensors move to the enclosing scope. Tensors created outside any
 * scope are freed by dispose() or, as a fallback, by V8's GC (the addon reports their true size).
 */
import type { Tensor } from './tensor.js';

interface Scope { tensors: Tensor[]; }

const stack: Scope[] = [];
const kept = new WeakSet<Tensor>();

/** @internal Called by the Tensor constructor. */
export function track(t: Tensor): void {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.tensors.push(t);
}

/** Exempt a tensor from disposal by the enclosing tidy() scopes (e.g. optimizer state). */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if ((value as { __isTensor?: boolean }).__isTensor === true) { out.add(value as Tensor); return; }
  if (Array.isArray(value)) { for (const v of value) collect(v, out, depth + 1); return; }
  if (value instanceof Map) { for (const v of value.values()) collect(v, out, depth + 1); return; }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collect(v, out, depth + 1);
  }
}

/** Run fn and free every tensor it created except what it returns. fn must be synchronous. */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: [] };
  stack.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy(fn): fn must be synchronous (use explicit dispose() around awaits)');
  } catch (err) {
    stack.pop();
    for (const t of scope.tensors) if (!kept.has(t)) t.dispose();
    throw err;
  }
  stack.pop();
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = stack[stack.length - 1];
  for (const t of scope.tensors) {
    if (survivors.has(t)) { parent?.tensors.push(t); continue; }
    if (kept.has(t)) continue;
    t.dispose();
  }
  return result;
}

/** Dispose every tensor found in value (arrays, objects, Maps). */
export function dispose(value: unknown): void {
  const found = new Set<Tensor>();
  collect(value, found);
  for (const t of found) t.dispose();
}
