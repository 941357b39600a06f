// nn: every functional op (values and gradients), module init, outputs, gradients and state-dict
// names, each compared with PyTorch run beside the test (one python process per test group).
// Tolerances: float32 1e-5 (same libtorch kernels; differences come only from summation order);
// bf16 2e-2 relative + 2e-2 absolute (bf16 has 8 significant bits: one rounding is 2^-8 = 4e-3,
// and a few chained roundings on O(1) values stay below 2e-2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn, F } from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';
import { uniformData, intData } from './helpers/rand.js';

interface Spec {
  shape: number[];
  data: number[];
  dtype: 'float32' | 'bfloat16' | 'int64' | 'bool';
  grad?: boolean;
}
interface Case {
  name: string;
  inputs: Record<string, Spec>;
  ts: (T: Record<string, Tensor>) => Tensor;
  py: string;
  tol?: { atol: number; rtol: number };
  /** r: random cotangent for the backward pass (absent: forward only). */
  r?: number[];
}

let seed = 1;
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const f32 = (shape: number[], grad = true, lo = -1, hi = 1): Spec => ({ shape, data: uniformData(numel(shape), seed++, lo, hi), dtype: 'float32', grad });
const bf16 = (shape: number[], grad = true): Spec => ({ ...f32(shape, grad), dtype: 'bfloat16' });
const i64 = (shape: number[], high: number): Spec => ({ shape, data: intData(numel(shape), seed++, high), dtype: 'int64' });
const boolSpec = (shape: number[], data: number[]): Spec => ({ shape, data, dtype: 'bool' });
const BF16_TOL = { atol: 2e-2, rtol: 2e-2 };

function make(s: Spec): Tensor {
  const base = s.dtype === 'int64'
    ? torch.tensor(BigInt64Array.from(s.data.map(BigInt)), { shape: s.shape })
    : s.dtype === 'bool'
      ? torch.tensor(Uint8Array.from(s.data), { shape: s.shape, dtype: 'bool' })
      : torch.tensor(Float32Array.from(s.data), { shape: s.shape });
  const t = s.dtype === 'bfloat16' ? base.to('bfloat16') : base;
  if (s.grad) t.requiresGrad_(true);
  return t;
}

const PY_RUN_CASES = `
def make(s):
    if s['dtype'] == 'int64':
        t = torch.tensor(s['data'], dtype=torch.int64).reshape(s['shape'])
    elif s['dtype'] == 'bool':
        t = torch.tensor(s['data'], dtype=torch.bool).reshape(s['shape'])
    else:
        t = torch.tensor(s['data'], dtype=torch.float32).reshape(s['shape'])
        if s['dtype'] == 'bfloat16':
            t = t.to(torch.bfloat16)
    if s.get('grad'):
        t.requires_grad_(True)
    return t
res = {}
for case in inp['cases']:
    T = {k: make(v) for k, v in case['inputs'].items()}
    o = eval(case['py'], {'torch': torch, 'F': torch.nn.functional, 'math': math, **T})
    r = {'out': L(o), 'shape': list(o.shape), 'dtype': str(o.dtype).replace('torch.', '')}
    if case.get('r') is not None:
        R = torch.tensor(case['r'], dtype=torch.float32).reshape(o.shape)
        (o * R).sum().backward()
        r['grads'] = {k: L(t.grad) for k, t in T.items() if t.requires_grad}
    res[case['name']] = r
out = res
`;

function runCases(cases: Case[]): void {
  // Output shapes are known only after running: run TS forward first to size the cotangents.
  const prepared = cases.map((c) => {
    const shape = torch.scope(() => torch.noGrad(() => c.ts(Object.fromEntries(Object.entries(c.inputs).map(([k, s]) => [k, make(s)]))).shape));
    const wantsGrad = Object.values(c.inputs).some((s) => s.grad);
    return { ...c, r: wantsGrad ? uniformData(numel(shape), seed++) : undefined };
  });
  const ref = runTorch<Record<string, { out: unknown; shape: number[]; dtype: string; grads?: Record<string, unknown> }>>(PY_RUN_CASES, {
    cases: prepared.map((c) => ({ name: c.name, inputs: c.inputs, py: c.py, r: c.r ?? null })),
  });
  for (const c of prepared) {
    torch.scope(() => {
      const T = Object.fromEntries(Object.entries(c.inputs).map(([k, s]) => [k, make(s)]));
      const out = c.ts(T);
      const e = ref[c.name];
      const tol = c.tol ?? { atol: 1e-5, rtol: 1e-5 };
      assert.deepEqual(out.shape, e.shape, `${c.name}: shape`);
      assert.equal(out.dtype, e.dtype, `${c.name}: dtype`);
      assertClose(out.toFloat64(), e.out, { ...tol, what: `${c.name} output` });
      if (c.r) {
        const R = torch.tensor(Float32Array.from(c.r), { shape: out.shape });
        out.mul(R).sum().backward();
        for (const [k, g] of Object.entries(e.grads ?? {})) {
          const mine = T[k].grad;
          assert.ok(mine, `${c.name}: no gradient for ${k}`);
          assertClose(mine.toFloat64(), g, { ...tol, what: `${c.name} grad ${k}` });
        }
      }
    });
  }
}

