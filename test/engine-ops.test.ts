// Tensor ops (shape, unary/binary math, reduce, compare, index) against PyTorch run beside the test.
// Every case is a pair: our call and the same PyTorch expression over the same inputs; one Python
// run evaluates all of them. Values, shapes and dtypes must match.
// Tolerances: both sides run the same libtorch kernels, so float32 results agree to rounding
// (reductions may sum in a different order with a different thread count): atol 1e-6, rtol 1e-6.
// bf16 cases allow 1e-2 relative (one bf16 ulp is 2^-8).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { Tensor } from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';

// Deterministic inputs shared with Python: an LCG in [-2, 2), rounded through float32.
function lcg(n: number, seed: number, lo = -2, hi = 2): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(Math.fround(lo + ((hi - lo) * s) / 2 ** 32));
  }
  return out;
}
const inputs: Record<string, { v: number[]; shape: number[] }> = {
  x: { v: lcg(24, 1), shape: [2, 3, 4] },
  y: { v: lcg(12, 2), shape: [3, 4] },
  z: { v: lcg(24, 3), shape: [2, 3, 4] },
  a: { v: lcg(15, 4), shape: [3, 5] },
  b: { v: lcg(10, 5), shape: [5, 2] },
  bias: { v: lcg(2, 6), shape: [2] },
  b1: { v: lcg(30, 7), shape: [2, 3, 5] },
  b2: { v: lcg(40, 8), shape: [2, 5, 4] },
  v1: { v: lcg(3, 9), shape: [3] },
  v2: { v: lcg(4, 10), shape: [4] },
  hv: { v: [2.5, -0.5, 1.5, 0.5, -1.5, 3.75, -2.25, 0.05], shape: [8] },
};
const T = (k: string) => torch.tensor(new Float32Array(inputs[k].v), { shape: inputs[k].shape });

const PY_PRELUDE = `
def T(k):
    return torch.tensor(inp['tensors'][k]['v'], dtype=torch.float32).reshape(inp['tensors'][k]['shape'])
def R(v):
    if isinstance(v, torch.Tensor):
        return {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', ''), 'v': L(v.reshape(-1))}
    if hasattr(v, 'values') and hasattr(v, 'indices'):
        return {'values': R(v.values), 'indices': R(v.indices)}
    if isinstance(v, (list, tuple)):
        return [R(e) for e in v]
    return v
`;

type Out = Tensor | Tensor[] | { values: Tensor; indices: Tensor } | number | boolean;
type Case = [name: string, js: () => Out, py: string, tol?: { atol?: number; rtol?: number }];

function R(v: Out): unknown {
  if (v instanceof Tensor) return { shape: v.shape, dtype: v.dtype, v: Array.from(v.toFloat64()) };
  if (Array.isArray(v)) return v.map(R);
  if (typeof v === 'object') return { values: R(v.values), indices: R(v.indices) };
  return v;
}

function compare(name: string, got: unknown, want: unknown, tol: { atol?: number; rtol?: number }): void {
  if (want !== null && typeof want === 'object' && 'error' in (want as object))
    assert.fail(`${name}: the PyTorch reference failed: ${(want as { error: string }).error}`);
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), `${name}: expected a list`);
    assert.equal((got as unknown[]).length, want.length, `${name}: list length`);
    want.forEach((w, i) => compare(`${name}[${i}]`, (got as unknown[])[i], w, tol));
  } else if (want !== null && typeof want === 'object' && 'values' in want) {
    const g = got as { values: unknown; indices: unknown };
    const w = want as { values: unknown; indices: unknown };
    compare(`${name}.values`, g.values, w.values, tol);
    compare(`${name}.indices`, g.indices, w.indices, { atol: 0, rtol: 0 });
  } else if (want !== null && typeof want === 'object') {
    const g = got as { shape: number[]; dtype: string; v: number[] };
    const w = want as { shape: number[]; dtype: string; v: number[] };
    assert.deepEqual(g.shape, w.shape, `${name}: shape`);
    assert.equal(g.dtype, w.dtype, `${name}: dtype`);
    assertClose(g.v, w.v, { atol: 1e-6, rtol: 1e-6, ...tol, what: name });
  } else {
    assert.equal(typeof got, typeof want, `${name}: result type`);
    if (typeof want === 'number') assertClose(got, want, { atol: 1e-6, rtol: 1e-6, ...tol, what: name });
    else assert.equal(got, want, name);
  }
}

