/**
 * The three pctnet_small fixtures (state_dict.pt, checkpoint_pymic.pt, weights.safetensors) hold the
 * same tensors, written by PyTorch and by a separate safetensors writer; misfm must read all three
 * to the same keys, shapes, dtypes and bytes, and match params.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  PyDict, loadCheckpointFile, readSafetensors, readTorchFile, writeSafetensors, writeTorchFile,
} from '../../src/io/checkpoint/index.js';
import type { RawTensor } from '../../src/engine/dtype.js';
import { canonical, fixtureDir, tempDir } from './checkpoint-support.js';

interface ParamInfo { name: string; shape: number[]; dtype: string; numel: number; kind: string }
const params = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'params.json'), 'utf8')) as ParamInfo[];
const files = ['state_dict.pt', 'checkpoint_pymic.pt', 'weights.safetensors'].map((f) => path.join(fixtureDir, f));

function sameTensors(a: Map<string, RawTensor>, b: Map<string, RawTensor>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: key order`);
  for (const [k, t] of a) {
    const u = b.get(k);
    assert.ok(u !== undefined);
    assert.equal(u.dtype, t.dtype, `${what}: dtype of ${k}`);
    assert.deepEqual(u.shape, t.shape, `${what}: shape of ${k}`);
    assert.ok(Buffer.from(u.data).equals(Buffer.from(t.data)), `${what}: bytes of ${k}`);
  }
}

test('all three fixture files give the params.json keys, shapes and dtypes, and identical bytes', async () => {
  const loaded = await Promise.all(files.map((f) => loadCheckpointFile(f)));
  assert.equal(params.length, 684);
  for (const [i, l] of loaded.entries()) {
    const sd = l.stateDict;
    assert.equal(sd.size, 684, files[i]);
    assert.deepEqual([...sd.keys()], params.map((p) => p.name), `${files[i]}: key order`);
    for (const p of params) {
      const t = sd.get(p.name);
      assert.ok(t !== undefined);
      assert.equal(t.dtype, p.dtype, p.name);
      assert.deepEqual(t.shape, p.shape, p.name);
      assert.equal(t.data.byteLength, p.numel * (p.dtype === 'int64' ? 8 : 4), p.name);
    }
  }
  const [a, b, c] = loaded.map((l) => l.stateDict) as [Map<string, RawTensor>, Map<string, RawTensor>, Map<string, RawTensor>];
  sameTensors(a, b, 'state_dict.pt vs checkpoint_pymic.pt');
  sameTensors(a, c, 'state_dict.pt vs weights.safetensors');
  const nbt = a.get('embeddings.0.conv0.conv_conv.0.num_batches_tracked');
  assert.deepEqual(nbt?.shape, []);
  assert.equal(nbt?.dtype, 'int64');
  const rpi = [...a].filter(([k]) => k.endsWith('relative_position_index'));
  assert.ok(rpi.length > 0);
  for (const [, t] of rpi) assert.equal(t.dtype, 'int64');
  // The rel-pos index is a permutation-style table: all entries lie in [0, table rows).
  const idx = new BigInt64Array(rpi[0]![1].data.slice().buffer);
  assert.ok(idx.every((x) => x >= 0n && x < 2000n));
});

test('fixture metadata: PyMIC dict layout, archive stems, OrderedDict _metadata', async () => {
  const pymic = await loadCheckpointFile(files[1]!);
  assert.equal(pymic.meta.format, 'torch-zip');
  assert.equal(pymic.meta.stateDictKey, 'model_state_dict');
  assert.equal(pymic.meta.iteration, 0);
  assert.equal(pymic.meta.archiveStem, 'checkpoint_pymic');
  assert.equal(pymic.meta.archiveVersion, '3');
  assert.equal(pymic.meta.strippedPrefix, null);
  const bare = await loadCheckpointFile(files[0]!);
  assert.equal(bare.meta.stateDictKey, null);
  assert.equal(bare.meta.archiveStem, 'state_dict');
  assert.ok(bare.raw instanceof PyDict && bare.raw.ordered);
  const meta = bare.raw.attrs?.get('_metadata');
  assert.ok(meta instanceof PyDict && meta.ordered);
  assert.deepEqual(canonical(meta.get('') ?? null), { dict: [['version', 1]], ordered: false });
  const st = await loadCheckpointFile(files[2]!);
  assert.equal(st.meta.format, 'safetensors');
});

test('fixture round trips through misfm writers keep order, dtypes, bytes and _metadata', () => {
  const dir = tempDir('fixrt');
  const raw = readTorchFile(files[0]!);
  const out = path.join(dir, 'copy.pt');
  writeTorchFile(out, raw);
  const again = readTorchFile(out);
  assert.deepEqual(canonical(again), canonical(raw));
  assert.ok(again instanceof PyDict && raw instanceof PyDict);
  assert.deepEqual(canonical(again.attrs?.get('_metadata') ?? null), canonical(raw.attrs?.get('_metadata') ?? null));
  // Deterministic output: the same object written twice gives identical files.
  const out2 = path.join(dir, 'copy2.pt');
  writeTorchFile(out2, raw, { stem: 'copy' });
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(out2)));

  const sd = readSafetensors(files[2]!).tensors;
  const stOut = path.join(dir, 'copy.safetensors');
  writeSafetensors(stOut, sd, { order: 'insertion', metadata: { format: 'pt' } });
  const st = readSafetensors(stOut);
  sameTensors(sd, st.tensors, 'safetensors round trip');
  assert.deepEqual(st.metadata, { format: 'pt' });
});
