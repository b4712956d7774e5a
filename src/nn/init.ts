/**
 * Weight initialisers with PyTorch's defaults and formulas. They draw from libtorch's global
 * generator, so manualSeed(s) followed by the same construction order reproduces PyTorch's init.
 */
import type { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/creation.js';

/** fan_in / fan_out as torch.nn.init computes them (dim 1 is fan_in, dim 0 fan_out, times receptive field). */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new RangeError(`fan in/out need at least 2 dims, got [${shape.join(',')}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export function uniform_(t: Tensor, low: number, high: number): Tensor { noGrad(() => t.uniform_(low, high)); return t; }
export function normal_(t: Tensor, mean = 0, std = 1): Tensor { noGrad(() => t.normal_(mean, std)); return t; }
export function constant_(t: Tensor, v: number): Tensor { noGrad(() => t.fill_(v)); return t; }

function gain(nonlinearity: 'leaky_relu' | 'relu' | 'linear', a: number): number {
  if (nonlinearity === 'relu') return Math.SQRT2;
  if (nonlinearity === 'linear') return 1;
  return Math.sqrt(2 / (1 + a * a));
}

/** kaiming_uniform_ (PyTorch's default for conv/linear weights uses a = sqrt(5)). */
export function kaimingUniform_(t: Tensor, a = Math.sqrt(5), mode: 'fan_in' | 'fan_out' = 'fan_in', nonlinearity: 'leaky_relu' | 'relu' = 'leaky_relu'): Tensor {
  const f = fans(t.shape);
  const bound = gain(nonlinearity, a) * Math.sqrt(3 / (mode === 'fan_in' ? f.fanIn : f.fanOut));
  return uniform_(t, -bound, bound);
}
/** kaiming_normal_ (He init, used by PyMIC's UNet3D and FMUNet). */
export function kaimingNormal_(t: Tensor, a = 0, mode: 'fan_in' | 'fan_out' = 'fan_in', nonlinearity: 'leaky_relu' | 'relu' = 'leaky_relu'): Tensor {
  const f = fans(t.shape);
  return normal_(t, 0, gain(nonlinearity, a) / Math.sqrt(mode === 'fan_in' ? f.fanIn : f.fanOut));
}
/** Truncated normal on [a, b] (timm's trunc_normal_: inverse-CDF sampling). */
export function truncNormal_(t: Tensor, std = 1, mean = 0, a = -2, b = 2): Tensor {
  noGrad(() => {
    const cdf = (x: number): number => (1 + erf(x / Math.SQRT2)) / 2;
    const l = cdf((a - mean) / std), u = cdf((b - mean) / std);
    t.uniform_(2 * l - 1, 2 * u - 1);
    const e = t.erfinv();
    try {
      t.copy_(e);
    } finally { e.dispose(); }
    t.mul_(std * Math.SQRT2).add_(mean).clamp_(a, b);
  });
  return t;
}
/** The default bias init of conv/linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function defaultBias_(bias: Tensor, weightShape: readonly number[]): Tensor {
  const { fanIn } = fans(weightShape);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform_(bias, -bound, bound);
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for a CDF bound; use a series/continued fraction split.
  const s = Math.sign(x), ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax, term = ax;
    for (let n = 1; n < 60; n++) { term *= -ax * ax / n; sum += term / (2 * n + 1); }
    return s * 2 / Math.sqrt(Math.PI) * sum;
  }
  const t = 1 / (1 + 0.5 * ax);
  const y = 1 - t * Math.exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return s * y;
}