/** Runs every case here and in PyTorch (one Python process) and compares. */
function checkCases(cases: Case[], setupPy: string): void {
  const names = new Set<string>();
  for (const [n] of cases) {
    assert.ok(!names.has(n), `duplicate case ${n}`);
    names.add(n);
  }
  const ours = torch.scope(() => {
    const r: Record<string, unknown> = {};
    for (const [name, js] of cases) r[name] = R(js());
    return r;
  });
  const ref = runTorch<Record<string, unknown>>(PY_PRELUDE + setupPy + `
for name, expr in inp['cases']:
    try:
        out[name] = R(eval(expr))
    except Exception as e:
        out[name] = {'error': repr(e)}
`, { tensors: inputs, cases: cases.map(([n, , py]) => [n, py]) });
  for (const [name, , , tol] of cases) compare(name, ours[name], ref[name], tol ?? {});
}

test('shape, math, reduce, compare and index ops match PyTorch', () => {
  const before = torch.liveTensors();
  const x = T('x'), y = T('y'), z = T('z'), a = T('a'), b = T('b'), bias = T('bias');
  const b1 = T('b1'), b2 = T('b2'), v1 = T('v1'), v2 = T('v2'), hv = T('hv');
  const p = torch.scope(() => x.abs().add(0.1));
  const iv = torch.tensor([[7, -3, 5], [-8, 4, 9]], { dtype: 'int64' });
  const mk = x.gt(0);
  const mk2 = y.lt(0.5);
  const yi = torch.scope(() => y.round().to('int64'));
  const nanT = torch.tensor([1, NaN, Infinity, -Infinity, -2]);
  const i64 = (v: number[] | number[][] | number[][][]) => torch.tensor(v, { dtype: 'int64' });
  const xb = x.to('bfloat16');
  const bf = { atol: 1e-2, rtol: 1e-2 };

  const cases: Case[] = [
    // ---- shape ----
    ['reshape', () => x.reshape([4, -1]), 'x.reshape(4, -1)'],
    ['reshape0', () => x.reshape([-1]), 'x.reshape(-1)'],
    ['view', () => x.view([6, 4]), 'x.view(6, 4)'],
    ['permute', () => x.permute([2, 0, 1]), 'x.permute(2, 0, 1)'],
    ['permuteNeg', () => x.permute([-1, -3, -2]), 'x.permute(-1, -3, -2)'],
    ['transpose', () => x.transpose(-1, 0), 'x.transpose(-1, 0)'],
    ['t', () => y.t(), 'y.t()'],
    ['flatten', () => x.flatten(), 'x.flatten()'],
    ['flatten1', () => x.flatten(1), 'x.flatten(1)'],
    ['flatten01', () => x.flatten(0, -2), 'x.flatten(0, -2)'],
    ['unsqueeze', () => x.unsqueeze(-1), 'x.unsqueeze(-1)'],
    ['unsqueeze1', () => x.unsqueeze(1), 'x.unsqueeze(1)'],
    ['squeezeAll', () => x.reshape([2, 1, 12, 1]).squeeze(), 'x.reshape(2, 1, 12, 1).squeeze()'],
    ['squeeze1', () => x.reshape([2, 1, 12, 1]).squeeze(1), 'x.reshape(2, 1, 12, 1).squeeze(1)'],
    ['squeezeNeg', () => x.reshape([2, 1, 12, 1]).squeeze(-1), 'x.reshape(2, 1, 12, 1).squeeze(-1)'],
    ['squeezeNoop', () => x.squeeze(0), 'x.squeeze(0)'],
    ['squeezeDims', () => x.reshape([2, 1, 12, 1]).squeeze([1, 3]), 'x.reshape(2, 1, 12, 1).squeeze((1, 3))'],
    ['expand', () => v1.reshape([3, 1]).expand([2, 3, 4]), 'v1.reshape(3, 1).expand(2, 3, 4)'],
    ['expandKeep', () => v1.reshape([3, 1]).expand([-1, 5]), 'v1.reshape(3, 1).expand(-1, 5)'],
    ['expandAs', () => v2.expandAs(x), 'v2.expand_as(x)'],
    ['repeat', () => y.repeat([2, 1, 3]), 'y.repeat(2, 1, 3)'],
    ['flip', () => x.flip([0, 2]), 'x.flip((0, 2))'],
    ['flipNeg', () => x.flip(-1), 'x.flip(-1)'],
    ['narrow', () => x.narrow(1, 1, 2), 'x.narrow(1, 1, 2)'],
    ['narrowNeg', () => x.narrow(-1, 0, 3), 'x.narrow(-1, 0, 3)'],
    ['sliceStep', () => x.slice(2, 1, null, 2), 'x[:, :, 1::2]'],
    ['sliceNegStart', () => x.slice(1, -2), 'x[:, -2:]'],
    ['sliceClamp', () => x.slice(0, 0, 100), 'x[0:100]'],
    ['sliceNegEnd', () => x.slice(-1, null, -1), 'x[..., :-1]'],
    ['sliceEmpty', () => x.slice(1, 2, 1), 'x[:, 2:1]'],
    ['select', () => x.select(1, -1), 'x[:, -1]'],
    ['select0', () => x.select(0, 1), 'x[1]'],
    ['split', () => x.split(1, 1), 'list(x.split(1, 1))'],
    ['splitUneven', () => x.split(3, -1), 'list(x.split(3, -1))'],
    ['splitSizes', () => x.split([1, 3], -1), 'list(x.split([1, 3], -1))'],
    ['chunk', () => x.chunk(2, -1), 'list(x.chunk(2, -1))'],
    ['chunk3', () => x.chunk(3, 1), 'list(x.chunk(3, 1))'],
    ['unbind', () => x.unbind(1), 'list(x.unbind(1))'],
    ['cat', () => torch.cat([x, z.mul(2)], 1), 'torch.cat([x, z * 2], 1)'],
    ['catNeg', () => torch.cat([x, z, x], -1), 'torch.cat([x, z, x], -1)'],
    ['cat0', () => torch.cat([x, z]), 'torch.cat([x, z])'],
    ['stack', () => torch.stack([x, z]), 'torch.stack([x, z])'],
    ['stackNeg', () => torch.stack([x, z, x], -1), 'torch.stack([x, z, x], -1)'],
    ['roll', () => x.roll(1, 2), 'x.roll(1, 2)'],
    ['roll2', () => x.roll([1, -1], [0, -1]), 'x.roll((1, -1), (0, -1))'],
    ['rollFlat', () => x.roll(3), 'x.roll(3)'],
    ['tril', () => y.tril(), 'y.tril()'],
    ['triu1', () => y.triu(1), 'y.triu(1)'],
    ['trilNeg', () => x.tril(-1), 'x.tril(-1)'],
    ['viewChain', () => x.permute([0, 2, 1]).contiguous().view([8, 3]).transpose(0, 1).reshape([2, 12]),
      'x.permute(0, 2, 1).contiguous().view(8, 3).transpose(0, 1).reshape(2, 12)'],
    ['catBf16', () => torch.cat([xb, xb], 0), 'torch.cat([x.bfloat16(), x.bfloat16()], 0)'],
    // ---- unary ----
    ['abs', () => x.abs(), 'x.abs()'],
    ['sqrt', () => p.sqrt(), 'p.sqrt()'],
    ['rsqrt', () => p.rsqrt(), 'p.rsqrt()'],
    ['exp', () => x.exp(), 'x.exp()'],
    ['log', () => p.log(), 'p.log()'],
    ['log1p', () => p.log1p(), 'p.log1p()'],
    ['sin', () => x.sin(), 'x.sin()'],
    ['cos', () => x.cos(), 'x.cos()'],
    ['tanh', () => x.tanh(), 'x.tanh()'],
    ['sigmoid', () => x.sigmoid(), 'x.sigmoid()'],
    ['square', () => x.square(), 'x.square()'],
    ['reciprocal', () => p.reciprocal(), 'p.reciprocal()'],
    ['sign', () => x.sign(), 'x.sign()'],
    ['floor', () => hv.floor(), 'hv.floor()'],
    ['ceil', () => hv.ceil(), 'hv.ceil()'],
    ['round', () => hv.round(), 'hv.round()'],
    ['roundDec', () => x.round({ decimals: 1 }), 'x.round(decimals=1)'],
    ['trunc', () => hv.trunc(), 'hv.trunc()'],
    ['relu', () => x.relu(), 'x.relu()'],
    ['expBf16', () => xb.exp(), 'x.bfloat16().exp()', bf],
    ['sigmoidBf16', () => xb.sigmoid(), 'x.bfloat16().sigmoid()', bf],
    ['clamp', () => x.clamp(-0.5, 0.5), 'x.clamp(-0.5, 0.5)'],
    ['clampMax', () => x.clamp(null, 0.2), 'x.clamp(max=0.2)'],
    ['clampMin', () => x.clamp(0.1), 'x.clamp(min=0.1)'],
    ['clampInt', () => iv.clamp(0, 5), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).clamp(0, 5)'],
    ['clampIntFloat', () => iv.clamp(0.5), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).clamp(min=0.5)'],
    ['clamp_Int', () => iv.clone().clamp_(null, 4), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).clamp_(max=4)'],
    ['maximum', () => x.maximum(y), 'torch.maximum(x, y)'],
    ['minimum', () => y.minimum(x), 'torch.minimum(y, x)'],
    ['remainder', () => x.remainder(0.7), 'x.remainder(0.7)'],
    ['remainderNeg', () => x.remainder(-0.7), 'x.remainder(-0.7)'],
    ['remainderT', () => x.remainder(p), 'x.remainder(p)'],
    ['remainderInt', () => iv.remainder(3), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).remainder(3)'],
    ['floorDivide', () => x.floorDivide(0.7), 'x.floor_divide(0.7)'],
    ['floorDivideInt', () => iv.floorDivide(-2), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).floor_divide(-2)'],
    ['intArith', () => iv.mul(2).add(iv).sub(1), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]) * 3 - 1'],
    ['intTimesFloat', () => iv.mul(0.5), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]) * 0.5'],
    ['intDiv', () => iv.div(2), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]) / 2'],
    ['intInPlace', () => iv.clone().add_(2, 3).mul_(-1).sub_(1), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).add_(2, alpha=3).mul_(-1).sub_(1)'],
    ['boolPlusInt', () => mk.add(1), 'mk + 1'],
    ['floatPlusInt', () => x.add(1), 'x + 1'],
    // ---- in place (on clones) ----
    ['sub_', () => x.clone().sub_(y, 2), 'x.clone().sub_(y, alpha=2)'],
    ['sub_s', () => x.clone().sub_(0.25), 'x.clone().sub_(0.25)'],
    ['div_', () => x.clone().div_(3), 'x.clone().div_(3)'],
    ['div_t', () => x.clone().div_(p), 'x.clone().div_(p)'],
    ['clamp_', () => x.clone().clamp_(-0.1, 0.1), 'x.clone().clamp_(-0.1, 0.1)'],
    ['clamp_min', () => x.clone().clamp_(0), 'x.clone().clamp_(min=0)'],
    ['addcmul_', () => x.clone().addcmul_(z, y, 0.5), 'x.clone().addcmul_(z, y, value=0.5)'],
    ['addcdiv_', () => x.clone().addcdiv_(z, p, -2), 'x.clone().addcdiv_(z, p, value=-2)'],
    ['lerp_', () => x.clone().lerp_(z, 0.3), 'x.clone().lerp_(z, 0.3)'],
    ['lerp_t', () => x.clone().lerp_(z, p.div(3)), 'x.clone().lerp_(z, p / 3)'],
    ['sqrt_', () => p.clone().sqrt_(), 'p.clone().sqrt_()'],
    ['neg_', () => x.clone().neg_(), 'x.clone().neg_()'],
    // ---- matrix products ----
    ['addmm', () => torch.addmm(bias, a, b), 'torch.addmm(bias, a, b)'],
    ['addmmBA', () => torch.addmm(bias, a, b, { beta: 0.5, alpha: -2 }), 'torch.addmm(bias, a, b, beta=0.5, alpha=-2)'],
    ['bmm', () => torch.bmm(b1, b2), 'torch.bmm(b1, b2)'],
    ['baddbmm', () => torch.baddbmm(z.slice(1, 0, 3), b1, b2, { beta: 2, alpha: 0.5 }),
      'torch.baddbmm(z[:, 0:3], b1, b2, beta=2, alpha=0.5)'],
    ['outer', () => torch.outer(v1, v2), 'torch.outer(v1, v2)'],
    // ---- reduce ----
    ['var', () => x.var(), 'x.var()'],
    ['var1', () => x.var(1), 'x.var(1)'],
    ['varPop', () => x.var([0, 2], { correction: 0, keepdim: true }), 'x.var((0, 2), correction=0, keepdim=True)'],
    ['varCorr2', () => x.var(-1, { correction: 2 }), 'x.var(-1, correction=2)'],
    ['std', () => x.std(-1), 'x.std(-1)'],
    ['stdPop', () => x.std(null, { correction: 0 }), 'x.std(correction=0)'],
    ['varBf16', () => xb.var(-1), 'x.bfloat16().var(-1)', bf],
    ['max', () => x.max(), 'x.max()'],
    ['maxDim', () => x.max(1), 'x.max(1)'],
    ['maxDimKeep', () => x.max(-1, true), 'x.max(-1, keepdim=True)'],
    ['min', () => x.min(), 'x.min()'],
    ['minDim', () => x.min(0), 'x.min(0)'],
    ['amax', () => x.amax(-1), 'x.amax(-1)'],
    ['amaxKeep', () => x.amax([0, 1], true), 'x.amax((0, 1), keepdim=True)'],
    ['amaxAll', () => x.amax(), 'x.amax()'],
    ['amin', () => x.amin(1), 'x.amin(1)'],
    ['argmax', () => x.argmax(), 'x.argmax()'],
    ['argmax1', () => x.argmax(1), 'x.argmax(1)'],
    ['argminKeep', () => x.argmin(-1, true), 'x.argmin(-1, keepdim=True)'],
    ['norm', () => x.norm(), 'x.norm()'],
    ['norm1', () => x.norm(1, -1), 'x.norm(1, -1)'],
    ['normInf', () => x.norm(Infinity, [0, 1]), "x.norm(float('inf'), (0, 1))"],
    ['norm2Keep', () => x.norm(2, 2, true), 'x.norm(2, 2, keepdim=True)'],
    ['prod', () => p.prod(), 'p.prod()'],
    ['prod1', () => x.prod(1, true), 'x.prod(1, keepdim=True)'],
    ['cumsum', () => x.cumsum(-1), 'x.cumsum(-1)'],
    ['cumsum64', () => x.cumsum(0, { dtype: 'float64' }), 'x.cumsum(0, dtype=torch.float64)'],
    ['cumsumInt', () => iv.cumsum(1), 'torch.tensor([[7, -3, 5], [-8, 4, 9]]).cumsum(1)'],
    ['cumprod', () => p.cumprod(-1), 'p.cumprod(-1)'],
    ['cumprod64', () => p.cumprod(0, { dtype: 'float64' }), 'p.cumprod(0, dtype=torch.float64)'],
    ['logsumexp', () => x.logsumexp(-1), 'x.logsumexp(-1)'],
    ['logsumexpKeep', () => x.logsumexp([0, 2], true), 'x.logsumexp((0, 2), keepdim=True)'],
    ['logsumexpBf16', () => xb.logsumexp(1), 'x.bfloat16().logsumexp(1)', bf],
    // ---- compare ----
    ['eq', () => x.round().eq(y.round()), 'x.round().eq(y.round())'],
    ['eqS', () => x.round().eq(1), 'x.round().eq(1)'],
    ['ne', () => x.round().ne(0), 'x.round().ne(0)'],
    ['lt', () => x.lt(y), 'x.lt(y)'],
    ['le', () => x.round().le(1), 'x.round().le(1)'],
    ['gt', () => x.gt(-0.5), 'x.gt(-0.5)'],
    ['ge', () => x.ge(z), 'x.ge(z)'],
    ['logicalNot', () => mk.logicalNot(), 'mk.logical_not()'],
    ['logicalAnd', () => mk.logicalAnd(mk2), 'mk.logical_and(mk2)'],
    ['logicalOr', () => mk.logicalOr(mk2), 'mk.logical_or(mk2)'],
    ['isnan', () => nanT.isnan(), 'nanT.isnan()'],
    ['isfinite', () => nanT.isfinite(), 'nanT.isfinite()'],
    ['isinf', () => nanT.isinf(), 'nanT.isinf()'],
    ['any', () => mk.any(), 'mk.any()'],
    ['anyDim', () => x.gt(1.5).any(1), 'x.gt(1.5).any(1)'],
    ['all', () => mk.all(), 'mk.all()'],
    ['allDimKeep', () => x.gt(-1.5).all(-1, true), 'x.gt(-1.5).all(-1, keepdim=True)'],
    ['where', () => torch.where(mk, x, z), 'torch.where(mk, x, z)'],
    ['whereBcast', () => torch.where(mk2, y, x), 'torch.where(mk2, y, x)'],
    ['whereTS', () => torch.where(mk, x, 0), 'torch.where(mk, x, 0)'],
    ['whereST', () => torch.where(mk, -1.5, z), 'torch.where(mk, -1.5, z)'],
    ['whereSS', () => torch.where(mk, 1, 0), 'torch.where(mk, 1.0, 0.0)'],
    ['whereSSf', () => torch.where(mk, 0.5, -1e9), 'torch.where(mk, 0.5, -1e9)'],
    ['whereInt', () => torch.where(mk2, yi, -1), 'torch.where(mk2, y.round().long(), -1)'],
    ['whereIntF', () => torch.where(mk2, 0.5, yi), 'torch.where(mk2, 0.5, y.round().long())'],
    ['arangeArith', () => torch.arange(5).add(1).mul(2).sub(3).remainder(4), 'torch.arange(5).add(1).mul(2).sub(3).remainder(4)'],
    ['allcloseT', () => x.allclose(x.add(1e-7)), 'x.allclose(x + 1e-7)'],
    ['allcloseF', () => x.allclose(x.add(1e-3)), 'x.allclose(x + 1e-3)'],
    ['allcloseTol', () => x.allclose(x.add(1e-3), 0, 2e-3), 'x.allclose(x + 1e-3, 0, 2e-3)'],
    // ---- index ----
    ['indexSelect', () => x.indexSelect(1, i64([2, 0, 2])), 'x.index_select(1, torch.tensor([2, 0, 2]))'],
    ['indexSelectNeg', () => x.indexSelect(-1, i64([3, 1])), 'x.index_select(-1, torch.tensor([3, 1]))'],
    ['gather', () => x.gather(-1, i64([[[0, 3], [1, 1], [2, 0]], [[3, 3], [0, 2], [1, 0]]])),
      'x.gather(-1, torch.tensor([[[0, 3], [1, 1], [2, 0]], [[3, 3], [0, 2], [1, 0]]]))'],
    ['gather0', () => y.gather(0, i64([[2, 1, 0, 0]])), 'y.gather(0, torch.tensor([[2, 1, 0, 0]]))'],
    ['scatter', () => torch.zeros([3, 5]).scatter(0, i64([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]]), a.slice(0, 0, 2)),
      'torch.zeros(3, 5).scatter(0, torch.tensor([[0, 1, 2, 0, 1], [2, 0, 1, 1, 0]]), a[0:2])'],
    ['scatterS', () => a.scatter(1, i64([[4], [0], [2]]), 7.5), 'a.scatter(1, torch.tensor([[4], [0], [2]]), 7.5)'],
    ['scatterAdd', () => torch.zeros([3, 5]).scatterAdd(0, i64([[0, 0, 2, 0, 1], [0, 0, 1, 1, 0]]), a.slice(0, 0, 2)),
      'torch.zeros(3, 5).scatter_add(0, torch.tensor([[0, 0, 2, 0, 1], [0, 0, 1, 1, 0]]), a[0:2])'],
    ['maskedFill', () => x.maskedFill(mk, -1e9), 'x.masked_fill(mk, -1e9)'],
    ['maskedFillBcast', () => x.maskedFill(mk2.slice(1, 0, 1), 0.5), 'x.masked_fill(mk2[:, 0:1], 0.5)'],
    ['maskedFillT', () => x.maskedFill(mk, torch.scalarTensor(3)), 'x.masked_fill(mk, torch.tensor(3.0))'],
    ['maskedFill_', () => x.clone().maskedFill_(mk, 0), 'x.clone().masked_fill_(mk, 0)'],
    ['maskedSelect', () => x.maskedSelect(mk), 'x.masked_select(mk)'],
    ['indexPut_', () => y.clone().indexPut_([i64([0, 2]), i64([1, 3])], v1.slice(0, 0, 2)),
      'y.clone().index_put_((torch.tensor([0, 2]), torch.tensor([1, 3])), v1[0:2])'],
    ['indexPut_null', () => y.clone().indexPut_([null, i64([0, 3])], 9),
      '(lambda t: (t.__setitem__((slice(None), torch.tensor([0, 3])), 9.0), t)[1])(y.clone())'],
    ['indexPut_acc', () => y.clone().indexPut_([i64([1, 1, 2])], v2, true),
      'y.clone().index_put_((torch.tensor([1, 1, 2]),), v2, accumulate=True)'],
    ['indexPut_bool', () => x.clone().indexPut_([mk], 0), 'x.clone().index_put_((mk,), torch.tensor(0.0))'],
    ['take', () => x.take(i64([[0, 23], [5, 11]])), 'x.take(torch.tensor([[0, 23], [5, 11]]))'],
    ['nonzero', () => x.gt(0.5).nonzero(), 'x.gt(0.5).nonzero()'],
    ['sort', () => x.sort(), 'x.sort()'],
    ['sortDesc0', () => x.sort(0, true), 'x.sort(0, descending=True)'],
    ['sortStable', () => x.round().sort(-1, false, { stable: true }), 'x.round().sort(dim=-1, stable=True)'],
    ['argsort', () => x.argsort(), 'x.argsort()'],
    ['argsortDesc', () => x.argsort(0, true), 'x.argsort(0, descending=True)'],
    ['argsortStable', () => x.round().argsort(1, false, { stable: true }), 'x.round().argsort(dim=1, stable=True)'],
    ['topk', () => x.topk(2), 'x.topk(2)'],
    ['topkSmall', () => x.topk(2, 1, { largest: false }), 'x.topk(2, 1, largest=False)'],
    ['quantile', () => torch.quantile(x, 0.3), 'torch.quantile(x, 0.3)'],
    ['quantileT', () => torch.quantile(x, torch.tensor([0.1, 0.5, 0.9]), 1), 'torch.quantile(x, torch.tensor([0.1, 0.5, 0.9]), 1)'],
    ['quantileNearest', () => torch.quantile(x, 0.5, -1, { keepdim: true, interpolation: 'nearest' }),
      "torch.quantile(x, 0.5, -1, keepdim=True, interpolation='nearest')"],
  ];
  checkCases(cases, `
x, y, z, a, b, bias = T('x'), T('y'), T('z'), T('a'), T('b'), T('bias')
b1, b2, v1, v2, hv = T('b1'), T('b2'), T('v1'), T('v2'), T('hv')
p = x.abs() + 0.1
mk = x.gt(0)
mk2 = y.lt(0.5)
nanT = torch.tensor([1.0, float('nan'), float('inf'), float('-inf'), -2.0])
`);
  for (const t of [x, y, z, a, b, bias, b1, b2, v1, v2, hv, p, iv, mk, mk2, yi, nanT, xb]) t.dispose();
  assert.equal(torch.liveTensors(), before, 'every op result was freed by the scope');
});

