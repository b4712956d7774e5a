/**
 * The iteration-based training engine shared by self-supervised pretraining and fine-tuning.
 *
 * What differs between tasks comes in as a BatchSource (where batches come from), a Validator
 * (how a model is scored) and optionally a StepLoss (pretext tasks); everything else is here: optimisation, schedules (per iteration or per
 * validation round, as PyMIC), deep-supervised Dice+CE, gradient clipping, periodic validation with
 * best/latest checkpoints, early stopping, exact resume, SIGINT/SIGTERM handling, progress on a TTY
 * and JSON-lines metrics.
 */
import path from 'node:path';
import { mkdirSync, existsSync } from 'node:fs';
import type { Tensor } from '../engine/tensor.js';
import { tidy } from '../engine/scope.js';
import { liveTensors, noGrad, setNumThreads } from '../engine/creation.js';
import type { Module } from '../nn/module.js';
import { Adam, AdamW, SGD, type Optimizer } from '../optim/index.js';
import { StepLR, MultiStepLR, PolynomialLR, CosineAnnealingLR, ConstantLR, WarmupCosineLR, type LRScheduler } from '../optim/schedulers.js';
import { deepSupervisedLoss } from './losses.js';
import { saveTrainingCheckpoint, loadTrainingCheckpoint, restoreTraining, type LoadedTraining } from './state.js';
import { JsonlLogger } from '../util/jsonl.js';
import { Progress } from '../util/progress.js';
import type { RunConfig, TrainingConfig } from '../config/types.js';
import { MisfmError } from '../util/errors.js';
import { resolvePrecision, withPrecision } from '../engine/precision.js';
import { broadcastModule, enableSyncBatchNorm, GradientAverager } from '../distributed/data-parallel.js';
import { isMainRank, reduceSum, type DistributedContext } from '../distributed/context.js';

/** A network as the trainer sees it: one input, one output or a deep-supervision list. */
export interface TrainableModel extends Module {
  forward(x: Tensor): Tensor | Tensor[];
  /** Optional activation-checkpointed forward (PCT-Net): outputs, then backward() after loss.backward(). */
  forwardCheckpointed?(x: Tensor): { outputs: Tensor[]; backward(): void; dispose(): void };
}

/** One mini-batch. The trainer disposes the tensors after the step. */
export interface Batch {
  /** [N, C, D, H, W] float32 network input. */
  image: Tensor;
  /** [N, K, D, H, W] one-hot (or soft) float32 target; for reconstruction tasks the intensities to restore. */
  target: Tensor;
  /** Optional per-voxel loss weight (PyMIC's pixel_weight), e.g. the mask of masked image modelling. */
  weight?: Tensor;
}

/**
 * The loss of one step from the network outputs (full resolution first, at most as many as the
 * deep-supervision weights) and the batch. Default: deep-supervised Dice + CE (segmentation).
 */
export type StepLoss = (outputs: Tensor[], batch: Batch) => Tensor;

/** Where batches come from. Its position must make the rest of the sequence reproducible. */
export interface BatchSource {
  next(): Promise<Batch>;
  /** JSON-serialisable position of the next batch (saved in checkpoints). */
  position(): unknown;
  close(): Promise<void>;
}

export interface ValidationResult {
  score: number;
  metrics: Record<string, number>;
  /** Already combined over the ranks of a distributed run (else the trainer averages score and metrics). */
  reduced?: boolean;
}
/** Scores the model (called in eval mode, no grad); higher is better. */
export type Validator = (model: TrainableModel, dist?: DistributedContext) => Promise<ValidationResult>;

