/** misfm export: an inference-ready copy (no optimizer/RNG state), optionally float16, that predicts like the source. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers.js';
import { tempDir, writeTinyCheckpoint } from '../infer/helpers.js';
import { exportModel } from '../../src/train/export.js';
import { loadTrainingCheckpoint, restoreTraining, saveTrainingCheckpoint } from '../../src/train/state.js';
import { loadModelForInference } from '../../src/infer/model.js';
import { readTorchFile, isPyDict } from '../../src/io/checkpoint/index.js';
import { createModel } from '../../src/models/registry.js';
import { resolveModelConfig } from '../../src/models/config.js';
import { presetConfig } from '../../src/config/defaults.js';
import { Adam } from '../../src/optim/adam.js';
import { manualSeed, noGrad, randn } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';

const tmp = tempDir('export');
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A tiny UNet3D checkpoint that also carries Adam state after one step (what export must drop). */
function writeWithOptimizer(file: string): void {
  manualSeed(3);
  const config = presetConfig('small-finetune') as unknown as Record<string, unknown>;
  const mc = resolveModelConfig({ name: 'unet3d', inChannels: 1, classNum: 3, featureChns: [4, 8, 16, 32, 64], dropout: [0, 0, 0, 0, 0] });
  config['model'] = mc;
  (config['inference'] as Record<string, unknown>)['window'] = [16, 16, 16];
  const model = createModel(mc);
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const x = randn([2, 1, 32, 32, 32]);
  const y = model.forward(x) as Tensor;
  const loss = y.square().mean();
  loss.backward();
  opt.step();
  for (const t of [x, y, loss]) t.dispose();
  // One vector of values near float16's subnormal range (like a conv bias in front of a BatchNorm).
  noGrad(() => { model.parameters().find((p) => p.shape.length === 1)!.mul_(1e-6); });
  saveTrainingCheckpoint(file, { model, optimizer: opt, iteration: 42, config, loader: { position: 84 }, best: { score: 0.5, iteration: 40 }, history: [{ iteration: 40, score: 0.5 }] });
  model.dispose();
}

test('export drops the optimizer, keeps config and history; float16 halves the weights and predicts within rounding', async () => {
  const src = path.join(tmp, 'src.pt');
  writeWithOptimizer(src);
  const full = path.join(tmp, 'full.pt'), half = path.join(tmp, 'half.pt');
  const rf = exportModel(src, full);
  const rh = exportModel(src, half, { half: true, keepLargest: 'per-class' });
  assert.equal(rf.halved, 0);
  assert.ok(rh.halved > 10, `${rh.halved} tensors halved`);
  assert.equal(rh.keptFloat32, 1, 'the tiny vector stays float32');
  assert.ok(rh.maxRelativeError > 0 && rh.maxRelativeError < 1e-3, `float16 rounding ${rh.maxRelativeError}`);
  const srcBytes = fs.statSync(src).size;
  assert.ok(rf.bytes < srcBytes * 0.6, `optimizer state dropped: ${rf.bytes} vs ${srcBytes} bytes`);
  assert.ok(rh.bytes < rf.bytes * 0.6, `float16: ${rh.bytes} vs ${rf.bytes} bytes`);

  const top = readTorchFile(half);
  assert.ok(isPyDict(top));
  assert.equal(top.has('optimizer_state_dict'), false);
  const t = loadTrainingCheckpoint(half);
  assert.equal(t.iteration, 42);
  assert.deepEqual(t.best, { score: 0.5, iteration: 40 });
  assert.deepEqual(t.history, [{ iteration: 40, score: 0.5 }]);
  assert.equal(t.rngTorch, null);
  assert.equal((t.config as { inference: { keepLargest: string } }).inference.keepLargest, 'per-class');
  assert.equal((loadTrainingCheckpoint(full).config as { inference: { keepLargest: string } }).inference.keepLargest, 'none');
  const dtypes = [...t.stateDict.values()].map((r) => r.dtype);
  assert.equal(dtypes.filter((d) => d === 'float32').length, rh.keptFloat32, 'float32 only where float16 rounds too coarsely');
  assert.equal(dtypes.filter((d) => d === 'float16').length, rh.halved);

  // Resuming from an export is refused: it has no optimizer state.
  const m = createModel(resolveModelConfig((t.config as { model: Parameters<typeof resolveModelConfig>[0] }).model));
  assert.throws(() => restoreTraining(t, { model: m, optimizer: new Adam(m.parameters()) }, half), /no optimizer state/);
  m.dispose();

  // Predictions: the float32 export equals the source exactly; the float16 one is within rounding.
  const [bs, bf, bh] = await Promise.all([src, full, half].map((f) => loadModelForInference(f)));
  manualSeed(9);
  const x = randn([1, 1, 16, 16, 16]);
  const outs = noGrad(() => [bs!, bf!, bh!].map((b) => b.model.forward(x) as Tensor));
  const exact = outs[1]!.sub(outs[0]!).abs().max().item();
  const scale = outs[0]!.abs().max().item();
  const diff16 = outs[2]!.sub(outs[0]!).abs().max().item();
  assert.equal(exact, 0);
  assert.ok(diff16 > 0 && diff16 < 1e-2 * scale, `float16 export differs by ${diff16} (scale ${scale})`);
  for (const o of outs) o.dispose();
  x.dispose();
  for (const b of [bs, bf, bh]) b!.model.dispose();
});

test('misfm export: missing --out and a file that is not a training checkpoint give one clear line', () => {
  const ck = path.join(tmp, 'tiny.pt');
  writeTinyCheckpoint(ck);
  const run = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot, 'bin/misfm.js'), 'export', ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, MISFM_NUM_THREADS: '1' } });
  const a = run([ck]);
  assert.equal(a.status, 2, a.stderr);
  assert.match(a.stderr, /--out/);
  const bogus = path.join(tmp, 'bogus.pt');
  fs.writeFileSync(bogus, 'not a zip');
  const b = run([bogus, '--out', path.join(tmp, 'never.pt')]);
  assert.notEqual(b.status, 0);
  assert.match(b.stderr, /bogus\.pt/);
  assert.equal(b.stderr.includes('    at '), false, 'no stack trace');
  assert.equal(fs.existsSync(path.join(tmp, 'never.pt')), false);
  const d = run([ck, '--out', path.join(tmp, 'never.pt'), '--keep-largest', 'biggest']);
  assert.equal(d.status, 2);
  assert.match(d.stderr, /--keep-largest must be one of/);
  const c = run([ck, '--out', path.join(tmp, 'ok.pt'), '--half']);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /stored as float16/);
});
