/** Neural-network modules with PyTorch-compatible names and state dicts. */
export { Module, rawToTensor, tensorToRaw, formatLoadErrors, type LoadReport, type LoadOptions, type StateValue } from './module.js';
export { Conv3d, Conv2d, ConvTranspose3d, type ConvLayerOptions } from './layers/conv.js';
export { Linear } from './layers/linear.js';
export { BatchNorm3d, BatchNorm2d, BatchNorm1d, InstanceNorm3d, LayerNorm, type BatchNormOptions } from './layers/norm.js';
export { ReLU, LeakyReLU, GELU, PReLU, Sigmoid, Identity, Dropout, DropPath } from './layers/activation.js';
export { MaxPool3d, AvgPool3d, AdaptiveAvgPool3d } from './layers/pool.js';
export { Embedding } from './layers/embedding.js';
export { Sequential, ModuleList, type UnaryModule } from './layers/container.js';
export * as init from './init.js';
export { foldBatchNorms, foldConvBatchNorm, type ConvBnPairs } from './fuse.js';
