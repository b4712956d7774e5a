/** Adam and AdamW with PyTorch 1.13's update rule (single-tensor path), bit-for-bit in float32. */
import type { Tensor } from '../engine/tensor.js';
import { zerosLike } from '../engine/creation.js';
import { Optimizer, type ParamState } from './optimizer.js';
import { MisfmError } from '../util/errors.js';

export interface AdamOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number; }

export class Adam extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** AdamW applies decoupled decay instead of adding wd*param to the gradient. */
  protected readonly decoupled: boolean = false;

  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3);
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
    for (const b of this.betas) if (!(b >= 0 && b < 1)) throw new MisfmError('ARGUMENT', `Adam betas must be in [0, 1), got ${this.betas}`);
  }

  protected hyper(): Record<string, number | boolean | number[]> {
    return { betas: this.betas, eps: this.eps, weight_decay: this.weightDecay, amsgrad: false, maximize: false };
  }

  protected updateParam(p: Tensor, grad: Tensor, s: ParamState): void {
    const [b1, b2] = this.betas;
    const step = (typeof s['step'] === 'number' ? s['step'] : 0) + 1;
    s['step'] = step;
    const m = (s['exp_avg'] as Tensor | undefined) ?? this.keepState(s, 'exp_avg', zerosLike(p));
    const v = (s['exp_avg_sq'] as Tensor | undefined) ?? this.keepState(s, 'exp_avg_sq', zerosLike(p));
    let g = grad;
    if (this.weightDecay !== 0) {
      if (this.decoupled) p.mul_(1 - this.lr * this.weightDecay);
      else g = grad.add(p, this.weightDecay);
    }
    m.mul_(b1).add_(g, 1 - b1);
    v.mul_(b2).addcmul_(g, g, 1 - b2);
    const bc1 = 1 - b1 ** step;
    const bc2Sqrt = Math.sqrt(1 - b2 ** step);
    const denom = v.sqrt().div_(bc2Sqrt).add_(this.eps);
    p.addcdiv_(m, denom, -this.lr / bc1);
  }
}

export class AdamW extends Adam {
  protected override readonly decoupled = true;
  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, { ...o, weightDecay: o.weightDecay ?? 1e-2 });
  }
}