test('functional ops match torch.nn.functional (values and gradients)', () => {
  const B = 2, L = 5, S = 7, H = 3, E = 4;
  const causalish = Array.from({ length: B * L * S }, (_, i) => (i % S <= (Math.floor(i / S) % L) + 1 ? 1 : 0));
  const cases: Case[] = [
    { name: 'linear', inputs: { x: f32([3, 4, 5]), w: f32([6, 5]), b: f32([6]) }, ts: (T) => F.linear(T.x, T.w, T.b), py: 'F.linear(x, w, b)' },
    { name: 'linear_nobias', inputs: { x: f32([4, 5]), w: f32([2, 5]) }, ts: (T) => F.linear(T.x, T.w), py: 'F.linear(x, w)' },
    { name: 'layerNorm', inputs: { x: f32([3, 4, 8]), w: f32([8]), b: f32([8]) }, ts: (T) => F.layerNorm(T.x, [8], T.w, T.b), py: 'F.layer_norm(x, [8], w, b)' },
    { name: 'layerNorm_2d', inputs: { x: f32([3, 4, 8]) }, ts: (T) => F.layerNorm(T.x, [4, 8], null, null, 1e-3), py: 'F.layer_norm(x, [4, 8], eps=1e-3)' },
    { name: 'rmsNorm', inputs: { x: f32([3, 4, 8]), w: f32([8]) }, ts: (T) => F.rmsNorm(T.x, [8], T.w, 1e-6), py: 'F.rms_norm(x, [8], w, 1e-6)' },
    { name: 'rmsNorm_default_eps', inputs: { x: f32([3, 8]) }, ts: (T) => F.rmsNorm(T.x, 8), py: 'F.rms_norm(x, [8])' },
    { name: 'rmsNormTimmVar', inputs: { x: f32([3, 4, 8]), w: f32([8]) }, ts: (T) => F.rmsNormTimmVar(T.x, 8, T.w, 1e-6),
      py: 'x * torch.rsqrt(torch.var(x, dim=(-1,), keepdim=True) + 1e-6) * w' },
    { name: 'gelu', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.gelu(T.x), py: 'F.gelu(x)' },
    { name: 'gelu_tanh', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.gelu(T.x, { approximate: 'tanh' }), py: "F.gelu(x, approximate='tanh')" },
    { name: 'silu', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.silu(T.x), py: 'F.silu(x)' },
    { name: 'relu', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.relu(T.x), py: 'F.relu(x)' },
    { name: 'sigmoid', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.sigmoid(T.x), py: 'torch.sigmoid(x)' },
    { name: 'tanh', inputs: { x: f32([4, 6], true, -4, 4) }, ts: (T) => F.tanh(T.x), py: 'torch.tanh(x)' },
    { name: 'softmax', inputs: { x: f32([3, 4, 6], true, -3, 3) }, ts: (T) => F.softmax(T.x, -1), py: 'F.softmax(x, -1)' },
    { name: 'logSoftmax', inputs: { x: f32([3, 4, 6], true, -3, 3) }, ts: (T) => F.logSoftmax(T.x, 1), py: 'F.log_softmax(x, 1)' },
    { name: 'sdpa', inputs: { q: f32([B, H, L, E]), k: f32([B, H, S, E]), v: f32([B, H, S, E]) },
      ts: (T) => F.scaledDotProductAttention(T.q, T.k, T.v), py: 'F.scaled_dot_product_attention(q, k, v)' },
    { name: 'sdpa_boolmask', inputs: { q: f32([B, H, L, E]), k: f32([B, H, S, E]), v: f32([B, H, S, E]), m: boolSpec([B, 1, L, S], causalish) },
      ts: (T) => F.scaledDotProductAttention(T.q, T.k, T.v, { attnMask: T.m }), py: 'F.scaled_dot_product_attention(q, k, v, attn_mask=m)' },
    { name: 'sdpa_floatmask_scale', inputs: { q: f32([B, H, L, E]), k: f32([B, H, S, E]), v: f32([B, H, S, E]), m: f32([L, S], false, -2, 0) },
      ts: (T) => F.scaledDotProductAttention(T.q, T.k, T.v, { attnMask: T.m, scale: 0.3 }), py: 'F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3)' },
    { name: 'sdpa_causal', inputs: { q: f32([B, H, L, E]), k: f32([B, H, L, E]), v: f32([B, H, L, E]) },
      ts: (T) => F.scaledDotProductAttention(T.q, T.k, T.v, { isCausal: true }), py: 'F.scaled_dot_product_attention(q, k, v, is_causal=True)' },
    { name: 'conv2d', inputs: { x: f32([2, 4, 9, 8]), w: f32([6, 2, 3, 3]), b: f32([6]) },
      ts: (T) => F.conv2d(T.x, T.w, T.b, { stride: 2, padding: [1, 2], groups: 2 }), py: 'F.conv2d(x, w, b, stride=2, padding=(1, 2), groups=2)' },
    { name: 'conv2d_dilation', inputs: { x: f32([1, 3, 10, 10]), w: f32([5, 3, 3, 3]) },
      ts: (T) => F.conv2d(T.x, T.w, null, { dilation: 2 }), py: 'F.conv2d(x, w, dilation=2)' },
    { name: 'embedding', inputs: { i: i64([2, 3], 10), w: f32([10, 4]) }, ts: (T) => F.embedding(T.i, T.w), py: 'F.embedding(i, w)' },
    { name: 'embedding_pad', inputs: { i: { shape: [4], data: [1, 0, 1, 3], dtype: 'int64' }, w: f32([5, 3]) },
      ts: (T) => F.embedding(T.i, T.w, { paddingIdx: 1 }), py: 'F.embedding(i, w, padding_idx=1)' },
    { name: 'dropout_eval', inputs: { x: f32([3, 4]) }, ts: (T) => F.dropout(T.x, 0.5, false), py: 'F.dropout(x, 0.5, False)' },
    { name: 'nearest_size', inputs: { x: f32([1, 2, 4, 5]) }, ts: (T) => F.interpolate(T.x, { size: [7, 3], mode: 'nearest' }), py: "F.interpolate(x, size=(7, 3), mode='nearest')" },
    { name: 'nearest_scale', inputs: { x: f32([1, 2, 4, 5]) }, ts: (T) => F.interpolate(T.x, { scaleFactor: 2.5, mode: 'nearest' }), py: "F.interpolate(x, scale_factor=2.5, mode='nearest')" },
    { name: 'bilinear', inputs: { x: f32([2, 2, 6, 5]) }, ts: (T) => F.interpolate(T.x, { size: [9, 4], mode: 'bilinear', alignCorners: false }), py: "F.interpolate(x, size=(9, 4), mode='bilinear', align_corners=False)" },
    { name: 'bilinear_ac', inputs: { x: f32([2, 2, 6, 5]) }, ts: (T) => F.interpolate(T.x, { scaleFactor: [1.5, 0.5], mode: 'bilinear', alignCorners: true }), py: "F.interpolate(x, scale_factor=(1.5, 0.5), mode='bilinear', align_corners=True)" },
    { name: 'bicubic', inputs: { x: f32([1, 3, 6, 6]) }, ts: (T) => F.interpolate(T.x, { size: 11, mode: 'bicubic', alignCorners: false }), py: "F.interpolate(x, size=11, mode='bicubic', align_corners=False)" },
    { name: 'bilinear_aa', inputs: { x: f32([1, 3, 16, 12]) }, ts: (T) => F.interpolate(T.x, { size: [5, 7], mode: 'bilinear', antialias: true }), py: "F.interpolate(x, size=(5, 7), mode='bilinear', antialias=True)" },
    { name: 'bicubic_aa', inputs: { x: f32([1, 3, 16, 12]) }, ts: (T) => F.interpolate(T.x, { size: [5, 7], mode: 'bicubic', antialias: true }), py: "F.interpolate(x, size=(5, 7), mode='bicubic', antialias=True)" },
    { name: 'mse_mean', inputs: { a: f32([3, 5]), b: f32([3, 5]) }, ts: (T) => F.mseLoss(T.a, T.b), py: 'F.mse_loss(a, b)' },
    { name: 'mse_sum', inputs: { a: f32([3, 5]), b: f32([3, 5]) }, ts: (T) => F.mseLoss(T.a, T.b, { reduction: 'sum' }), py: "F.mse_loss(a, b, reduction='sum')" },
    { name: 'mse_none', inputs: { a: f32([3, 5]), b: f32([3, 5], false) }, ts: (T) => F.mseLoss(T.a, T.b, { reduction: 'none' }), py: "F.mse_loss(a, b, reduction='none')" },
    { name: 'cross_entropy', inputs: { x: f32([6, 5], true, -2, 2), t: { shape: [6], data: [0, 4, 2, 1, 3, 2], dtype: 'int64' } },
      ts: (T) => F.crossEntropy(T.x, T.t), py: 'F.cross_entropy(x, t)' },
    { name: 'cross_entropy_opts', inputs: { x: f32([6, 5], true, -2, 2), t: { shape: [6], data: [0, 4, 2, 1, 3, 2], dtype: 'int64' } },
      ts: (T) => F.crossEntropy(T.x, T.t, { ignoreIndex: 2, labelSmoothing: 0.1, reduction: 'sum' }), py: "F.cross_entropy(x, t, ignore_index=2, label_smoothing=0.1, reduction='sum')" },
    { name: 'cross_entropy_probs', inputs: { x: f32([2, 4, 3], true, -2, 2), p: f32([2, 4, 3], false, 0, 1) },
      ts: (T) => F.crossEntropy(T.x, T.p), py: 'F.cross_entropy(x, p)' },
    { name: 'pad_const', inputs: { x: f32([2, 3, 4]) }, ts: (T) => F.pad(T.x, [1, 2, 0, 1], 0.5), py: 'F.pad(x, (1, 2, 0, 1), value=0.5)' },
    { name: 'pad_reflect', inputs: { x: f32([1, 2, 3, 4]) }, ts: (T) => F.pad(T.x, [1, 1, 2, 0], undefined, 'reflect'), py: "F.pad(x, (1, 1, 2, 0), mode='reflect')" },
    // bf16: the same kernels in reduced precision.
    { name: 'bf16_linear', inputs: { x: bf16([3, 8]), w: bf16([4, 8]), b: bf16([4]) }, ts: (T) => F.linear(T.x, T.w, T.b), py: 'F.linear(x, w, b)', tol: BF16_TOL },
    { name: 'bf16_rmsNormTimmVar', inputs: { x: bf16([3, 16]), w: bf16([16]) }, ts: (T) => F.rmsNormTimmVar(T.x, 16, T.w, 1e-6),
      py: 'x * torch.rsqrt(torch.var(x, dim=(-1,), keepdim=True) + 1e-6) * w', tol: BF16_TOL },
    { name: 'bf16_rmsNorm', inputs: { x: bf16([3, 16]), w: bf16([16]) }, ts: (T) => F.rmsNorm(T.x, 16, T.w, 1e-6), py: 'F.rms_norm(x, [16], w, 1e-6)', tol: BF16_TOL },
    { name: 'bf16_gelu_tanh', inputs: { x: bf16([4, 6]) }, ts: (T) => F.gelu(T.x, { approximate: 'tanh' }), py: "F.gelu(x, approximate='tanh')", tol: BF16_TOL },
    { name: 'bf16_sdpa', inputs: { q: bf16([B, H, L, E]), k: bf16([B, H, S, E]), v: bf16([B, H, S, E]) },
      ts: (T) => F.scaledDotProductAttention(T.q, T.k, T.v), py: 'F.scaled_dot_product_attention(q, k, v)', tol: BF16_TOL },
    { name: 'bf16_layerNorm', inputs: { x: bf16([3, 16]), w: bf16([16]), b: bf16([16]) }, ts: (T) => F.layerNorm(T.x, 16, T.w, T.b), py: 'F.layer_norm(x, [16], w, b)', tol: BF16_TOL },
  ];
  const before = torch.liveTensors();
  runCases(cases);
  assert.equal(torch.liveTensors(), before, 'the test itself leaks no tensors');
});

