/**
 * Interop with real PyTorch (Debian's 1.13 at /usr/bin/python3): files misfm writes must load with
 * torch.load (also weights_only=True) to the same values, and files torch.save / pickle / zipfile
 * write in many forms must read correctly here. One Python process does all the Python-side work
 * (importing torch takes seconds). Runs whenever /usr/bin/python3 can import torch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RawTensor } from '../../src/engine/dtype.js';
import {
  PyDict, PyFloat, PyTuple, isRawTensor, loadCheckpointFile, readSafetensors, readTorchArchive, readTorchFile,
  unpickle, writeSafetensors, writeTorchFile, type PyValue, ZipReader,
} from '../../src/io/checkpoint/index.js';
import { CheckpointError } from '../../src/util/errors.js';
import {
  canonical, f32, fixtureDir, i64, runPython, tempDir, tensorSum, torchAvailable, type Json,
} from './checkpoint-support.js';

const HAVE_TORCH = torchAvailable();

/** Sums per path, with the same path scheme as torch_interop.py's canon(). */
function sums(v: PyValue, p: string, out: Map<string, number>): Map<string, number> {
  if (isRawTensor(v)) out.set(p, tensorSum(v));
  else if (v instanceof PyDict) for (const [k, x] of v) sums(x, `${p}/${String(k)}`, out);
  else if (v instanceof PyTuple) v.items.forEach((x, i) => sums(x, `${p}/${i}`, out));
  else if (Array.isArray(v)) v.forEach((x, i) => sums(x, `${p}/${i}`, out));
  return out;
}

