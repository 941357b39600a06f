// optim: AdamW against torch.optim.AdamW step by step (two param groups, weight decay, an LR change
// mid-run), exact resume through stateDict, PyTorch-compatible state layout, and clip_grad_norm_.
// Tolerance: 1e-6 absolute / 1e-5 relative. Both sides run the same libtorch kernels in the same
// order; only the loss's forward/backward summation order can differ, by a few float32 ulps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn, F, optim } from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';
import { uniformData } from './helpers/rand.js';

const SHAPES: Record<string, number[]> = { w1: [4, 3], b1: [4], w2: [2, 4], b2: [2] };
const NAMES = Object.keys(SHAPES);
const INIT = Object.fromEntries(NAMES.map((k, i) => [k, uniformData(SHAPES[k].reduce((a, b) => a * b, 1), 900 + i)]));
const STEPS = 10;
const XS = Array.from({ length: STEPS }, (_, k) => uniformData(15, 1000 + k, -2, 2));
const YS = Array.from({ length: STEPS }, (_, k) => uniformData(10, 2000 + k));
const TOL = { atol: 1e-6, rtol: 1e-5 };

function makeParams(values: Record<string, number[]> = INIT): Record<string, nn.Parameter> {
  return Object.fromEntries(NAMES.map((k) => [k, new nn.Parameter(torch.tensor(Float32Array.from(values[k]), { shape: SHAPES[k] }))]));
}
function makeOpt(p: Record<string, nn.Parameter>): optim.AdamW {
  return new optim.AdamW([
    { params: [p.w1, p.b1], lr: 1e-2, weightDecay: 0.1 },
    { params: [p.w2, p.b2], lr: 5e-3, weightDecay: 0, betas: [0.8, 0.99] },
  ], { eps: 1e-7 });
}
function trainStep(p: Record<string, nn.Parameter>, opt: optim.AdamW, k: number): void {
  if (k === 5) opt.paramGroups[0].lr = 2e-2; // an LR schedule writes the group's lr
  torch.scope(() => {
    const x = torch.tensor(Float32Array.from(XS[k]), { shape: [5, 3] });
    const y = torch.tensor(Float32Array.from(YS[k]), { shape: [5, 2] });
    const h = F.gelu(F.linear(x, p.w1, p.b1));
    F.mseLoss(F.linear(h, p.w2, p.b2), y).backward();
  });
  opt.step();
  opt.zeroGrad();
}
const values = (p: Record<string, nn.Parameter>) => Object.fromEntries(NAMES.map((k) => [k, Array.from(p[k].toFloat64())]));

const PY_SETUP = `
shapes = inp['shapes']; names = list(shapes)
def make(vals):
    return {k: torch.tensor(vals[k]).reshape(shapes[k]).requires_grad_() for k in names}
def make_opt(p):
    return torch.optim.AdamW([
        {'params': [p['w1'], p['b1']], 'lr': 1e-2, 'weight_decay': 0.1},
        {'params': [p['w2'], p['b2']], 'lr': 5e-3, 'weight_decay': 0.0, 'betas': (0.8, 0.99)},
    ], eps=1e-7)
def step(p, opt, k):
    if k == 5: opt.param_groups[0]['lr'] = 2e-2
    x = torch.tensor(inp['xs'][k]).reshape(5, 3); y = torch.tensor(inp['ys'][k]).reshape(5, 2)
    h = torch.nn.functional.gelu(torch.nn.functional.linear(x, p['w1'], p['b1']))
    torch.nn.functional.mse_loss(torch.nn.functional.linear(h, p['w2'], p['b2']), y).backward()
    opt.step(); opt.zero_grad()
def vals(p): return {k: L(p[k]) for k in names}
`;