export interface TrainerOptions {
  model: TrainableModel;
  config: RunConfig;
  /** Builds the batch source, starting from a saved position when resuming (null: from the start). */
  makeSource: (position: unknown) => Promise<BatchSource>;
  validate?: Validator;
  /** The task's loss (a pretext task's reconstruction loss); default deep-supervised Dice + CE. */
  loss?: StepLoss;
  /**
   * The loss of one step computed by the task from the model and the batch, instead of
   * forward + loss: prompted networks (VISTA3D) need more than the image. Its intermediates are
   * freed with the step; the trainer runs backward and the optimizer step.
   */
  step?: (model: TrainableModel, batch: Batch) => Tensor;
  runDir: string;
  /** Resume from this misfm training checkpoint. */
  resumeFrom?: string;
  /** Stop after this iteration even if the budget is larger (tests: simulate an interruption). */
  stopAt?: number;
  /** Report lines (default: stderr through the progress bar). */
  quiet?: boolean;
  /**
   * Data-parallel run: parameters broadcast from rank 0, gradients averaged across ranks, only
   * rank 0 logs and writes checkpoints. The batch source must already be sharded.
   */
  distributed?: DistributedContext | null;
}

export interface TrainSummary {
  iterations: number;
  interrupted: boolean;
  earlyStopped: boolean;
  best: { score: number; iteration: number } | null;
  lastLoss: number;
  /** Mean fraction of wall time spent waiting for data. */
  dataWaitFraction: number;
  secondsPerIteration: number;
  checkpoints: { latest: string; best: string | null };
}

export function makeOptimizer(params: Tensor[], t: TrainingConfig): Optimizer {
  switch (t.optimizer) {
    case 'adam': return new Adam(params, { lr: t.lr, weightDecay: t.weightDecay, betas: t.betas, amsgrad: t.amsgrad });
    case 'adamw': return new AdamW(params, { lr: t.lr, weightDecay: t.weightDecay, betas: t.betas, amsgrad: t.amsgrad });
    case 'sgd': return new SGD(params, { lr: t.lr, momentum: t.momentum, weightDecay: t.weightDecay });
  }
}

/**
 * Schedules are configured in iterations. With unit 'validation' they advance once per validation
 * round (PyMIC: StepLR(lr_step / iter_valid), PolynomialLR(iter_max / iter_valid)).
 */
export function makeScheduler(opt: Optimizer, t: TrainingConfig): LRScheduler {
  const s = t.scheduler;
  const per = s.unit === 'validation' ? t.validEvery : 1;
  const units = (iters: number): number => Math.max(1, Math.round(iters / per));
  switch (s.kind) {
    case 'step': return new StepLR(opt, units(s.stepSize), s.gamma);
    case 'multistep': return new MultiStepLR(opt, s.milestones.map(units), s.gamma);
    case 'poly': return new PolynomialLR(opt, units(t.iterations), s.power);
    case 'cosine': return new CosineAnnealingLR(opt, units(t.iterations), s.minLr);
    case 'constant': return new ConstantLR(opt);
    case 'warmup-cosine': return new WarmupCosineLR(opt, s.warmup === 0 ? 0 : units(s.warmup), units(t.iterations));
  }
}

/** Scale gradients so that their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_). */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() => tidy(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
    if (grads.length === 0) return 0;
    let sq = 0;
    for (const g of grads) sq += g.pow(2).sum().item();
    const norm = Math.sqrt(sq);
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    return norm;
  }));
}

/**
 * Run (or resume) training. Returns when the budget is spent, early stopping triggers or a signal
 * arrives. Runs under training.precision (validation included).
 */
export function train(o: TrainerOptions): Promise<TrainSummary> {
  const { precision } = resolvePrecision(o.config.training.precision ?? 'fp32');
  return withPrecision(precision, () => trainAt(o));
}