test('dropout draws the same mask as PyTorch, from the global seed or a generator', () => {
  const x = torch.tensor(Float32Array.from(uniformData(200, 99)), { shape: [10, 20] });
  torch.manualSeed(5);
  const a = F.dropout(x, 0.3, true);
  const g = new torch.Generator(7);
  const b = F.dropout(x, 0.3, true, g);
  const b2 = new nn.Dropout(0.3, new torch.Generator(7)).forward(x);
  const ref = runTorch<{ a: number[][]; b: number[][] }>(`
x = torch.tensor(inp['x'], dtype=torch.float32).reshape(10, 20)
torch.manual_seed(5)
a = torch.nn.functional.dropout(x, 0.3, True)
torch.manual_seed(7)
b = torch.nn.functional.dropout(x, 0.3, True)
out = {'a': L(a), 'b': L(b)}
`, { x: uniformData(200, 99) });
  assertClose(a.toFloat64(), ref.a, { what: 'dropout (global seed)' });
  assertClose(b.toFloat64(), ref.b, { what: 'dropout (generator)' });
  assertClose(b2.toFloat64(), ref.b, { what: 'nn.Dropout (generator)' });
  const ev = new nn.Dropout(0.3).eval().forward(x);
  assert.deepEqual(Array.from(ev.toFloat64()), Array.from(x.toFloat64()), 'eval-mode dropout is the identity');
  ev.dispose();
  assert.ok(!x.isDisposed, 'disposing the eval-mode output leaves the input alone');
  for (const t of [x, a, b, b2]) t.dispose();
});

