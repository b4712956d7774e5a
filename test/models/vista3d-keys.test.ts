/**
 * VISTA3D layout and interop: the official configuration's names and shapes equal
 * shared/reference/vista3d_keys.txt; the shape function equals built modules; research-checkpoint
 * renames; architecture recognition; a checkpoint misfm writes loads in PyTorch with the same names,
 * shapes and bytes; a checkpoint of another network is refused with one line naming the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { sharedDir, hasPythonTorch, runPython, fixturesDir } from '../helpers.js';
import {
  VISTA3D, vista3dStateShapes, convertVista3dResearchStateDict, inferVista3dConfig, loadVista3dCheckpoint, saveVista3dCheckpoint, UNUSED_IN_FORWARD,
} from '../../src/models/vista3d/index.js';
import { inferArchitecture } from '../../src/models/infer-arch.js';
import { inspectCheckpoint } from '../../src/cli/commands/inspect.js';
import { writeSafetensors, loadCheckpointFile } from '../../src/io/checkpoint/index.js';
import { CheckpointError } from '../../src/util/errors.js';
import { vistaDir } from './vista3d-helpers.js';

const keysFile = path.join(sharedDir, 'reference', 'vista3d_keys.txt');
const official = readFileSync(keysFile, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
  const [key, shape, kind, unused] = l.split('\t');
  return { key: key!, shape: shape!.split('x').map(Number), kind: kind!, unused: unused === 'unused-in-forward' };
});

test('the official configuration has exactly the names, order, shapes and kinds of vista3d_keys.txt', () => {
  const mine = vista3dStateShapes({});
  assert.equal(official.length, 259);
  assert.deepEqual(mine.map((e) => [e.key, e.shape.join('x'), e.kind]), official.map((e) => [e.key, e.shape.join('x'), e.kind]));
  const params = mine.filter((e) => e.kind === 'param').reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(params, 217964982);
  assert.deepEqual([...UNUSED_IN_FORWARD].sort(), official.filter((e) => e.unused).map((e) => e.key).sort());
});

test('the shape function equals the built modules for several configurations', () => {
  for (const o of [{ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] }, { initFilters: 4, featureSize: 24, blocksDown: [2, 1, 3, 1, 2], mlpDim: 40, transformerDepth: 3, nClasses: 140 }]) {
    const net = new VISTA3D(o);
    try {
      const built = [...net.stateDict()].map(([k, t]) => [k, t.shape.join('x')]);
      assert.deepEqual(built, vista3dStateShapes(o).map((e) => [e.key, e.shape.join('x')]));
      const buffers = [...net.namedBuffers()].map(([k]) => k);
      assert.deepEqual(buffers, vista3dStateShapes(o).filter((e) => e.kind === 'buffer').map((e) => e.key));
      // The weights determine every option but heads / lastSupported / maxPrompt.
      const inferred = inferVista3dConfig(new Map([...net.stateDict()].map(([k, t]) => [k, t.shape])));
      for (const [k, v] of Object.entries(o)) assert.deepEqual(inferred.config[k], v, k);
    } finally { net.dispose(); }
  }
});

test('research checkpoint names map onto MONAI (module. prefix, lin1/lin2, dropped heads)', () => {
  const research = new Map<string, number[]>();
  for (const e of vista3dStateShapes({ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] })) {
    research.set(`module.${e.key.replace(/mlp\.linear([12])\./, 'mlp.lin$1.')}`, e.shape);
  }
  research.set('module.weight_mapper.0.weight', [16, 16]);
  research.set('module.point_head.output_add_hypernetworks_mlps.0.layers.0.weight', [16, 16]);
  const { stateDict, report } = convertVista3dResearchStateDict(research);
  assert.equal(report.strippedPrefix, true);
  assert.equal(report.renamed.length, 8);
  assert.equal(report.dropped.length, 2);
  assert.deepEqual([...stateDict.keys()], vista3dStateShapes({ initFilters: 8, featureSize: 16, blocksDown: [1, 2, 2, 2] }).map((e) => e.key));
  const arch = inferArchitecture(new Map([...research].map(([k, s]) => [k, { dtype: 'float32' as const, shape: s, data: new Uint8Array(0) }])));
  assert.equal(arch.name, 'vista3d');
  assert.equal(arch.keyLayout, 'vista3d-research');
});

test('inspect recognises VISTA3D (fixture and official layout)', async () => {
  const text = await inspectCheckpoint(path.join(vistaDir, 'state_dict.pt'));
  assert.match(text, /architecture: {2}vista3d\n/);
  assert.match(text, /featureSize: 16/);
  assert.match(text, /blocksDown: \[1,2,2,2\]/);
  assert.match(text, /1,061,198 parameters, 24 buffer values/);
  const off = inferArchitecture(new Map(official.map((e) => [e.key, { dtype: 'float32' as const, shape: e.shape, data: new Uint8Array(0) }])));
  assert.equal(off.name, 'vista3d');
  assert.ok(off.notes.some((n) => /official vista3d132/.test(n)), off.notes.join('; '));
  assert.deepEqual(off.config['blocksDown'], [1, 2, 2, 4, 4]);
});

test('a checkpoint of another network is refused with one line naming the file', async () => {
  const other = path.join(fixturesDir, 'pctnet_small', 'state_dict.pt');
  await assert.rejects(loadVista3dCheckpoint(other), (e: unknown) => e instanceof CheckpointError && /is not a VISTA3D checkpoint \(the weights are a pctnet network\)/.test(e.message) && e.message.includes(other) && !e.message.includes('\n'));
});

test('a .pt misfm writes loads in torch.load with the same names, order, shapes and bytes; safetensors and .pt round trip', { skip: hasPythonTorch() ? false : '/usr/bin/python3 cannot import torch' }, async () => {
  const { model } = await loadVista3dCheckpoint(path.join(vistaDir, 'weights.safetensors'));
  const dir = mkdtempSync(path.join(tmpdir(), 'misfm-vista3d-'));
  try {
    const file = path.join(dir, 'vista3d.pt');
    saveVista3dCheckpoint(model, file);
    const mine = [...model.stateDict()].map(([k, t]) => [k, t.shape, createHash('sha256').update(t.bytes()).digest('hex')]);
    const script = `
import json, sys, hashlib, collections, torch
sd = torch.load(sys.argv[1], map_location='cpu')
print(json.dumps({'ordered': isinstance(sd, collections.OrderedDict), 'entries': [[k, list(v.shape), hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest()] for k, v in sd.items()]}))`;
    const r = runPython(script, [file]) as { ordered: boolean; entries: [string, number[], string][] };
    assert.equal(r.ordered, true);
    assert.deepEqual(r.entries, mine);
    // Round trips through misfm's own readers.
    const again = await loadVista3dCheckpoint(file);
    const st = path.join(dir, 'v.safetensors');
    writeSafetensors(st, (await loadCheckpointFile(file)).stateDict);
    const third = await loadVista3dCheckpoint(st);
    for (const [k, t] of model.stateDict()) {
      assert.deepEqual(again.model.stateDict().get(k)!.bytes(), t.bytes(), k);
      assert.deepEqual(third.model.stateDict().get(k)!.bytes(), t.bytes(), k);
    }
    again.model.dispose(); third.model.dispose();
  } finally { model.dispose(); rmSync(dir, { recursive: true, force: true }); }
});
