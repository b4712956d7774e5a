/**
 * VoCo's optimiser: AdamW/Adam with AMSGrad against torch.optim (Debian torch 1.13) step for step,
 * WarmupCosineLR against VoCo's WarmupCosineSchedule formula, and the optimizer + schedule state
 * through a training checkpoint: misfm resumes bit for bit, PyTorch resumes the same file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { Adam, AdamW, WarmupCosineLR, type Optimizer } from '../../src/optim/index.js';
import { loadTrainingCheckpoint, restoreTraining, saveTrainingCheckpoint } from '../../src/train/state.js';
import { CheckpointError, MisfmError } from '../../src/util/errors.js';
import { hasPythonTorch, runPython, assertClose } from '../helpers.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'misfm-amsgrad-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const noTorch = !hasPythonTorch() && 'needs /usr/bin/python3 with torch';

class Net extends nn.Module {
  readonly l1: nn.Linear;
  readonly l2: nn.Linear;
  constructor() {
    super();
    this.l1 = this.registerModule('l1', new nn.Linear(5, 6));
    this.l2 = this.registerModule('l2', new nn.Linear(6, 3));
  }
  forward(x: E.Tensor): E.Tensor { return E.tidy(() => this.l2.forward(this.l1.forward(x).tanh())); }
}

/** Seeded as in PY_SETUP: the same initial weights and data as torch. */
function setup(): { m: Net; x: E.Tensor; y: E.Tensor } {
  E.manualSeed(0);
  const m = new Net();
  return { m, x: E.randn([4, 5]), y: E.randn([4, 3]) };
}

// betas[1] = 0.5 lets the second moment fall between steps, so the running maximum matters.
const HYPER = { lr: 1e-2, betas: [0.9, 0.5] as [number, number], weightDecay: 1e-2, amsgrad: true };
const WARMUP = 2, TOTAL = 8;

function stepOnce(m: Net, x: E.Tensor, y: E.Tensor, opt: Optimizer, sched: WarmupCosineLR): number {
  return E.tidy(() => {
    opt.zeroGrad();
    const loss = m.forward(x).sub(y).pow(2).mean();
    loss.backward();
    opt.step();
    sched.step();
    return loss.item();
  });
}
const weights = (m: Net): number[] => [m.l1.weight, m.l2.weight, m.l2.bias!].flatMap((t) => Array.from(t.data() as Float32Array));

const PY_SETUP = `
import torch, json, math, sys
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
x = torch.randn(4, 5); y = torch.randn(4, 3)
# VoCo optimizers/lr_scheduler.py WarmupCosineSchedule.lr_lambda (cycles 0.5), through LambdaLR.
def lr_lambda(step, warmup=${WARMUP}, t_total=${TOTAL}, cycles=0.5):
    if step < warmup:
        return float(step) / float(max(1.0, warmup))
    progress = float(step - warmup) / float(max(1, t_total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))
kind = sys.argv[1]
Opt = torch.optim.AdamW if kind == 'adamw' else torch.optim.Adam
opt = Opt(net.parameters(), lr=${HYPER.lr}, betas=(${HYPER.betas.join(', ')}), weight_decay=${HYPER.weightDecay}, amsgrad=True)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
def step():
    opt.zero_grad()
    loss = ((net(x) - y) ** 2).mean()
    loss.backward(); opt.step(); sched.step()
    return loss.item()
def weights():
    return net[0].weight.flatten().tolist() + net[2].weight.flatten().tolist() + net[2].bias.tolist()
`;

