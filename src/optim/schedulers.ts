/**
 * Learning-rate schedules in closed form. `step()` advances one unit: what a unit is (an iteration,
 * or a validation round as PyMIC does) is the trainer's choice and is recorded in its config.
 */
import type { Optimizer } from './optimizer.js';
import { MisfmError } from '../util/errors.js';

export abstract class LRScheduler {
  /** Number of step() calls so far. */
  lastEpoch = 0;
  // Every schedule starts at the base rate; lrAt() cannot be called here (subclass fields are not set yet).
  constructor(protected readonly optimizer: Optimizer) { optimizer.lr = optimizer.initialLr; }
  protected get baseLr(): number { return this.optimizer.initialLr; }
  /** Learning rate after `t` steps. */
  abstract lrAt(t: number): number;
  step(): void {
    this.lastEpoch++;
    this.optimizer.lr = this.lrAt(this.lastEpoch);
  }
  stateDict(): { last_epoch: number } { return { last_epoch: this.lastEpoch }; }
  loadStateDict(s: { last_epoch: number }): void {
    this.lastEpoch = s.last_epoch;
    this.optimizer.lr = this.lrAt(this.lastEpoch);
  }
}

export class StepLR extends LRScheduler {
  constructor(opt: Optimizer, readonly stepSize: number, readonly gamma = 0.1) {
    if (!(stepSize >= 1)) throw new MisfmError('CONFIG', `StepLR step size must be >= 1, got ${stepSize}`);
    super(opt);
  }
  lrAt(t: number): number { return this.baseLr * this.gamma ** Math.floor(t / this.stepSize); }
}

export class MultiStepLR extends LRScheduler {
  constructor(opt: Optimizer, readonly milestones: number[], readonly gamma = 0.1) { super(opt); }
  lrAt(t: number): number { return this.baseLr * this.gamma ** this.milestones.filter((m) => m <= t).length; }
}

/** lr = base * (1 - min(t, total)/total)^power (torch.optim.lr_scheduler.PolynomialLR). */
export class PolynomialLR extends LRScheduler {
  constructor(opt: Optimizer, readonly totalIters: number, readonly power = 1) {
    if (!(totalIters >= 1)) throw new MisfmError('CONFIG', `PolynomialLR total iterations must be >= 1, got ${totalIters}`);
    super(opt);
  }
  lrAt(t: number): number { return this.baseLr * (1 - Math.min(t, this.totalIters) / this.totalIters) ** this.power; }
}

export class CosineAnnealingLR extends LRScheduler {
  constructor(opt: Optimizer, readonly tMax: number, readonly etaMin = 0) { super(opt); }
  lrAt(t: number): number { return this.etaMin + (this.baseLr - this.etaMin) * (1 + Math.cos(Math.PI * t / this.tMax)) / 2; }
}

export class ConstantLR extends LRScheduler {
  lrAt(): number { return this.baseLr; }
}

/**
 * Linear warmup, then cosine decay: VoCo's `WarmupCosineSchedule` (a LambdaLR; the same file in
 * both VoCo repositories, after Hugging Face's). With w = warmup and T = total steps:
 *   t < w:  lr = base · t / max(1, w)                        (so the first update uses lr 0, as there)
 *   t ≥ w:  lr = base · max(0, ½ · (1 + cos(π · 2·cycles · (t − w) / max(1, T − w))))
 * With cycles = ½ (the default) it reaches 0 at T; past T it rises again (no clamp), as in the reference.
 */
export class WarmupCosineLR extends LRScheduler {
  constructor(opt: Optimizer, readonly warmup: number, readonly total: number, readonly cycles = 0.5) {
    if (!(Number.isInteger(warmup) && warmup >= 0)) throw new MisfmError('CONFIG', `warmup must be an integer >= 0 steps, got ${warmup}`);
    if (!(Number.isInteger(total) && total >= 1)) throw new MisfmError('CONFIG', `total steps must be an integer >= 1, got ${total}`);
    super(opt);
    // LambdaLR applies the multiplier of step 0 at construction (0 during a warmup).
    opt.lr = this.lrAt(0);
  }
  lrAt(t: number): number {
    if (t < this.warmup) return this.baseLr * t / Math.max(1, this.warmup);
    const progress = (t - this.warmup) / Math.max(1, this.total - this.warmup);
    return this.baseLr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * this.cycles * 2 * progress)));
  }
}
