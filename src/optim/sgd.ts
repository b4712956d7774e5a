/** SGD with momentum, dampening, Nesterov and L2 weight decay (PyTorch semantics). */
import type { Tensor } from '../engine/tensor.js';
import { Optimizer, type ParamState } from './optimizer.js';

export interface SGDOptions { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean; }

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  constructor(params: Tensor[], o: SGDOptions) {
    super(params, o.lr);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.weightDecay = o.weightDecay ?? 0;
    this.nesterov = o.nesterov ?? false;
  }
  protected hyper(): Record<string, number | boolean | number[]> {
    return { momentum: this.momentum, dampening: this.dampening, weight_decay: this.weightDecay, nesterov: this.nesterov, maximize: false };
  }
  protected updateParam(p: Tensor, grad: Tensor, s: ParamState): void {
    let d = this.weightDecay !== 0 ? grad.add(p, this.weightDecay) : grad;
    if (this.momentum !== 0) {
      let buf = s['momentum_buffer'] as Tensor | undefined;
      if (buf === undefined) buf = this.keepState(s, 'momentum_buffer', d.clone());
      else buf.mul_(this.momentum).add_(d, 1 - this.dampening);
      d = this.nesterov ? d.add(buf, this.momentum) : buf;
    }
    p.add_(d, -this.lr);
  }
}