for (const kind of ['adamw', 'adam'] as const) {
  test(`${kind}(amsgrad=True) + WarmupCosineLR match torch.optim step for step`, { skip: noTorch }, () => {
    const { m, x, y } = setup();
    const opt = kind === 'adamw' ? new AdamW(m.parameters(), HYPER) : new Adam(m.parameters(), HYPER);
    const sched = new WarmupCosineLR(opt, WARMUP, TOTAL);
    const losses: number[] = [], lrs: number[] = [opt.lr];
    for (let i = 0; i < TOTAL; i++) { losses.push(stepOnce(m, x, y, opt, sched)); lrs.push(opt.lr); }
    const py = runPython(`${PY_SETUP}
lrs = [opt.param_groups[0]['lr']]; losses = []
for i in range(${TOTAL}):
    losses.append(step()); lrs.append(opt.param_groups[0]['lr'])
print(json.dumps({'losses': losses, 'lrs': lrs, 'w': weights()}))
`, [kind]) as { losses: number[]; lrs: number[]; w: number[] };
    assertClose(lrs, py.lrs, 1e-12, 0, 'learning rates');
    assertClose(losses, py.losses, 1e-5, 1e-7, 'losses');
    assertClose(weights(m), py.w, 1e-5, 1e-6, 'weights');
    // The maximum was exercised: some max_exp_avg_sq entries exceed the current exp_avg_sq.
    const s = opt.stateDict().state.get(0)!;
    const vMax = Array.from((s['max_exp_avg_sq'] as E.Tensor).data() as Float32Array), v = Array.from((s['exp_avg_sq'] as E.Tensor).data() as Float32Array);
    assert.ok(vMax.some((a, i) => a > v[i]!), 'max_exp_avg_sq differs from exp_avg_sq somewhere');
    assert.ok(vMax.every((a, i) => a >= v[i]!));
    assert.equal(opt.stateDict().paramGroups[0]!['amsgrad'], true);
    opt.dispose(); m.dispose(); x.dispose(); y.dispose();
  });
}

test('amsgrad changes the update (the option is not ignored)', () => {
  const run = (amsgrad: boolean): number[] => {
    const { m, x, y } = setup();
    const opt = new AdamW(m.parameters(), { ...HYPER, amsgrad });
    const sched = new WarmupCosineLR(opt, 0, TOTAL);
    for (let i = 0; i < 4; i++) stepOnce(m, x, y, opt, sched);
    const w = weights(m);
    opt.dispose(); m.dispose(); x.dispose(); y.dispose();
    return w;
  };
  const a = run(true), b = run(false);
  assert.ok(a.some((v, i) => v !== b[i]));
});

test('WarmupCosineLR follows the reference formula (linear warmup from 0, cosine to 0, no clamp past the end)', () => {
  const opt = new AdamW([E.ones([1]).requiresGrad_()], { lr: 1e-4 });
  const s = new WarmupCosineLR(opt, 5, 20);
  assert.equal(opt.lr, 0, 'step 0 of a warmup has lr 0 (LambdaLR applies lambda(0) at construction)');
  // Hand values: t < 5: t/5; t >= 5: 0.5·(1 + cos(π·(t − 5)/15)).
  const expect: Record<number, number> = { 1: 0.2, 3: 0.6, 5: 1, 10: 0.75, 20: 0, 25: 0.25 };
  for (const [t, f] of Object.entries(expect)) assert.ok(Math.abs(s.lrAt(Number(t)) - 1e-4 * f) < 1e-18, `t=${t}: ${s.lrAt(Number(t))} vs ${1e-4 * f}`);
  for (let t = 1; t <= 12; t++) { s.step(); assert.equal(opt.lr, s.lrAt(t)); }
  // Resume: the state is the step count; the rate is recomputed from it.
  const opt2 = new AdamW([E.ones([1]).requiresGrad_()], { lr: 1e-4 });
  const s2 = new WarmupCosineLR(opt2, 5, 20);
  s2.loadStateDict(s.stateDict());
  assert.equal(opt2.lr, opt.lr);
  // Without warmup the first rate is the base rate.
  const opt3 = new AdamW([E.ones([1]).requiresGrad_()], { lr: 1e-4 });
  new WarmupCosineLR(opt3, 0, 20);
  assert.equal(opt3.lr, 1e-4);
  assert.throws(() => new WarmupCosineLR(opt3, -1, 20), (e: unknown) => e instanceof MisfmError && e.code === 'CONFIG');
  assert.throws(() => new WarmupCosineLR(opt3, 1, 0), (e: unknown) => e instanceof MisfmError && e.code === 'CONFIG');
});