// ---- modules ----

/** A tree shaped like a slice of RDT, to check names, order, outputs and gradients against PyTorch. */
class Attn extends nn.Module {
  qkv = new nn.Linear(8, 24);
  q_norm = new nn.RMSNorm(4);
  k_norm = new nn.RMSNorm(4, { variant: 'mean-square' });
  proj = new nn.Linear(8, 8);
}
class Mlp extends nn.Module {
  fc1 = new nn.Linear(8, 8);
  act = new nn.GELU({ approximate: 'tanh' });
  fc2 = new nn.Linear(8, 8);
  override forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}
class Block extends nn.Module {
  norm1 = new nn.RMSNorm(8);
  attn = new Attn();
  norm2 = new nn.LayerNorm(8);
  ffn = new Mlp();
  override forward(x: Tensor): Tensor {
    // x (B, N, 8); attention logic is the model's, here only a residual MLP on normed input.
    const h = x.add(this.ffn.forward(this.norm1.forward(x)));
    return h.add(this.attn.proj.forward(this.norm2.forward(h)));
  }
}
class Tiny extends nn.Module {
  pos_embed = new nn.Parameter(torch.zeros([1, 3, 8]));
  lang_adaptor = new nn.Sequential(new nn.Linear(6, 8), new nn.GELU({ approximate: 'tanh' }), new nn.Linear(8, 8));
  blocks = new nn.ModuleList([new Block(), new Block()]);
  emb = new nn.Embedding(5, 8);
  conv = new nn.Conv2d(2, 4, 3, { padding: 1, bias: false });
  drop = new nn.Dropout(0.1);
  final = new nn.Identity();
  constructor() {
    super();
    this.registerBuffer('running', torch.ones([4]));
    this.registerBuffer('scratch', torch.zeros([2]), { persistent: false });
  }
  override forward(x: Tensor): Tensor {
    let h = this.lang_adaptor.forward(x).add(this.pos_embed);
    for (const b of this.blocks) h = b.forward(h);
    return this.final.forward(h);
  }
}

