/** VISTA3D (MONAI's vista3d132 and smaller configurations). */
export { VISTA3D, NINF_VALUE, pointsToPatch, cropObjects, disposeFeatures, featureBytes, type Vista3dPrompts, type PointPrompts, type PatchCoords, type ImageFeatures, type Triple } from './model.js';
export { resolveVista3dOptions, vista3dSizeDivisor, VISTA3D_DEFAULTS, VISTA3D_PRESETS, type Vista3dOptions, type ResolvedVista3dOptions } from './options.js';
export { connectedComponentsCombine, gaussianCombine, gaussianWeight, keepMergeComponentsWithPoints, labelStack, probAboveHalf, type MergeMode, type ObjectLogits, type CombineDetail } from './merge.js';
export { SegResNetDS2, SegResBlock, SegResEncoder } from './segresnet.js';
export { ClassMappingClassify } from './class-head.js';
export { PointMappingSAM, PositionEmbeddingRandom } from './point-head.js';
export { vista3dStateShapes, convertVista3dResearchStateDict, inferVista3dConfig, isVista3dStateDict, UNUSED_IN_FORWARD, type KeyShape, type ResearchConversion } from './keys.js';
export { loadVista3dCheckpoint, saveVista3dCheckpoint, type LoadedVista3d } from './checkpoint.js';
export { TwoWayTransformer, Attention } from './transformer.js';
