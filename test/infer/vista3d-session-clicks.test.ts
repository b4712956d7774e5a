/**
 * The session's click path: a click in a window whose features are cached never runs the image
 * encoder (spied on the encoder itself), a first click encodes the point branch only, the windowed
 * label-map handling equals the whole-volume computation (resampled, reoriented image; only voxels
 * whose label changed are written), and `clickMode: 'bundle'` re-runs the class head in the window
 * as MONAI's bundle does; `reuseWindows` answers a click near an earlier one in its cached window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Mat3, Vec3, Volume } from '../../src/io/volume.js';
import { voxelToWorld, worldToVoxel } from '../../src/io/volume.js';
import { openVista3dSession, VISTA3D_HU_WINDOW, type ClickPoint } from '../../src/infer/vista3d/session.js';
import type { Window } from '../../src/infer/vista3d/windows.js';
import { pointLogits } from '../../src/infer/vista3d/inferer.js';
import { loadVista3dCheckpoint } from '../../src/models/vista3d/checkpoint.js';
import { SegResNetDS2 } from '../../src/models/vista3d/segresnet.js';
import type { VISTA3D } from '../../src/models/vista3d/model.js';
import { noGrad } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { reorient, undoReorient } from '../../src/transforms/orientation.js';
import { resampleToReference, resampleToSpacing } from '../../src/transforms/resample.js';
import { clipAndScale } from '../../src/transforms/intensity.js';
import { volumeToBatch } from '../../src/transforms/volume-tensor.js';
import { geometryOf } from '../../src/transforms/grid.js';
import { runSegment } from '../../src/cli/commands/segment.js';
import { MisfmError } from '../../src/util/errors.js';
import { vistaDir, f32 } from '../models/vista3d-helpers.js';

const CKPT = path.join(vistaDir, 'state_dict.pt');
const ROI = [16, 24, 32] as const;

/** The fixture's random image as CT (HU), x-fastest, on a grid of the given spacing and direction. */
function ctVolume(spacing: Vec3 = [1.5, 1.5, 1.5], direction: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1]): Volume {
  const src = f32('inferer/image'); // C-order [12,40,48] = (x, y, z), z fastest
  const [X, Y, Z] = [12, 40, 48];
  const data = new Float32Array(X * Y * Z);
  for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) data[x + X * (y + Y * z)] = src[(x * Y + y) * Z + z]! * 400;
  return { data, size: [X, Y, Z], spacing, origin: [10, -20, 30], direction };
}

/** Encoder calls (and whether each decoded the class branch) while `f` runs. */
async function spyEncoder<T>(f: () => Promise<T>): Promise<{ result: T; calls: { withPoint: boolean; withLabel: boolean }[] }> {
  const proto = SegResNetDS2.prototype as unknown as { forward: (x: Tensor, p?: boolean, l?: boolean) => unknown };
  const orig = proto.forward;
  const calls: { withPoint: boolean; withLabel: boolean }[] = [];
  proto.forward = function (this: unknown, x: Tensor, p = true, l = true) { calls.push({ withPoint: p, withLabel: l }); return orig.call(this, x, p, l); };
  try { return { result: await f(), calls }; } finally { proto.forward = orig; }
}

test('reuseWindows: a click near an earlier one is answered in the cached window; MONAI centres a new window', async () => {
  // Two clicks 4 voxels apart along y: their centred windows differ (neither is clamped to the same place).
  const c1: ClickPoint[] = [{ label: 3, positive: true, ijk: [6, 10, 40] }];
  const c2: ClickPoint[] = [...c1, { label: 3, positive: true, ijk: [6, 14, 40] }];
  const run = async (reuseWindows?: number): Promise<{ windows: Window[]; second: { windowsComputed: number; cacheHits: number }; labels: Volume }> => {
    const windows: Window[] = [];
    const s = await openVista3dSession(CKPT, ctVolume(), { roi: ROI, ...(reuseWindows === undefined ? {} : { reuseWindows }), onEncode: (w) => { windows.push(w); } });
    try {
      const first = await s.click(c1, null);
      const second = await s.click(c2, first.labels);
      return { windows, second, labels: second.labels };
    } finally { s.dispose(); }
  };
  const monai = await run();
  assert.equal(monai.windows.length, 2, 'MONAI: the second click centres a window of its own');
  assert.deepEqual([monai.second.windowsComputed, monai.second.cacheHits], [1, 1]);
  const reused = await run(4);
  assert.equal(reused.windows.length, 1, 'the second click is answered in the first window');
  assert.deepEqual([reused.second.windowsComputed, reused.second.cacheHits], [0, 1]);
  assert.notDeepEqual(Array.from(reused.labels.data), Array.from(monai.labels.data), 'another window, another result');
  // The second click lies 9 voxels from the first window's inner face: a margin of 10 is not met.
  const strict = await run(10);
  assert.equal(strict.windows.length, 2);
  assert.deepEqual(Array.from(strict.labels.data), Array.from(monai.labels.data), 'no computed window qualifies: MONAI\'s windows');
  await assert.rejects(openVista3dSession(CKPT, ctVolume(), { roi: ROI, reuseWindows: -1 }), /reuseWindows must be a whole number/);
});

