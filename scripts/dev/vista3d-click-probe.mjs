// Development check (docs/results/vista3d-real.md, session 12): what a trained VISTA3D's point branch
// predicts for one click and for three clicks, on one 64³ crop of the training scan per structure,
// next to the automatic branch on the same crop.
//   node scripts/dev/vista3d-click-probe.mjs CHECKPOINT CACHE_DIR
// CACHE_DIR: the RAS cache of CT 01 that experiments/vista3d-real.sh makes (OUT/cache-ras).
// Prints, per structure and click set: target and predicted voxels, Dice, the logit at the first click.
const D = new URL('../../dist/src/', import.meta.url).href;
const { setNumThreads, fromTypedArray, noGrad } = await import(D + 'engine/creation.js');
const { loadVista3dCheckpoint } = await import(D + 'models/vista3d/checkpoint.js');
const { disposeFeatures } = await import(D + 'models/vista3d/model.js');
const { sampleCentrePoints } = await import(D + 'train/vista3d/sampler.js');
const { ct01Crop } = await import('./ct01-crop.mjs');
const [ckpt, dirArg] = process.argv.slice(2);
if (ckpt === undefined || dirArg === undefined) { console.error('usage: node scripts/dev/vista3d-click-probe.mjs CHECKPOINT CACHE_DIR'); process.exit(2); }
setNumThreads(Number(process.env.TH ?? 2));
const S = 64, vol = S ** 3, dir = dirArg.replace(/\/$/, '');
// TotalSegmentator value -> VISTA3D class: liver, stomach, aorta, inferior vena cava
const structures = [['liver', 5, 1], ['stomach', 6, 12], ['aorta', 52, 6], ['inferior vena cava', 63, 7]];
const map = Object.fromEntries(structures.map(([, ts, v]) => [ts, v]));
const { model } = await loadVista3dCheckpoint(ckpt);
for (const [name, ts, cls] of structures) {
  const { img: xi, lab: xl } = ct01Crop(dir, S, ts, map, { xyz: true });
  const c0 = sampleCentrePoints(xl, [S, S, S], [cls]).coords[0][0];
  const score = (d) => { let tp = 0, p = 0, g = 0; for (let q = 0; q < vol; q++) { const a = d[q] > 0, b = xl[q] === cls; tp += a && b; p += a; g += b; } return { p, g, dice: (2 * tp) / Math.max(1, p + g) }; };
  noGrad(() => {
    const x = fromTypedArray(xi, [1, 1, S, S, S]);
    const f = model.encode(x, true, true); x.dispose();
    try {
      const sets = [[c0], [c0, [c0[0] + 6, c0[1], c0[2]], [c0[0], c0[1] + 6, c0[2]]]];
      for (const clicks of sets) {
        const t = model.decodeHeads(f, { points: { coords: [clicks], labels: [clicks.map(() => 1)] }, promptClass: [cls] });
        const d = t.dataF32(); t.dispose();
        const s = score(d);
        console.log(`${name}: ${clicks.length} click(s): target ${s.g}, predicted ${s.p}, Dice ${s.dice.toFixed(3)}, logit at the first click ${d[(c0[0] * S + c0[1]) * S + c0[2]].toFixed(2)}`);
      }
      const a = model.decodeHeads(f, { classVector: [cls] }); const s = score(a.dataF32()); a.dispose();
      console.log(`${name}: automatic: predicted ${s.p}, Dice ${s.dice.toFixed(3)}`);
    } finally { disposeFeatures(f); }
  });
}
model.dispose();
