// Development check (docs/results/vista3d-real.md, session 11): node scripts/dev/vista3d-point-fit-real.mjs CACHE_DIR; env IT, LR.
// Overfit VISTA3D-small's point branch on ONE real 64^3 patch of CT 01 (liver, stomach, right kidney).
import { readFileSync } from 'node:fs';
const D = new URL('../../dist/src/', import.meta.url).href;
const { fromTypedArray, setNumThreads, manualSeed } = await import(D + 'engine/creation.js');
const { tidy } = await import(D + 'engine/scope.js');
const { createVista3d } = await import(D + 'models/registry.js');
const { AdamW } = await import(D + 'optim/index.js');
const { trainPatch, VISTA3D_STAGES } = await import(D + 'train/vista3d/step.js');
const { Rng } = await import(D + 'util/rng.js');
const { readCacheHeader, viewAs } = await import(D + 'data/format.js');
setNumThreads(2); manualSeed(0);
// A misfm cache of CT 01 prepared at 3 mm in RAS (experiments/vista3d-real.sh makes OUT/cache-ras).
const dir = (process.argv[2] ?? 'runs/vista3d-real/cache-ras').replace(/\/?$/, '/');
const load = (f) => { const h = readCacheHeader(dir + f); const b = readFileSync(dir + f); const bytes = b.buffer.slice(b.byteOffset + b.length - h.dataBytes, b.byteOffset + b.length); return { h, a: viewAs(h.dtype, bytes) }; };
const im = load('abdomen01.img.mvol'), lb = load('abdomen01.lab.mvol');
const [X, Y, Z] = im.h.shape; console.log('shape', im.h.shape, im.h.dtype, lb.h.dtype);
const map = { 5: 1, 6: 12, 2: 5 }; // TotalSegmentator -> VISTA3D: liver, stomach, right kidney
// liver centroid
let cx = 0, cy = 0, cz = 0, n = 0;
for (let i = 0; i < X; i++) for (let j = 0; j < Y; j++) for (let k = 0; k < Z; k++) if (lb.a[(i * Y + j) * Z + k] === 5) { cx += i; cy += j; cz += k; n++; }
const c = [cx / n, cy / n, cz / n].map((v, d) => Math.max(0, Math.min([X, Y, Z][d] - 64, Math.round(v) - 32)));
const S = 64, img = new Float32Array(S ** 3), lab = new Int32Array(S ** 3);
for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) for (let k = 0; k < S; k++) {
  const src = ((i + c[0]) * Y + (j + c[1])) * Z + (k + c[2]), p = (i * S + j) * S + k;
  img[p] = Math.min(1, Math.max(0, (Number(im.a[src]) + 963.8) / (1053.7 + 963.8)));
  lab[p] = map[lb.a[src]] ?? 0;
}
const cnt = {}; for (const v of lab) cnt[v] = (cnt[v] ?? 0) + 1; console.log('patch classes', cnt);
const model = createVista3d('vista3d-small');
const opt = new AdamW(model.parameters(), { lr: Number(process.env.LR ?? 1e-3), weightDecay: 1e-5 });
const stage = { ...VISTA3D_STAGES[1], supervoxels: null };
const rng = new Rng(1); const t0 = performance.now(); let acc = [];
for (let it = 0; it < Number(process.env.IT ?? 30); it++) {
  acc.push(...tidy(() => trainPatch(model, opt, fromTypedArray(img, [1, 1, S, S, S]), lab, [0, 1, 5, 12], stage, rng)));
  if ((it + 1) % 5 === 0) { console.log(`patch ${it + 1} mean loss ${(acc.reduce((a, b) => a + b, 0) / acc.length).toFixed(3)} (${acc.length} steps) ${((performance.now() - t0) / 1000).toFixed(0)} s`); acc = []; }
}