test('views share storage and in-place ops return this', () => {
  torch.scope(() => {
    const x = torch.arange(12).to('float32').reshape([3, 4]);
    const v = x.view([4, 3]);
    v.fill_(0);
    assert.equal(x.sum().item(), 0, 'a view writes through to its base');
    const s = x.select(0, 1);
    s.fill_(2);
    assert.deepEqual(x.tolist(), [[0, 0, 0, 0], [2, 2, 2, 2], [0, 0, 0, 0]]);
    assert.equal(x.transpose(0, 1).isContiguous(), false);
    assert.throws(() => x.transpose(0, 1).view([12]), /view: .*view size is not compatible/);
    assert.deepEqual(x.transpose(0, 1).reshape([12]).shape, [12]);
    const y = torch.ones([2]);
    assert.equal(y.sub_(1), y);
    assert.equal(y.clamp_(0, 1), y);
    assert.equal(y.maskedFill_(torch.tensor([true, false]), 5), y);
    assert.equal(y.uniform_(0, 1), y);
    assert.deepEqual(x.split(2, 1).map((t) => t.shape), [[3, 2], [3, 2]]);
    assert.deepEqual(x.max(1).indices.dtype, 'int64');
  });
});

test('gradients through shape, index and reduce ops match PyTorch', () => {
  const x = T('x').requiresGrad_(true);
  const y = T('y').requiresGrad_(true);
  const idx = torch.tensor([[0, 5], [1, 1], [4, 2], [3, 0]], { dtype: 'int64' });
  const loss = torch.scope(() => {
    // [2,3,4] -> [6,4] -> [4,6] -> gather [4,2] -> var over dim 1
    const g = x.reshape([6, 4]).permute([1, 0]).gather(1, idx);
    const l1 = g.var(1, { correction: 1 }).sum();
    const l2 = x.logsumexp(-1).mul(torch.tensor([[1, 2, 3], [-1, 0.5, 2]])).sum();
    const l3 = torch.cat([x.slice(2, 1, null, 2), x.narrow(2, 0, 1)], 2).square().std(null, { correction: 0 });
    const l4 = torch.stack([x.select(0, 0), y], 0).max(0).values.sigmoid().sum();
    const l5 = torch.where(x.gt(0), x.tanh(), y.clamp(-0.5, 0.5).mul(3)).amax(-1).sum();
    const l6 = x.flatten(0, 1).indexSelect(0, torch.tensor([4, 0, 4], { dtype: 'int64' })).norm().add(y.t().expand([2, 4, 3]).cumsum(1).mean());
    const l7 = x.maskedFill(x.lt(-1), 0).transpose(0, 2).unsqueeze(0).squeeze().abs().add(1).sqrt().prod(-1).sum();
    return l1.add(l2).add(l3).add(l4).add(l5).add(l6).add(l7.mul(0.1));
  });
  loss.backward();
  const ref = runTorch<{ loss: number; gx: number[]; gy: number[] }>(PY_PRELUDE + `
x = T('x').requires_grad_(True)
y = T('y').requires_grad_(True)
idx = torch.tensor([[0, 5], [1, 1], [4, 2], [3, 0]])
g = x.reshape(6, 4).permute(1, 0).gather(1, idx)
l1 = g.var(1, correction=1).sum()
l2 = (x.logsumexp(-1) * torch.tensor([[1, 2, 3], [-1, 0.5, 2]])).sum()
l3 = torch.cat([x[:, :, 1::2], x.narrow(2, 0, 1)], 2).square().std(correction=0)
l4 = torch.stack([x[0], y], 0).max(0).values.sigmoid().sum()
l5 = torch.where(x > 0, x.tanh(), y.clamp(-0.5, 0.5) * 3).amax(-1).sum()
l6 = x.flatten(0, 1).index_select(0, torch.tensor([4, 0, 4])).norm() + y.t().expand(2, 4, 3).cumsum(1).mean()
l7 = x.masked_fill(x < -1, 0).transpose(0, 2).unsqueeze(0).squeeze().abs().add(1).sqrt().prod(-1).sum()
loss = l1 + l2 + l3 + l4 + l5 + l6 + l7 * 0.1
loss.backward()
out = {'loss': loss.item(), 'gx': L(x.grad.reshape(-1)), 'gy': L(y.grad.reshape(-1))}
`, { tensors: inputs });
  assertClose(loss.item(), ref.loss, { atol: 1e-5, rtol: 1e-5, what: 'loss' });
  torch.scope(() => {
    assertClose(x.grad!.toFloat64(), ref.gx, { atol: 1e-5, rtol: 1e-5, what: 'grad x' });
    assertClose(y.grad!.toFloat64(), ref.gy, { atol: 1e-5, rtol: 1e-5, what: 'grad y' });
  });
  for (const t of [x, y, idx, loss]) t.dispose();
});

