/** PCT-Net: model, building blocks and options. */
export { PCTNet } from './model.js';
export {
  PCTNET_DEFAULTS, RESOLUTION_MODES, resolvePCTNetOptions,
  type PCTNetOptions, type ResolvedPCTNetOptions, type ResolutionMode, type Triple, type Quint,
} from './options.js';
export { ConvBlock, DownSample, ConvLayer, UpCatBlock, type ConvDim } from './blocks.js';
export { PatchEmbedding, PredictionHead, type EmbeddingOutput } from './stem.js';
export { ConvTransBlock, PyramidConvTrans, PCT_DROP_PATH, type PyramidOutput } from './pyramid.js';
export { WindowAttention, Mlp, SwinTransformerBlock, BasicLayer } from './swin.js';
export {
  windowPartition, windowReverse, relativePositionIndex, relativePositionIndexValues, relativePositionTableRows, shiftedWindowMask,
} from './window.js';