const PY_TINY = `
import torch.nn as nn
class RmsVar(nn.Module):
    def __init__(s, d):
        super().__init__(); s.weight = nn.Parameter(torch.ones(d))
    def forward(s, x):
        return x * torch.rsqrt(torch.var(x, dim=(-1,), keepdim=True) + 1e-6) * s.weight
class Attn(nn.Module):
    def __init__(s):
        super().__init__()
        s.qkv = nn.Linear(8, 24); s.q_norm = RmsVar(4); s.k_norm = nn.RMSNorm(4, eps=1e-6); s.proj = nn.Linear(8, 8)
class Mlp(nn.Module):
    def __init__(s):
        super().__init__(); s.fc1 = nn.Linear(8, 8); s.act = nn.GELU(approximate='tanh'); s.fc2 = nn.Linear(8, 8)
    def forward(s, x): return s.fc2(s.act(s.fc1(x)))
class Block(nn.Module):
    def __init__(s):
        super().__init__(); s.norm1 = RmsVar(8); s.attn = Attn(); s.norm2 = nn.LayerNorm(8); s.ffn = Mlp()
    def forward(s, x):
        h = x + s.ffn(s.norm1(x))
        return h + s.attn.proj(s.norm2(h))
class Tiny(nn.Module):
    def __init__(s):
        super().__init__()
        s.pos_embed = nn.Parameter(torch.zeros(1, 3, 8))
        s.lang_adaptor = nn.Sequential(nn.Linear(6, 8), nn.GELU(approximate='tanh'), nn.Linear(8, 8))
        s.blocks = nn.ModuleList([Block(), Block()])
        s.emb = nn.Embedding(5, 8)
        s.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        s.drop = nn.Dropout(0.1)
        s.final = nn.Identity()
        s.register_buffer('running', torch.ones(4))
        s.register_buffer('scratch', torch.zeros(2), persistent=False)
    def forward(s, x):
        h = s.lang_adaptor(x) + s.pos_embed
        for b in s.blocks: h = b(h)
        return s.final(h)
m = Tiny()
`;

