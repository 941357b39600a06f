// The runner's official initialisation (training from scratch) and its input checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { nn } from '../src/engine/index.js';
import { rdtPreset } from '../src/model/config.js';
import { RDTRunner } from '../src/model/runner.js';
import { fixture } from './helpers/fixtures.js';
import { maxAbsDiff } from './helpers/assert-close.js';

const stats = (t: torch.Tensor) => {
  const v = t.toFloat64();
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length), maxAbs: Math.max(...Array.from(v, Math.abs)) };
};

test('official initialisation: xavier / zero biases in the core, N(0, 0.02) embedders, zero final fc2, sin-cos tables, default adaptors', () => {
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(0) });
  const sd = runner.stateDict();
  const init = torch.loadSafetensors(fixture('rdt', 'tiny_a.pos_embed_init.safetensors')).tensors;
  for (const k of ['x_pos_embed', 'lang_cond_pos_embed', 'img_cond_pos_embed'])
    assert.ok(maxAbsDiff(sd.get(`model.${k}`)!.toFloat64(), init.get(`init.model.${k}`)!.toFloat64()) <= 1e-6, k);
  const qkv = sd.get('model.blocks.0.attn.qkv.weight')!; // xavier_uniform: U(+-sqrt(6 / (fan_in + fan_out)))
  const bound = Math.sqrt(6 / (128 + 384));
  assert.ok(stats(qkv).maxAbs <= bound && stats(qkv).maxAbs > 0.9 * bound);
  assert.equal(stats(sd.get('model.blocks.0.attn.qkv.bias')!).maxAbs, 0);
  assert.ok(Math.abs(stats(sd.get('model.t_embedder.mlp.0.weight')!).std - 0.02) < 0.002);
  assert.ok(Math.abs(stats(sd.get('model.freq_embedder.mlp.2.weight')!).std - 0.02) < 0.002);
  assert.equal(stats(sd.get('model.final_layer.ffn_final.fc2.weight')!).maxAbs, 0);
  assert.equal(stats(sd.get('model.final_layer.ffn_final.fc2.bias')!).maxAbs, 0);
  assert.equal(stats(sd.get('model.blocks.3.norm3.weight')!).mean, 1);
  // adaptors keep PyTorch's default Linear init: biases U(+-1/sqrt(fan_in)), not zero
  const b = stats(sd.get('lang_adaptor.0.bias')!);
  assert.ok(b.maxAbs > 0 && b.maxAbs <= 1 / Math.sqrt(32));
  assert.ok(runner.lang_adaptor instanceof nn.Sequential);
  assert.equal(runner.numParameters(), 918_400);
  runner.dispose();
  for (const t of init.values()) t.dispose();
});

test('a "linear" adaptor is one Linear with the official un-numbered keys', () => {
  const runner = new RDTRunner(rdtPreset('tiny', { img_adaptor: 'linear' }), { device: 'meta' });
  assert.ok(runner.stateDict().has('img_adaptor.weight'));
  assert.ok(!runner.stateDict().has('img_adaptor.0.weight'));
  runner.dispose();
});

test('predictAction and computeLoss reject wrong shapes, naming the tensor and the expected shape', () => torch.scope(() => {
  const runner = new RDTRunner(rdtPreset('tiny'), { init: 'none' });
  const c = {
    langTokens: torch.zeros([2, 5, 32]), langMask: torch.ones([2, 5]), imgTokens: torch.zeros([2, 54, 24]),
    stateTokens: torch.zeros([2, 1, 128]), actionMask: torch.ones([2, 1, 128]), ctrlFreqs: torch.tensor([10, 10]),
  };
  assert.deepEqual(runner.predictAction(c, { generator: new torch.Generator(1) }).shape, [2, 64, 128]);
  assert.throws(() => runner.predictAction({ ...c, imgTokens: torch.zeros([2, 53, 24]) }), /img_tokens must have shape \(2, 54, 24\), got \[2,53,24\]/);
  assert.throws(() => runner.predictAction({ ...c, langMask: torch.ones([2, 6]) }), /lang_mask must have shape \(2, 5\), got \[2,6\]/);
  assert.throws(() => runner.predictAction({ ...c, langTokens: torch.zeros([2, 17, 32]), langMask: torch.ones([2, 17]) }), /17 tokens; this model takes 1\.\.16/);
  assert.throws(() => runner.predictAction(c, { noise: torch.zeros([2, 64, 127]) }), /noise must have shape \(2, 64, 128\), got \[2,64,127\]/);
  assert.throws(() => runner.computeLoss({ ...c, actionGt: torch.zeros([2, 32, 128]) }), /action_gt must have shape \(2, 64, 128\)/);
  runner.dispose();
}));

