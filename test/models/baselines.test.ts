/**
 * The baselines: PyMIC's UNet3D (v0.5 names, v0.4 key mapping) and FMUNet. State-dict layouts and
 * parameter counts against param_lists.json; numerical parity against PyTorch versions written
 * from the spec (test/models/baselines_ref.py) when Debian's python3-torch is available.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { assertClose, hasPythonTorch, repoRoot, runPython } from '../helpers.js';
import { fromTypedArray, noGrad, randn } from '../../src/engine/creation.js';
import { dispose } from '../../src/engine/scope.js';
import { loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import type { Module } from '../../src/nn/module.js';
import { UNet3D, convertUNet3DStateDictV04, unet3dKeyV04ToV05, type UNet3DOptions } from '../../src/models/unet3d.js';
import { FMUNet, type FMUNetOptions } from '../../src/models/fmunet.js';
import { MisfmError } from '../../src/util/errors.js';
import { paramLists, readF32, type ParamEntry } from './helpers.js';

const lists = paramLists();

function assertLayout(net: Module, ref: ParamEntry[], what: string): void {
  const sd = [...net.stateDict()];
  assert.deepEqual(sd.map(([k]) => k), ref.map((r) => r.name), `${what}: names and order`);
  sd.forEach(([k, t], i) => {
    assert.deepEqual(t.shape, ref[i]!.shape, `${what}: shape of ${k}`);
    assert.equal(t.dtype, ref[i]!.dtype, `${what}: dtype of ${k}`);
  });
}

test('UNet3D (VolF demo config) has the PyMIC v0.5 state dict and 21,362,789 parameters', () => {
  const net = new UNet3D({ inChannels: 1, classNum: 5, dropout: [0, 0, 0.2, 0.2, 0.2], upMode: 2 });
  try {
    assertLayout(net, lists.lists['unet3d_pymic_v050_cls5']!, 'unet3d v0.5');
    assert.equal(net.numParameters(), 21_362_789);
  } finally {
    net.dispose();
  }
});

test('PyMIC v0.4 UNet3D keys map onto v0.5 keys one to one, in order', () => {
  const v4 = lists.lists['unet3d_pymic_v040_cls5']!;
  const v5 = lists.lists['unet3d_pymic_v050_cls5']!;
  const mapped = convertUNet3DStateDictV04(new Map(v4.map((r) => [r.name, r.shape])));
  assert.deepEqual([...mapped.keys()], v5.map((r) => r.name));
  assert.deepEqual([...mapped.values()], v5.map((r) => r.shape));
  assert.equal(unet3dKeyV04ToV05('out_conv2.weight'), 'decoder.out_conv2.weight');
  assert.equal(unet3dKeyV04ToV05('encoder.in_conv.conv_conv.0.weight'), 'encoder.in_conv.conv_conv.0.weight');
});

for (const cls of [5, 2]) {
  test(`FMUNet (class_num ${cls}) has MIS-FM's state dict and parameter count`, () => {
    const net = new FMUNet({ inChannels: 1, classNum: cls });
    try {
      const key = `fmunet_cls${cls}`;
      assertLayout(net, lists.lists[key]!, key);
      assert.equal(net.numParameters(), lists.summary[key]!.param_numel);
      assert.equal(net.numParameters(), cls === 5 ? 47_371_572 : 47_332_680);
    } finally {
      net.dispose();
    }
  });
}

test('baselines reject inputs that are not divisible or have the wrong channel count', () => {
  const u = new UNet3D({ inChannels: 2, classNum: 3, featureChns: [2, 4, 8, 16], dropout: [0, 0, 0, 0] });
  const f = new FMUNet({ inChannels: 1, classNum: 3, featureChns: [2, 4, 8, 16, 32], resMode: 1 });
  try {
    const a = randn([1, 2, 8, 8, 12]);
    assert.throws(() => u.forward(a), (e: unknown) => e instanceof MisfmError && e.code === 'SHAPE' && /multiple of \[8,8,8\]/.test(e.message));
    const b = randn([1, 1, 8, 8, 8]);
    assert.throws(() => u.forward(b), (e: unknown) => e instanceof MisfmError && /2 input channels/.test(e.message));
    const c = randn([1, 1, 4, 16, 16]);
    assert.throws(() => f.forward(c), (e: unknown) => e instanceof MisfmError && /multiple of \[8,16,16\]/.test(e.message));
    dispose([a, b, c]);
  } finally {
    u.dispose(); f.dispose();
  }
});

type RefCase = { label: string; name: 'unet3d' | 'fmunet'; inputShape: number[]; opts: UNet3DOptions | FMUNetOptions; pyOpts: Record<string, unknown> };
const REF_CASES: RefCase[] = [
  {
    label: 'UNet3D 5 levels, trilinear, batch norm, deep supervision', name: 'unet3d', inputShape: [1, 1, 16, 32, 32],
    opts: { inChannels: 1, classNum: 3, featureChns: [4, 8, 16, 32, 64], dropout: [0, 0, 0.2, 0.2, 0.2], upMode: 'trilinear', multiscalePred: true },
    pyOpts: { normType: 'batch_norm', upMode: 'trilinear' },
  },
  {
    label: 'UNet3D 4 levels, transposed conv, instance norm', name: 'unet3d', inputShape: [2, 2, 8, 16, 16],
    opts: { inChannels: 2, classNum: 2, featureChns: [4, 8, 16, 32], dropout: [0, 0, 0, 0], upMode: 0, normType: 'instance_norm', multiscalePred: true },
    pyOpts: { normType: 'instance_norm', upMode: 'transconv' },
  },
  {
    label: 'FMUNet res_mode 0', name: 'fmunet', inputShape: [1, 1, 32, 32, 32],
    opts: { inChannels: 1, classNum: 3, featureChns: [4, 8, 16, 32, 64], resMode: 0 }, pyOpts: {},
  },
  {
    label: 'FMUNet res_mode 1, depth 1', name: 'fmunet', inputShape: [1, 1, 8, 32, 32],
    opts: { inChannels: 1, classNum: 3, featureChns: [4, 8, 16, 32, 64], resMode: 1, depth: 1 }, pyOpts: {},
  },
];

for (const c of REF_CASES) {
  test(`${c.label}: same outputs as the PyTorch reference`, { skip: hasPythonTorch() ? false : 'python3-torch not installed' }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'misfm-baseline-'));
    const net = c.name === 'unet3d' ? new UNet3D(c.opts as UNet3DOptions) : new FMUNet(c.opts as FMUNetOptions);
    try {
      const full = c.name === 'unet3d' ? { ...net.options, ...c.pyOpts } : { ...(net as FMUNet).options };
      const script = readFileSync(path.join(repoRoot, 'test/models/baselines_ref.py'), 'utf8');
      const res = runPython(script, [JSON.stringify({ ...full, name: c.name, inputShape: c.inputShape }), dir]) as { shapes: number[][]; params: number };
      assert.equal(net.numParameters(), res.params);
      const ckpt = await loadCheckpointFile(path.join(dir, 'state_dict.pt'));
      net.loadStateDict(ckpt.stateDict); // strict: every name and shape must match
      net.eval();
      const x = fromTypedArray(readF32(path.join(dir, 'input.bin')), c.inputShape);
      const outs = noGrad(() => net.forward(x));
      const list = Array.isArray(outs) ? outs : [outs];
      assert.deepEqual(list.map((o) => o.shape), res.shapes);
      // Python runs single-threaded, where PyTorch's conv backend heuristic picks other kernels than
      // oneDNN; through FMUNet's residual instance-norm stack that accumulates to ~1e-5 of the
      // output scale (|out| up to ~2.5), hence the absolute tolerance.
      list.forEach((o, i) => assertClose(o.dataF32(), readF32(path.join(dir, `out${i}.bin`)), 1e-4, 5e-5, `${c.label} out${i}`));
      dispose([x, list]);
    } finally {
      net.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