test('state-dict names, order and shapes of a nested module equal PyTorch\'s', () => {
  const m = new Tiny();
  const ref = runTorch<{ sd: [string, number[]][]; params: string[]; buffers: string[]; modules: string[] }>(PY_TINY + `
out = {'sd': [[k, list(v.shape)] for k, v in m.state_dict().items()],
       'params': [k for k, _ in m.named_parameters()], 'buffers': [k for k, _ in m.named_buffers()],
       'modules': [k for k, _ in m.named_modules()]}
`);
  assert.deepEqual([...m.stateDict()].map(([k, v]) => [k, v.shape]), ref.sd);
  assert.deepEqual(m.namedParameters().map(([k]) => k), ref.params);
  assert.deepEqual(m.namedBuffers().map(([k]) => k), ref.buffers);
  assert.deepEqual(m.namedModules().map(([k]) => k), ref.modules);
  assert.equal(m.numParameters(), m.parameters().reduce((a, p) => a + p.numel(), 0));
  m.dispose();
});

test('module outputs and parameter gradients match PyTorch with the same weights', () => {
  const m = new Tiny();
  torch.noGrad(() => m.pos_embed.copy_(torch.scope(() => torch.tensor(Float32Array.from(uniformData(24, 500)), { shape: [1, 3, 8] }))));
  const xData = uniformData(2 * 3 * 6, 501);
  const x = torch.tensor(Float32Array.from(xData), { shape: [2, 3, 6] });
  const rData = uniformData(2 * 3 * 8, 502);
  const out = m.forward(x);
  torch.scope(() => out.mul(torch.tensor(Float32Array.from(rData), { shape: [2, 3, 8] })).sum().backward());
  const sd = Object.fromEntries([...m.stateDict()].map(([k, v]) => [k, Array.from(v.toFloat64())]));
  const ref = runTorch<{ out: unknown; grads: Record<string, unknown> }>(PY_TINY + `
with torch.no_grad():
    for k, v in m.state_dict().items():
        v.copy_(torch.tensor(inp['sd'][k]).reshape(v.shape))
x = torch.tensor(inp['x']).reshape(2, 3, 6)
o = m(x)
(o * torch.tensor(inp['r']).reshape(2, 3, 8)).sum().backward()
out = {'out': L(o), 'grads': {k: L(p.grad) for k, p in m.named_parameters() if p.grad is not None}}
`, { sd, x: xData, r: rData });
  assertClose(out.toFloat64(), ref.out, { what: 'Tiny output' });
  const named = new Map(m.namedParameters());
  for (const [k, g] of Object.entries(ref.grads)) {
    const mine = torch.scope(() => named.get(k)!.grad?.toFloat64());
    assert.ok(mine, `no gradient for ${k}`);
    assertClose(mine, g, { what: `grad ${k}` });
  }
  // Parameters that PyTorch leaves without gradient have none here either.
  const withGrad = new Set(Object.keys(ref.grads));
  for (const [k, p] of named) if (!withGrad.has(k)) assert.equal(torch.scope(() => p.grad === null), true, `${k} has an unexpected grad`);
  m.zeroGrad();
  assert.equal(m.parameters().every((p) => torch.scope(() => p.grad === null)), true, 'zeroGrad drops grads');
  out.dispose();
  x.dispose();
  m.dispose();
});

