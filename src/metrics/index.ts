/** Segmentation metrics on typed arrays: EDT, surfaces, binary metrics, multi-class evaluation, reports. */
export * from './types.js';
export * from './box.js';
export * from './edt.js';
export * from './surface.js';
export * from './binary.js';
export * from './evaluate.js';
export * from './report.js';
