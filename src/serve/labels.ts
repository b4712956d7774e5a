/**
 * The label map being edited and its history. Every edit (automatic segmentation, click, brush
 * stroke, eraser) is stored as a diff (changed voxel indices, values before and after), so undo
 * and redo cost memory proportional to what changed, not to the volume.
 */
import { MisfmError } from '../util/errors.js';

export type LabelArray = Uint8Array | Uint16Array;

/** One undoable change. */
export interface Edit {
  kind: string;
  idx: Uint32Array;
  before: LabelArray;
  after: LabelArray;
}

/** Label arrays of the type a map with values up to `maxValue` needs. */
export function labelArrayFor(maxValue: number, n: number): LabelArray {
  if (maxValue > 65535) throw new MisfmError('ARGUMENT', `label value ${maxValue} does not fit 16 bits`);
  return maxValue > 255 ? new Uint16Array(n) : new Uint8Array(n);
}

export class LabelHistory {
  private undoStack: Edit[] = [];
  private redoStack: Edit[] = [];
  /** Increases with every change of `data` (edit, undo, redo). */
  version = 0;

  /** `limit`: edits kept for undo (older ones are dropped). */
  constructor(public data: LabelArray, private readonly limit = 200) {}

  get canUndo(): boolean { return this.undoStack.length > 0; }
  get canRedo(): boolean { return this.redoStack.length > 0; }
  get undoDepth(): number { return this.undoStack.length; }

  /** Replace the map by `next` (same length) as one edit; returns the number of changed voxels. */
  commit(kind: string, next: ArrayLike<number>): number {
    const d = this.data;
    if (next.length !== d.length) throw new MisfmError('ARGUMENT', `${kind}: label map has ${next.length} voxels, expected ${d.length}`);
    let n = 0;
    for (let i = 0; i < d.length; i++) if (d[i] !== next[i]) n++;
    const idx = new Uint32Array(n);
    let t = 0;
    for (let i = 0; i < d.length; i++) if (d[i] !== next[i]) idx[t++] = i;
    return this.record(kind, idx, Array.from(idx, (i) => next[i]!));
  }

  /** Set voxels `idx` to `values` (one value per index, or one for all) as one edit. */
  patch(kind: string, idx: ArrayLike<number>, values: number | ArrayLike<number>): number {
    const d = this.data;
    const keep: number[] = [], vals: number[] = [];
    for (let t = 0; t < idx.length; t++) {
      const i = idx[t]!;
      const v = typeof values === 'number' ? values : values[t]!;
      if (d[i] !== v) { keep.push(i); vals.push(v); }
    }
    return this.record(kind, Uint32Array.from(keep), vals);
  }

  private record(kind: string, idx: Uint32Array, values: ArrayLike<number>): number {
    if (idx.length === 0) return 0;
    const d = this.data;
    const Ctor = d instanceof Uint16Array ? Uint16Array : Uint8Array;
    const before = new Ctor(idx.length), after = new Ctor(idx.length);
    for (let t = 0; t < idx.length; t++) {
      const v = values[t]!;
      if (!(Number.isInteger(v) && v >= 0 && v <= (Ctor === Uint8Array ? 255 : 65535))) throw new MisfmError('ARGUMENT', `${kind}: label value ${v} does not fit the label map`);
      before[t] = d[idx[t]!]!;
      after[t] = v;
    }
    for (let t = 0; t < idx.length; t++) d[idx[t]!] = after[t]!;
    this.undoStack.push({ kind, idx, before, after });
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack = [];
    this.version++;
    return idx.length;
  }

  /** Undo the last edit; returns it, or null when there is none. */
  undo(): Edit | null {
    const e = this.undoStack.pop();
    if (e === undefined) return null;
    for (let t = 0; t < e.idx.length; t++) this.data[e.idx[t]!] = e.before[t]!;
    this.redoStack.push(e);
    this.version++;
    return e;
  }

  /** Redo the last undone edit; returns it, or null when there is none. */
  redo(): Edit | null {
    const e = this.redoStack.pop();
    if (e === undefined) return null;
    for (let t = 0; t < e.idx.length; t++) this.data[e.idx[t]!] = e.after[t]!;
    this.undoStack.push(e);
    this.version++;
    return e;
  }

  /** Voxels per label value (background included). */
  counts(): Map<number, number> {
    const c = new Map<number, number>();
    const d = this.data;
    for (let i = 0; i < d.length; i++) { const v = d[i]!; c.set(v, (c.get(v) ?? 0) + 1); }
    return c;
  }
}
