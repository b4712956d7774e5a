/** Containers: children are registered as "0", "1", ... like torch.nn.Sequential / ModuleList. */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { MisfmError } from '../../util/errors.js';

/** A module with a single-tensor forward. */
export interface UnaryModule extends Module { forward(x: Tensor): Tensor; }

/**
 * Runs children in order. Intermediate tensors are disposed as soon as the next layer has consumed
 * them (autograd keeps what it needs natively), so a long chain holds one activation in JS at a time.
 */
export class Sequential extends Module {
  readonly layers: UnaryModule[];
  constructor(...layers: (UnaryModule | null)[]) {
    super();
    this.layers = [];
    // Index keys follow PyTorch even when a position holds a parameter-free layer.
    layers.forEach((m, i) => { if (m !== null) this.layers.push(this.registerModule(String(i), m)); });
  }
  forward(x: Tensor): Tensor {
    let cur = x;
    for (const layer of this.layers) {
      const next = layer.forward(cur);
      if (cur !== x) cur.dispose();
      cur = next;
    }
    return cur === x ? x.view(x.shape) : cur;
  }
  at(i: number): UnaryModule {
    const m = this.layers[i];
    if (m === undefined) throw new MisfmError('ARGUMENT', `Sequential index ${i} out of range (${this.layers.length} layers)`);
    return m;
  }
}

export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.append(m);
  }
  append(m: M): this {
    this.items.push(this.registerModule(String(this.items.length), m));
    return this;
  }
  get length(): number { return this.items.length; }
  at(i: number): M {
    const m = this.items[i];
    if (m === undefined) throw new MisfmError('ARGUMENT', `ModuleList index ${i} out of range (${this.items.length} items)`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> { return this.items[Symbol.iterator](); }
}
