/** Inference: sliding window, post-processing, model loading and the predict pipeline. */
export * from './windows.js';
export * from './plan.js';
export * from './sliding-window.js';
export * from './postprocess.js';
export * from './model.js';
export * from './predict.js';
export * from './cases.js';