function bytesOf(values: number[], ctor: new (v: number[]) => ArrayBufferView): Uint8Array {
  const a = new ctor(values);
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** What misfm writes for PyTorch to read. */
function misfmObjects(): Record<string, PyValue> {
  const sd = readTorchFile(path.join(fixtureDir, 'state_dict.pt'));
  const w0 = f32([2, 3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
  const base = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
  const whole: RawTensor = { dtype: 'float32', shape: [8], data: new Uint8Array(base.buffer) };
  const tail: RawTensor = { dtype: 'float32', shape: [2, 2], data: new Uint8Array(base.buffer, 16, 16) };
  const ckpt = new PyDict([
    ['model_state_dict', sd],
    ['iteration', 12],
    ['config', new PyDict([['lr', 0.001], ['patch_size', [32, 64, 64]], ['net', 'PCTNet'], ['momentum', new PyFloat(1)],
      ['deep_supervise', true], ['ckpt_dir', null]])],
    ['optimizer_state_dict', new PyDict([
      ['state', new PyDict([[0, new PyDict([['step', f32([], [3])], ['exp_avg', w0], ['exp_avg_sq', w0]])]])],
      ['param_groups', [new PyDict([['lr', 0.001], ['betas', new PyTuple([0.9, 0.999])], ['eps', 1e-8],
        ['weight_decay', 1e-5], ['amsgrad', false], ['params', [0]]])]],
    ])],
  ]);
  const misc = new PyDict([
    ['whole', whole], ['tail', tail], ['again', whole],
    ['f16', { dtype: 'float16', shape: [2], data: Uint8Array.of(0x00, 0x3c, 0x00, 0xc0) }],
    ['bf16', { dtype: 'bfloat16', shape: [2], data: Uint8Array.of(0x80, 0x3f, 0x49, 0x40) }],
    ['bool', { dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) }],
    ['u8', { dtype: 'uint8', shape: [2], data: Uint8Array.of(0, 255) }],
    ['i8', { dtype: 'int8', shape: [2], data: bytesOf([-128, 127], Int8Array as never) }],
    ['i16', { dtype: 'int16', shape: [2], data: bytesOf([-32768, 32767], Int16Array as never) }],
    ['i32', { dtype: 'int32', shape: [1, 2], data: bytesOf([-(2 ** 31), 2 ** 31 - 1], Int32Array as never) }],
    ['f64', { dtype: 'float64', shape: [], data: bytesOf([Math.E], Float64Array as never) }],
    ['scalar_i64', i64([], [2 ** 40])], ['empty', f32([0, 3], [])],
    [7, 'int key'], [-1, [1n << 70n, -(1n << 65n), 255, 256, 65536, -(2 ** 31)]],
    ['floats', [Number.NaN, Number.NEGATIVE_INFINITY, -0, 1e-300, new PyFloat(2)]],
    ['set', new Set([3, 1, 2])], ['bytes', Uint8Array.of(0, 255, 128)], ['nobytes', new Uint8Array(0)],
    ['tuple', new PyTuple([1, 'two', new PyTuple([]), null, [4]])], ['unicode', 'Grüße ✓ 你好 🙂'],
  ]);
  // torch 1.13's weights_only unpickler lacks BINFLOAT (Python floats), as for torch's own files.
  const weights = new PyDict([['model_state_dict', sd], ['iteration', 12], ['best', new PyTuple([3, 'x', null, true])]]);
  return { ckpt, misc, weights };
}

test('PyTorch interop', { skip: HAVE_TORCH ? false : '/usr/bin/python3 cannot import torch' }, async (t) => {
  const dir = tempDir('interop');
  const casesDir = path.join(dir, 'cases');
  const objs = misfmObjects();
  const written: Record<string, string> = {
    ckpt: path.join(dir, 'misfm_ckpt.pt'), misc: path.join(dir, 'misc.pth'), z64: path.join(dir, 'z64.pt'),
    weights: path.join(dir, 'weights.pt'),
  };
  writeTorchFile(written.weights!, objs.weights!, { zip: { forceZip64: true } });
  writeTorchFile(written.ckpt!, objs.ckpt!);
  writeTorchFile(written.misc!, objs.misc!);
  writeTorchFile(written.z64!, objs.ckpt!, { zip: { forceZip64: true } });
  const sdMap = (await loadCheckpointFile(written.ckpt!)).stateDict;
  const stFile = path.join(dir, 'weights.safetensors');
  writeSafetensors(stFile, sdMap, { metadata: { source: 'misfm' } });
  const py = runPython({
    make_cases: casesDir, summarize: [written.ckpt, written.misc, written.z64], weights_only: [written.weights],
    read_safetensors: [stFile],
  }) as Record<string, Record<string, { value: Json; sums: Record<string, number>; error?: string } & Record<string, Json>>>;

  await t.test('misfm-written checkpoints load in torch.load with identical values and sums', () => {
    for (const key of ['ckpt', 'misc', 'z64'] as const) {
      const r = py.summarize?.[written[key]!];
      assert.ok(r !== undefined && r.error === undefined, `${key}: ${r?.error}`);
      const obj = objs[key === 'z64' ? 'ckpt' : key]!;
      assert.deepEqual(r.value, canonical(obj), key);
      const mine = sums(obj, '', new Map());
      assert.equal(Object.keys(r.sums).length, mine.size);
      for (const [p, s] of mine) {
        const theirs = r.sums[p];
        assert.ok(theirs !== undefined && Math.abs(theirs - s) <= 1e-6 * Math.max(1, Math.abs(s)), `${key} sum ${p}: ${theirs} vs ${s}`);
      }
    }
    assert.equal(Object.keys(py.summarize?.[written.ckpt!]?.sums ?? {}).length, 684 + 3);
  });

  await t.test('torch.load(weights_only=True) accepts a misfm state_dict checkpoint (only safe globals)', () => {
    const r = py.weights_only?.[written.weights!];
    assert.ok(r !== undefined && r.error === undefined, r?.error);
    assert.deepEqual(r.value, canonical(objs.weights!));
  });

  await t.test('misfm-written safetensors pass an independent strict parse', () => {
    const r = py.read_safetensors?.[stFile] as unknown as { keys: string[]; tensors: [string, Json][]; metadata: Json; error?: string };
    assert.ok(r !== undefined && r.error === undefined, r?.error);
    assert.deepEqual(r.keys, [...sdMap.keys()].sort());
    assert.deepEqual(r.metadata, { source: 'misfm' });
    const want = new Map([...sdMap].map(([k, v]) => [k, canonical(v)]));
    for (const [k, c] of r.tensors) assert.deepEqual(c, want.get(k), k);
  });

  await t.test('misfm round trip of its own files', () => {
    for (const key of ['ckpt', 'misc'] as const) assert.deepEqual(canonical(readTorchFile(written[key]!)), canonical(objs[key]!));
    assert.deepEqual(canonical(readTorchFile(written.z64!)), canonical(objs.ckpt!));
    const st = readSafetensors(stFile);
    assert.deepEqual([...st.tensors].map(([k, v]) => [k, canonical(v)]).sort(), [...sdMap].map(([k, v]) => [k, canonical(v)]).sort());
  });

  const expected = (name: string): Json => JSON.parse(fs.readFileSync(path.join(casesDir, `${name}.json`), 'utf8')) as Json;

  await t.test('torch.save files (views, shared storages, all dtypes, protocols 2/4/5, numpy) read correctly', () => {
    for (const name of ['views', 'dtypes', 'nested_p2', 'nested_p4', 'nested_p5', 'dp']) {
      assert.deepEqual(canonical(readTorchFile(path.join(casesDir, `${name}.pt`))), expected(name), name);
    }
    // Shared storage in PyTorch stays shared memory here: 'row' is a contiguous slice of 'base'.
    const views = readTorchFile(path.join(casesDir, 'views.pt'));
    assert.ok(views instanceof PyDict);
    assert.equal((views.get('row') as RawTensor).data.buffer, (views.get('base') as RawTensor).data.buffer);
  });

  await t.test('Python pickles of protocols 0-5 decode to the same value', () => {
    for (let p = 0; p <= 5; p++) {
      const v = unpickle(new Uint8Array(fs.readFileSync(path.join(casesDir, `plain_p${p}.pkl`))), { file: `plain_p${p}.pkl` });
      assert.deepEqual(canonical(v), expected('plain'), `protocol ${p}`);
    }
  });

  await t.test('zip64 and DEFLATE entries written by Python zipfile', () => {
    const z = ZipReader.open(path.join(casesDir, 'z64.zip'));
    try {
      const stored = z.read('stored.bin');
      assert.equal(stored.byteLength, 10240);
      assert.ok(stored.every((b, i) => b === i % 256));
      assert.equal(z.entry('deflated.txt')?.method, 8);
      assert.equal(new TextDecoder().decode(z.read('deflated.txt')), 'hello zip '.repeat(500));
    } finally {
      z.close();
    }
  });

  await t.test('archive stems, DataParallel prefixes and Python-made bad files', async () => {
    assert.equal(readTorchArchive(path.join(casesDir, 'fileobj.pt')).stem, 'archive');
    const dp = await loadCheckpointFile(path.join(casesDir, 'dp.pt'));
    assert.equal(dp.meta.strippedPrefix, 'module.');
    assert.equal(dp.meta.stateDictKey, 'state_dict');
    assert.equal(dp.meta.iteration, 3);
    assert.deepEqual([...dp.stateDict.keys()], ['conv.weight', 'conv.bias']);
    const bad: [string, RegExp][] = [
      ['legacy.pt', /legacy .*not supported/], ['foreign.zip', /no <name>\/data\.pkl entry \(entries: readme\.txt\)/],
      ['scripted.pt', /TorchScript archive/], ['with_class.pt', /refusing to load global 'torch\.optim\.sgd\.SGD'/],
    ];
    for (const [name, re] of bad) {
      const f = path.join(casesDir, name);
      await assert.rejects(loadCheckpointFile(f), (e: unknown) => e instanceof CheckpointError && e.message.includes(f) && re.test(e.message), name);
    }
  });
});
