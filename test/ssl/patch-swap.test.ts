import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { patchSwap } from '../../src/ssl/patch-swap.js';
import { Rng } from '../../src/util/rng.js';
import { MisfmError, ConfigError } from '../../src/util/errors.js';
import type { PatchSwapConfig } from '../../src/config/types.js';
import { hasPythonTorch, runPython } from '../helpers.js';
import { tempDir } from '../data/helpers.js';
import { RecordingRng, REPLAY_PY } from './recording-rng.js';

const tmp = tempDir('patch-swap');
after(() => rmSync(tmp, { recursive: true, force: true }));

const SHAPE = [8, 16, 16] as const;
const ramp = (): Float32Array => Float32Array.from({ length: 8 * 16 * 16 }, (_, i) => i);
const sorted = (a: Float32Array): number[] => Array.from(a).sort((x, y) => x - y);

test('disjoint mode: the crop keeps its intensity histogram exactly, for many swaps and seeds', () => {
  const crop = Float32Array.from({ length: 8 * 16 * 16 }, (_, i) => Math.sin(i) * 1000);
  for (let seed = 0; seed < 20; seed++) {
    const out = patchSwap(crop, SHAPE, new Rng(seed), { blockCount: [5, 20], blockSize: [3, 5, 6], mode: 'disjoint' });
    assert.deepEqual(sorted(out), sorted(crop), `seed ${seed}`);
    assert.ok(out.some((v, i) => v !== crop[i]), 'something moved');
  }
});

test('one swap exchanges exactly two disjoint blocks of the block size', () => {
  const crop = ramp();
  const size = [2, 4, 3] as const;
  for (let seed = 0; seed < 10; seed++) {
    const out = patchSwap(crop, SHAPE, new Rng(seed), { blockCount: [1, 1], blockSize: [...size], mode: 'disjoint' });
    // Each moved voxel holds the index it came from: group moved voxels by their displacement.
    const byShift = new Map<number, number[]>();
    out.forEach((v, i) => { if (v !== i) { const s = i - v; byShift.set(s, [...(byShift.get(s) ?? []), i]); } });
    const shifts = [...byShift.keys()];
    assert.equal(shifts.length, 2, `seed ${seed}: two displacements`);
    assert.equal(shifts[0]! + shifts[1]!, 0, 'opposite displacements');
    for (const idx of byShift.values()) {
      assert.equal(idx.length, size[0] * size[1] * size[2]);
      const coords = idx.map((i) => [Math.floor(i / 256), Math.floor(i / 16) % 16, i % 16]);
      for (let a = 0; a < 3; a++) {
        const vals = coords.map((c) => c[a]!);
        assert.equal(Math.max(...vals) - Math.min(...vals) + 1, size[a], `extent on axis ${a}`);
      }
    }
  }
});

test('both modes only ever output values of the input; errors name the key', () => {
  const crop = ramp();
  const inputs = new Set(crop);
  const out = patchSwap(crop, SHAPE, new Rng(3), { blockCount: [20, 40], blockSize: [4, 8, 8], mode: 'pymic' });
  assert.ok(out.every((v) => inputs.has(v)));
  assert.throws(() => patchSwap(crop, SHAPE, new Rng(0), { blockCount: [1, 2], blockSize: [9, 4, 4], mode: 'pymic' }),
    (e: unknown) => e instanceof ConfigError && e.path === 'ssl.patchSwap.blockSize' && /\[8,16,16\]/.test(e.message));
  assert.throws(() => patchSwap(crop, SHAPE, new Rng(0), { blockCount: [1, 2], blockSize: [5, 9, 9], mode: 'disjoint' }),
    (e: unknown) => e instanceof MisfmError && /twice the block size/.test(e.message));
});

test('pymic mode equals a Python port of PyMIC PatchSwaping replaying the same draws', { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with numpy' }, () => {
  const crop = Float32Array.from({ length: 8 * 16 * 16 }, (_, i) => ((i * 7919) % 1000) / 500 - 1);
  const o: PatchSwapConfig = { blockCount: [20, 40], blockSize: [4, 8, 8], mode: 'pymic' };
  const rng = new RecordingRng(11);
  const out = patchSwap(crop, SHAPE, rng, o);
  const file = path.join(tmp, 'ps.json');
  writeFileSync(file, JSON.stringify({ crop: Array.from(crop), draws: rng.draws }));
  // PyMIC pymic/transform/intensity.py PatchSwaping.__call__ on a [1, D, H, W] image.
  const py = `${REPLAY_PY}
d = json.load(open(sys.argv[1])); replay(d['draws'])
image = np.asarray(d['crop'], np.float32).reshape(1, 8, 16, 16)
bs = [4, 8, 8]; out = image.copy()
for t in range(random.randint(20, 40)):
    a0 = [random.randint(0, image.shape[1 + i] - bs[i]) for i in range(3)]
    b0 = [random.randint(0, image.shape[1 + i] - bs[i]) for i in range(3)]
    sa = tuple([slice(None)] + [slice(a0[i], a0[i] + bs[i]) for i in range(3)])
    sb = tuple([slice(None)] + [slice(b0[i], b0[i] + bs[i]) for i in range(3)])
    out[sa] = image[sb]; out[sb] = image[sa]
done()
print(json.dumps(out.ravel().tolist()))`;
  const ref = runPython(py, [file]) as number[];
  assert.deepEqual(Array.from(out), ref.map((v) => Math.fround(v)));
});
