import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../../src/engine/index.js';
import * as nn from '../../src/nn/index.js';
import { Adam, AdamW, SGD, StepLR, PolynomialLR, MultiStepLR, CosineAnnealingLR } from '../../src/optim/index.js';
import { MisfmError } from '../../src/util/errors.js';
import { hasPythonTorch, runPython, assertClose } from '../helpers.js';

class Net extends nn.Module {
  readonly body: nn.Sequential;
  readonly head: nn.Conv3d;
  constructor() {
    super();
    // No bias before BN: its gradient is ~0 and Adam would amplify round-off in it.
    this.body = this.registerModule('body', new nn.Sequential(new nn.Conv3d(1, 4, [1, 3, 3], { padding: [0, 1, 1], bias: false }), new nn.BatchNorm3d(4), new nn.PReLU(), new nn.Dropout(0)));
    this.head = this.registerModule('head', new nn.Conv3d(4, 2, 1));
  }
  forward(x: E.Tensor): E.Tensor { return E.tidy(() => this.head.forward(this.body.forward(x))); }
}

test('state dict keys, order, shapes and dtypes follow PyTorch', () => {
  const m = new Net();
  const sd = m.stateDict();
  assert.deepEqual([...sd.keys()], [
    'body.0.weight', 'body.1.weight', 'body.1.bias', 'body.1.running_mean', 'body.1.running_var',
    'body.1.num_batches_tracked', 'body.2.weight', 'head.weight', 'head.bias']);
  assert.deepEqual(sd.get('body.0.weight')!.shape, [4, 1, 1, 3, 3]);
  assert.equal(sd.get('body.1.num_batches_tracked')!.dtype, 'int64');
  assert.deepEqual(sd.get('body.1.num_batches_tracked')!.shape, []);
  assert.deepEqual([...m.namedParameters()].map(([k]) => k), ['body.0.weight', 'body.1.weight', 'body.1.bias', 'body.2.weight', 'head.weight', 'head.bias']);
  assert.equal(m.numParameters(), 4 * 9 + 4 + 4 + 1 + 8 + 2);
  m.eval();
  assert.equal(m.body.at(1).training, false);
  m.train();
  m.forward(E.randn([2, 1, 2, 4, 4])).dispose();
  assert.equal(sd.get('body.1.num_batches_tracked')!.item(), 1, 'BN counts batches in training');
  m.dispose();
});

test('loadStateDict copies by name, reports every key, and strict mode lists all problems', () => {
  const a = new Net(), b = new Net();
  const rep = b.loadStateDict(a.stateDict());
  assert.equal(rep.loaded.length, 9);
  assert.deepEqual(Array.from(b.head.weight.data() as Float32Array), Array.from(a.head.weight.data() as Float32Array));
  const src = new Map(a.stateDict());
  src.delete('head.bias');
  src.set('extra.weight', E.ones([1]));
  src.set('head.weight', E.ones([3, 4, 1, 1, 1]));
  assert.throws(() => b.loadStateDict(src), (e: unknown) => e instanceof MisfmError && e.code === 'STATE_DICT'
    && /missing key\(s\) \(1\): head\.bias/.test(e.message) && /unexpected key\(s\) \(1\): extra\.weight/.test(e.message)
    && /size mismatch for head\.weight: checkpoint has \[3,4,1,1,1\], the model has \[2,4,1,1,1\]/.test(e.message));
  const f = b.loadStateDict(src, { mode: 'filter' });
  assert.deepEqual([f.missing, f.unexpected, f.mismatched.map((m) => m.key)], [['head.bias'], ['extra.weight'], ['head.weight']]);
  // raw tensors (checkpoint bytes) load too, including int64 buffers
  const raw = new Map<string, nn.StateValue>([['body.1.num_batches_tracked', { dtype: 'int64', shape: [], data: new Uint8Array(new BigInt64Array([42n]).buffer) }]]);
  b.loadStateDict(raw, { mode: 'filter' });
  assert.equal(b.stateDict().get('body.1.num_batches_tracked')!.item(), 42);
  a.dispose(); b.dispose();
});

