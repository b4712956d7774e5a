/**
 * PCT-Net (MIS-FM): a convolutional stem, a pyramid of parallel convolution + Swin transformer
 * blocks, and a convolutional prediction head. Module and parameter names equal the reference's,
 * so state dicts load by name in either direction.
 *
 * Shape: input [N, inChannels, D, H, W] with [D, H, W] = inputSize exactly; output logits
 * [N, classNum, D, H, W], or with multiscalePred [out0 (D,H,W), out1 (level 1), out2 (level 2),
 * out3 (level 3)], where level k is the input down-sampled by the stem/pyramid factors of the mode.
 */
import type { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { Module } from '../../nn/module.js';
import { ModuleList, Sequential } from '../../nn/layers/container.js';
import type { Conv3d } from '../../nn/layers/conv.js';
import type { BatchNorm3d } from '../../nn/layers/norm.js';
import type { ConvBlock } from './blocks.js';
import { ShapeError, fmtShape } from '../../util/errors.js';
import type { ForwardOptions, SegmentationNetwork } from '../types.js';
import { registerTapNames, withTaps } from '../taps.js';
import { PatchEmbedding, PredictionHead } from './stem.js';
import { PyramidConvTrans } from './pyramid.js';
import { recomputeForward, type RecomputeHandle } from '../recompute.js';
import { pctnetSegments } from './segments.js';
import { RESOLUTION_MODES, resolvePCTNetOptions, type PCTNetOptions, type ResolvedPCTNetOptions, type ResolutionMode, type Triple } from './options.js';

export class PCTNet extends Module implements SegmentationNetwork {
  readonly options: ResolvedPCTNetOptions;
  readonly embeddings: ModuleList<PatchEmbedding>;
  readonly pyramidCt: PyramidConvTrans;
  readonly predHeads: ModuleList<PredictionHead>;
  multiscalePred: boolean;

  /** Throws ConfigError for invalid options. */
  constructor(options: PCTNetOptions) {
    super();
    const o = resolvePCTNetOptions(options);
    this.options = o;
    this.multiscalePred = o.multiscalePred;
    const ft = o.featureChns;
    const stemFt = ft.slice(0, 3), stemDrop = o.dropout.slice(0, 3);
    const modes: ResolutionMode[] = [0, 1, 2];
    // All three embeddings and heads exist (and are in checkpoints); only the selected one runs.
    this.embeddings = this.registerModule('embeddings', new ModuleList(modes.map((m) =>
      new PatchEmbedding(o.inChannels, stemFt, RESOLUTION_MODES[m].convDims, RESOLUTION_MODES[m].downDims, stemDrop))));
    const scale = RESOLUTION_MODES[o.resolutionMode].scale;
    const r2: Triple = [Math.floor(o.inputSize[0] / scale[0]), Math.floor(o.inputSize[1] / scale[1]), Math.floor(o.inputSize[2] / scale[2])];
    this.pyramidCt = this.registerModule('pyramid_ct', new PyramidConvTrans({
      resolution: r2, chns: [ft[2], ft[3], ft[4]], dropout: [o.dropout[2], o.dropout[3], o.dropout[4]],
      depths: o.depths, numHeads: o.numHeads, windowSizes: o.windowSizes, classNum: o.classNum,
    }));
    this.predHeads = this.registerModule('pred_heads', new ModuleList(modes.map((m) =>
      new PredictionHead(stemFt, RESOLUTION_MODES[m].convDims, RESOLUTION_MODES[m].downDims, stemDrop, o.classNum))));
    registerTapNames(this);
  }

  get inChannels(): number { return this.options.inChannels; }
  get classNum(): number { return this.options.classNum; }
  get inputSize(): readonly number[] { return this.options.inputSize; }
  get resolutionMode(): ResolutionMode { return this.options.resolutionMode; }
  get sizeDivisor(): readonly number[] { return RESOLUTION_MODES[this.options.resolutionMode].scale.map((s) => s * 4); }
  get embedding(): PatchEmbedding { return this.embeddings.at(this.options.resolutionMode); }
  get predHead(): PredictionHead { return this.predHeads.at(this.options.resolutionMode); }

  /** Throws ShapeError unless x is [N, inChannels, ...inputSize]. */
  checkInput(x: Tensor): void {
    const s = x.shape;
    const want = [this.inChannels, ...this.inputSize];
    if (s.length !== 5 || s.slice(1).some((v, i) => v !== want[i])) {
      throw new ShapeError('PCTNet', `expected input [N, ${want.join(', ')}] (the network was built for inChannels ${this.inChannels} ` +
        `and inputSize ${fmtShape(this.inputSize)}; pad or crop to that size), got ${fmtShape(s)}`);
    }
  }

  /** Logits: one tensor, or [out0, out1, out2, out3] when multiscalePred is set. */
  forward(x: Tensor, opts: ForwardOptions = {}): Tensor | Tensor[] {
    const outs = this.forwardAll(x, opts);
    return this.multiscalePred ? outs : outs[0]!;
  }

  /** Like forward, but always a list ([out0] or the 4 multiscale outputs). */
  forwardAll(x: Tensor, opts: ForwardOptions = {}): Tensor[] {
    this.checkInput(x);
    const ms = this.multiscalePred;
    return withTaps(opts.taps, () => tidy(() => {
      const { x0, x1, x2 } = this.embedding.forward(x);
      const pyr = this.pyramidCt.forward(x2, ms);
      x2.dispose();
      const head = this.predHead.forward(x0, x1, pyr.xd2, ms);
      x0.dispose(); x1.dispose(); pyr.xd2.dispose();
      return ms ? [...head, pyr.out2!, pyr.out3!] : head;
    }));
  }

  /**
   * Training forward with activation checkpointing: returns the outputs (as forwardAll) and a
   * handle; call `loss.backward()` and then `handle.backward()`. Peak memory drops to the segment
   * boundaries plus one segment's graph, for about one extra forward pass of compute.
   */
  forwardCheckpointed(x: Tensor): RecomputeHandle {
    this.checkInput(x);
    return recomputeForward(pctnetSegments(this), x);
  }

  /**
   * Conv -> BN pairs across blocks, for inference-time folding (nn/fuse.ts): in every embedding and
   * head, a block whose output feeds only the next block's leading BN (stem conv -> conv0,
   * down1 -> conv1; up2 -> conv1, up1 -> conv0). Pairs inside a block are found by the generic scan.
   * The pyramid has none: its block outputs also feed the Swin branch, which must see them unnormalised.
   */
  convBnPairs(): [Conv3d, BatchNorm3d][] {
    const lastConv = (s: Sequential): Conv3d => s.at(s.layers.length - 1) as Conv3d;
    const firstBn = (b: ConvBlock): BatchNorm3d => b.convConv.at(0) as BatchNorm3d;
    const pairs: [Conv3d, BatchNorm3d][] = [];
    for (const e of this.embeddings) pairs.push([e.proj, firstBn(e.conv0)], [lastConv(e.down1.conv), firstBn(e.conv1)]);
    for (const h of this.predHeads) pairs.push([lastConv(h.up2.conv), firstBn(h.conv1)], [lastConv(h.up1.conv), firstBn(h.conv0)]);
    return pairs;
  }

  /**
   * Names of the parameters the current mode trains: everything except the other modes'
   * embeddings and heads, the unused `norm_layer`s, and (without multiscalePred) the auxiliary
   * output layers.
   */
  activeParameterNames(): string[] {
    const m = this.options.resolutionMode;
    const skip = (n: string): boolean => {
      const em = /^(embeddings|pred_heads)\.(\d)\./.exec(n);
      if (em !== null && Number(em[2]) !== m) return true;
      if (/\.norm_layer\./.test(n)) return true;
      if (!this.multiscalePred && /^(pyramid_ct\.out_conv[23]|pred_heads\.\d\.out_conv1)\./.test(n)) return true;
      return false;
    };
    return [...this.namedParameters()].map(([n]) => n).filter((n) => !skip(n));
  }

  protected override extraRepr(): string {
    const o = this.options;
    return `in=${o.inChannels}, classes=${o.classNum}, input=${fmtShape(o.inputSize)}, features=${fmtShape(o.featureChns)}, mode=${o.resolutionMode}`;
  }
}
