/** Small pieces shared by the baseline networks (UNet3D, FMUNet). */
import type { Tensor } from '../engine/tensor.js';
import * as F from '../engine/functional.js';
import { Module } from '../nn/module.js';
import { kaimingNormal_, constant_, uniform_, fans } from '../nn/init.js';
import { Conv3d, ConvTranspose3d } from '../nn/layers/conv.js';
import { ConfigError, ShapeError, fmtShape } from '../util/errors.js';

/** nn.Upsample with a scale factor per axis (a parameter-free module, so Sequential indices match PyTorch). */
export class Upsample extends Module {
  constructor(readonly scale: readonly number[], readonly mode: 'trilinear' | 'nearest', readonly alignCorners: boolean) { super(); }
  forward(x: Tensor): Tensor {
    const s = x.shape;
    const size = s.slice(2).map((v, i) => v * (this.scale[i] ?? 1));
    return F.interpolate(x, size, this.mode, this.mode === 'trilinear' ? this.alignCorners : false);
  }
  protected override extraRepr(): string { return `scale=${fmtShape(this.scale)}, mode=${this.mode}`; }
}

export type WeightInit = 'he' | 'xavier';

/**
 * PyMIC's initialisers: every (transposed) conv weight gets kaiming_normal_(a = 0.01) ('he') or
 * xavier_uniform_ ('xavier'), and its bias 0. Norm layers keep their defaults.
 */
export function initConvWeights(root: Module, init: WeightInit): void {
  for (const [, m] of root.namedModules()) {
    if (!(m instanceof Conv3d || m instanceof ConvTranspose3d)) continue;
    if (init === 'he') kaimingNormal_(m.weight, 1e-2);
    else {
      const { fanIn, fanOut } = fans(m.weight.shape);
      const a = Math.sqrt(6 / (fanIn + fanOut));
      uniform_(m.weight, -a, a);
    }
    if (m.bias !== null) constant_(m.bias, 0);
  }
}

export function parseInit(key: string, v: unknown): WeightInit {
  const s = typeof v === 'string' ? v.toLowerCase() : v;
  if (s === 'he' || s === 'xavier') return s;
  throw new ConfigError(key, `must be 'he' or 'xavier', got ${JSON.stringify(v)}`);
}

export function checkIntList(key: string, v: unknown, lengths: readonly number[], min: number): number[] {
  if (!Array.isArray(v) || !lengths.includes(v.length) || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < min)) {
    throw new ConfigError(key, `must be a list of ${lengths.join(' or ')} integers >= ${min}, got ${JSON.stringify(v)}`);
  }
  return [...(v as number[])];
}

export function checkPosInt(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(key, `must be an integer >= 1, got ${JSON.stringify(v)}`);
  return v;
}

export function checkProb(key: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new ConfigError(key, `must be a probability in [0, 1), got ${JSON.stringify(v)}`);
  return v;
}

/** Throws ShapeError unless x is [N, inChannels, D, H, W] with each spatial size a multiple of `divisor`. */
export function checkDivisibleInput(net: string, x: Tensor, inChannels: number, divisor: readonly number[]): void {
  const s = x.shape;
  if (s.length !== 5 || s[1] !== inChannels) {
    throw new ShapeError(net, `expected input [N, ${inChannels}, D, H, W] (the network was built for ${inChannels} input channels), got ${fmtShape(s)}`);
  }
  if (s.slice(2).some((v, i) => v % divisor[i]! !== 0)) {
    throw new ShapeError(net, `input spatial size ${fmtShape(s.slice(2))} must be a multiple of ${fmtShape(divisor)}; pad the input`);
  }
}