test('no tensor leaks: a loss, a backward pass and a sampling call leave only the parameters alive', () => {
  const before = torch.liveTensors();
  const runner = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(2) });
  const params = torch.liveTensors();
  torch.scope(() => {
    const c = {
      langTokens: torch.randn([2, 5, 32]), langMask: torch.ones([2, 5]), imgTokens: torch.randn([2, 54, 24]),
      stateTokens: torch.randn([2, 1, 128]), actionMask: torch.ones([2, 1, 128]), ctrlFreqs: torch.tensor([10, 25]),
    };
    const loss = runner.computeLoss({ ...c, actionGt: torch.randn([2, 64, 128]) });
    loss.backward();
    runner.predictAction(c, { cacheConditions: true });
    runner.predictAction(c, { cacheConditions: false });
  });
  runner.zeroGrad();
  assert.equal(torch.liveTensors(), params + 1, 'only the parameters and the DDPM table remain'); // + alphas_cumprod
  runner.dispose();
  assert.equal(torch.liveTensors(), before);
});

test('value normalization: the network sees (x - mean) / std of the state and the targets; predictAction maps its sample back', () => torch.scope(() => {
  const B = 2, T = 64, A = 128;
  const gen = new torch.Generator(5);
  const plain = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(3) });
  const normed = new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(3) }); // the same weights
  // Statistics with slots that never vary (std 0 and 5e-5): those are centred only, never divided by ~0.
  const rnd = (lo: number, hi: number) => Array.from({ length: A }, (_, i) => lo + (hi - lo) * ((i * 7919) % 101) / 100);
  const st = { stateMean: rnd(-1, 1), stateStd: rnd(0.01, 0.5), actionMean: rnd(-0.5, 2), actionStd: rnd(0.02, 3) };
  st.stateStd[3] = 0;
  st.actionStd[7] = 0;
  st.actionStd[9] = 5e-5;
  normed.setValueNormalization(st);
  assert.ok(normed.normalizesValues && !plain.normalizesValues);
  const z = (x: torch.Tensor, mean: number[], std: number[]) => {
    const v = x.toFloat64();
    const out = Float32Array.from(v, (y, i) => (y - mean[i % A]) / (std[i % A] >= 1e-4 ? std[i % A] : 1));
    return torch.tensor(out, { shape: x.shape });
  };
  const maskV = Float32Array.from({ length: B * A }, (_, i) => (i % A < 100 ? 1 : 0));
  const c = {
    langTokens: torch.randn([B, 5, 32], { generator: gen }), langMask: torch.ones([B, 5]), imgTokens: torch.randn([B, 54, 24], { generator: gen }),
    stateTokens: torch.randn([B, 1, A], { generator: gen }), actionMask: torch.tensor(maskV, { shape: [B, 1, A] }), ctrlFreqs: torch.tensor([20, 20]),
  };
  const actionGt = torch.randn([B, T, A], { generator: gen }).mul(2);
  const noise = torch.randn([B, T, A], { generator: gen });
  const timesteps = torch.tensor(new BigInt64Array([BigInt(10), BigInt(900)]));
  const zc = { ...c, stateTokens: z(c.stateTokens, st.stateMean, st.stateStd) };
  const lossN = normed.computeLoss({ ...c, actionGt }, { noise, timesteps }).item();
  const lossP = plain.computeLoss({ ...zc, actionGt: z(actionGt, st.actionMean, st.actionStd) }, { noise, timesteps }).item();
  assert.ok(Math.abs(lossN - lossP) <= 1e-6 * Math.abs(lossP), `loss ${lossN} vs ${lossP} on z-scores`);
  // Sampling: x_T and the steps are in z units; the result is x * std + mean, then masked.
  const xT = torch.randn([B, T, A], { generator: gen });
  const outN = normed.predictAction(c, { noise: xT }).toFloat64();
  const outZ = plain.predictAction(zc, { noise: xT }).toFloat64(); // masked z-scores
  let worst = 0;
  for (let i = 0; i < outN.length; i++) {
    const k = i % A;
    const std = st.actionStd[k] >= 1e-4 ? st.actionStd[k] : 1;
    const want = maskV[k] ? outZ[i] * std + st.actionMean[k] : 0;
    worst = Math.max(worst, Math.abs(outN[i] - want) / (1 + Math.abs(want)));
  }
  assert.ok(worst <= 1e-5, `predictAction = z-sample x std + mean (masked): worst relative difference ${worst}`);
  // Off again: the runner is the official one.
  normed.setValueNormalization(null);
  assert.equal(normed.computeLoss({ ...c, actionGt }, { noise, timesteps }).item(), plain.computeLoss({ ...c, actionGt }, { noise, timesteps }).item());
  assert.throws(() => normed.setValueNormalization({ ...st, actionStd: st.actionStd.slice(1) }), /value normalization: actionStd has 127 values, the model's vectors 128/);
  assert.throws(() => normed.setValueNormalization({ ...st, stateMean: [NaN, ...st.stateMean.slice(1)] }), /stateMean has a value that is not a finite number/);
  assert.throws(() => normed.setValueNormalization({ ...st, actionStd: [NaN, ...st.actionStd.slice(1)] }), /actionStd has a value that is not a finite number/);
  plain.dispose();
  normed.dispose();
}));
