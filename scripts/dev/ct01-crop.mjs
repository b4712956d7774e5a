// Shared by the VISTA3D development checks: one S³ crop of CT 01 from a misfm cache (the RAS cache
// that experiments/vista3d-real.sh makes, OUT/cache-ras), centred on a TotalSegmentator structure.
const D = new URL('../../dist/src/', import.meta.url).href;
const { CacheVolume } = await import(D + 'data/reader.js');
const { VISTA3D_HU_WINDOW } = await import(D + 'config/defaults.js');
const { zyxToXyz } = await import(D + 'train/vista3d/task.js');

const cached = new Map();
function readAll(file) {
  if (!cached.has(file)) {
    const v = CacheVolume.open(file);
    try { cached.set(file, { shape: v.shape, a: v.readAll() }); } finally { v.close(); }
  }
  return cached.get(file);
}

/**
 * The crop around the centroid of TotalSegmentator value `centreOn`: the image in the spec's CT window
 * mapped to [0, 1], labels through `map` (TotalSegmentator value -> VISTA3D class, others 0).
 * `xyz`: reorder from the cache's (D,H,W) to MONAI's (x,y,z), as the trainer feeds the network.
 */
export function ct01Crop(dir, S, centreOn, map, { xyz = false } = {}) {
  const d = dir.replace(/\/$/, '');
  const im = readAll(`${d}/abdomen01.img.mvol`), lb = readAll(`${d}/abdomen01.lab.mvol`);
  const [Dz, Hy, Wx] = im.shape, vol = S ** 3, [lo, hi] = VISTA3D_HU_WINDOW;
  let cz = 0, cy = 0, cx = 0, n = 0;
  for (let z = 0; z < Dz; z++) for (let y = 0; y < Hy; y++) for (let x = 0; x < Wx; x++) if (lb.a[(z * Hy + y) * Wx + x] === centreOn) { cz += z; cy += y; cx += x; n++; }
  if (n === 0) throw new Error(`ct01Crop: no voxel of TotalSegmentator value ${centreOn} in ${d}`);
  const o = [cz / n, cy / n, cx / n].map((v, a) => Math.max(0, Math.min([Dz, Hy, Wx][a] - S, Math.round(v) - S / 2)));
  const img = new Float32Array(vol), lab = new Int32Array(vol);
  for (let z = 0; z < S; z++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    const src = ((z + o[0]) * Hy + (y + o[1])) * Wx + (x + o[2]), p = (z * S + y) * S + x;
    img[p] = (Math.min(hi, Math.max(lo, Number(im.a[src]))) - lo) / (hi - lo);
    lab[p] = map[lb.a[src]] ?? 0;
  }
  if (!xyz) return { img, lab };
  return { img: zyxToXyz(img, [S, S, S], new Float32Array(vol)), lab: zyxToXyz(lab, [S, S, S], new Int32Array(vol)) };
}
