/**
 * Shared shapes for the metrics code. Volumes are plain C-order arrays of shape (D,H,W), i.e. x
 * fastest, exactly the voxel order of `Volume.data`; spacing is given in the matching (z,y,x) order.
 */
import { MisfmError } from '../util/errors.js';

/** (D, H, W) voxel counts: depth (z), height (y), width (x). */
export type Shape3 = readonly [number, number, number];

/** Voxel spacing in mm, (z, y, x) order to match Shape3. */
export type Spacing3 = readonly [number, number, number];

/** Half-open voxel box [z0,z1) x [y0,y1) x [x0,x1). */
export interface Box3 {
  z0: number; z1: number;
  y0: number; y1: number;
  x0: number; x1: number;
}

/** Any numeric typed array a label map can arrive in. Values are compared exactly. */
export type LabelArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

export function numel3(shape: Shape3): number {
  return shape[0] * shape[1] * shape[2];
}

/** The whole array as a box. */
export function fullBox(shape: Shape3): Box3 {
  return { z0: 0, z1: shape[0], y0: 0, y1: shape[1], x0: 0, x1: shape[2] };
}

export function boxShape(b: Box3): Shape3 {
  return [b.z1 - b.z0, b.y1 - b.y0, b.x1 - b.x0];
}

export function boxIsEmpty(b: Box3): boolean {
  return b.z1 <= b.z0 || b.y1 <= b.y0 || b.x1 <= b.x0;
}

/** Throws unless `shape` is three positive integers and `length` matches it. */
export function checkShape(op: string, shape: Shape3, length?: number): void {
  if (shape.length !== 3 || !shape.every((s) => Number.isInteger(s) && s > 0)) {
    throw new MisfmError('SHAPE', `${op}: shape must be three positive integers (D,H,W), got [${shape.join(',')}]`);
  }
  if (length !== undefined && length !== numel3(shape)) {
    throw new MisfmError('SHAPE', `${op}: array has ${length} elements but shape [${shape.join(',')}] needs ${numel3(shape)}`);
  }
}

/** Throws unless `spacing` is three finite positive numbers. */
export function checkSpacing(op: string, spacing: Spacing3): void {
  if (spacing.length !== 3 || !spacing.every((s) => Number.isFinite(s) && s > 0)) {
    throw new MisfmError('ARGUMENT', `${op}: spacing must be three positive numbers (z,y,x) in mm, got [${spacing.join(',')}]`);
  }
}

/** Throws unless `box` lies inside `shape` and is non-empty. */
export function checkBox(op: string, shape: Shape3, box: Box3): void {
  const ok = Number.isInteger(box.z0) && Number.isInteger(box.z1) && Number.isInteger(box.y0) &&
    Number.isInteger(box.y1) && Number.isInteger(box.x0) && Number.isInteger(box.x1) &&
    box.z0 >= 0 && box.y0 >= 0 && box.x0 >= 0 &&
    box.z1 <= shape[0] && box.y1 <= shape[1] && box.x1 <= shape[2] && !boxIsEmpty(box);
  if (!ok) {
    throw new MisfmError('SHAPE', `${op}: box z[${box.z0},${box.z1}) y[${box.y0},${box.y1}) x[${box.x0},${box.x1}) ` +
      `is empty or outside shape [${shape.join(',')}]`);
  }
}
