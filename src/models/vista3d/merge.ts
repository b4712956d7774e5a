/**
 * How VISTA3D combines automatic (or earlier) logits with point-head logits.
 *
 * - `connectedComponentsCombine`: Algorithm 1 of the paper as MONAI codes it
 *   (`VISTA3D.connected_components_combine` + `keep_merge_components_with_points`): a positive
 *   click adds the connected piece of the point prediction that holds it, a negative click removes
 *   the connected piece of (automatic mask minus point prediction) that holds it.
 * - `gaussianCombine`: the training-time blend around the clicks.
 *
 * Two modes for Algorithm 1 (spec §6, §13):
 * - 'monai' (default, what the fixtures and the released weights' tooling do): components are
 *   labelled on the stacked [B1,1,H,W,D] array (skimage connectivity 3), so components of
 *   neighbouring edited objects can join; voxels that were NaN in the input stay NaN.
 * - 'corrected': each object is labelled on its own (26-connectivity), and NaN voxels (never
 *   reached by a window) take the point logits, with positive point voxels outside every clicked
 *   component set to -1 (what MONAI's docstring describes).
 * Everything here is plain JS on float32 arrays except the sigmoid thresholds, which use the
 * engine so that a logit rounding to probability 0.5 is judged exactly as libtorch judges it.
 */
import { fromTypedArray } from '../../engine/creation.js';
import { MisfmError } from '../../util/errors.js';

export type MergeMode = 'monai' | 'corrected';

/** Logits of B objects over one [H,W,D] grid, object-major (C order of [B,1,H,W,D]). */
export interface ObjectLogits { data: Float32Array; count: number; shape: readonly [number, number, number]; }

/** `sigmoid(x) > 0.5` elementwise as libtorch computes it in float32; NaN counts as `nanAs`. */
export function probAboveHalf(x: Float32Array, nanAs = -9999): Uint8Array {
  const t = fromTypedArray(x, [x.length]);
  const n = t.isnan();
  const f = t.maskedFill(n, nanAs); t.dispose(); n.dispose();
  const s = f.sigmoid(); f.dispose();
  const g = s.gt(0.5); s.dispose();
  const u = g.to('uint8'); g.dispose();
  try { return u.data() as Uint8Array; } finally { u.dispose(); }
}

/**
 * Flood fill over a stack of B binary [H,W,D] volumes with labelStack's connectivity. `tags`
 * (0 = not reached) is written with `tag` over the component of `seed`; returns its voxels (stacked
 * linear indices) in `buf` positions [from, returned end). Interior voxels skip the bounds tests.
 */
class Flood {
  readonly vol: number;
  readonly #d: Int32Array; readonly #db: Int8Array; readonly #dx: Int8Array; readonly #dy: Int8Array; readonly #dz: Int8Array;
  readonly #stackedB: boolean;
  buf = new Int32Array(1 << 14);

