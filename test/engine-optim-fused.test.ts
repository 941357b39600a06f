// AdamW's fused path (float32 parameters through ATen's fused kernel, the default) against torch.optim.AdamW:
// within float32 rounding of PyTorch's default single-tensor algorithm, and equal to torch's own fused=True;
// `fused: false` stays PyTorch's single-tensor algorithm to the bit. 20 steps of a 2-layer model with weight
// decay on parameters of a few thousand elements (so the kernel's vectorised body and its tail both run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn, F, optim } from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';
import { uniformData } from './helpers/rand.js';

const SHAPES: Record<string, number[]> = { w1: [67, 33], b1: [67], w2: [5, 67], b2: [5] };
const NAMES = Object.keys(SHAPES);
const INIT = Object.fromEntries(NAMES.map((k, i) => [k, uniformData(SHAPES[k].reduce((a, b) => a * b, 1), 300 + i, -0.3, 0.3)]));
const STEPS = 20;
const X = uniformData(8 * 33, 77, -2, 2);
const Y = uniformData(8 * 5, 78);

function run(fused: boolean): Record<string, number[]> {
  const p = Object.fromEntries(NAMES.map((k) => [k, new nn.Parameter(torch.tensor(Float32Array.from(INIT[k]), { shape: SHAPES[k] }))]));
  const opt = new optim.AdamW(NAMES.map((k) => p[k]), { lr: 3e-3, weightDecay: 0.05, fused });
  for (let k = 0; k < STEPS; k++) {
    torch.scope(() => {
      const x = torch.tensor(Float32Array.from(X), { shape: [8, 33] }).mul(1 + k / STEPS); // a different batch each step
      const y = torch.tensor(Float32Array.from(Y), { shape: [8, 5] });
      F.mseLoss(F.linear(F.gelu(F.linear(x, p.w1, p.b1)), p.w2, p.b2), y).backward();
    });
    opt.step();
    opt.zeroGrad();
  }
  const out = Object.fromEntries(NAMES.map((k) => [k, Array.from(p[k].toFloat64())]));
  opt.dispose();
  for (const t of Object.values(p)) t.dispose();
  return out;
}

const ref = runTorch<Record<string, Record<string, number[]>>>(`
shapes = inp['shapes']; names = list(shapes)
out = {}
for mode, kw in [('single', {'foreach': False}), ('fused', {'fused': True})]:
    p = {k: torch.tensor(inp['init'][k]).reshape(shapes[k]).requires_grad_() for k in names}
    opt = torch.optim.AdamW([p[k] for k in names], lr=3e-3, weight_decay=0.05, **kw)
    for k in range(${STEPS}):
        x = torch.tensor(inp['x']).reshape(8, 33) * (1 + k / ${STEPS}); y = torch.tensor(inp['y']).reshape(8, 5)
        h = torch.nn.functional.gelu(torch.nn.functional.linear(x, p['w1'], p['b1']))
        torch.nn.functional.mse_loss(torch.nn.functional.linear(h, p['w2'], p['b2']), y).backward()
        opt.step(); opt.zero_grad()
    out[mode] = {k: L(p[k]) for k in names}
`, { shapes: SHAPES, init: INIT, x: X, y: Y });

test('fused AdamW (the default for float32) matches torch.optim.AdamW single-tensor within float32 rounding', () => {
  const ours = run(true);
  // 20 steps of updates of size ~lr: float32 rounding of a different op order stays ~1e-7 absolute
  for (const n of NAMES) assertClose(ours[n], ref.single[n], { atol: 2e-6, rtol: 1e-5, what: `${n} (fused vs torch single-tensor)` });
  // and it is not the identity: the parameters moved
  assert.ok(Math.max(...ours.w1.map((v, i) => Math.abs(v - INIT.w1[i]))) > 1e-2, 'the parameters moved');
});

test('fused AdamW equals torch.optim.AdamW(fused=True)', () => {
  const ours = run(true);
  for (const n of NAMES) assertClose(ours[n], ref.fused[n], { atol: 1e-7, rtol: 1e-6, what: `${n} (fused vs torch fused)` });
});

test('AdamW with fused: false is torch.optim.AdamW single-tensor to the bit', () => {
  const ours = run(false);
  for (const n of NAMES) assertClose(ours[n], ref.single[n], { atol: 0, rtol: 0, what: `${n} (single-tensor)` });
});
