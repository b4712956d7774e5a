import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bezierCurve, genesisCorrupt, inOutPaint, interp, localShuffle, nonLinear } from '../../src/ssl/genesis.js';
import { presetConfig } from '../../src/config/index.js';
import { Rng } from '../../src/util/rng.js';
import { ConfigError } from '../../src/util/errors.js';
import { hasPythonTorch, runPython, assertClose } from '../helpers.js';
import { tempDir } from '../data/helpers.js';
import { RecordingRng, REPLAY_PY } from './recording-rng.js';

const tmp = tempDir('genesis');
after(() => rmSync(tmp, { recursive: true, force: true }));

const SHAPE = [8, 16, 16] as const;
const N = 8 * 16 * 16;
const wave = (): Float32Array => Float32Array.from({ length: N }, (_, i) => Math.sin(i * 0.37) * 0.9);
const coord = (i: number): number[] => [Math.floor(i / 256), Math.floor(i / 16) % 16, i % 16];

test('local shuffling permutes the voxels of one block and leaves the rest', () => {
  const crop = Float32Array.from({ length: N }, (_, i) => i);
  for (let seed = 0; seed < 5; seed++) {
    const out = localShuffle(crop, SHAPE, new Rng(seed), { p: 1, blockCount: [1, 1], blockSize: [2, 4, 4] });
    assert.deepEqual(Array.from(out).sort((a, b) => a - b), Array.from(crop));
    const moved = [...out.keys()].filter((i) => out[i] !== i);
    assert.ok(moved.length > 16, `seed ${seed}: ${moved.length} voxels moved`);
    for (let a = 0; a < 3; a++) {
      const v = moved.map((i) => coord(i)[a]!);
      assert.ok(Math.max(...v) - Math.min(...v) < [2, 4, 4][a]!, 'moved voxels lie in one block');
    }
    // a voxel only moves within its block
    for (const i of moved) for (let a = 0; a < 3; a++) assert.ok(Math.abs(coord(i)[a]! - coord(out[i]!)[a]!) < [2, 4, 4][a]!);
  }
});

test('Bezier curve: end points, a straight control polygon is the identity, numpy.interp clamping', () => {
  const c = bezierCurve([0.3, 0.9], [0.6, 0.1], 101);
  assert.deepEqual([c.x[0], c.y[0], c.x[100], c.y[100]], [1, 1, 0, 0], 't = 0 is (1,1) in PyMIC\'s index convention');
  const line = bezierCurve([1 / 3, 1 / 3], [2 / 3, 2 / 3], 1001);
  const xs = Float64Array.from(line.x).sort(), ys = Float64Array.from(line.y).sort();
  for (const v of [0, 0.123, 0.5, 0.77, 1]) assert.ok(Math.abs(interp(v, xs, ys) - v) < 1e-12, `identity at ${v}`);
  const x = Float64Array.from([0, 1, 2]), y = Float64Array.from([10, 20, 40]);
  assert.deepEqual([interp(-5, x, y), interp(0.5, x, y), interp(1.5, x, y), interp(9, x, y)], [10, 15, 30, 40]);
});

test('the whole-crop non-linear curve is monotone in the input and keeps the intensity range', () => {
  let flips = 0;
  for (let seed = 0; seed < 12; seed++) {
    const img = wave();
    const before = Float32Array.from(img);
    nonLinear(img, SHAPE, new Rng(seed), { p: 1, blocks: 0, blockSize: [4, 8, 8] });
    const order = [...before.keys()].sort((a, b) => before[a]! - before[b]!);
    const mapped = order.map((i) => img[i]!);
    const inc = mapped.every((v, k) => k === 0 || v >= mapped[k - 1]! - 1e-6);
    const dec = mapped.every((v, k) => k === 0 || v <= mapped[k - 1]! + 1e-6);
    assert.ok(inc || dec, `seed ${seed}: monotone`);
    if (dec && !inc) flips++;
    const lo = Math.min(...before), hi = Math.max(...before);
    assert.ok(img.every((v) => v >= lo - 1e-5 && v <= hi + 1e-5), 'stays in the input range');
    assert.ok(Math.abs(Math.min(...img) - lo) < 1e-5 && Math.abs(Math.max(...img) - hi) < 1e-5, 'end points map to end points');
  }
  assert.ok(flips > 0 && flips < 12, `inversions in about half the draws, got ${flips}/12`);
  const img = wave(), before = Float32Array.from(img);
  nonLinear(img, SHAPE, new Rng(0), { p: 0, blocks: 0, blockSize: [4, 8, 8] });
  assert.deepEqual(img, before, 'p = 0 leaves the crop');
});

