/**
 * The research trainer's supervoxel point sampler (VISTA `scripts/utils/sample_utils.py` ›
 * `Point_sampler`; spec §10.1), which turns supervoxels into zero-shot training targets.
 *
 * Per prompted class a uniform draw v picks (special classes always take `regular`):
 * - v < 0.6 `regular`: Np positives from the eroded class mask away from the patch border;
 * - 0.6-0.7 `organSub`: a supervoxel piece (10-90 % of the organ) is split off, one negative click
 *   in one part, positives in the other; the target becomes zero-shot, or the piece is removed;
 * - 0.7-0.8 `organAdd`: a neighbouring unlabelled supervoxel joins the organ (zero-shot with p 0.5);
 * - 0.8-0.9 `zeroshotUnseen`: an unlabelled supervoxel of at least `minSize` voxels is a new class;
 * - ≥ 0.9 `zeroshotRandom`: a supervoxel merged with the unprompted organs it covers by > 10 %.
 * A zero-shot target is relabelled `id + mapShift` in the sampler's copy of the label map, and the
 * prompt class of that object becomes `id + mapShift` (> lastSupported: the point head's zero-shot
 * token). Each mode falls back to `regular` when no supervoxel qualifies.
 *
 * Ported behaviour, not bits: Python's `random`/numpy draws are replaced by misfm's seeded Rng.
 * Kept from the research code: `removeOutside`'s box excludes the region's last slice on each axis,
 * and the window border (`offset`) applies to all three axes (the iterative-click sampler spares
 * the third). Corrected by default: the research `find_lcc_label` loops `range(1, num_features)`,
 * skipping the last component, so a candidate with a single component never joins the organ and
 * `organ_add` falls back to `regular`; `quirks: 'research'` restores that.
 */
import type { Rng } from '../../util/rng.js';
import { connectedComponents } from '../../infer/postprocess.js';
import { SPECIAL_INDEX } from '../../models/vista3d/classes.js';
import { largestComponent, morph, type Shape3 } from './sampler.js';

export interface SupervoxelSamplerOptions {
  /** Added to a class index to make it zero-shot (research: 512; must exceed lastSupported). */
  mapShift?: number;
  /** Border (voxels) excluded from clicks on every axis (research: 10 at 1.5 mm, 128³ patches). */
  offset?: number;
  /** Smallest supervoxel (voxels) that may become a zero-shot class (research: 20³ = 8000). */
  minSize?: number;
  /** Upper bounds of the regular / organ_sub / organ_add / zeroshot_unseen ranges (research [0.6, 0.7, 0.8, 0.9]). */
  vrange?: readonly [number, number, number, number];
  /** 'corrected' (default) or 'research': find_lcc_label skips the last component as the research loop does. */
  quirks?: 'corrected' | 'research';
}

export type SupervoxelMode = 'regular' | 'organ_sub' | 'organ_add' | 'zeroshot_unseen' | 'zeroshot_random';

export class SupervoxelPointSampler {
  /** The label map as modified by the draws (zero-shot targets shifted by mapShift). */
  readonly label: Uint16Array;
  /** Class -> its zero-shot index, for the classes whose target became zero-shot. */
  readonly shifted = new Map<number, number>();
  /** The mode each class took in the last call (diagnostics, tests). */
  readonly modes = new Map<number, SupervoxelMode>();
  readonly #sv: ArrayLike<number> | null;
  readonly #shape: Shape3;
  readonly #rng: Rng;
  readonly #mapShift: number;
  readonly #minSize: number;
  readonly #vrange: readonly [number, number, number, number];
  readonly #window: Uint8Array;
  readonly #skipLast: boolean;
  #readOnly: number[] = [];

  constructor(label: ArrayLike<number>, sv: ArrayLike<number> | null, shape: Shape3, rng: Rng, o: SupervoxelSamplerOptions = {}) {
    const [H, W, D] = shape;
    if (label.length !== H * W * D || (sv !== null && sv.length !== label.length)) throw new Error('SupervoxelPointSampler: label, supervoxels and shape disagree');
    this.label = Uint16Array.from(label);
    this.#sv = sv; this.#shape = shape; this.#rng = rng;
    this.#mapShift = o.mapShift ?? 512;
    this.#minSize = o.minSize ?? 8000;
    this.#vrange = o.vrange ?? [0.6, 0.7, 0.8, 0.9];
    this.#skipLast = o.quirks === 'research';
    const off = o.offset ?? 10;
    // window[off:-off, off:-off, off:-off] = False: the border band of every axis is excluded.
    this.#window = new Uint8Array(H * W * D);
    for (let x = 0, j = 0; x < H; x++) for (let y = 0; y < W; y++) for (let z = 0; z < D; z++, j++) {
      this.#window[j] = x < off || x >= H - off || y < off || y >= W - off || z < off || z >= D - off ? 1 : 0;
    }
  }

