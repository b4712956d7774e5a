/** Normalisation layers with PyTorch's parameter/buffer names and defaults (eps 1e-5, momentum 0.1). */
import { Module } from '../module.js';
import type { Tensor } from '../../engine/tensor.js';
import { ones, zeros, scalar, noGrad } from '../../engine/creation.js';
import * as F from '../../engine/functional.js';
import { MisfmError, ShapeError, fmtShape } from '../../util/errors.js';
import { isRecomputing } from '../../engine/checkpoint.js';
import { syncBatchNorm, type StatsReducer } from './sync-batch-norm.js';

export interface BatchNormOptions { eps?: number; momentum?: number; affine?: boolean; trackRunningStats?: boolean; }

abstract class BatchNormNd extends Module {
  readonly eps: number;
  readonly momentum: number;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  numBatchesTracked: Tensor | null;
  /** Set by nn/fuse.ts when the preceding conv absorbed this BN: forward is then the identity (eval only). */
  folded = false;
  /**
   * Set by a data-parallel run with SyncBatchNorm on: in training, batch statistics are summed over
   * all processes through it (see sync-batch-norm.ts). Null: per-process statistics (PyTorch's default).
   */
  statsReducer: StatsReducer | null = null;
  constructor(readonly numFeatures: number, private readonly rank: number, o: BatchNormOptions) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum ?? 0.1;
    const affine = o.affine ?? true;
    this.weight = this.registerParameter('weight', affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numFeatures]) : null);
    const track = o.trackRunningStats ?? true;
    this.runningMean = this.registerBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.runningVar = this.registerBuffer('running_var', track ? ones([numFeatures]) : null);
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', track ? scalar(0, { dtype: 'int64' }) : null);
  }
  forward(x: Tensor): Tensor {
    if (x.ndim !== this.rank) throw new ShapeError(this.constructor.name, `expected rank ${this.rank} input, got ${fmtShape(x.shape)}`);
    if (this.folded) {
      if (this.training) throw new MisfmError('ARGUMENT', `${this.constructor.name} was folded into its convolution for inference and cannot train; load the model again`);
      return x.view(x.shape);
    }
    const useBatchStats = this.training || this.runningMean === null;
    // A checkpoint recompute replays a forward that already updated the running statistics.
    const update = this.training && !isRecomputing();
    if (update && this.numBatchesTracked !== null) {
      const n = this.numBatchesTracked;
      noGrad(() => n.add_(1));
    }
    if (this.training && this.statsReducer !== null) {
      return syncBatchNorm(x, { weight: this.weight, bias: this.bias, runningMean: this.runningMean, runningVar: this.runningVar,
        momentum: this.momentum, eps: this.eps, update }, this.statsReducer);
    }
    return F.batchNorm(x, update || !this.training ? this.runningMean : null, update || !this.training ? this.runningVar : null, {
      weight: this.weight, bias: this.bias, training: useBatchStats, momentum: this.momentum, eps: this.eps,
    });
  }
  protected override extraRepr(): string { return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum}`; }
}

export class BatchNorm3d extends BatchNormNd {
  constructor(numFeatures: number, o: BatchNormOptions = {}) { super(numFeatures, 5, o); }
}
export class BatchNorm2d extends BatchNormNd {
  constructor(numFeatures: number, o: BatchNormOptions = {}) { super(numFeatures, 4, o); }
}
/** BatchNorm1d on [N, C] (e.g. VoCo's projector, affine=false and no running statistics: batch statistics always). */
export class BatchNorm1d extends BatchNormNd {
  constructor(numFeatures: number, o: BatchNormOptions = {}) { super(numFeatures, 2, o); }
}

/** InstanceNorm3d; PyTorch's default is affine=false, no running stats. */
export class InstanceNorm3d extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  constructor(readonly numFeatures: number, readonly o: { eps?: number; affine?: boolean } = {}) {
    super();
    const affine = o.affine ?? false;
    this.weight = this.registerParameter('weight', affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numFeatures]) : null);
  }
  forward(x: Tensor): Tensor {
    if (x.ndim !== 5) throw new ShapeError('InstanceNorm3d', `expected rank 5 input, got ${fmtShape(x.shape)}`);
    return F.instanceNorm(x, { weight: this.weight, bias: this.bias, eps: this.o.eps ?? 1e-5 });
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], readonly eps = 1e-5) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    this.weight = this.registerParameter('weight', ones(this.normalizedShape));
    this.bias = this.registerParameter('bias', zeros(this.normalizedShape));
  }
  forward(x: Tensor): Tensor { return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps); }
  protected override extraRepr(): string { return `[${this.normalizedShape}], eps=${this.eps}`; }
}