test('AdamW: 10 steps with two param groups and weight decay match torch.optim.AdamW', () => {
  const before = torch.liveTensors();
  const p = makeParams();
  const opt = makeOpt(p);
  const trace: Record<string, number[]>[] = [];
  for (let k = 0; k < STEPS; k++) {
    trainStep(p, opt, k);
    trace.push(values(p));
  }
  const sd = opt.stateDict();
  const ref = runTorch<{ trace: Record<string, number[]>[]; state: Record<string, { step: number; exp_avg: number[]; exp_avg_sq: number[] }>; groups: Record<string, unknown>[] }>(PY_SETUP + `
p = make(inp['init']); opt = make_opt(p); trace = []
for k in range(10):
    step(p, opt, k); trace.append(vals(p))
sd = opt.state_dict()
out = {'trace': trace,
       'state': {str(i): {'step': s['step'].item(), 'exp_avg': L(s['exp_avg']), 'exp_avg_sq': L(s['exp_avg_sq'])} for i, s in sd['state'].items()},
       'groups': sd['param_groups']}
`, { shapes: SHAPES, init: INIT, xs: XS, ys: YS });
  for (let k = 0; k < STEPS; k++)
    for (const n of NAMES) assertClose(trace[k][n], ref.trace[k][n], { ...TOL, what: `${n} after step ${k + 1}` });
  // The state dict has PyTorch's layout and values.
  assert.deepEqual(Object.keys(sd.state).map(Number), [0, 1, 2, 3]);
  for (const [i, s] of Object.entries(ref.state)) {
    const mine = sd.state[Number(i)];
    assert.equal((mine.step as Tensor).item(), s.step);
    assert.equal((mine.step as Tensor).dtype, 'float32');
    assertClose(mine.exp_avg.toFloat64(), s.exp_avg, { ...TOL, what: `exp_avg ${i}` });
    assertClose(mine.exp_avg_sq.toFloat64(), s.exp_avg_sq, { atol: 1e-9, rtol: 1e-5, what: `exp_avg_sq ${i}` });
  }
  for (const [gi, g] of ref.groups.entries()) {
    const mine = sd.param_groups[gi] as Record<string, unknown>;
    for (const key of ['lr', 'betas', 'eps', 'weight_decay', 'params', 'amsgrad', 'maximize', 'decoupled_weight_decay'])
      assert.deepEqual(mine[key], g[key], `param_groups[${gi}].${key}`);
  }
  for (const s of Object.values(sd.state)) (s.step as Tensor).dispose();
  opt.dispose();
  for (const t of Object.values(p)) t.dispose();
  assert.equal(torch.liveTensors(), before, 'AdamW leaks no tensors');
});

test('AdamW: stateDict round trip resumes exactly, here and in PyTorch', () => {
  // Continuous run.
  const a = makeParams();
  const optA = makeOpt(a);
  for (let k = 0; k < STEPS; k++) trainStep(a, optA, k);
  // Interrupted run: 5 steps, save, rebuild everything from the saved values, 5 more.
  const b = makeParams();
  const optB = makeOpt(b);
  for (let k = 0; k < 5; k++) trainStep(b, optB, k);
  const saved = torch.scope(() => {
    const sd = optB.stateDict();
    const state = Object.fromEntries(Object.entries(sd.state).map(([i, s]) => [i, {
      step: (s.step as Tensor).item(), exp_avg: s.exp_avg.clone().keep(), exp_avg_sq: s.exp_avg_sq.clone().keep(),
    }]));
    return { state, param_groups: sd.param_groups };
  });
  const savedParams = values(b);
  optB.dispose();
  for (const t of Object.values(b)) t.dispose();
  const c = makeParams(savedParams);
  const optC = makeOpt(c);
  optC.loadStateDict(saved);
  assert.equal(optC.paramGroups[1].lr, 5e-3);
  for (let k = 5; k < STEPS; k++) trainStep(c, optC, k);
  const va = values(a);
  const vc = values(c);
  for (const n of NAMES) assertClose(vc[n], va[n], { atol: 0, rtol: 0, what: `${n} after resume` });

  // The same saved state loads into torch.optim.AdamW and continues to the same place.
  const asJson = {
    state: Object.fromEntries(Object.entries(saved.state).map(([i, s]) => [i, { step: s.step, exp_avg: Array.from(s.exp_avg.toFloat64()), exp_avg_sq: Array.from(s.exp_avg_sq.toFloat64()) }])),
    param_groups: saved.param_groups,
  };
  const ref = runTorch<{ resumed: Record<string, number[]> }>(PY_SETUP + `
p = make(inp['params']); opt = make_opt(p)
sd = inp['sd']
sd['state'] = {int(i): {'step': torch.tensor(float(s['step'])), 'exp_avg': torch.tensor(s['exp_avg']), 'exp_avg_sq': torch.tensor(s['exp_avg_sq'])} for i, s in sd['state'].items()}
for i, s in sd['state'].items():
    pid = [q for g in opt.param_groups for q in g['params']][i]
    s['exp_avg'] = s['exp_avg'].reshape(pid.shape); s['exp_avg_sq'] = s['exp_avg_sq'].reshape(pid.shape)
opt.load_state_dict(sd)
for k in range(5, 10): step(p, opt, k)
out = {'resumed': vals(p)}
`, { shapes: SHAPES, params: savedParams, sd: asJson, xs: XS, ys: YS });
  for (const n of NAMES) assertClose(ref.resumed[n], va[n], { ...TOL, what: `${n} resumed in PyTorch` });

  for (const s of Object.values(saved.state)) { s.exp_avg.dispose(); s.exp_avg_sq.dispose(); }
  optA.dispose();
  optC.dispose();
  for (const t of [...Object.values(a), ...Object.values(c)]) t.dispose();
});