  /** Points for each class of `classes` (Np positives, Nn negatives where the mode uses them), padded to one length. */
  sample(classes: readonly number[], np: number, nn = 0): { coords: number[][][]; labels: number[][] } {
    this.#readOnly = [...classes];
    const pts: number[][][] = [], labs: number[][] = [];
    for (const id of classes) {
      // Special classes skip the augmentation (the research code sets v = 0, i.e. regular).
      const special = SPECIAL_INDEX.includes(id);
      const v = special ? 0 : this.#rng.uniform();
      const [a, b, c, d] = this.#vrange;
      let r: [number[][], number[]];
      if (special || v < a || this.#sv === null) r = this.#regular(id, np, nn);
      else if (v < b) r = this.#organSub(id, np, nn);
      else if (v < c) r = this.#organAdd(id, np);
      else if (v < d) r = this.#zeroshotUnseen(id, np, nn);
      else r = this.#zeroshotRandom(id, np, nn);
      pts.push(r[0]); labs.push(r[1]);
    }
    const len = Math.max(0, ...pts.map((p) => p.length));
    return {
      coords: pts.map((p) => [...p, ...Array.from({ length: len - p.length }, () => [0, 0, 0])]),
      labels: labs.map((l) => [...l, ...Array.from({ length: len - l.length }, () => -1)]),
    };
  }

  // ---- helpers ------------------------------------------------------------------------------

  #mask(pred: (j: number) => boolean): Uint8Array {
    const m = new Uint8Array(this.label.length);
    for (let j = 0; j < m.length; j++) m[j] = pred(j) ? 1 : 0;
    return m;
  }
  #erode(m: Uint8Array, k = 3): Uint8Array { return morph(m, this.#shape, k, 'erode'); }
  #dilate(m: Uint8Array, k: number): Uint8Array { return morph(m, this.#shape, k, 'dilate'); }
  /** Eroded mask with the border window cleared. */
  #inner(m: Uint8Array): Uint8Array { const e = this.#erode(m); for (let j = 0; j < e.length; j++) if (this.#window[j]) e[j] = 0; return e; }
  #nonzero(m: Uint8Array): number[] { const out: number[] = []; for (let j = 0; j < m.length; j++) if (m[j]) out.push(j); return out; }
  #coords(j: number): number[] { const [, W, D] = this.#shape; const z = j % D, r = (j - z) / D, y = r % W; return [(r - y) / W, y, z]; }
  /** k draws with replacement (random.choices). */
  #choices(list: readonly number[], k: number): number[][] { return Array.from({ length: k }, () => this.#coords(list[this.#rng.randint(0, list.length - 1)]!)); }
  #sum(m: Uint8Array): number { let s = 0; for (let j = 0; j < m.length; j++) s += m[j]!; return s; }
  /** Distinct values of a ArrayLike where `m` is set (ascending). */
  #unique(a: ArrayLike<number>, m: Uint8Array | null): number[] {
    const s = new Set<number>();
    for (let j = 0; j < a.length; j++) if (m === null || m[j]) s.add(a[j]!);
    return [...s].sort((x, y) => x - y);
  }
  #touchesReadOnly(m: Uint8Array): boolean { const ids = this.#unique(this.label, m); return ids.some((i) => this.#readOnly.includes(i)); }
  #shift(id: number): void { this.shifted.set(id, id + this.#mapShift); this.#readOnly.push(id + this.#mapShift); }
  /** open_lcc: erode 3³, keep the largest 26-connected component, dilate 3³, within the original. */
  #openLcc(m: Uint8Array): Uint8Array {
    const d = this.#dilate(largestComponent(this.#erode(m), this.#shape), 3);
    for (let j = 0; j < m.length; j++) d[j] = d[j]! & m[j]!;
    return d;
  }
  /** find_lcc_label: of the eroded mask's components, the largest touching the region dilated by 5³; dilated 5³, within the original. */
  #findLccLabel(m: Uint8Array, region: Uint8Array): Uint8Array {
    const e = this.#erode(m);
    const { ids, sizes } = connectedComponents(e, [...this.#shape] as [number, number, number], 26);
    const near = this.#dilate(region, 5);
    const touch = new Uint8Array(sizes.length);
    for (let j = 0; j < m.length; j++) if (ids[j]! > 0 && near[j]) touch[ids[j]!] = 1;
    let best = 0, bestCount = 0;
    const last = sizes.length - (this.#skipLast ? 1 : 0);
    for (let i = 1; i < last; i++) if (touch[i] && sizes[i]! > bestCount) { best = i; bestCount = sizes[i]!; }
    const cc = new Uint8Array(m.length);
    if (best > 0) for (let j = 0; j < m.length; j++) cc[j] = ids[j] === best ? 1 : 0;
    const d = this.#dilate(cc, 5);
    for (let j = 0; j < m.length; j++) d[j] = d[j]! & m[j]!;
    return d;
  }
  /** remove_outside: clear voxels outside the region's [min, max) box on every axis. */
  #removeOutside(m: Uint8Array, region: Uint8Array): void {
    const [H, W, D] = this.#shape;
    const lo = [H, W, D], hi = [-1, -1, -1];
    for (let j = 0; j < region.length; j++) if (region[j]) { const c = this.#coords(j); for (let a = 0; a < 3; a++) { lo[a] = Math.min(lo[a]!, c[a]!); hi[a] = Math.max(hi[a]!, c[a]!); } }
    for (let j = 0; j < m.length; j++) if (m[j]) { const c = this.#coords(j); if (c.some((v, a) => v < lo[a]! || v >= hi[a]!)) m[j] = 0; }
  }
  #shuffledSv(where: Uint8Array): number[] { return this.#rng.shuffle(this.#unique(this.#sv!, where)); }

  // ---- the five modes ---------------------------------------------------------------------------

  #regular(id: number, np: number, nn: number): [number[][], number[]] {
    this.modes.set(id, 'regular');
    const special = SPECIAL_INDEX.includes(id);
    const p = this.#mask((j) => this.label[j] === id);
    let cand = this.#nonzero(this.#inner(p));
    if (cand.length === 0) cand = this.#nonzero(p);
    const kp = Math.min(cand.length, np);
    const pts = this.#choices(cand, kp), labs = Array<number>(kp).fill(special ? 3 : 1);
    if (nn > 0) {
      const neg = this.#nonzero(this.#erode(this.#mask((j) => this.label[j] !== id)));
      const kn = Math.min(neg.length, nn);
      if (kn > 0) { pts.push(...this.#choices(neg, kn)); labs.push(...Array<number>(kn).fill(special ? 2 : 0)); }
    }
    return [pts, labs];
  }

  #organSub(id: number, np: number, nn: number): [number[][], number[]] {
    const sv = this.#sv!;
    const region = this.#mask((j) => this.label[j] === id);
    const regionSize = this.#sum(region);
    const useZs = this.#rng.uniform() < 0.5;
    for (const s of this.#shuffledSv(region)) {
      let p: Uint8Array, n: Uint8Array;
      const piece = this.#openLcc(this.#mask((j) => sv[j] === s && region[j] === 1));
      const size = this.#sum(piece);
      if (size < 0.1 * regionSize || size > 0.9 * regionSize) continue;
      const rest = this.#mask((j) => piece[j] === 0 && region[j] === 1);
      if (useZs) { p = piece; n = rest; } else { n = piece; p = rest; }
      const pc = this.#nonzero(this.#inner(p)), nc = this.#nonzero(this.#inner(n));
      const kp = Math.min(pc.length, np), kn = Math.min(nc.length, Math.max(1, nn));
      if (kp === 0 || kn === 0) continue;
      const pts = [...this.#choices(pc, kp), ...this.#choices(nc, kn)];
      const labs = [...Array<number>(kp).fill(1), ...Array<number>(kn).fill(0)];
      if (useZs || this.#rng.uniform() < 0.5) {
        for (let j = 0; j < p.length; j++) if (p[j]) this.label[j] = id + this.#mapShift;
        this.#shift(id);
      } else {
        for (let j = 0; j < n.length; j++) if (n[j]) this.label[j] = 0;
      }
      this.modes.set(id, 'organ_sub');
      return [pts, labs];
    }
    return this.#regular(id, np, nn);
  }

  #organAdd(id: number, np: number): [number[][], number[]] {
    const sv = this.#sv!;
    const region = this.#mask((j) => this.label[j] === id);
    const regionSize = this.#sum(region);
    for (const s of this.#shuffledSv(region)) {
      let p = this.#mask((j) => sv[j] === s && this.label[j] === 0);
      if (this.#sum(p) === 0) continue;
      p = this.#findLccLabel(p, region);
      if (this.#touchesReadOnly(p)) continue;
      if (this.#sum(p) < 0.1 * regionSize) continue;
      const inner = this.#inner(p);
      this.#removeOutside(inner, region);
      const pc = this.#nonzero(inner);
      const kp = Math.min(pc.length, np);
      if (kp === 0) continue;
      const pts = this.#choices(pc, kp);
      let rc = this.#nonzero(this.#inner(region));
      if (Math.min(rc.length, np) === 0) rc = this.#nonzero(region);
      const kp2 = Math.min(rc.length, np);
      pts.push(...this.#choices(rc, kp2));
      for (let j = 0; j < p.length; j++) if (p[j]) this.label[j] = id;
      if (this.#rng.uniform() < 0.5) {
        for (let j = 0; j < this.label.length; j++) if (this.label[j] === id) this.label[j] = id + this.#mapShift;
        this.#shift(id);
      }
      this.modes.set(id, 'organ_add');
      return [pts, Array<number>(kp + kp2).fill(1)];
    }
    return this.#regular(id, np, 0);
  }

  #zeroshotUnseen(id: number, np: number, nn: number): [number[][], number[]] {
    const sv = this.#sv!;
    const region = this.#mask((j) => this.label[j] === 0);
    for (const s of this.#shuffledSv(region)) {
      const p = this.#openLcc(this.#mask((j) => sv[j] === s && region[j] === 1));
      if (this.#sum(p) < this.#minSize) continue;
      if (this.#touchesReadOnly(p)) continue;
      const pc = this.#nonzero(this.#inner(p));
      const kp = Math.min(pc.length, np);
      if (kp === 0) continue;
      const pts = this.#choices(pc, kp), labs = Array<number>(kp).fill(1);
      if (nn > 0) {
        const nc = this.#nonzero(this.#erode(this.#mask((j) => p[j] === 0 && region[j] === 1)));
        const kn = Math.min(nc.length, nn);
        if (kn > 0) { pts.push(...this.#choices(nc, kn)); labs.push(...Array<number>(kn).fill(0)); }
      }
      for (let j = 0; j < p.length; j++) if (p[j]) this.label[j] = id + this.#mapShift;
      this.#shift(id);
      this.modes.set(id, 'zeroshot_unseen');
      return [pts, labs];
    }
    return this.#regular(id, np, nn);
  }

  #zeroshotRandom(id: number, np: number, nn: number): [number[][], number[]] {
    const sv = this.#sv!;
    const region = this.#mask((j) => this.label[j] === 0);
    for (const s of this.#shuffledSv(region)) {
      const p = this.#openLcc(this.#mask((j) => sv[j] === s));
      const ids = this.#unique(this.label, p);
      if (ids.some((i) => this.#readOnly.includes(i))) continue;
      if (this.#sum(p) < this.#minSize) continue;
      const pts: number[][] = [];
      for (const i of this.#rng.shuffle([...ids])) {
        if (i === 0) continue;
        const fgSize = this.#sum(this.#mask((j) => this.label[j] === i));
        const overlap = this.#mask((j) => p[j] === 1 && this.label[j] === i);
        if (0.1 * fgSize < this.#sum(overlap)) {
          for (let j = 0; j < p.length; j++) if (this.label[j] === i) p[j] = 1;
          const oc = this.#nonzero(this.#inner(overlap));
          if (oc.length === 0) continue;
          pts.push(...this.#choices(oc, 1));
        }
      }
      const pc = this.#nonzero(this.#inner(this.#mask((j) => p[j] === 1 && region[j] === 1)));
      const kp = Math.min(pc.length, np);
      if (kp === 0) continue;
      pts.push(...this.#choices(pc, kp));
      for (let j = 0; j < p.length; j++) if (p[j]) this.label[j] = id + this.#mapShift;
      this.#shift(id);
      this.modes.set(id, 'zeroshot_random');
      return [pts, Array<number>(pts.length).fill(1)];
    }
    return this.#regular(id, np, nn);
  }
}