test('a click in a cached window never runs the image encoder; a first click encodes the point branch only', async () => {
  let encoded = 0;
  const s = await openVista3dSession(CKPT, ctVolume(), { roi: ROI, onEncode: () => { encoded++; } });
  try {
    const c1: ClickPoint[] = [{ label: 3, positive: true, ijk: [6, 10, 40] }];
    const first = await spyEncoder(() => s.click(c1, null));
    assert.deepEqual(first.calls, [{ withPoint: true, withLabel: false }], 'one window, point branch only');
    assert.equal(first.result.windowsComputed, 1);
    assert.equal(encoded, 1);
    // Two clicks whose centred windows coincide: the window is served by the cache, and run once.
    const c2: ClickPoint[] = [...c1, { label: 3, positive: false, ijk: [7, 8, 38] }];
    const second = await spyEncoder(() => s.click(c2, first.result.labels));
    assert.equal(second.calls.length, 0, 'the image encoder did not run');
    assert.deepEqual([second.result.windowsComputed, second.result.cacheHits], [0, 1]);
    assert.equal(encoded, 1);
    // An automatic pass needs the class branch: it encodes that window again (both branches).
    const auto = await spyEncoder(() => s.autoSegment([1]));
    assert.ok(auto.calls.length >= 1 && auto.calls.every((c) => c.withLabel), 'the automatic pass encodes the class branch');
  } finally { s.dispose(); }
});

/** The session's work tensor and grid, built as the session builds them (the reference below). */
function workOf(img: Volume): { tensor: Tensor; work: Volume; reo: ReturnType<typeof reorient> } {
  const reo = reorient(img, 'RAS');
  const work = resampleToSpacing(reo.volume, [1.5, 1.5, 1.5], { interpolation: 'linear' });
  const scaled = clipAndScale(work, { lo: VISTA3D_HU_WINDOW[0], hi: VISTA3D_HU_WINDOW[1], outLo: 0, outHi: 1 });
  const zyx = volumeToBatch(scaled, 'image');
  const xyz = zyx.permute([0, 1, 4, 3, 2]); zyx.dispose();
  const tensor = xyz.contiguous(); xyz.dispose();
  return { tensor, work, reo };
}

/**
 * The whole-volume reference of one click on `label`: base to the work grid by resampling the whole
 * map, the click inferer over the whole image, and back; image voxels take the new label where the
 * label of their work voxel changed, elsewhere they keep the base's.
 */
function referenceClick(model: VISTA3D, img: Volume, base: Volume, clicks: ClickPoint[], label: number, bundle: boolean): Float32Array {
  const { tensor, work, reo } = workOf(img);
  try {
    const [X, Y, Z] = work.size;
    const onWork = resampleToReference(reorient(base, 'RAS').volume, geometryOf(work), { interpolation: 'nearest' });
    const cur = new Uint16Array(X * Y * Z);
    for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) cur[(x * Y + y) * Z + z] = onWork.data[x + X * (y + Y * z)]!;
    const coords = clicks.map((p) => worldToVoxel(work, voxelToWorld(img, p.ijk)).map((c, a) => Math.min(work.size[a]! - 1, Math.max(0, Math.round(c)))));
    const prev = Float32Array.from(cur, (v) => (v === label ? 1 : -1));
    const r = noGrad(() => pointLogits({ model }, tensor, { coords, labels: clicks.map((p) => (p.positive ? 1 : 0)) }, {
      roi: ROI, promptClass: [label], classVector: bundle ? [label] : null, prevMask: bundle ? null : prev,
    }));
    const next = cur.slice();
    for (let j = 0; j < next.length; j++) {
      const v = r.logits[j]!;
      if (Number.isNaN(v)) continue;
      if (v > 0) next[j] = label; else if (next[j] === label) next[j] = 0;
    }
    const toImage = (a: ArrayLike<number>): Float32Array => {
      const d = new Float32Array(X * Y * Z);
      for (let x = 0; x < X; x++) for (let y = 0; y < Y; y++) for (let z = 0; z < Z; z++) d[x + X * (y + Y * z)] = a[(x * Y + y) * Z + z]!;
      const back = resampleToReference({ data: d, ...geometryOf(work) } as Volume, geometryOf(reo.volume), { interpolation: 'nearest' });
      return undoReorient(back, reo).data as Float32Array;
    };
    const changed = toImage(next.map((v, j) => (v !== cur[j] ? 1 : 0))), nextImg = toImage(next);
    return Float32Array.from(base.data as ArrayLike<number>, (v, i) => (changed[i] === 1 ? nextImg[i]! : v));
  } finally { tensor.dispose(); }
}