test('AdamW: bad state dicts and hyperparameters are refused with a reason', () => {
  const p = makeParams();
  const opt = makeOpt(p);
  assert.throws(() => new optim.AdamW([p.w1], { lr: -1 }), /invalid learning rate -1/);
  assert.throws(() => new optim.AdamW([p.w1], { betas: [0.9, 1] }), /invalid beta parameter at index 1/);
  assert.throws(() => new optim.AdamW([{ params: [p.w1] }, { params: [p.w1] }]), /appears twice/);
  assert.throws(() => opt.loadStateDict({ state: {}, param_groups: [] }), /0 parameter groups, this optimizer 2/);
  const wrong = torch.zeros([3, 3]);
  const sd = opt.stateDict();
  sd.state[0] = { step: 1, exp_avg: wrong, exp_avg_sq: wrong };
  assert.throws(() => opt.loadStateDict(sd), /parameter 0: exp_avg has shape \[3,3\], the parameter \[4,3\]/);
  wrong.dispose();
  opt.dispose();
  for (const t of Object.values(p)) t.dispose();
});

test('clipGradNorm_ matches torch.nn.utils.clip_grad_norm_', () => {
  const grads = NAMES.map((k, i) => uniformData(SHAPES[k].reduce((a, b) => a * b, 1), 3000 + i, -3, 3));
  const ref = runTorch<Record<string, { norm: number; grads: number[][] }>>(`
res = {}
for name, max_norm, norm_type in [('l2', 1.0, 2.0), ('inf', 0.5, math.inf), ('noclip', 1e6, 2.0), ('l1', 2.0, 1.0)]:
    ps = []
    for g, s in zip(inp['grads'], inp['shapes']):
        p = torch.zeros(s, requires_grad=True); p.grad = torch.tensor(g).reshape(s); ps.append(p)
    n = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    res[name] = {'norm': n.item(), 'grads': [L(p.grad) for p in ps]}
out = res
`, { grads, shapes: NAMES.map((k) => SHAPES[k]) });
  for (const [name, maxNorm, normType] of [['l2', 1.0, 2], ['inf', 0.5, 'inf'], ['noclip', 1e6, 2], ['l1', 2.0, 1]] as const) {
    const ps = NAMES.map((k) => new nn.Parameter(torch.zeros(SHAPES[k])));
    torch.scope(() => ps.forEach((p, i) => (p.grad = torch.tensor(Float32Array.from(grads[i]), { shape: SHAPES[NAMES[i]] }))));
    const n = optim.clipGradNorm_(ps, maxNorm, normType);
    assertClose(n, ref[name].norm, { what: `${name} total norm` });
    ps.forEach((p, i) => torch.scope(() => assertClose(p.grad!.toFloat64(), ref[name].grads[i], { what: `${name} grad ${i}` })));
    for (const p of ps) p.dispose();
  }
  assert.equal(optim.clipGradNorm_([], 1), 0);
});

test('AdamW on bf16 parameters follows torch.optim.AdamW (same ops in bf16)', () => {
  const G = Array.from({ length: 3 }, (_, k) => NAMES.map((n, i) => uniformData(SHAPES[n].reduce((a, b) => a * b, 1), 4000 + 10 * k + i)));
  const p = NAMES.map((n) => new nn.Parameter(torch.scope(() => torch.tensor(Float32Array.from(INIT[n]), { shape: SHAPES[n] }).to('bfloat16'))));
  const opt = new optim.AdamW(p, { lr: 1e-2, weightDecay: 0.1 });
  for (let k = 0; k < 3; k++) {
    torch.scope(() => p.forEach((q, i) => (q.grad = torch.tensor(Float32Array.from(G[k][i]), { shape: SHAPES[NAMES[i]] }).to('bfloat16'))));
    opt.step();
  }
  const ref = runTorch<{ p: number[][] }>(`
ps = [torch.tensor(inp['init'][n]).reshape(inp['shapes'][n]).to(torch.bfloat16).requires_grad_() for n in inp['names']]
opt = torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1)
for k in range(3):
    for i, q in enumerate(ps):
        q.grad = torch.tensor(inp['g'][k][i]).reshape(q.shape).to(torch.bfloat16)
    opt.step()
out = {'p': [L(q) for q in ps]}
`, { init: INIT, shapes: SHAPES, names: NAMES, g: G });
  // Same bf16 kernels in the same order: equal to the bit.
  p.forEach((q, i) => assertClose(q.toFloat64(), ref.p[i], { atol: 0, rtol: 0, what: `bf16 ${NAMES[i]}` }));
  assert.equal(p[0].dtype, 'bfloat16');
  opt.dispose();
  for (const q of p) q.dispose();
});