test('default initialisation draws PyTorch\'s numbers (global seed and generator)', () => {
  torch.manualSeed(123);
  const lin = new nn.Linear(7, 5);
  const conv = new nn.Conv2d(3, 4, [3, 2]);
  const emb = new nn.Embedding(6, 3, { paddingIdx: 2 });
  const g = new torch.Generator(9);
  const lin2 = new nn.Linear(4, 3, { generator: g, bias: false });
  const xw = torch.empty([5, 6]);
  nn.init.xavierUniform_(xw, 1.5, new torch.Generator(3));
  const nw = torch.empty([4, 4]);
  nn.init.normal_(nw, 0, 0.02, new torch.Generator(4));
  const ref = runTorch<Record<string, unknown>>(`
import torch.nn as nn
torch.manual_seed(123)
lin = nn.Linear(7, 5); conv = nn.Conv2d(3, 4, (3, 2)); emb = nn.Embedding(6, 3, padding_idx=2)
g = torch.Generator().manual_seed(9)
w2 = torch.empty(3, 4); nn.init.kaiming_uniform_(w2, a=math.sqrt(5), generator=g)
xw = torch.empty(5, 6); nn.init.xavier_uniform_(xw, 1.5, generator=torch.Generator().manual_seed(3))
nw = torch.empty(4, 4); nn.init.normal_(nw, 0, 0.02, generator=torch.Generator().manual_seed(4))
out = {'lw': L(lin.weight), 'lb': L(lin.bias), 'cw': L(conv.weight), 'cb': L(conv.bias), 'ew': L(emb.weight),
       'w2': L(w2), 'xw': L(xw), 'nw': L(nw)}
`);
  const exact = { atol: 0, rtol: 0 };
  assertClose(lin.weight.toFloat64(), ref.lw, { ...exact, what: 'Linear weight' });
  assertClose(lin.bias!.toFloat64(), ref.lb, { ...exact, what: 'Linear bias' });
  assertClose(conv.weight.toFloat64(), ref.cw, { ...exact, what: 'Conv2d weight' });
  assertClose(conv.bias!.toFloat64(), ref.cb, { ...exact, what: 'Conv2d bias' });
  assertClose(emb.weight.toFloat64(), ref.ew, { ...exact, what: 'Embedding weight' });
  assertClose(lin2.weight.toFloat64(), ref.w2, { ...exact, what: 'Linear weight from a generator' });
  assertClose(xw.toFloat64(), ref.xw, { ...exact, what: 'xavier_uniform_' });
  assertClose(nw.toFloat64(), ref.nw, { ...exact, what: 'normal_' });
  for (const m of [lin, conv, emb, lin2]) m.dispose();
  xw.dispose();
  nw.dispose();
});

test('RMSNorm variants and LayerNorm modules', () => {
  const xData = uniformData(2 * 16, 77, -3, 3);
  const x = torch.tensor(Float32Array.from(xData), { shape: [2, 16] });
  const timm = new nn.RMSNorm(16);
  const ms = new nn.RMSNorm(16, { variant: 'mean-square', eps: 1e-5 });
  const ln = new nn.LayerNorm(16, { elementwiseAffine: false });
  assert.equal(timm.variant, 'timm103-unbiased-var');
  assert.equal(timm.eps, 1e-6);
  assert.equal(ln.weight, null);
  const ref = runTorch<Record<string, unknown>>(`
x = torch.tensor(inp['x']).reshape(2, 16)
out = {'timm': L(x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=True) + 1e-6)),
       'ms': L(torch.nn.RMSNorm(16, eps=1e-5)(x)), 'ln': L(torch.nn.LayerNorm(16, elementwise_affine=False)(x))}
`, { x: xData });
  torch.scope(() => {
    assertClose(timm.forward(x).toFloat64(), ref.timm, { what: 'RMSNorm timm103-unbiased-var' });
    assertClose(ms.forward(x).toFloat64(), ref.ms, { what: 'RMSNorm mean-square' });
    assertClose(ln.forward(x).toFloat64(), ref.ln, { what: 'LayerNorm without affine' });
  });
  for (const m of [timm, ms, ln]) m.dispose();
  x.dispose();
});

test('parameters and buffers are kept; scopes never free them', () => {
  const before = torch.liveTensors();
  const m = torch.scope(() => {
    const mm = new Tiny();
    mm.forward(torch.ones([1, 3, 6]));
    return mm;
  });
  assert.ok(m.parameters().every((p) => !p.isDisposed));
  assert.ok(m.buffers().every((b) => !b.isDisposed));
  m.zeroGrad();
  m.dispose();
  assert.equal(torch.liveTensors(), before);
});

test('train/eval, requiresGrad_, apply and to() convert in place', () => {
  const m = new Tiny();
  assert.equal(m.drop.training, true);
  m.eval();
  assert.equal(m.drop.training, false);
  assert.equal(m.blocks.at(1).ffn.training, false);
  m.train();
  assert.equal(m.drop.training, true);
  m.requiresGrad_(false);
  assert.equal(m.numParameters({ trainableOnly: true }), 0);
  m.requiresGrad_(true);
  const names: string[] = [];
  m.apply((mod) => names.push(mod.constructor.name));
  assert.equal(names[names.length - 1], 'Tiny');
  const w = m.blocks.at(0).ffn.fc1.weight;
  const opt = new torch.optim.AdamW(m.parameters());
  m.to({ dtype: 'bfloat16' });
  assert.equal(m.blocks.at(0).ffn.fc1.weight, w, 'same Parameter object after to()');
  assert.equal(w.dtype, 'bfloat16');
  assert.equal(w.requiresGrad, true);
  assert.equal(m.stateDict().get('running')!.dtype, 'bfloat16');
  // The optimizer still holds the converted parameters.
  torch.scope(() => m.forward(torch.ones([1, 3, 6], { dtype: 'bfloat16' })).sum().backward());
  opt.step();
  assert.equal(opt.stepOf(w), 1);
  m.to({ dtype: 'float32' });
  assert.equal(w.dtype, 'float32');
  opt.dispose();
  m.dispose();
});

