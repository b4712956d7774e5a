/**
 * Values derived from a RunConfig in the form the components want: Volume Fusion options,
 * learning-rate schedule parameters in scheduler steps, and the sliding-window stride.
 */
import type { FusionMaskOptions } from '../ssl/fusion-mask.js';
import { overlapToStride } from '../infer/windows.js';
import type { InferenceConfig, SchedulerKind, SslConfig, TrainingConfig, Triple } from './types.js';

/** Options for fusionLevelMap from the ssl section (the variant `mode` selects). */
export function fusionMaskOptions(ssl: SslConfig): FusionMaskOptions {
  if (ssl.mode === 'grid') {
    return { mode: 'grid', levels: ssl.levels, sizeMin: ssl.grid.sizeMin, sizeMax: ssl.grid.sizeMax, foregroundRatio: ssl.grid.foregroundRatio };
  }
  return { mode: 'blocks', levels: ssl.levels, blockCount: ssl.blocks.count, sizeMin: ssl.blocks.sizeMin, sizeMax: ssl.blocks.sizeMax };
}

/**
 * Output channels of the network for a pretraining config's pretext task: K + 1 fusion levels for
 * Volume Fusion, one reconstructed intensity channel for the reconstruction methods (PyMIC's
 * ReconstructionAgent requires class_num 1).
 */
export function pretextClassNum(ssl: Pick<SslConfig, 'method' | 'levels'>): number {
  return ssl.method === 'volf' ? ssl.levels + 1 : 1;
}

/** Schedule parameters in units of scheduler.step() calls. */
export interface SchedulerPlan {
  kind: SchedulerKind;
  /** Call step() every this many iterations (1, or training.validEvery). */
  everyIterations: number;
  /** StepLR step size, in steps. */
  stepSize: number;
  /** MultiStepLR milestones, in steps. */
  milestones: number[];
  /** Length of poly / cosine / warmup-cosine schedules, in steps. */
  totalSteps: number;
  /** Warmup of 'warmup-cosine', in steps. */
  warmupSteps: number;
  gamma: number;
  power: number;
  minLr: number;
}

/**
 * Convert the iteration-based schedule to scheduler steps. With unit 'validation' the scheduler
 * is stepped once per validation round and iteration counts are divided by validEvery, as PyMIC
 * does (lr_step / iter_valid, iter_max / iter_valid; spec 2.3).
 */
export function schedulerPlan(t: TrainingConfig): SchedulerPlan {
  const s = t.scheduler;
  const every = s.unit === 'validation' ? t.validEvery : 1;
  return {
    kind: s.kind,
    everyIterations: every,
    stepSize: Math.max(1, Math.round(s.stepSize / every)),
    milestones: s.milestones.map((m) => Math.max(1, Math.round(m / every))),
    totalSteps: Math.max(1, t.iterations / every),
    warmupSteps: s.warmup === 0 ? 0 : Math.max(1, Math.round(s.warmup / every)),
    gamma: s.gamma,
    power: s.power,
    minLr: s.minLr,
  };
}

/** The sliding-window stride: the explicit one, or window·(1 − overlap) rounded down. */
export function inferenceStride(inf: InferenceConfig): Triple {
  return inf.stride !== null ? [...inf.stride] : overlapToStride(inf.window, inf.overlap);
}