test('bad input: errors name the op and the problem, and never crash the process', () => {
  torch.scope(() => {
    const x = torch.ones([2, 3]);
    const i = torch.tensor([0, 1], { dtype: 'int64' });
    const cases: [() => unknown, RegExp][] = [
      [() => x.reshape([4, -1]), /^reshape: .*shape '\[4, -1\]' is invalid for input of size 6/],
      [() => x.view([5]), /^view: .*shape '\[5\]' is invalid/],
      [() => x.permute([0]), /^permute: .*number of dimensions in the tensor input does not match/],
      [() => x.transpose(0, 2), /^transpose: .*Dimension out of range/],
      [() => x.unsqueeze(5), /^unsqueeze: .*Dimension out of range/],
      [() => x.select(1, 3), /^select: .*index 3 out of range/],
      [() => x.narrow(1, 2, 5), /^narrow: .*exceeds dimension size/],
      [() => x.slice(1, 0, 2, 0), /^slice: step must be positive, got 0/],
      [() => x.expand([4, 3]), /^expand: .*must match the existing size/],
      [() => torch.cat([x, torch.ones([2, 4])], 0), /^cat: .*Sizes of tensors must match/],
      [() => torch.stack([x, torch.ones([3, 2])]), /^stack: .*stack expects each tensor to be equal size/],
      [() => x.add(torch.ones([4])), /^add: .*must match the size/],
      [() => x.clamp(), /^clamp: at least one of min and max must be given/],
      [() => torch.bmm(x, x), /^bmm: .*batch1 must be a 3D tensor/],
      [() => torch.outer(x, x), /^outer: .*Expected 1-D argument self, but got 2-D/],
      [() => x.maximum(torch.ones([4])), /^maximum: .*must match the size/],
      [() => x.var(2), /^var: .*Dimension out of range/],
      [() => x.max(2), /^maxDim: .*Dimension out of range/],
      [() => x.logsumexp(3), /^logsumexp: .*Dimension out of range/],
      [() => x.gather(1, i.to('float32').reshape([1, 2])), /^gather: .*Expected dtype int32\/int64 for index/],
      [() => x.indexSelect(0, torch.tensor([0.5])), /^indexSelect: .*index_select\(\): Expected dtype int/],
      [() => x.maskedFill(x, 1), /^maskedFill: .*expected (boolean|bool) tensor for mask|masked_fill_ only supports boolean masks/],
      [() => x.sort(2), /^sort: .*Dimension out of range/],
      [() => x.topk(4, 1), /^topk: .*selected index k out of range/],
      [() => torch.quantile(x, 1.5), /^quantile: .*q must be in the range \[0, 1\]/],
      [() => torch.where(x, x, x), /^where: .*(condition|bool)/],
      [() => x.take(torch.tensor([10], { dtype: 'int64' })), /^take: .*out of range/],
      [() => x.eq(torch.ones([4])), /^eq: .*must match the size/],
      [() => torch.randn([-1]), /^randn: .*negative dimension -1/],
      [() => torch.randint(5, 2, [3]), /^randint: .*random_ expects 'from' to be less than 'to'/],
    ];
    const wrong: string[] = [];
    for (const [fn, re] of cases) {
      try {
        fn();
        wrong.push(`no error, expected ${re}`);
      } catch (e) {
        if (!re.test((e as Error).message)) wrong.push(`${re} did not match: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    assert.deepEqual(wrong, [], wrong.join('\n'));
    // A disposed tensor is refused at the TS boundary, also inside arrays.
    const d = torch.ones([2]);
    d.dispose();
    assert.throws(() => d.reshape([2]), /disposed/);
    assert.throws(() => torch.cat([x, d]), /disposed/);
    assert.throws(() => x.indexSelect(0, d), /disposed/);
    assert.throws(() => torch.where(x.gt(0), d, 1), /disposed/);
    assert.throws(() => x.indexPut_([d], 1), /disposed/);
    // Wrong JS types are TypeErrors from the native argument readers.
    assert.throws(() => x.reshape('a' as never), TypeError);
    assert.throws(() => torch.cat([x, 3 as never]), /cat: argument 0 must be an array of tensors/);
    // The process still works.
    assert.deepEqual(x.add(1).sum().item(), 12);
  });
});