  constructor(readonly mask: Uint8Array, readonly count: number, readonly shape: readonly [number, number, number], mode: 'stacked' | 'per-object') {
    const [H, W, D] = shape;
    this.vol = H * W * D;
    const o: number[][] = [];
    for (let db = -1; db <= 1; db++) for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) for (let dz = -1; dz <= 1; dz++) {
      const nz = (db !== 0 ? 1 : 0) + (dx !== 0 ? 1 : 0) + (dy !== 0 ? 1 : 0) + (dz !== 0 ? 1 : 0);
      if (nz === 0 || nz > 3) continue;
      // Offsets across objects exist only in stacked mode, and never reach a neighbour with one object.
      if (db !== 0 && (mode === 'per-object' || count === 1)) continue;
      o.push([db, dx, dy, dz]);
    }
    this.#db = Int8Array.from(o.map((v) => v[0]!)); this.#dx = Int8Array.from(o.map((v) => v[1]!));
    this.#dy = Int8Array.from(o.map((v) => v[2]!)); this.#dz = Int8Array.from(o.map((v) => v[3]!));
    this.#d = Int32Array.from(o.map(([db, dx, dy, dz]) => db! * this.vol + (dx! * W + dy!) * D + dz!));
    this.#stackedB = this.#db.some((v) => v !== 0);
  }

  /** Tag the component of `seed` (mask 1, untagged); its voxels go to buf[from..end). Returns end. */
  fill(tags: Int32Array, tag: number, seed: number, from: number): number {
    const [H, W, D] = this.shape;
    const { vol, mask, count } = this;
    const WD = W * D;
    const d = this.#d, db = this.#db, dx = this.#dx, dy = this.#dy, dz = this.#dz, n = d.length;
    const stackedB = this.#stackedB;
    // buf[from..end) holds the component; voxels from `head` on are still to be expanded.
    let end = from, head = from;
    let buf = this.buf;
    const grow = (): void => { const b2 = new Int32Array(buf.length * 2); b2.set(buf); buf = b2; this.buf = b2; };
    tags[seed] = tag;
    if (end === buf.length) grow();
    buf[end++] = seed;
    while (head < end) {
      const p = buf[head++]!;
      const b = Math.floor(p / vol); let r = p - b * vol;
      const x = Math.floor(r / WD); r -= x * WD;
      const y = Math.floor(r / D), z = r - y * D;
      const interior = x > 0 && x < H - 1 && y > 0 && y < W - 1 && z > 0 && z < D - 1 && (!stackedB || (b > 0 && b < count - 1));
      if (interior) {
        for (let k = 0; k < n; k++) {
          const q = p + d[k]!;
          if (mask[q] === 0 || tags[q] !== 0) continue;
          tags[q] = tag;
          if (end === buf.length) grow();
          buf[end++] = q;
        }
      } else {
        for (let k = 0; k < n; k++) {
          const bb = b + db[k]!, xx = x + dx[k]!, yy = y + dy[k]!, zz = z + dz[k]!;
          if (bb < 0 || bb >= count || xx < 0 || xx >= H || yy < 0 || yy >= W || zz < 0 || zz >= D) continue;
          const q = p + d[k]!;
          if (mask[q] === 0 || tags[q] !== 0) continue;
          tags[q] = tag;
          if (end === buf.length) grow();
          buf[end++] = q;
        }
      }
    }
    return end;
  }
}

/**
 * Connected components of a stack of B binary [H,W,D] volumes, ids in raster order of their first
 * voxel (skimage's numbering). 'stacked': the 4-D array (b,x,y,z) with neighbours differing in at
 * most 3 axes (skimage connectivity 3 on [B,1,H,W,D]); 'per-object': 26-connectivity within each b.
 */
export function labelStack(mask: Uint8Array, count: number, shape: readonly [number, number, number], mode: 'stacked' | 'per-object'): Int32Array {
  const [H, W, D] = shape;
  const vol = H * W * D;
  if (mask.length !== count * vol) throw new MisfmError('ARGUMENT', `labelStack: ${mask.length} voxels do not fill ${count}x${H}x${W}x${D}`);
  const flood = new Flood(mask, count, shape, mode);
  const ids = new Int32Array(mask.length);
  let next = 0;
  for (let seed = 0; seed < mask.length; seed++) {
    if (mask[seed] === 0 || ids[seed] !== 0) continue;
    flood.fill(ids, ++next, seed, 0);
  }
  return ids;
}

/** numpy's round (half to even) */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * MONAI's keep_merge_components_with_points: for each click of object b, the largest component id
 * within Chebyshev distance m (first m of 0..margins-1 that finds one) of the rounded click, in the
 * positive (labels 1/3) or negative (0/2) candidates, is added to object b's mask.
 */