test('default initialisation is seedable and identical to PyTorch', { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with torch' }, () => {
  E.manualSeed(0);
  const c = new nn.Conv3d(2, 4, [1, 3, 3]);
  const ct = new nn.ConvTranspose3d(4, 2, 2, { stride: 2 });
  const l = new nn.Linear(5, 3);
  const py = runPython(`
import torch, json
torch.manual_seed(0)
c = torch.nn.Conv3d(2, 4, [1, 3, 3]); ct = torch.nn.ConvTranspose3d(4, 2, 2, stride=2); l = torch.nn.Linear(5, 3)
print(json.dumps([c.weight.flatten().tolist(), c.bias.tolist(), ct.weight.flatten().tolist(), ct.bias.tolist(), l.weight.flatten().tolist(), l.bias.tolist()]))
`) as number[][];
  const ours = [c.weight, c.bias!, ct.weight, ct.bias!, l.weight, l.bias!].map((t) => Array.from(t.data() as Float32Array));
  ours.forEach((o, i) => assertClose(o, py[i]!, 0, 0, `init tensor ${i}`));
});

const PY_TRAIN = `
import torch, json, sys
import torch.nn.functional as F
torch.manual_seed(0)
body = torch.nn.Sequential(torch.nn.Conv3d(1, 4, [1, 3, 3], padding=[0, 1, 1], bias=False), torch.nn.BatchNorm3d(4), torch.nn.PReLU(), torch.nn.Dropout(0))
head = torch.nn.Conv3d(4, 2, 1)
x = torch.randn(2, 1, 2, 4, 4); y = torch.randint(0, 2, (2, 2, 4, 4))
params = list(body.parameters()) + list(head.parameters())
kind = sys.argv[1]
if kind == 'adam': opt = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3)
elif kind == 'adamw': opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=1e-2)
else: opt = torch.optim.SGD(params, lr=1e-1, momentum=0.9, nesterov=True, weight_decay=1e-3)
sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
losses = []
for i in range(5):
    opt.zero_grad()
    loss = F.cross_entropy(head(body(x)), y)
    loss.backward(); opt.step(); sched.step()
    losses.append(loss.item())
print(json.dumps({'losses': losses, 'w': head.weight.flatten().tolist() + body[0].weight.flatten().tolist(), 'rm': body[1].running_mean.tolist()}))
`;

for (const kind of ['adam', 'adamw', 'sgd'] as const) {
  test(`${kind} + StepLR match PyTorch step for step`, { skip: !hasPythonTorch() && 'needs /usr/bin/python3 with torch' }, () => {
    E.manualSeed(0);
    const m = new Net();
    const x = E.randn([2, 1, 2, 4, 4]);
    const y = E.randint(0, 2, [2, 2, 4, 4]);
    const params = m.parameters();
    const opt = kind === 'adam' ? new Adam(params, { lr: 1e-2, weightDecay: 1e-3 })
      : kind === 'adamw' ? new AdamW(params, { lr: 1e-2, weightDecay: 1e-2 })
        : new SGD(params, { lr: 1e-1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 });
    const sched = new StepLR(opt, 2, 0.5);
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) {
      E.tidy(() => {
        opt.zeroGrad();
        const loss = E.F.crossEntropy(m.forward(x), y);
        loss.backward();
        opt.step();
        sched.step();
        losses.push(loss.item());
      });
    }
    const py = runPython(PY_TRAIN, [kind]) as { losses: number[]; w: number[]; rm: number[] };
    assertClose(losses, py.losses, 1e-5, 1e-6, 'losses');
    assertClose([...Array.from(m.head.weight.data() as Float32Array), ...Array.from(m.body.at(0).stateDict().get('weight')!.data() as Float32Array)], py.w, 1e-4, 1e-6, 'weights');
    assertClose(Array.from(m.body.at(1).stateDict().get('running_mean')!.data() as Float32Array), py.rm, 1e-5, 1e-6, 'running mean');
    opt.dispose(); m.dispose();
  });
}

