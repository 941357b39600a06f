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
