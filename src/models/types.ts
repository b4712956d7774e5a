/** The contract every misfm segmentation network fulfils (PCT-Net, UNet3D, FMUNet). */
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import type { TapFn } from './taps.js';

export interface ForwardOptions {
  /** Observe intermediate activations (see taps.ts); off by default and free when off. */
  taps?: TapFn;
}

/** A network mapping [N, inChannels, D, H, W] to logits [N, classNum, D, H, W]. */
export interface SegmentationNetwork extends Module {
  readonly inChannels: number;
  readonly classNum: number;
  /** The one input size [D, H, W] the network accepts, or null when any suitably divisible size works. */
  readonly inputSize: readonly number[] | null;
  /** Per-axis factor every input size must be a multiple of. */
  readonly sizeDivisor: readonly number[];
  /** When true, forward returns full-resolution logits followed by coarser deep-supervision logits. */
  multiscalePred: boolean;
  forward(x: Tensor, opts?: ForwardOptions): Tensor | Tensor[];
}

/** forward() output as a list (a single tensor becomes [t]). */
export function outputsOf(out: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(out) ? out : [out];
}
