/** The tensor engine: libtorch through the native addon. */
export { Tensor, normDim, type Operand, type MemoryFormat } from './tensor.js';
export * from './creation.js';
export * as F from './functional.js';
export { tidy, keep, dispose } from './scope.js';
export { callOp, opSchema } from './call.js';
export { native, packageRoot, addonCandidates, userAddonDir } from './native.js';
export * from './dtype.js';
export { checkpoint, isRecomputing, pendingCheckpoints } from './checkpoint.js';
export * from './precision.js';
export * from './profile.js';
