/**
 * Optimizer base: one parameter group (what MIS-FM/PyMIC use), per-parameter state tensors kept
 * out of tidy() scopes, and a state dict in PyTorch's layout
 * ({state: {index: {...}}, param_groups: [{lr, ..., params: [indices]}]}) so resume is exact.
 */
import type { Tensor } from '../engine/tensor.js';
import { keep, tidy } from '../engine/scope.js';
import { noGrad } from '../engine/creation.js';
import { MisfmError } from '../util/errors.js';

export type ParamState = Record<string, Tensor | number>;

export interface OptimizerStateDict {
  state: Map<number, ParamState>;
  paramGroups: Record<string, number | boolean | number[]>[];
}

export abstract class Optimizer {
  /** Current learning rate (schedulers write it). */
  lr: number;
  readonly initialLr: number;
  protected readonly state = new Map<number, ParamState>();

  constructor(readonly params: Tensor[], lr: number) {
    if (!(lr >= 0)) throw new MisfmError('ARGUMENT', `learning rate must be >= 0, got ${lr}`);
    this.lr = lr;
    this.initialLr = lr;
  }

  /** Hyper-parameters as PyTorch's param_group (without lr and params). */
  protected abstract hyper(): Record<string, number | boolean | number[]>;
  protected abstract updateParam(p: Tensor, grad: Tensor, state: ParamState, index: number): void;

  /** Apply one update to every parameter that has a gradient. */
  step(): void {
    noGrad(() => {
      this.params.forEach((p, i) => {
        tidy(() => {
          const g = p.grad;
          if (g === null) return;
          let s = this.state.get(i);
          if (s === undefined) { s = {}; this.state.set(i, s); }
          this.updateParam(p, g, s, i);
        });
      });
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  /** @internal Store a state tensor so tidy() scopes leave it alone. */
  protected keepState(s: ParamState, key: string, t: Tensor): Tensor {
    const old = s[key];
    if (typeof old === 'object' && old !== t) old.dispose();
    s[key] = keep(t);
    return t;
  }

  stateDict(): OptimizerStateDict {
    return {
      state: new Map([...this.state].map(([i, s]) => [i, { ...s }])),
      paramGroups: [{ lr: this.lr, initial_lr: this.initialLr, ...this.hyper(), params: this.params.map((_, i) => i) }],
    };
  }

  /** Restore state (tensors are copied in; the source may be disposed afterwards). */
  loadStateDict(sd: OptimizerStateDict): void {
    const g = sd.paramGroups[0];
    if (g === undefined || sd.paramGroups.length !== 1) throw new MisfmError('CHECKPOINT', `optimizer state has ${sd.paramGroups.length} parameter groups, expected 1`);
    const ids = g['params'];
    if (!Array.isArray(ids) || ids.length !== this.params.length) {
      throw new MisfmError('CHECKPOINT', `optimizer state is for ${Array.isArray(ids) ? ids.length : '?'} parameters, the model has ${this.params.length}`);
    }
    if (typeof g['lr'] === 'number') this.lr = g['lr'];
    for (const s of this.state.values()) for (const v of Object.values(s)) if (typeof v === 'object') v.dispose();
    this.state.clear();
    for (const [i, s] of sd.state) {
      const own: ParamState = {};
      for (const [k, v] of Object.entries(s)) own[k] = typeof v === 'number' ? v : keep(v.clone());
      this.state.set(i, own);
    }
  }

  /** Free the state tensors. */
  dispose(): void {
    for (const s of this.state.values()) for (const v of Object.values(s)) if (typeof v === 'object') v.dispose();
    this.state.clear();
  }
}