test('windowed clicks equal the whole-volume computation on a resampled, reoriented image (edit and bundle modes)', async () => {
  // 1.2 x 1.9 x 1.5 mm with flipped x and y: the work grid (RAS, 1.5 mm) differs from the image grid.
  const img = ctVolume([1.2, 1.9, 1.5], [-1, 0, 0, 0, -1, 0, 0, 0, 1]);
  const { model } = await loadVista3dCheckpoint(CKPT);
  const edit = await openVista3dSession(CKPT, img, { roi: ROI });
  const bundle = await openVista3dSession(CKPT, img, { roi: ROI, clickMode: 'bundle' });
  try {
    const base = await edit.autoSegment([1, 3]);
    const clicks: ClickPoint[] = [{ label: 3, positive: true, ijk: [5, 12, 40] }, { label: 3, positive: false, ijk: [8, 30, 5] }];
    const got = await edit.click(clicks, base);
    const want = referenceClick(model, img, base, clicks, 3, false);
    assert.deepEqual(Array.from(got.labels.data), Array.from(want), 'edit mode');
    const changed = Array.from(got.labels.data as ArrayLike<number>).filter((v, i) => v !== base.data[i]).length;
    assert.ok(changed > 0, 'the click changed some voxels');
    const gotB = await bundle.click(clicks, base);
    const wantB = referenceClick(model, img, base, clicks, 3, true);
    assert.deepEqual(Array.from(gotB.labels.data), Array.from(wantB), 'bundle mode');
    assert.notDeepEqual(Array.from(gotB.labels.data), Array.from(got.labels.data), 'the two modes differ');
    // A cached second bundle click (the windows now hold both branches) gives the same labels.
    const again = await bundle.click(clicks, base);
    assert.equal(again.windowsComputed, 0);
    assert.deepEqual(Array.from(again.labels.data), Array.from(gotB.labels.data));
    // A base on another grid is refused with one line.
    await assert.rejects(edit.click(clicks, { ...base, origin: [0, 0, 0] }), (e: unknown) => e instanceof MisfmError && /does not lie on the image grid/.test(e.message));
  } finally { edit.dispose(); bundle.dispose(); model.dispose(); }
});

test('misfm segment --click-mode: edit or bundle, anything else is one clear error; --reuse-windows a count', async () => {
  await assert.rejects(runSegment(['--model', CKPT, '--input', 'x.nii.gz', '--output', 'y.nii.gz', '--point', 'liver:+1,1,1', '--click-mode', 'auto']),
    (e: unknown) => e instanceof MisfmError && /--click-mode must be edit or bundle, got 'auto'/.test(e.message));
  await assert.rejects(runSegment(['--model', CKPT, '--input', 'x.nii.gz', '--output', 'y.nii.gz', '--point', 'liver:+1,1,1', '--reuse-windows=-2']),
    (e: unknown) => e instanceof MisfmError && /--reuse-windows must be a whole number >= 0, got '-2'/.test(e.message));
});

test('fitWindow shrinks the window to a thin axis (multiple of the size divisor) instead of padding; results equal the fitted window given explicitly', async () => {
  // x is 12 voxels; a 32-voxel window would be 20 voxels of padding. The fixture model's divisor is 8 or 16: fitted x = 16.
  const wide = [32, 24, 32] as const, fitted = [16, 24, 32] as const;
  const seen: { fit: Window[]; pad: Window[] } = { fit: [], pad: [] };
  const fit = await openVista3dSession(CKPT, ctVolume(), { roi: wide, fitWindow: true, onEncode: (w) => { seen.fit.push(w); } });
  const explicit = await openVista3dSession(CKPT, ctVolume(), { roi: fitted });
  const pad = await openVista3dSession(CKPT, ctVolume(), { roi: wide, onEncode: (w) => { seen.pad.push(w); } });
  try {
    const a = await fit.autoSegment([3, 5]), b = await explicit.autoSegment([3, 5]);
    assert.deepEqual(Array.from(a.data), Array.from(b.data), 'fitted = the fitted window given explicitly');
    const click: ClickPoint[] = [{ label: 3, positive: true, ijk: [6, 10, 40] }];
    await fit.click(click, null);
    await pad.click(click, null);
    assert.equal(seen.fit.at(-1)!.stop[0] - seen.fit.at(-1)!.start[0], 16, 'click window fitted to x');
    assert.equal(seen.pad.at(-1)!.stop[0] - seen.pad.at(-1)!.start[0], 32, 'MONAI default: padded to the window');
  } finally {
    fit.dispose(); explicit.dispose(); pad.dispose();
  }
});
