/**
 * Adam and AdamW with PyTorch 1.13's update rule (single-tensor path), bit-for-bit in float32,
 * including the AMSGrad variant (VoCo pretrains with `AdamW(amsgrad=True)`).
 */
import type { Tensor } from '../engine/tensor.js';
import { zerosLike } from '../engine/creation.js';
import { Optimizer, type OptimizerStateDict, type ParamState } from './optimizer.js';
import { MisfmError } from '../util/errors.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** AMSGrad: normalise by the running maximum of the second moment (state key `max_exp_avg_sq`). */
  amsgrad?: boolean;
}

export class Adam extends Optimizer {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  /** AdamW applies decoupled decay instead of adding wd*param to the gradient. */
  protected readonly decoupled: boolean = false;

  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3);
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
    this.amsgrad = o.amsgrad ?? false;
    for (const b of this.betas) if (!(b >= 0 && b < 1)) throw new MisfmError('ARGUMENT', `Adam betas must be in [0, 1), got ${this.betas}`);
  }

  protected hyper(): Record<string, number | boolean | number[]> {
    return { betas: this.betas, eps: this.eps, weight_decay: this.weightDecay, amsgrad: this.amsgrad, maximize: false };
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
    let vHat = v;
    if (this.amsgrad) {
      // torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq); a fresh state starts at zeros.
      const vMax = (s['max_exp_avg_sq'] as Tensor | undefined) ?? this.keepState(s, 'max_exp_avg_sq', zerosLike(p));
      vMax.copy_(vMax.maximum(v));
      vHat = vMax;
    }
    const denom = vHat.sqrt().div_(bc2Sqrt).add_(this.eps);
    p.addcdiv_(m, denom, -this.lr / bc1);
  }

  /**
   * A state saved with the other AMSGrad setting cannot continue this run exactly (PyTorch fails
   * later with a KeyError on `max_exp_avg_sq`, or ignores the saved maxima): refuse it here.
   */
  override loadStateDict(sd: OptimizerStateDict): void {
    const flag = sd.paramGroups[0]?.['amsgrad'];
    const states = [...sd.state.values()];
    const saved = typeof flag === 'boolean' ? flag : states.some((s) => 'max_exp_avg_sq' in s);
    const show = (b: boolean): string => (b ? 'True' : 'False');
    if (saved !== this.amsgrad) {
      throw new MisfmError('CHECKPOINT', `optimizer state was saved with amsgrad=${show(saved)}, this optimizer has amsgrad=${show(this.amsgrad)} (training.amsgrad)`);
    }
    if (this.amsgrad && states.some((s) => !('max_exp_avg_sq' in s))) throw new MisfmError('CHECKPOINT', 'optimizer state has amsgrad=True but lacks max_exp_avg_sq');
    super.loadStateDict(sd);
  }
}

export class AdamW extends Adam {
  protected override readonly decoupled = true;
  constructor(params: Tensor[], o: AdamOptions = {}) {
    super(params, { ...o, weightDecay: o.weightDecay ?? 1e-2 });
  }
}
