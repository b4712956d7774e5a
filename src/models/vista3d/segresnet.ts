/**
 * MONAI's SegResNetDS2 (the VISTA3D image encoder): a pre-activation residual encoder and two
 * decoders of the same structure, `up_layers` (point branch) and `up_layers_auto` (class branch).
 * Norms are affine InstanceNorm3d, convs have no bias, upsampling is a 3³ stride-2 deconvolution,
 * and only the full-resolution decoder level has a 1³ head (dsdepth 1).
 */
import type { Tensor } from '../../engine/tensor.js';
import * as F from '../../engine/functional.js';
import { noGrad } from '../../engine/creation.js';
import { Module } from '../../nn/module.js';
import { Conv3d, ConvTranspose3d } from '../../nn/layers/conv.js';
import { InstanceNorm3d } from '../../nn/layers/norm.js';
import { ModuleList } from '../../nn/layers/container.js';
import { ShapeError, fmtShape } from '../../util/errors.js';

/** y = x + conv2(relu(norm2(conv1(relu(norm1(x)))))) */
export class SegResBlock extends Module {
  readonly norm1: InstanceNorm3d; readonly conv1: Conv3d; readonly norm2: InstanceNorm3d; readonly conv2: Conv3d;
  constructor(c: number) {
    super();
    this.norm1 = this.registerModule('norm1', new InstanceNorm3d(c, { affine: true }));
    this.conv1 = this.registerModule('conv1', new Conv3d(c, c, 3, { padding: 1, bias: false }));
    this.norm2 = this.registerModule('norm2', new InstanceNorm3d(c, { affine: true }));
    this.conv2 = this.registerModule('conv2', new Conv3d(c, c, 3, { padding: 1, bias: false }));
  }
  forward(x: Tensor): Tensor {
    const a = this.norm1.forward(x); const b = F.relu(a); a.dispose();
    const c = this.conv1.forward(b); b.dispose();
    const d = this.norm2.forward(c); c.dispose();
    const e = F.relu(d); d.dispose();
    const f = this.conv2.forward(e); e.dispose();
    const y = x.add(f); f.dispose();
    return y;
  }
}

class BlockList extends ModuleList<SegResBlock> {
  forward(x: Tensor): Tensor {
    let cur = x;
    for (const b of this.items) { const n = b.forward(cur); if (cur !== x) cur.dispose(); cur = n; }
    return cur === x ? x.view(x.shape) : cur;
  }
}

class EncoderLevel extends Module {
  readonly blocks: BlockList;
  readonly downsample: Conv3d | null;
  constructor(c: number, nBlocks: number, last: boolean) {
    super();
    this.blocks = this.registerModule('blocks', new BlockList(Array.from({ length: nBlocks }, () => new SegResBlock(c))));
    this.downsample = last ? null : this.registerModule('downsample', new Conv3d(c, 2 * c, 3, { stride: 2, padding: 1, bias: false }));
  }
}

/** SegResEncoder: `conv_init` then L levels; returns every level's output (after its blocks). */
export class SegResEncoder extends Module {
  readonly convInit: Conv3d;
  readonly layers: ModuleList<EncoderLevel>;
  constructor(inChannels: number, initFilters: number, blocksDown: readonly number[]) {
    super();
    this.convInit = this.registerModule('conv_init', new Conv3d(inChannels, initFilters, 3, { padding: 1, bias: false }));
    this.layers = this.registerModule('layers', new ModuleList(blocksDown.map((n, i) => new EncoderLevel(initFilters * 2 ** i, n, i === blocksDown.length - 1))));
  }
  forward(x: Tensor): Tensor[] {
    const outs: Tensor[] = [];
    let cur = this.convInit.forward(x);
    for (const level of this.layers) {
      const y = level.blocks.forward(cur); cur.dispose();
      outs.push(y);
      if (level.downsample === null) break;
      cur = level.downsample.forward(y);
    }
    return outs;
  }
}

