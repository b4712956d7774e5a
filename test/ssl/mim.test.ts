import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mimBlockMask, mimCorrupt, mimGrid, mimMask } from '../../src/ssl/mim.js';
import { Rng } from '../../src/util/rng.js';
import { hasPythonTorch, runPython } from '../helpers.js';
import { tempDir } from '../data/helpers.js';
import { RecordingRng, REPLAY_PY } from './recording-rng.js';

const tmp = tempDir('mim');
after(() => rmSync(tmp, { recursive: true, force: true }));

test('exact count: ceil(ratio * blocks) blocks masked, so the voxel ratio holds exactly on a divisible crop', () => {
  const shape = [16, 32, 32] as const, blockSize = [4, 8, 8] as const; // 4*4*4 = 64 blocks
  for (const ratio of [0.45, 0.6, 0.75, 1]) {
    for (let seed = 0; seed < 5; seed++) {
      const m = mimMask(shape, new Rng(seed), { ratio, count: 'exact', blockSize: [...blockSize] });
      const masked = m.reduce((a, b) => a + b, 0);
      assert.equal(masked, Math.ceil(64 * ratio) * 256, `ratio ${ratio}, seed ${seed}`);
    }
  }
  const a = mimMask(shape, new Rng(1), { ratio: 0.45, count: 'exact', blockSize: [...blockSize] });
  const b = mimMask(shape, new Rng(2), { ratio: 0.45, count: 'exact', blockSize: [...blockSize] });
  assert.notDeepEqual(a, b, 'the masked blocks depend on the draws');
});

test('the mask is constant on each grid block; partial edge blocks are blocks too', () => {
  assert.deepEqual(mimGrid([10, 17, 16], [4, 8, 8]), [3, 3, 2]);
  const shape = [10, 17, 16] as const, bs = [4, 8, 8] as const;
  const m = mimMask(shape, new Rng(3), { ratio: 0.5, count: 'exact', blockSize: [...bs] });
  const seen = new Map<string, number>();
  for (let d = 0; d < 10; d++) for (let h = 0; h < 17; h++) for (let w = 0; w < 16; w++) {
    const key = `${Math.floor(d / 4)},${Math.floor(h / 8)},${Math.floor(w / 8)}`;
    const v = m[(d * 17 + h) * 16 + w]!;
    if (seen.has(key)) assert.equal(v, seen.get(key), `block ${key}`);
    else seen.set(key, v);
  }
  assert.equal(seen.size, 18);
  assert.equal([...seen.values()].reduce((a, b) => a + b, 0), 9, 'ceil(18 * 0.5) blocks');
});

test('bernoulli count: the masked share of many blocks is near the ratio', () => {
  const m = mimBlockMask(20000, new Rng(9), { ratio: 0.45, count: 'bernoulli' });
  const share = m.reduce((a, b) => a + b, 0) / 20000;
  const sd = Math.sqrt(0.45 * 0.55 / 20000);
  assert.ok(Math.abs(share - 0.45) < 4 * sd, `share ${share}`);
});

test('the corrupted crop is 0 where masked and the input elsewhere; the weight is the mask only for the masked loss', () => {
  const shape = [8, 16, 16] as const;
  const crop = Float32Array.from({ length: 8 * 16 * 16 }, (_, i) => 1 + (i % 7));
  const r = mimCorrupt(crop, shape, new Rng(4), { ratio: 0.45, blockSize: [4, 8, 8], count: 'exact', loss: 'masked' });
  const m = mimMask(shape, new Rng(4), { ratio: 0.45, blockSize: [4, 8, 8], count: 'exact' });
  assert.ok(r.weight !== undefined);
  r.image.forEach((v, i) => assert.equal(v, m[i] === 1 ? 0 : crop[i], `voxel ${i}`));
  assert.deepEqual(Array.from(r.weight), Array.from(m));
  assert.equal(Array.from(m).filter((v) => v === 1).length, 4 * 256, 'ceil(8 * 0.45) = 4 of 8 blocks');
  assert.equal(mimCorrupt(crop, shape, new Rng(4), { ratio: 0.45, blockSize: [4, 8, 8], count: 'exact', loss: 'all' }).weight, undefined);
});

test('bernoulli masking equals a Python port of PyMIC MaskedImageModeling replaying the same draws', { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with numpy' }, () => {
  const shape = [10, 20, 18] as const;
  const crop = Float32Array.from({ length: 10 * 20 * 18 }, (_, i) => (i % 11) - 5);
  const rng = new RecordingRng(21);
  const r = mimCorrupt(crop, shape, rng, { ratio: 0.45, blockSize: [4, 8, 8], count: 'bernoulli', loss: 'all' });
  const file = path.join(tmp, 'mim.json');
  writeFileSync(file, JSON.stringify({ crop: Array.from(crop), draws: rng.draws }));
  // PyMIC pymic/transform/intensity.py MaskedImageModeling.__call__ (per_channel False) on [1, D, H, W].
  const py = `${REPLAY_PY}
d = json.load(open(sys.argv[1])); replay(d['draws'])
image = np.asarray(d['crop'], np.float32).reshape(1, 10, 20, 18); out = image.copy(); bs = [4, 8, 8]
C, D, H, W = image.shape
for z in range(0, D, bs[0]):
    for y in range(0, H, bs[1]):
        for x in range(0, W, bs[2]):
            if random.random() < 0.45:
                out[:, z:min(z + bs[0], D), y:min(y + bs[1], H), x:min(x + bs[2], W)] = 0
done()
print(json.dumps(out.ravel().tolist()))`;
  assert.deepEqual(Array.from(r.image), runPython(py, [file]) as number[]);
});