export function keepMergeComponentsWithPoints(diffPos: Uint8Array, diffNeg: Uint8Array, count: number, shape: readonly [number, number, number],
  coords: readonly (readonly (readonly number[])[])[], labels: readonly (readonly number[])[], mode: MergeMode = 'monai', margins = 3): Uint8Array {
  const [H, W, D] = shape;
  const vol = H * W * D;
  const how = mode === 'monai' ? 'stacked' : 'per-object';
  if (diffPos.length !== count * vol || diffNeg.length !== count * vol) throw new MisfmError('ARGUMENT', `Algorithm 1: candidate masks of ${diffPos.length} and ${diffNeg.length} voxels do not fill ${count}x${H}x${W}x${D}`);
  // Only the components near the clicks are labelled (labelStack would label the whole window):
  // skimage's ids follow the raster order of a component's first voxel, so "the largest id" is the
  // component whose smallest voxel index is largest, found by filling the candidates alone.
  const sides = [{ mask: diffPos, flood: new Flood(diffPos, count, shape, how) }, { mask: diffNeg, flood: new Flood(diffNeg, count, shape, how) }]
    .map((c) => ({ ...c, tags: new Int32Array(count * vol), first: [0], start: [0], end: [0], used: 0 }));
  /** Tag (1-based) of the component of voxel q of side s, filling it on first use. */
  const componentOf = (s: (typeof sides)[number], q: number): number => {
    if (s.tags[q] !== 0) return s.tags[q]!;
    const tag = s.first.length;
    const end = s.flood.fill(s.tags, tag, q, s.used);
    let lo = q;
    for (let i = s.used; i < end; i++) if (s.flood.buf[i]! < lo) lo = s.flood.buf[i]!;
    s.first.push(lo); s.start.push(s.used); s.end.push(end);
    s.used = end;
    return tag;
  };
  const out = new Uint8Array(count * vol);
  for (let b = 0; b < count; b++) {
    const pts = coords[b] ?? [];
    for (let i = 0; i < pts.length; i++) {
      const l = labels[b]![i]!;
      const s = l === 1 || l === 3 ? sides[0]! : l === 0 || l === 2 ? sides[1]! : null;
      if (s === null) continue;
      const [px, py, pz] = pts[i]!.map(roundHalfEven) as [number, number, number];
      for (let m = 0; m < margins; m++) {
        let best = 0, bestFirst = -1;
        for (let x = Math.max(px - m, 0); x < Math.min(px + m + 1, H); x++) for (let y = Math.max(py - m, 0); y < Math.min(py + m + 1, W); y++) {
          for (let z = Math.max(pz - m, 0); z < Math.min(pz + m + 1, D); z++) {
            const q = b * vol + (x * W + y) * D + z;
            if (s.mask[q] === 0) continue;
            const t = componentOf(s, q);
            if (s.first[t]! > bestFirst) { best = t; bestFirst = s.first[t]!; }
          }
        }
        if (best > 0) {
          // In stacked mode a component can span objects: only its part in object b is kept.
          const buf = s.flood.buf;
          for (let k = s.start[best]!; k < s.end[best]!; k++) { const q = buf[k]!; if (q >= b * vol && q < (b + 1) * vol) out[q] = 1; }
          break;
        }
      }
    }
  }
  return out;
}

/** Intermediates of Algorithm 1, for tests and diagnostics. */
export interface CombineDetail { inside: boolean[]; diffPos: Uint8Array; diffNeg: Uint8Array; cc: Uint8Array; }

/**
 * Algorithm 1. `logits` holds B objects; `pointLogits` the B1 objects where `mappingIndex` is true,
 * in order, with their clicks `coords` [B1][N][3] and `labels` [B1][N]. Returns new logits for all B
 * objects (objects not mapped are copied unchanged). `pointLogits` is not modified.
 */