test('in-painting fills blocks away from the border with noise in [-1, 1); out-painting keeps blocks of crop - margin', () => {
  const o = presetConfig('paper').ssl.genesis.inOutPaint;
  const crop = Float32Array.from({ length: N }, () => 5); // outside the noise range: changed voxels are visible
  const inp = inOutPaint(Float32Array.from(crop), SHAPE, new Rng(1), { ...o, p: 1, inP: 1, inBlockCount: [3, 3], inBlockSize: [2, 4, 4] });
  const changed = [...inp.keys()].filter((i) => inp[i] !== 5);
  assert.ok(changed.length > 0 && changed.length <= 3 * 32);
  for (const i of changed) {
    assert.ok(inp[i]! >= -1 && inp[i]! < 1);
    const c = coord(i);
    assert.ok(c[0]! >= 3 && c[0]! < 8 - 3 + 0 && c[1]! >= 3 && c[1]! < 13 && c[2]! >= 3 && c[2]! < 13, `in-painted voxel ${c} keeps 3 voxels from the border`);
  }
  const outp = inOutPaint(Float32Array.from(crop), SHAPE, new Rng(2), { ...o, p: 1, inP: 0, outBlockCount: [1, 1], outMargin: [6, 8, 8] });
  const kept = [...outp.keys()].filter((i) => outp[i] === 5);
  assert.equal(kept.length, 2 * 8 * 8, 'one kept block of crop - margin');
  assert.ok(outp.every((v) => v === 5 || (v >= -1 && v < 1)));
  assert.throws(() => inOutPaint(Float32Array.from(crop), SHAPE, new Rng(0), { ...o, p: 1, inP: 1, inBlockSize: [4, 8, 8] }),
    (e: unknown) => e instanceof ConfigError && e.path === 'ssl.genesis.inOutPaint.inBlockSize' && /margin of 3/.test(e.message));
});

test('the Genesis chain is reproducible from its seed and leaves its input alone', () => {
  const o = presetConfig('small').ssl.genesis;
  const shape = [16, 32, 32] as const;
  const crop = Float32Array.from({ length: 16 * 32 * 32 }, (_, i) => Math.sin(i * 0.37) * 0.9), copy = Float32Array.from(crop);
  const a = genesisCorrupt(crop, shape, new Rng(5), o), b = genesisCorrupt(crop, shape, new Rng(5), o);
  assert.deepEqual(a, b);
  assert.deepEqual(crop, copy);
  assert.notDeepEqual(a, genesisCorrupt(crop, shape, new Rng(6), o));
});

test('non-linear blocks equal a Python port of PyMIC NonLinearTransform replaying the same draws', { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with numpy' }, () => {
  const img = wave();
  const input = Array.from(img);
  const rng = new RecordingRng(4);
  nonLinear(img, SHAPE, rng, { p: 0.8, blocks: 6, blockSize: [4, 8, 8] });
  const file = path.join(tmp, 'nl.json');
  writeFileSync(file, JSON.stringify({ img: input, draws: rng.draws }));
  // PyMIC pymic/transform/intensity.py NonLinearTransform (block_range [2, 8] = 6 blocks) with bezier_curve.
  const py = `${REPLAY_PY}
from math import comb
d = json.load(open(sys.argv[1])); replay(d['draws'])
def bezier(points, n=10000):
    t = np.linspace(0.0, 1.0, n)
    poly = np.array([comb(3, i) * t ** (3 - i) * (1 - t) ** i for i in range(4)])
    return np.dot(np.array([p[0] for p in points]), poly), np.dot(np.array([p[1] for p in points]), poly)
def curve(img):
    pts = [[0, 0], [random.random(), random.random()], [random.random(), random.random()], [1, 1]]
    xv, yv = bezier(pts)
    if random.random() < 0.5: xv = np.sort(xv)
    else: xv, yv = np.sort(xv), np.sort(yv)
    return np.interp(img, xv, yv)
img = np.asarray(d['img'], np.float64).reshape(8, 16, 16)
if random.random() <= 0.8:
    lo, hi = img.min(), img.max()
    c = (img - lo) / (hi - lo); src = c.copy(); bs = [4, 8, 8]
    for n in range(2, 8):
        m = [random.randint(0, img.shape[i] - bs[i]) for i in range(3)]
        s = tuple(slice(m[i], m[i] + bs[i]) for i in range(3))
        c[s] = curve(src[s])
    img = c * (hi - lo) + lo
done()
print(json.dumps(img.ravel().tolist()))`;
  const ref = runPython(py, [file]) as number[];
  assert.ok(img.some((v, i) => v !== input[i]), 'the draw applied the transform');
  assertClose(img, ref, 0, 2e-6, 'non-linear transform');
});
