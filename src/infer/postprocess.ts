/**
 * Label-map post-processing: keep the largest connected component (PyMIC's KeepLargestComponent,
 * mode 1 = the union of foreground classes, mode 2 = per class).
 *
 * Connectivity: 26 (default; voxels touching by a face, edge or corner are connected, as
 * scipy.ndimage.label with a full 3x3x3 structure), 18 (face or edge) or 6 (face only, scipy's
 * default structure). Removed voxels become background (0). Ties between equally large
 * components keep the one met first in C order (D, H, W).
 */
import { MisfmError } from '../util/errors.js';
import type { Triple3 } from './windows.js';

/** 'union': one component of all foreground classes together; 'per-class': the largest of each class. */
export type KeepLargestMode = 'union' | 'per-class';
export type Connectivity = 6 | 18 | 26;

/** Integer label arrays the post-processing accepts. */
export type LabelData = Uint8Array | Uint16Array | Int16Array | Int32Array | Uint32Array;

/** Connected components of a label map. */
export interface Components {
  /** Component id per voxel (1-based; 0 = background). */
  ids: Int32Array;
  /** Voxel count per component id (index 0 unused). */
  sizes: number[];
  /** Label value of each component (index 0 unused). */
  values: number[];
}

function neighbourOffsets(c: Connectivity): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
    const n = Math.abs(dz) + Math.abs(dy) + Math.abs(dx);
    if (n === 0) continue;
    if (c === 6 && n > 1) continue;
    if (c === 18 && n > 2) continue;
    out.push([dz, dy, dx]);
  }
  return out;
}

function check(labels: LabelData, shape: Triple3, connectivity: number): void {
  if (shape.length !== 3 || shape.some((s) => !Number.isSafeInteger(s) || s < 1)) {
    throw new MisfmError('ARGUMENT', `connected components: shape must be three positive integers (D,H,W), got [${shape.join(',')}]`);
  }
  if (labels.length !== shape[0] * shape[1] * shape[2]) {
    throw new MisfmError('ARGUMENT', `connected components: ${labels.length} labels do not fill shape [${shape.join(',')}]`);
  }
  if (connectivity !== 6 && connectivity !== 18 && connectivity !== 26) {
    throw new MisfmError('ARGUMENT', `connected components: connectivity must be 6, 18 or 26, got ${connectivity}`);
  }
}

/**
 * Label connected components of nonzero voxels. With `mergeClasses` all nonzero voxels connect
 * (the foreground union); otherwise only voxels of equal value connect.
 */
export function connectedComponents(labels: LabelData, shape: Triple3, connectivity: Connectivity = 26, mergeClasses = false): Components {
  check(labels, shape, connectivity);
  const [D, H, W] = shape;
  const HW = H * W;
  const offs = neighbourOffsets(connectivity);
  const ids = new Int32Array(labels.length);
  const sizes = [0], values = [0];
  // Explicit stack (grown on demand): recursion would overflow on large organs.
  let stack = new Int32Array(1 << 16);
  for (let seed = 0; seed < labels.length; seed++) {
    const v = labels[seed]!;
    if (v === 0 || ids[seed] !== 0) continue;
    const id = sizes.length;
    let size = 0, top = 0;
    ids[seed] = id;
    stack[top++] = seed;
    while (top > 0) {
      const p = stack[--top]!;
      size++;
      const z = Math.floor(p / HW), rem = p - z * HW, y = Math.floor(rem / W), x = rem - y * W;
      for (const [dz, dy, dx] of offs) {
        const zz = z + dz, yy = y + dy, xx = x + dx;
        if (zz < 0 || zz >= D || yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
        const q = zz * HW + yy * W + xx;
        if (ids[q] !== 0) continue;
        const lq = labels[q]!;
        if (lq === 0 || (!mergeClasses && lq !== v)) continue;
        ids[q] = id;
        if (top === stack.length) { const s2 = new Int32Array(stack.length * 2); s2.set(stack); stack = s2; }
        stack[top++] = q;
      }
    }
    sizes.push(size);
    values.push(v);
  }
  return { ids, sizes, values };
}

/**
 * A copy of `labels` keeping only the largest connected component: of the foreground union
 * ('union': every class inside that component survives) or of each class ('per-class').
 */
export function keepLargestComponent<T extends LabelData>(labels: T, shape: Triple3, mode: KeepLargestMode = 'union', connectivity: Connectivity = 26): T {
  if (mode !== 'union' && mode !== 'per-class') throw new MisfmError('ARGUMENT', `keepLargestComponent: mode must be 'union' or 'per-class', got '${String(mode)}'`);
  const { ids, sizes, values } = connectedComponents(labels, shape, connectivity, mode === 'union');
  const keep = new Uint8Array(sizes.length);
  if (mode === 'union') {
    let best = 0;
    for (let i = 1; i < sizes.length; i++) if (sizes[i]! > (sizes[best] ?? 0)) best = i;
    if (best > 0) keep[best] = 1;
  } else {
    const bestOf = new Map<number, number>();
    for (let i = 1; i < sizes.length; i++) {
      const b = bestOf.get(values[i]!);
      if (b === undefined || sizes[i]! > sizes[b]!) bestOf.set(values[i]!, i);
    }
    for (const i of bestOf.values()) keep[i] = 1;
  }
  const out = labels.slice() as T;
  for (let i = 0; i < out.length; i++) if (keep[ids[i]!] === 0) out[i] = 0;
  return out;
}