/** Two steps, a checkpoint, two more: returns the checkpoint file and the weights/lr after 4 steps. */
function runAndSave(file: string): { w: number[]; lr: number; losses: number[] } {
  const { m, x, y } = setup();
  const opt = new AdamW(m.parameters(), HYPER);
  const sched = new WarmupCosineLR(opt, WARMUP, TOTAL);
  stepOnce(m, x, y, opt, sched); stepOnce(m, x, y, opt, sched);
  saveTrainingCheckpoint(file, { model: m, optimizer: opt, scheduler: sched, iteration: 2, config: {}, loader: null, best: null, history: [] });
  const losses = [stepOnce(m, x, y, opt, sched), stepOnce(m, x, y, opt, sched)];
  const out = { w: weights(m), lr: opt.lr, losses };
  opt.dispose(); m.dispose(); x.dispose(); y.dispose();
  return out;
}

test('AMSGrad state and the schedule save and resume exactly through a training checkpoint', () => {
  const file = path.join(tmp, 'resume.pt');
  const expected = runAndSave(file);
  const { m, x, y } = setup();
  const opt = new AdamW(m.parameters(), HYPER);
  const sched = new WarmupCosineLR(opt, WARMUP, TOTAL);
  const loaded = loadTrainingCheckpoint(file);
  assert.deepEqual(Object.keys(loaded.optimizer!.state.get(0)!).sort(), ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step']);
  restoreTraining(loaded, { model: m, optimizer: opt, scheduler: sched }, file);
  assert.equal(sched.lastEpoch, 2);
  const losses = [stepOnce(m, x, y, opt, sched), stepOnce(m, x, y, opt, sched)];
  assert.deepEqual(losses, expected.losses);
  assert.deepEqual(weights(m), expected.w, 'bit-identical weights after the resumed steps');
  assert.equal(opt.lr, expected.lr);
  opt.dispose(); m.dispose(); x.dispose(); y.dispose();
});

test('a checkpoint saved with the other amsgrad setting is refused, naming the file', () => {
  const file = path.join(tmp, 'mismatch.pt');
  runAndSave(file);
  const { m } = setup();
  const plain = new AdamW(m.parameters(), { ...HYPER, amsgrad: false });
  assert.throws(() => restoreTraining(loadTrainingCheckpoint(file), { model: m, optimizer: plain }, file),
    (e: unknown) => e instanceof CheckpointError && e.message.includes(file) && /saved with amsgrad=True, this optimizer has amsgrad=False/.test(e.message));
  // The other way round: a plain Adam state (no maxima) into an AMSGrad optimizer.
  const st = plain.stateDict();
  const ams = new AdamW(m.parameters(), HYPER);
  E.tidy(() => { plain.zeroGrad(); m.forward(E.ones([1, 5])).sum().backward(); plain.step(); });
  assert.throws(() => ams.loadStateDict(plain.stateDict()), /saved with amsgrad=False, this optimizer has amsgrad=True/);
  const noFlag = { ...st, paramGroups: [{ params: m.parameters().map((_, i) => i) }], state: plain.stateDict().state };
  assert.throws(() => ams.loadStateDict(noFlag), /amsgrad=False/);
  plain.dispose(); ams.dispose(); m.dispose();
});

test('PyTorch resumes the AMSGrad checkpoint misfm wrote and takes the same steps', { skip: noTorch }, () => {
  const file = path.join(tmp, 'to-torch.pt');
  const expected = runAndSave(file);
  const py = runPython(`${PY_SETUP}
c = torch.load(sys.argv[2])
sd = c['model_state_dict']
net.load_state_dict({'0.weight': sd['l1.weight'], '0.bias': sd['l1.bias'], '2.weight': sd['l2.weight'], '2.bias': sd['l2.bias']})
opt.load_state_dict(c['optimizer_state_dict'])
# misfm stores the schedule as {last_epoch}; the current lr comes back with the param group.
sched.last_epoch = c['scheduler_state_dict']['last_epoch']
assert abs(opt.param_groups[0]['lr'] - ${HYPER.lr} * lr_lambda(sched.last_epoch)) < 1e-15
assert opt.param_groups[0]['amsgrad'] is True
losses = [step(), step()]
print(json.dumps({'losses': losses, 'lr': opt.param_groups[0]['lr'], 'w': weights()}))
`, ['adamw', file]) as { losses: number[]; lr: number; w: number[] };
  assertClose(py.losses, expected.losses, 1e-5, 1e-7, 'losses after resume in torch');
  assertClose(py.w, expected.w, 1e-5, 1e-6, 'weights after resume in torch');
  assertClose([py.lr], [expected.lr], 1e-12, 0, 'lr after resume in torch');
});