test('optimizer state save/restore resumes identically', () => {
  E.manualSeed(3);
  const w = E.randn([4]).requiresGrad_();
  const opt = new Adam([w], { lr: 0.1 });
  const stepOnce = (): void => E.tidy(() => { opt.zeroGrad(); w.pow(2).sum().backward(); opt.step(); });
  stepOnce(); stepOnce();
  // stateDict() hands out live tensors (as PyTorch does): snapshot them like a checkpoint writer would.
  const live = opt.stateDict();
  const saved = { ...live, state: new Map([...live.state].map(([i, s]) => [i, Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'number' ? v : v.clone()]))])) };
  const wSaved = w.clone();
  stepOnce();
  const expected = Array.from(w.data() as Float32Array);
  E.noGrad(() => w.copy_(wSaved));
  const opt2 = new Adam([w], { lr: 0.1 });
  opt2.loadStateDict(saved);
  E.tidy(() => { opt2.zeroGrad(); w.pow(2).sum().backward(); opt2.step(); });
  assert.deepEqual(Array.from(w.data() as Float32Array), expected);
});

test('schedules follow their closed forms', () => {
  const mk = (): Adam => new Adam([E.ones([1]).requiresGrad_()], { lr: 1 });
  const at = (s: { step(): void }, o: Adam, n: number): number => { for (let i = 0; i < n; i++) s.step(); return o.lr; };
  let o = mk(); assert.equal(at(new StepLR(o, 3, 0.5), o, 7), 0.25);
  o = mk(); assert.equal(at(new MultiStepLR(o, [2, 5], 0.1), o, 5), 1 * 0.1 * 0.1);
  o = mk(); assert.ok(Math.abs(at(new PolynomialLR(o, 10, 0.8), o, 5) - 0.5 ** 0.8) < 1e-12);
  o = mk(); assert.equal(at(new PolynomialLR(o, 10, 0.8), o, 12), 0);
  o = mk(); assert.ok(Math.abs(at(new CosineAnnealingLR(o, 10, 0), o, 5) - 0.5) < 1e-12);
});

test('Module.toDevice: cpu keeps the tensor objects and values; bad or absent devices are clear errors', () => {
  const m = new nn.Linear(3, 2);
  const w = m.weight, before = Array.from(w.dataF32());
  assert.equal(m.toDevice('cpu'), m);
  assert.equal(m.weight, w, 'same tensor object after the move');
  assert.deepEqual(Array.from(m.weight.dataF32()), before);
  assert.throws(() => m.toDevice('gpu'), (e: unknown) => e instanceof MisfmError && /device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'/.test(e.message));
  const info = E.native().info();
  if (!info.cudaAvailable) {
    assert.throws(() => m.toDevice('cuda'), (e: unknown) => e instanceof MisfmError && /has no CUDA/.test(e.message));
    assert.equal(m.weight.device, 'cpu', 'a refused move leaves the module where it was');
  } else {
    assert.throws(() => m.toDevice(`cuda:${info.cudaDeviceCount}`), /CUDA device\(s\) are visible/);
  }
  m.dispose();
});

test('Module.toDtype: float64 in place (same tensor objects, values, requires-grad), integer buffers untouched, trains in float64', () => {
  const m = new nn.Sequential(new nn.Conv3d(1, 2, 3, { padding: 1 }), new nn.BatchNorm3d(2));
  const w = m.parameters()[0]!, before = Array.from(w.dataF32());
  assert.equal(m.toDtype('float64'), m);
  assert.equal(m.parameters()[0], w, 'same tensor object');
  assert.equal(w.dtype, 'float64');
  assert.equal(w.requiresGrad, true);
  assert.deepEqual(Array.from(w.data() as Float64Array), before, 'float32 values carried over exactly');
  const buffers = Object.fromEntries([...m.namedBuffers()].map(([k, b]) => [k, b.dtype]));
  assert.deepEqual(buffers, { '1.running_mean': 'float64', '1.running_var': 'float64', '1.num_batches_tracked': 'int64' });
  const x = E.randn([2, 1, 3, 4, 4]).to('float64');
  const y = m.forward(x);
  assert.equal(y.dtype, 'float64');
  y.square().sum().backward();
  assert.equal(w.grad?.dtype, 'float64');
  m.toDtype('float32');
  assert.equal(w.dtype, 'float32');
  m.dispose();
});
