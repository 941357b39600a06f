// The engine core: creation, read-back of every dtype, scopes, autograd basics, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { runTorch } from './helpers/torch-ref.js';
import { assertClose } from './helpers/assert-close.js';

test('tensor round-trips every dtype through libtorch', () => {
  const cases: [torch.DType, ArrayLike<number | bigint>][] = [
    ['float32', new Float32Array([1.5, -2, 3.25])],
    ['float64', new Float64Array([1e-300, -2, Math.PI])],
    ['int64', new BigInt64Array([1n, -(2n ** 40n), 7n])],
    ['int32', new Int32Array([1, -5, 2 ** 30])],
    ['uint8', new Uint8Array([0, 255, 7])],
  ];
  for (const [dtype, arr] of cases) {
    const t = torch.tensor(arr as never);
    assert.equal(t.dtype, dtype);
    assert.deepEqual(Array.from(t.data() as never), Array.from(arr as never));
    t.dispose();
  }
  const bf = torch.tensor([1, 1.00390625, -3.5]).to('bfloat16');
  assert.equal(bf.dtype, 'bfloat16');
  // bf16 bits of 1.0 = 0x3f80; 1.00390625 rounds to even (1.0); -3.5 = 0xc060
  assert.deepEqual(Array.from(bf.data() as Uint16Array), [0x3f80, 0x3f80, 0xc060]);
  assert.deepEqual(Array.from(bf.toFloat64()), [1, 1, -3.5]);
  assert.equal(torch.f32ToBf16Bits(1.00390625), 0x3f80);
  assert.equal(torch.f32ToBf16Bits(1.01171875), 0x3f82); // tie rounds to even
});

test('scope disposes intermediates and hands returned tensors outward', () => {
  const before = torch.liveTensors();
  const x = torch.tensor([1, 2, 3]);
  let inner!: torch.Tensor;
  const out = torch.scope(() => {
    inner = x.mul(2);
    const nested = torch.scope(() => inner.add(1)); // escapes to this scope
    return { y: nested.sum() };
  });
  assert.ok(inner.isDisposed, 'intermediate disposed');
  assert.equal(out.y.item(), 15);
  assert.equal(torch.liveTensors(), before + 2); // x and out.y
  out.y.dispose();
  x.dispose();
  assert.equal(torch.liveTensors(), before);
  assert.throws(() => x.add(1), /disposed/);
});

test('scope cleans up when fn throws', () => {
  const before = torch.liveTensors();
  assert.throws(() => torch.scope(() => {
    torch.ones([3]).add(1);
    throw new Error('boom');
  }), /boom/);
  assert.equal(torch.liveTensors(), before);
});

test('autograd matches PyTorch on a small expression', () => {
  const a = torch.tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const w = torch.tensor([[0.5, -1], [2, 0.25]], { requiresGrad: true });
  const loss = torch.scope(() => a.matmul(w).pow(2).mean());
  loss.backward();
  const ref = runTorch<{ loss: number; ga: number[][]; gw: number[][] }>(`
a = torch.tensor([[1.,2.],[3.,4.]], requires_grad=True)
w = torch.tensor([[0.5,-1.],[2.,0.25]], requires_grad=True)
loss = (a @ w).pow(2).mean()
loss.backward()
out = {"loss": loss.item(), "ga": L(a.grad), "gw": L(w.grad)}
`);
  assertClose(loss.item(), ref.loss, { what: 'loss' });
  assertClose(a.grad!.tolist(), ref.ga, { what: 'grad a' });
  assertClose(w.grad!.tolist(), ref.gw, { what: 'grad w' });
  torch.noGrad(() => assert.equal(torch.isGradEnabled(), false));
  assert.equal(torch.isGradEnabled(), true);
});

test('bad input gives errors that say what and where', () => {
  assert.throws(() => torch.tensor([1, 2]).matmul(torch.tensor([[1, 2, 3]])), /matmul: .*shapes cannot be multiplied/);
  assert.throws(() => torch.tensor(new Float32Array(5), { shape: [2, 3] }), /fromBytes: shape \[2, 3\] of Float needs 24 bytes but the array holds 20/);
  assert.throws(() => torch.zeros([2], { device: 'tpu' }), /unknown device 'tpu'/);
  assert.throws(() => torch.ones([2]).to({ device: 'cuda' }), /cuda/i);
});