test('loadStateDict copies in place and reports every problem in one error', () => {
  const a = new Tiny();
  const b = new Tiny();
  const wb = (b.lang_adaptor.at(0) as nn.Linear).weight;
  b.loadStateDict(a.stateDict());
  assert.equal((b.lang_adaptor.at(0) as nn.Linear).weight, wb, 'parameters are copied into, not replaced');
  assertClose(wb.toFloat64(), (a.lang_adaptor.at(0) as nn.Linear).weight.toFloat64(), { atol: 0, rtol: 0 });

  const bad = new Map(a.stateDict());
  bad.delete('blocks.0.norm1.weight');
  bad.delete('conv.weight');
  const extra = torch.zeros([3]);
  const wrongShape = torch.zeros([8, 5]);
  const wrongType = torch.zeros([8], { dtype: 'float64' });
  bad.set('blocks.7.extra', extra);
  bad.set('lang_adaptor.2.weight', wrongShape);
  bad.set('blocks.1.norm2.bias', wrongType);
  const snapshot = torch.scope(() => b.emb.weight.clone().keep());
  torch.noGrad(() => b.emb.weight.fill_(3));
  let err: unknown;
  try {
    b.loadStateDict(bad, { source: 'ckpt/model.safetensors' });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof nn.StateDictError, 'a StateDictError');
  const msg = (err as Error).message;
  for (const s of ['ckpt/model.safetensors', 'missing keys (2)', 'blocks.0.norm1.weight', 'conv.weight', 'unexpected keys (1)', 'blocks.7.extra',
    'shape mismatches (1)', 'lang_adaptor.2.weight: [8,5] in the state dict, [8,8] in the module', 'dtype mismatches', 'blocks.1.norm2.bias: float64'])
    assert.ok(msg.includes(s), `error names '${s}':\n${msg}`);
  assert.deepEqual((err as nn.StateDictError).missing, ['blocks.0.norm1.weight', 'conv.weight']);
  assert.equal(b.emb.weight.toFloat64()[0], 3, 'nothing is copied when loading fails');

  // Non-strict: missing/unexpected are reported, not fatal; shapes still are.
  bad.delete('lang_adaptor.2.weight');
  bad.delete('blocks.1.norm2.bias');
  const r = b.loadStateDict(bad, { strict: false });
  assert.deepEqual(r.missingKeys, ['lang_adaptor.2.weight', 'blocks.0.norm1.weight', 'blocks.1.norm2.bias', 'conv.weight']);
  assert.deepEqual(r.unexpectedKeys, ['blocks.7.extra']);

  // dtype conversion only when asked.
  const half = new Map([...a.stateDict()].map(([k, v]) => [k, v.to('bfloat16')]));
  assert.throws(() => b.loadStateDict(half), /dtype mismatches .*\(34\):\n\s+pos_embed: bfloat16 in the state dict, float32 in the module/);
  b.loadStateDict(half, { castDtype: true });
  assert.equal(b.pos_embed.dtype, 'float32');
  for (const t of [extra, wrongShape, wrongType, snapshot, ...half.values()]) t.dispose();
  a.dispose();
  b.dispose();
});

test('bad input: mis-shaped Linear input names the layer and the shapes', () => {
  const lin = new nn.Linear(5, 2);
  const x = torch.zeros([4, 3]);
  assert.throws(() => lin.forward(x), /Linear\(5 -> 2\): input has last dim 3 \(shape \[4,3\]\); expected 5/);
  assert.throws(() => F.linear(x, lin.weight), /linear: .*cannot be multiplied/);
  assert.throws(() => F.interpolate(x, { mode: 'bilinear', size: 3 }), /only 4-D input/);
  assert.throws(() => F.mseLoss(x, x, { reduction: 'avg' as never }), /reduction must be/);
  class Bad extends nn.Module {
    layers = [new nn.Linear(2, 2)];
  }
  const bad = new Bad();
  assert.throws(() => bad.stateDict(), /Bad.layers holds modules in a plain array, .*use nn.ModuleList/);
  bad.layers[0].dispose();
  x.dispose();
  lin.dispose();
});
