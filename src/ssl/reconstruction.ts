/**
 * What the reconstruction pretext methods (Patch Swapping, Model Genesis, masked image modelling)
 * share: the network restores the uncorrupted crop from a corrupted one (PyMIC's
 * ReconstructionAgent: class_num 1, no deep supervision, an L1 loss on the activated output).
 *
 * A method supplies one pure function, `corrupt(crop) -> corrupted crop (+ optional voxel
 * weights)`, run per sample on flat (D, H, W) arrays with a generator forked from (seed, sample
 * index), so batches are reproducible and resume from the loader's position like Volume Fusion's.
 * The rest is here: the stream of (corrupted, original) batches, the loss and the validation
 * metric on a fixed, seeded set of corrupted crops of held-out scans.
 */
import { Loader, type LoaderOptions, type LoaderState } from '../data/loader.js';
import { fromTypedArray, noGrad } from '../engine/creation.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import type { Batch, StepLoss, TrainableModel, ValidationResult } from '../train/trainer.js';
import { MisfmError, ShapeError, fmtShape } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { PretextContext, PretextMethod, PretextTask } from './methods.js';
import type { PretrainMethod, RunConfig } from '../config/types.js';

/** (D, H, W). */
export type Shape3 = readonly [number, number, number];

/** A corrupted crop; `weight` (optional) weights each voxel in the loss, e.g. the MIM mask. */
export interface Corrupted { image: Float32Array; weight?: Float32Array }

/** Corrupt one crop (never modified) of `shape` with the draws of `rng`. */
export type Corrupt = (crop: Float32Array, shape: Shape3, rng: Rng) => Corrupted;

/** Activation applied to the network output before the loss and the metric. */
export type OutputActivation = 'tanh' | 'none';

export interface ReconstructionSpec {
  corrupt: Corrupt;
  /** PyMIC's loss_acti_func for the reconstruction demos is tanh (intensities in [-1, 1]). */
  activation: OutputActivation;
}

/** A batch in plain arrays: corrupted input, original target, optional weights; all [N,1,D,H,W]. */
export interface ReconArrays {
  shape: [number, number, number, number, number];
  image: Float32Array;
  target: Float32Array;
  weight: Float32Array | null;
}

export interface CorruptionStreamOptions {
  loader: LoaderOptions;
  spec: ReconstructionSpec;
  seed: number;
  resume?: LoaderState | null;
}

/** (corrupted, original) batches from the shared loader. */
export class CorruptionStream {
  private constructor(private readonly main: Loader, private readonly o: CorruptionStreamOptions) {}

  static async open(o: CorruptionStreamOptions): Promise<CorruptionStream> {
    const main = await Loader.open({ ...o.loader, mode: 'pretrain', seed: o.seed, startIndex: o.resume?.nextIndex ?? 0 });
    return new CorruptionStream(main, o);
  }

  state(): LoaderState { return this.main.state(); }

  async nextArrays(): Promise<ReconArrays> {
    const b = await this.main.nextBatch();
    if (b === undefined) throw new MisfmError('DATA', 'the data loader ended unexpectedly');
    const [n, c, d, h, w] = b.shape;
    if (c !== 1) throw new MisfmError('DATA', `reconstruction pretraining expects one-channel crops, got ${c} channels`);
    const vox = d * h * w;
    const image = new Float32Array(n * vox);
    let weight: Float32Array | null = null;
    for (let i = 0; i < n; i++) {
      const rng = new Rng(this.o.seed).fork(3).fork(b.samples[i]!.index);
      const r = this.o.spec.corrupt(b.image.subarray(i * vox, (i + 1) * vox), [d, h, w], rng);
      image.set(r.image, i * vox);
      if (r.weight !== undefined) {
        weight ??= new Float32Array(n * vox);
        weight.set(r.weight, i * vox);
      }
    }
    return { shape: [n, 1, d, h, w], image, target: b.image, weight };
  }

  close(): Promise<void> { return this.main.close(); }
}

/** Engine tensors for a batch (the trainer disposes them). */
export function reconToTensors(a: ReconArrays): Batch {
  return {
    image: fromTypedArray(a.image, a.shape),
    target: fromTypedArray(a.target, a.shape),
    ...(a.weight !== null ? { weight: fromTypedArray(a.weight, a.shape) } : {}),
  };
}

/** Smoothing of the weighted mean, as SimMIM's loss: Σ w·|e| / (Σ w + 1e-5). */
export const WEIGHT_EPS = 1e-5;

/**
 * L1 reconstruction loss: mean |act(pred) − target| (PyMIC MAELoss), or with `weight`
 * Σ w·|act(pred) − target| / (Σ w + 1e-5) (SimMIM's masked L1; the weight is the mask).
 */
