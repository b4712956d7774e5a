import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { train, type BatchSource, type TrainableModel } from '../../src/train/trainer.js';
import { loadTrainingCheckpoint } from '../../src/train/state.js';
import { presetConfig, applyOverrides } from '../../src/config/index.js';
import { Rng } from '../../src/util/rng.js';
import { readTorchFile, isPyDict } from '../../src/io/checkpoint/index.js';
import { MisfmError } from '../../src/util/errors.js';
import { hasPythonTorch, runPython } from '../helpers.js';

class Tiny extends nn.Module implements TrainableModel {
  readonly net: nn.Sequential;
  constructor() {
    super();
    this.net = this.registerModule('net', new nn.Sequential(
      new nn.Conv3d(1, 4, 3, { padding: 1 }), new nn.BatchNorm3d(4), new nn.PReLU(), new nn.Dropout(0.3), new nn.Conv3d(4, 3, 1)));
  }
  forward(x: E.Tensor): E.Tensor { return this.net.forward(x); }
}

/** A deterministic synthetic source: batch k depends only on (seed, k). */
function source(position: unknown): BatchSource {
  let next = typeof position === 'number' ? position : 0;
  return {
    async next() {
      const rng = new Rng(99).fork(next++);
      const n = 2 * 4 * 8 * 8;
      const img = new Float32Array(n).map(() => rng.normal());
      const lab = new Int32Array(n).map((_, i) => (img[i]! > 0.5 ? 2 : img[i]! < -0.5 ? 1 : 0));
      const image = E.fromTypedArray(img, [2, 1, 4, 8, 8]);
      const l = E.fromTypedArray(lab, [2, 4, 8, 8]);
      const target = E.F.oneHot(l, 3);
      l.dispose();
      return { image, target };
    },
    position: () => next,
    async close() { /* nothing held */ },
  };
}

function config(dir: string): ReturnType<typeof presetConfig> {
  return applyOverrides(presetConfig('small'), [
    'training.iterations=6', 'training.validEvery=2', 'training.saveEvery=100', `output.dir=${JSON.stringify(dir)}`,
    'training.deepSupervision.enabled=false', 'training.lr=0.01', 'training.scheduler.kind="step"', 'training.scheduler.stepSize=2', 'training.scheduler.unit="iteration"',
  ]);
}

function losses(dir: string): number[] {
  return readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; loss?: number })
    .filter((r) => r.event === 'train').map((r) => r.loss!);
}

test('a resumed run reproduces the loss curve of an uninterrupted one exactly', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'misfm-train-'));
  try {
    let vcalls = 0;
    const validate = async (): Promise<{ score: number; metrics: Record<string, number> }> => ({ score: [0.1, 0.3, 0.2][vcalls++ % 3]!, metrics: {} });
    const runA = path.join(root, 'a'), runB = path.join(root, 'b');
    E.manualSeed(1);
    const a = new Tiny();
    const sa = await train({ model: a, config: config(runA), makeSource: async (p) => source(p), validate, runDir: runA, quiet: true });
    assert.equal(sa.iterations, 6);
    assert.equal(sa.best?.iteration, 4);
    vcalls = 0;
    E.manualSeed(1);
    const b1 = new Tiny();
    const sb1 = await train({ model: b1, config: config(runB), makeSource: async (p) => source(p), validate, runDir: runB, quiet: true, stopAt: 3 });
    assert.equal(sb1.iterations, 3);
    // a fresh process would start from a fresh model with another RNG state: resume must not depend on it
    E.manualSeed(12345);
    const b2 = new Tiny();
    const sb2 = await train({ model: b2, config: config(runB), makeSource: async (p) => source(p), validate, runDir: runB, quiet: true, resumeFrom: sb1.checkpoints.latest });
    assert.equal(sb2.iterations, 6);
    assert.deepEqual(losses(runB), losses(runA));
    assert.deepEqual(Array.from(b2.net.at(4).stateDict().get('weight')!.data() as Float32Array), Array.from(a.net.at(4).stateDict().get('weight')!.data() as Float32Array));
    const ck = loadTrainingCheckpoint(sa.checkpoints.latest);
    assert.equal(ck.iteration, 6);
    assert.equal(ck.loader, 6);
    assert.equal((ck.config as { training: { iterations: number } }).training.iterations, 6);
    const top = readTorchFile(sa.checkpoints.best!);
    assert.ok(isPyDict(top) && top.get('iteration') === 4, 'best checkpoint is the iteration with the best score');
    a.dispose(); b1.dispose(); b2.dispose();
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('training checkpoints load in PyTorch with PyMIC-compatible keys', { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with torch' }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'misfm-train-'));
  try {
    E.manualSeed(2);
    const m = new Tiny();
    const s = await train({ model: m, config: config(root), makeSource: async (p) => source(p), runDir: root, quiet: true });
    const py = runPython(`
import torch, json, sys
c = torch.load(sys.argv[1])
sd = c['model_state_dict']; o = c['optimizer_state_dict']
print(json.dumps({'keys': list(sd.keys()), 'it': c['iteration'], 'groups': len(o['param_groups']), 'lr': o['param_groups'][0]['lr'],
  'nstate': len(o['state']), 'w': float(sd['net.4.weight'].sum()), 'has_avg': 'exp_avg' in o['state'][0]}))`, [s.checkpoints.latest]) as
      { keys: string[]; it: number; groups: number; lr: number; nstate: number; w: number; has_avg: boolean };
    assert.deepEqual(py.keys, [...m.stateDict().keys()]);
    assert.equal(py.it, 6);
    assert.equal(py.groups, 1);
    assert.equal(py.nstate, m.parameters().length);
    assert.ok(py.has_avg);
    assert.ok(Math.abs(py.w - m.net.at(4).stateDict().get('weight')!.sum().item()) < 1e-5);
    m.dispose();
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('resuming from a missing, corrupt or foreign checkpoint fails with a clear error', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'misfm-train-'));
  try {
    const m = new Tiny();
    const bad = path.join(root, 'bad.pt');
    writeFileSync(bad, 'not a checkpoint');
    for (const [file, re] of [[path.join(root, 'none.pt'), /no such checkpoint file/], [bad, /bad\.pt/]] as const) {
      await assert.rejects(train({ model: m, config: config(root), makeSource: async (p) => source(p), runDir: root, quiet: true, resumeFrom: file }),
        (e: unknown) => e instanceof MisfmError && re.test(e.message) && e.message.includes(path.basename(file)));
    }
    m.dispose();
  } finally { rmSync(root, { recursive: true, force: true }); }
});
