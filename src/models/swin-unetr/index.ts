export { SwinUNETR, SwinVoCoBackbone, type SwinEncoderOptions } from './model.js';
export { resolveSwinUNETROptions, SWIN_UNETR_KEYS, type SwinUNETROptions, type ResolvedSwinUNETROptions, type AxisOrder } from './options.js';
export { SwinTransformer, WindowAttention, SwinTransformerBlock, PatchMerging, BasicLayer, PatchEmbed } from './swin.js';
export { UnetResBlock, UnetrBasicBlock, UnetrUpBlock, UnetOutBlock } from './blocks.js';
export { normaliseVoCoStateDict, loadSwinUNETRPretrained, type VoCoLoadReport } from './load.js';