export function reconstructionLoss(pred: Tensor, target: Tensor, activation: OutputActivation, weight?: Tensor): Tensor {
  const same = (a: Tensor): boolean => a.ndim === pred.ndim && a.shape.every((s, i) => s === pred.shape[i]);
  if (!same(target) || (weight !== undefined && !same(weight))) {
    throw new ShapeError('reconstructionLoss', `prediction ${fmtShape(pred.shape)}, target ${fmtShape(target.shape)}${weight !== undefined ? ` and weight ${fmtShape(weight.shape)}` : ''} must have one shape (a one-channel head restores a one-channel crop)`);
  }
  return tidy(() => {
    const p = activation === 'tanh' ? pred.tanh() : pred;
    const err = p.sub(target).abs();
    return weight === undefined ? err.mean() : err.mul(weight).sum().div(weight.sum().add(WEIGHT_EPS));
  });
}

/** The trainer's StepLoss for a method: the full-resolution output only (PyMIC has no deep supervision here). */
export function reconstructionStepLoss(activation: OutputActivation): StepLoss {
  return (outputs, batch) => reconstructionLoss(outputs[0]!, batch.target, activation, batch.weight);
}

/**
 * Validation: L1 (as the loss, weighted where the method weights) of the restored crops over the
 * fixed set, and the same error of the corrupted input itself (a network that copies its input):
 * `identityMae` is the floor to beat. score = −mae (higher is better; the best checkpoint is the
 * lowest validation loss, as PyMIC keeps it).
 */
export function reconstructionMetrics(model: TrainableModel, samples: readonly ReconArrays[], activation: OutputActivation): ValidationResult {
  let errSum = 0, sqSum = 0, idSum = 0, wSum = 0;
  for (const s of samples) {
    const out = noGrad(() => tidy(() => {
      const y = model.forward(fromTypedArray(s.image, s.shape));
      const p = Array.isArray(y) ? y[0]! : y;
      return (activation === 'tanh' ? p.tanh() : p).contiguous();
    }));
    if (out.shape.some((v, i) => v !== s.shape[i])) {
      const shape = fmtShape(out.shape);
      out.dispose();
      throw new ShapeError('reconstruction validation', `the network output ${shape} must have the crop's shape ${fmtShape(s.shape)} (model.classNum 1)`);
    }
    const p = out.data() as Float32Array;
    out.dispose();
    for (let i = 0; i < p.length; i++) {
      const w = s.weight === null ? 1 : s.weight[i]!;
      if (w === 0) continue;
      const e = p[i]! - s.target[i]!;
      errSum += w * Math.abs(e); sqSum += w * e * e; idSum += w * Math.abs(s.image[i]! - s.target[i]!); wSum += w;
    }
  }
  const mae = wSum > 0 ? errSum / wSum : 0;
  return { score: -mae, metrics: { mae, mse: wSum > 0 ? sqSum / wSum : 0, identityMae: wSum > 0 ? idSum / wSum : 0 } };
}

/** Build the task of a reconstruction method from its spec. */
export async function reconstructionTask(ctx: PretextContext, spec: ReconstructionSpec): Promise<PretextTask> {
  const cfg = ctx.config;
  if (cfg.model.inChannels !== 1) throw new MisfmError('CONFIG', `${cfg.ssl.method} pretraining restores one-channel crops: model.inChannels must be 1, got ${cfg.model.inChannels}`);
  if (spec.activation === 'tanh' && cfg.data.intensity.kind !== 'ct-window') {
    ctx.log(`note: ${cfg.ssl.method} restores through tanh, which assumes intensities in [-1, 1] as the CT window gives; data.intensity is '${cfg.data.intensity.kind}'`);
  }
  const base = ctx.loader;
  const valStream = await CorruptionStream.open({
    loader: { ...base, caseIds: ctx.validCases.length > 0 ? ctx.validCases : ctx.trainCases, numSamples: ctx.validSamples, batchSize: 1, workers: 1, flip: false },
    spec, seed: cfg.training.seed + 7919,
  });
  const validSet: ReconArrays[] = [];
  try { for (let i = 0; i < ctx.validSamples; i++) validSet.push(await valStream.nextArrays()); } finally { await valStream.close(); }
  return {
    makeSource: async (pos) => {
      const stream = await CorruptionStream.open({ loader: { ...base, caseIds: ctx.trainCases, ...(ctx.shard !== undefined ? { shard: ctx.shard } : {}) }, spec, seed: cfg.training.seed, resume: (pos as LoaderState | null) ?? null });
      return { next: async () => reconToTensors(await stream.nextArrays()), position: () => stream.state(), close: () => stream.close() };
    },
    validate: async (m) => reconstructionMetrics(m, validSet, spec.activation),
    loss: reconstructionStepLoss(spec.activation),
  };
}

/** A PretextMethod from a spec builder (the method's config section -> its corruption). */
export function reconstructionMethod(name: PretrainMethod, title: string, reference: string, build: (cfg: RunConfig) => ReconstructionSpec): PretextMethod {
  return { name, title, reference, setup: (ctx) => reconstructionTask(ctx, build(ctx.config)) };
}