async function trainAt(o: TrainerOptions): Promise<TrainSummary> {
  const { model, config } = o;
  const t = config.training;
  if (t.threads !== null) setNumThreads(t.threads);
  const ckptDir = path.join(o.runDir, 'checkpoints');
  mkdirSync(ckptDir, { recursive: true });
  const latestPath = path.join(ckptDir, 'latest.pt');
  const bestPath = path.join(ckptDir, 'best.pt');
  const dist = o.distributed ?? null;
  const main = isMainRank(dist);
  const params = model.parameters();
  const optimizer = makeOptimizer(params, t);
  const scheduler = makeScheduler(optimizer, t);

  let iteration = 0;
  let best: { score: number; iteration: number } | null = null;
  let history: unknown[] = [];
  let loaderPos: unknown = null;
  if (o.resumeFrom !== undefined) {
    const loaded: LoadedTraining = loadTrainingCheckpoint(o.resumeFrom);
    restoreTraining(loaded, { model, optimizer, scheduler }, o.resumeFrom);
    iteration = loaded.iteration;
    best = loaded.best;
    history = loaded.history;
    loaderPos = loaded.loader;
  }
  let averager: GradientAverager | null = null;
  let syncBn = 0;
  if (dist !== null) {
    // Every rank starts from rank 0's weights (as DDP's constructor does), resumed or not.
    await broadcastModule(dist.group, model);
    // Frozen parameters (VISTA3D's stages 3-4 freeze most of the network) take no part, as in DDP.
    averager = new GradientAverager(dist.group, params.filter((p) => p.requiresGrad), dist.bucketBytes);
    syncBn = t.syncBatchNorm ? enableSyncBatchNorm(dist.group, model) : 0;
  }
  const source = await o.makeSource(loaderPos);
  // Only rank 0 writes the log; the other ranks' logger is a sink that writes nothing.
  const log = main ? new JsonlLogger(path.join(o.runDir, 'metrics.jsonl')) : { log: (_r: Record<string, unknown>): void => undefined, close: (): void => undefined };
  if (o.resumeFrom !== undefined) log.log({ event: 'resume', iteration, from: o.resumeFrom });
  if (dist !== null) log.log({ event: 'distributed', iteration, worldSize: dist.worldSize, backend: dist.group.backend, buckets: averager!.buckets.length, syncBatchNorm: syncBn });
  const progress = new Progress({ total: t.iterations, label: config.task, ...(o.quiet === true ? { plainIntervalMs: 0 } : {}),
    ...(!main ? { stream: { isTTY: false, write: (): boolean => true } } : {}) });
  progress.update(iteration);

  let stop: 'signal' | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop !== null) process.exit(130); // second signal: the last checkpoint is intact
    stop = 'signal';
    process.stderr.write(`\n${sig}: finishing the current iteration and saving a checkpoint (again to quit now)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const save = (file: string): void => {
    if (!main) return;
    saveTrainingCheckpoint(file, { model, optimizer, scheduler, iteration, config, loader: source.position(), best, history });
  };

  const dsWeights = t.deepSupervision.enabled ? t.deepSupervision.weights : [1];
  let lastLoss = NaN, waitSum = 0, wallSum = 0, earlyStopped = false, sinceBest = 0;
  const start = Date.now();
  const startIt = iteration;
  try {
    while (iteration < t.iterations && stop === null && (o.stopAt === undefined || iteration < o.stopAt)) {
      // A prefetched batch resolves as a microtask, so without this the loop never lets libuv
      // poll: signal handlers (and timers) would not run until a batch had to be waited for.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (stop !== null) break;
      const t0 = performance.now();
      const batch = await source.next();
      const t1 = performance.now();
      model.train();
      lastLoss = tidy(() => {
        optimizer.zeroGrad();
        if (o.step !== undefined) { const loss = o.step(model, batch); loss.backward(); return loss.item(); }
        // Activation checkpointing keeps only segment boundaries and recomputes the rest in backward.
        const ckpt = t.activationCheckpointing && model.forwardCheckpointed !== undefined ? model.forwardCheckpointed(batch.image) : null;
        try {
          const out = ckpt !== null ? ckpt.outputs : model.forward(batch.image);
          const outs = Array.isArray(out) ? out.slice(0, dsWeights.length) : [out];
          const loss = o.loss !== undefined ? o.loss(outs, batch) : deepSupervisedLoss(outs, batch.target, {
            weights: t.lossWeights, classWeights: t.classWeights, outputWeights: dsWeights.slice(0, outs.length),
          });
          loss.backward();
          ckpt?.backward();
          return loss.item();
        } finally {
          ckpt?.dispose();
        }
      });
      batch.image.dispose();
      batch.target.dispose();
      batch.weight?.dispose();
      let commMs = 0;
      if (dist !== null) {
        commMs = (await averager!.average()).ms;
        // One small reduction carries the ranks' losses (logged as their mean) and whether any rank
        // got a signal, so that all ranks stop after the same iteration.
        const r = await reduceSum(dist, Float64Array.of(lastLoss, stop !== null ? 1 : 0));
        lastLoss = r[0]! / dist.worldSize;
        if (r[1]! > 0 && stop === null) stop = 'signal';
      }
      tidy(() => {
        if (t.gradClip !== null) clipGradNorm(params, t.gradClip);
        optimizer.step();
      });
      if (!Number.isFinite(lastLoss)) {
        throw new MisfmError('DATA', `training diverged: loss is ${lastLoss} at iteration ${iteration + 1} (try a lower training.lr or training.gradClip)`);
      }
      iteration++;
      if (t.scheduler.unit === 'iteration') scheduler.step();
      const t2 = performance.now();
      waitSum += t1 - t0; wallSum += t2 - t0;
      log.log({ event: 'train', iteration, loss: lastLoss, lr: optimizer.lr, dataWaitMs: +(t1 - t0).toFixed(1), stepMs: +(t2 - t1).toFixed(1),
        ...(dist !== null ? { commMs: +commMs.toFixed(1) } : {}), rssMb: Math.round(process.memoryUsage.rss() / 2 ** 20), liveTensors: liveTensors() });
      progress.update(iteration, { loss: lastLoss.toFixed(4), wait: `${((waitSum / wallSum) * 100).toFixed(0)}%` });

      if (iteration % t.validEvery === 0 || iteration === t.iterations) {
        if (t.scheduler.unit === 'validation' && iteration % t.validEvery === 0) scheduler.step();
        if (o.validate !== undefined) {
          model.eval();
          let v = await noGrad(() => o.validate!(model, dist ?? undefined));
          // A validator that knows nothing of ranks scored its data on every rank: average so that
          // all ranks agree on "improved" and on early stopping.
          if (dist !== null && v.reduced !== true) {
            const keys = Object.keys(v.metrics);
            const r = await reduceSum(dist, Float64Array.from([v.score, ...keys.map((k) => v.metrics[k]!)]));
            v = { score: r[0]! / dist.worldSize, metrics: Object.fromEntries(keys.map((k, i) => [k, r[i + 1]! / dist.worldSize])) };
          }
          const improved = best === null || v.score > best.score;
          history.push({ iteration, score: v.score, ...v.metrics });
          if (improved) { best = { score: v.score, iteration }; sinceBest = 0; } else sinceBest += t.validEvery;
          log.log({ event: 'valid', iteration, score: v.score, ...v.metrics, best: best?.score ?? v.score });
          progress.update(iteration, { valid: v.score.toFixed(4) });
          if (improved) save(bestPath);
          if (t.earlyStopPatience !== null && sinceBest >= t.earlyStopPatience) { earlyStopped = true; break; }
        }
      }
      if (iteration % t.saveEvery === 0) save(latestPath);
    }
    save(latestPath);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await source.close();
    progress.finish();
    optimizer.dispose();
    averager?.dispose();
  }
  const done = iteration - startIt;
  const summary: TrainSummary = {
    iterations: iteration,
    interrupted: stop !== null,
    earlyStopped,
    best,
    lastLoss,
    dataWaitFraction: wallSum > 0 ? waitSum / wallSum : 0,
    secondsPerIteration: done > 0 ? (Date.now() - start) / 1000 / done : 0,
    checkpoints: { latest: latestPath, best: existsSync(bestPath) ? bestPath : null },
  };
  log.log({ event: 'end', ...summary });
  log.close();
  return summary;
}
