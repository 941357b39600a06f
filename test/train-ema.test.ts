// The EMA of the weights: e <- d e + (1 - d) p with the official decay schedule, frozen weights kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn } from '../src/engine/index.js';
import { Ema, emaDecay } from '../src/train/ema.js';
import { DEFAULT_CONFIG } from '../src/train/config.js';

test('EMA follows e <- d e + (1 - d) p on trained weights and keeps frozen ones', () => {
  const m = new nn.Linear(3, 2);
  m.bias!.requiresGrad_(false); // frozen
  const bias0 = Array.from(m.bias!.toFloat64());
  const ema = new Ema(m, DEFAULT_CONFIG.ema);
  const expected = Array.from(m.weight.toFloat64());
  for (let k = 0; k < 5; k++) {
    torch.noGrad(() => m.weight.add_(0.5 * (k + 1)));
    const d = emaDecay(k, DEFAULT_CONFIG.ema);
    const p = m.weight.toFloat64();
    for (let i = 0; i < expected.length; i++) expected[i] = d * expected[i] + (1 - d) * p[i];
    ema.update(m);
  }
  assert.equal(ema.updates, 5);
  const got = ema.stateDict().get('weight')!.toFloat64();
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `weight[${i}] ${got[i]} vs ${expected[i]}`);
  assert.deepEqual(Array.from(ema.stateDict().get('bias')!.toFloat64()), bias0, 'frozen weights keep their copy');
  // The first two updates have decay 0: the EMA equals the weights then (official schedule).
  assert.equal(emaDecay(0, DEFAULT_CONFIG.ema), 0);
});