/** MONAI's UpSample(mode 'deconv'): the transposed conv sits under `.deconv`. */
class DeconvUpsample extends Module {
  readonly deconv: ConvTranspose3d;
  constructor(cin: number, cout: number) {
    super();
    this.deconv = this.registerModule('deconv', new ConvTranspose3d(cin, cout, 3, { stride: 2, padding: 1, outputPadding: 1, bias: false }));
  }
  forward(x: Tensor): Tensor { return this.deconv.forward(x); }
}

class DecoderLevel extends Module {
  readonly upsample: DeconvUpsample;
  readonly blocks: BlockList;
  readonly head: Conv3d | null;
  constructor(f: number, nBlocks: number, outChannels: number, withHead: boolean) {
    super();
    this.upsample = this.registerModule('upsample', new DeconvUpsample(2 * f, f));
    this.blocks = this.registerModule('blocks', new BlockList(Array.from({ length: nBlocks }, () => new SegResBlock(f))));
    this.head = withHead ? this.registerModule('head', new Conv3d(f, outChannels, 1, { bias: true })) : null;
  }
}

/** One decoder (`up_layers` or `up_layers_auto`): L-1 levels from the deepest up, head on the last. */
export class SegResDecoder extends ModuleList<DecoderLevel> {
  constructor(initFilters: number, levels: number, outChannels: number) {
    super(Array.from({ length: levels - 1 }, (_, i) => new DecoderLevel(initFilters * 2 ** (levels - 2 - i), 1, outChannels, i === levels - 2)));
  }
  /** `down` is the encoder output list (level 0 first); it is not consumed. */
  forward(down: readonly Tensor[]): Tensor {
    let x = down[down.length - 1]!;
    for (let i = 0; i < this.items.length; i++) {
      const level = this.items[i]!;
      const u = level.upsample.forward(x); if (x !== down[down.length - 1]) x.dispose();
      const s = u.add(down[down.length - 2 - i]!); u.dispose();
      x = level.blocks.forward(s); s.dispose();
      if (level.head !== null) { const h = level.head.forward(x); x.dispose(); x = h; }
    }
    return x;
  }
}

/** The two decoder outputs; null for a branch not run. */
export interface EncoderOutputs { point: Tensor | null; auto: Tensor | null; }

export class SegResNetDS2 extends Module {
  readonly encoder: SegResEncoder;
  readonly upLayers: SegResDecoder;
  readonly upLayersAuto: SegResDecoder;
  readonly divisor: number;
  constructor(readonly inChannels: number, readonly initFilters: number, readonly outChannels: number, readonly blocksDown: readonly number[]) {
    super();
    this.encoder = this.registerModule('encoder', new SegResEncoder(inChannels, initFilters, blocksDown));
    this.upLayers = this.registerModule('up_layers', new SegResDecoder(initFilters, blocksDown.length, outChannels));
    // MONAI deep-copies up_layers; at construction both decoders hold the same values.
    this.upLayersAuto = this.registerModule('up_layers_auto', new SegResDecoder(initFilters, blocksDown.length, outChannels));
    const src = this.upLayers.stateDict(), dst = this.upLayersAuto.stateDict();
    noGrad(() => { for (const [k, t] of dst) t.copy_(src.get(k)!); });
    this.divisor = 2 ** (blocksDown.length - 1);
  }
  forward(x: Tensor, withPoint = true, withLabel = true): EncoderOutputs {
    const s = x.shape;
    if (s.length !== 5 || s[1] !== this.inChannels) throw new ShapeError('SegResNetDS2', `expected input [1, ${this.inChannels}, H, W, D], got ${fmtShape(s)}`);
    if (s.slice(2).some((v) => v % this.divisor !== 0)) {
      throw new ShapeError('SegResNetDS2', `input spatial dims ${fmtShape(s.slice(2))} must be divisible by ${this.divisor}`);
    }
    const down = this.encoder.forward(x);
    try {
      return { point: withPoint ? this.upLayers.forward(down) : null, auto: withLabel ? this.upLayersAuto.forward(down) : null };
    } finally {
      for (const t of down) t.dispose();
    }
  }
}