export function connectedComponentsCombine(logits: ObjectLogits, pointLogits: Float32Array, coords: readonly (readonly (readonly number[])[])[],
  labels: readonly (readonly number[])[], mappingIndex: readonly boolean[], mode: MergeMode = 'monai', detail?: (d: CombineDetail) => void): Float32Array {
  const [H, W, D] = logits.shape;
  const vol = H * W * D;
  const mapped = mappingIndex.flatMap((m, i) => (m ? [i] : []));
  const B1 = mapped.length;
  if (mappingIndex.length !== logits.count || pointLogits.length !== B1 * vol || coords.length !== B1 || labels.length !== B1) {
    throw new MisfmError('ARGUMENT', `Algorithm 1: ${logits.count} objects, ${mapped.length} mapped, ${pointLogits.length / vol} point-logit objects, ${coords.length} point lists do not agree`);
  }
  const A = new Float32Array(B1 * vol);
  mapped.forEach((o, i) => A.set(logits.data.subarray(o * vol, (o + 1) * vol), i * vol));
  const inside = coords.map((pts, i) => pts.some((p) => {
    const [x, y, z] = p.map(roundHalfEven) as [number, number, number];
    const v = A[i * vol + (x * W + y) * D + z];
    return v !== undefined && v > 0;
  }));
  const probA = probAboveHalf(A), pos = probAboveHalf(pointLogits);
  const diffPos = new Uint8Array(B1 * vol), diffNeg = new Uint8Array(B1 * vol);
  for (let i = 0; i < B1; i++) {
    const ins = inside[i]!;
    for (let j = i * vol; j < (i + 1) * vol; j++) {
      diffPos[j] = (probA[j] === 0 || ins) && pos[j] === 1 ? 1 : 0;
      diffNeg[j] = probA[j] === 1 && pos[j] === 0 ? 1 : 0;
    }
  }
  const cc = keepMergeComponentsWithPoints(diffPos, diffNeg, B1, logits.shape, coords, labels, mode);
  detail?.({ inside, diffPos, diffNeg, cc });
  const out = logits.data.slice();
  for (let i = 0; i < B1; i++) {
    const o = mapped[i]!;
    for (let j = 0; j < vol; j++) {
      const a = A[i * vol + j]!;
      let p = pointLogits[i * vol + j]!;
      const isNan = Number.isNaN(a);
      // MONAI writes -1 into the point logits at NaN voxels that are positive but not clicked.
      if (isNan && pos[i * vol + j] === 1 && cc[i * vol + j] === 0) p = -1;
      const c = cc[i * vol + j] === 1 || isNan ? 1 : 0;
      // MONAI: a·(1−c) + c·p, which keeps NaN (NaN·0); the corrected mode takes p there.
      out[o * vol + j] = mode === 'corrected' && isNan ? p : Math.fround(a * (1 - c) + c * p);
    }
  }
  return out;
}

/**
 * gaussian_combine's weight of the automatic logits for one object: max(0, 1 − Σ Gaussian bumps at
 * its clicks) (padding points skipped; negative and positive bumps summed separately first, as
 * MONAI does), float32 arithmetic. Radius default min(H,W,D)//5.
 */
export function gaussianWeight(points: readonly (readonly number[])[], labels: readonly number[], shape: readonly [number, number, number], radius?: number): Float32Array {
  const [H, W, D] = shape;
  const vol = H * W * D;
  const r = radius ?? Math.floor(Math.min(H, W, D) / 5);
  const denom = 2 * r * r;
  const ch0 = new Float32Array(vol), ch1 = new Float32Array(vol);
  points.forEach((p, n) => {
    const l = labels[n]!;
    if (!(l > -1)) return;
    const ch = l === 0 || l === 2 ? ch0 : ch1;
    for (let x = 0; x < H; x++) for (let y = 0; y < W; y++) for (let z = 0; z < D; z++) {
      const d2 = (x - p[0]!) ** 2 + (y - p[1]!) ** 2 + (z - p[2]!) ** 2;
      const j = (x * W + y) * D + z;
      ch[j] = Math.fround(ch[j]! + Math.fround(Math.exp(Math.fround(-d2 / denom))));
    }
  });
  const w = new Float32Array(vol);
  for (let j = 0; j < vol; j++) { const v = Math.fround(1 - Math.fround(ch0[j]! + ch1[j]!)); w[j] = v < 0 ? 0 : v; }
  return w;
}

/**
 * gaussian_combine: mapped objects become logits·weight + (1−weight)·point_logits (gaussianWeight).
 */
export function gaussianCombine(logits: ObjectLogits, pointLogits: Float32Array, coords: readonly (readonly (readonly number[])[])[],
  labels: readonly (readonly number[])[], mappingIndex: readonly boolean[], radius?: number): Float32Array {
  const vol = logits.shape[0] * logits.shape[1] * logits.shape[2];
  const mapped = mappingIndex.flatMap((m, i) => (m ? [i] : []));
  const out = logits.data.slice();
  mapped.forEach((o, i) => {
    const w = gaussianWeight(coords[i]!, labels[i]!, logits.shape, radius);
    for (let j = 0; j < vol; j++) {
      const a = Math.fround(logits.data[o * vol + j]! * w[j]!);
      out[o * vol + j] = Math.fround(a + Math.fround(Math.fround(1 - w[j]!) * pointLogits[i * vol + j]!));
    }
  });
  return out;
}
