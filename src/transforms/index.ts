/**
 * Preprocessing and augmentation transforms for volumes (see each module's header). Sizes,
 * boxes and axis flags are in the Volume's (x,y,z) voxel order throughout.
 */
export * from './grid.js';
export * from './box.js';
export * from './volume-tensor.js';
export * from './orientation.js';
export * from './resample.js';
export * from './intensity.js';
export * from './body-crop.js';
export * from './pad-crop.js';
export * from './spatial-aug.js';
export * from './compose.js';
