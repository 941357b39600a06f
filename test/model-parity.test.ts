// Numerical parity with the official PyTorch RDT (shared/fixtures/rdt, tiny config A, float32):
// adaptors, the core forward and its intermediates, the loss and its gradients, every sampler
// step and the final actions, for both RmsNorm variants. Each variant must match its own file and
// NOT the other one (they differ by up to 0.09 in core.out), which proves the switch.
// Tolerance: max abs error <= 1e-4 x max|expected| with another torch version than the fixtures' (the fixture
// README measured 1.5e-6 absolute for an independent re-implementation, so this is generous but far below the
// 0.09 variant gap; other versions may pick other kernels and summation orders). With the very torch version the
// fixtures were made with (tiny_a.manifest.json versions.torch vs build/libtorch.json), the same kernels run, so
// the bar is tight: 1e-6 x max|expected|, which still leaves room for thread-count-dependent reduction orders.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import type { RmsNormVariant } from '../src/model/config.js';
import { RDT, disposeConditionCache } from '../src/model/rdt.js';
import { fixture } from './helpers/fixtures.js';
import { maxAbsDiff } from './helpers/assert-close.js';
import { loadIo, tinyRunner, checkScaled as checkScaledAt, printResults } from './helpers/rdt-fixtures.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixtures.js';

/** The torch the fixtures were made with, and the one this build links (build/libtorch.json, else the runtime's). */
const fixtureTorch: string = JSON.parse(readFileSync(fixture('rdt', 'tiny_a.manifest.json'), 'utf8')).versions.torch;
const buildInfo = join(repoRoot(), 'build', 'libtorch.json');
const localTorch: string = existsSync(buildInfo) ? JSON.parse(readFileSync(buildInfo, 'utf8')).version : torch.libtorch.version();
const sameTorch = localTorch === fixtureTorch || (!localTorch.includes('+') && localTorch === fixtureTorch.split('+')[0]);
const TOL = sameTorch ? 1e-6 : 1e-4;
// The one exception to the tight bar: the timestep embedding of t = 999 takes cos/sin of arguments up to 999 rad
// in float32, whose last bits depend on the CPU's vector math (ISA), not only on the torch version. Measured:
// PyTorch 2.13.0+cpu itself, on this machine, from the fixture's own weights and inputs, is 5.0e-6 (4.6e-6 x scale)
// off core.trace.t_emb; tokens_in (t_emb is its first token) inherits 1.1e-6 x scale and the t_embedder's
// first-bias gradient 1.5e-6 x scale; every other tensor is within 1e-6 x scale (measured with this file at 1e-4).
// These three get 1e-5 x scale under the tight bar.
const ISA_SENSITIVE = new Set(['core.trace.t_emb', 'core.trace.tokens_in', 'loss.grad.model.t_embedder.mlp.0.bias']);
console.log(`# parity tolerance ${TOL} x scale (torch here ${localTorch}, fixtures ${fixtureTorch})`);
/** checkScaled at this file's bar unless a test names its own tolerance. */
const checkScaled = (results: Map<string, number>, name: string, actual: torch.Tensor | ArrayLike<number>, expected: torch.Tensor, tol?: number) =>
  checkScaledAt(results, name, actual, expected, tol ?? (sameTorch && ISA_SENSITIVE.has(name) ? 1e-5 : TOL));

const VARIANTS: RmsNormVariant[] = ['timm103-unbiased-var', 'mean-square'];
const GRAD_PARAMS = [
  'model.final_layer.ffn_final.fc2.bias', 'model.blocks.0.attn.q_norm.weight', 'model.blocks.1.cross_attn.k_norm.weight',
  'model.t_embedder.mlp.0.bias', 'state_adaptor.0.bias', 'lang_adaptor.2.bias', 'img_adaptor.0.bias',
];

for (const variant of VARIANTS) {
  const other = VARIANTS.find((v) => v !== variant)!;
  const io = loadIo(variant);
  const otherIo = loadIo(other);
  const runner = tinyRunner(variant);
  const results = new Map<string, number>();
  const fx = (k: string) => {
    const t = io.get(k);
    if (!t) throw new Error(`fixture tensor ${k} missing`);
    return t;
  };
  const conditions = () => ({
    langTokens: fx('in.lang_tokens'), langMask: fx('in.lang_attn_mask'), imgTokens: fx('in.img_tokens'),
    stateTokens: fx('in.state_tokens'), actionMask: fx('in.action_mask'), ctrlFreqs: fx('in.ctrl_freqs'),
  });
  after(() => {
    printResults(`parity, RmsNorm ${variant}`, results);
    runner.dispose();
  });

  test(`[${variant}] adaptors`, () => torch.noGrad(() => torch.scope(() => {
    checkScaled(results, 'adaptor.lang_out', runner.lang_adaptor.forward(fx('in.lang_tokens')), fx('adaptor.lang_out'));
    checkScaled(results, 'adaptor.img_out', runner.img_adaptor.forward(fx('in.img_tokens')), fx('adaptor.img_out'));
    const stateIn = torch.cat([fx('in.state_tokens'), fx('in.action_mask')], 2);
    checkScaled(results, 'adaptor.state_in', stateIn, fx('adaptor.state_in'), 0);
    checkScaled(results, 'adaptor.state_out', runner.state_adaptor.forward(stateIn), fx('adaptor.state_out'));
    const gtIn = torch.cat([fx('in.action_gt'), fx('in.action_mask').expand([2, 64, 128])], 2);
    checkScaled(results, 'adaptor.action_gt_out', runner.state_adaptor.forward(gtIn), fx('adaptor.action_gt_out'));
  })));

  test(`[${variant}] core forward, its intermediates, and the cached-conditions path`, () => torch.noGrad(() => torch.scope(() => {
    const model: RDT = runner.model;
    const args = [fx('in.core_x'), fx('in.ctrl_freqs'), fx('in.core_t')] as const;
    const out = model.forward(...args, fx('adaptor.lang_out'), fx('adaptor.img_out'), fx('in.lang_attn_mask'), (name, t) => {
      checkScaled(results, `core.trace.${name}`, t, fx(`core.trace.${name}`));
    });
    for (const k of ['t_emb', 'freq_emb', 'tokens_in', 'lang_c_pos', 'img_c_pos', 'block_out.0', 'block_out.3', 'final_layer_out'])
      assert.ok(results.has(`core.trace.${k}`), `trace ${k} was checked`);
    checkScaled(results, 'core.out', out, fx('core.out'));
    // the other RmsNorm's output is far away: the switch matters
    assert.ok(maxAbsDiff(out.toFloat64(), otherIo.get('core.out')!.toFloat64()) > 1e-2, `core.out must not match the ${other} fixture`);

    const cache = model.prepareConditions(fx('adaptor.lang_out'), fx('adaptor.img_out'), fx('in.lang_attn_mask'));
    const cached = model.forwardCached(...args, cache);
    disposeConditionCache(cache);
    checkScaled(results, 'core.out (cached conditions)', cached, fx('core.out'));
    assert.ok(maxAbsDiff(cached.toFloat64(), out.toFloat64()) <= 1e-6, 'cached and official paths agree');
  })));

  test(`[${variant}] core with 11 language tokens and a t of shape (1,)`, () => torch.noGrad(() => torch.scope(() => {
    const langC = runner.lang_adaptor.forward(fx('in.lang_tokens').slice(1, 0, 11));
    checkScaled(results, 'core_short.lang_c', langC, fx('core_short.lang_c'));
    const out = runner.model.forward(fx('in.core_x'), fx('in.ctrl_freqs'), fx('in.core_short_t'), langC, fx('adaptor.img_out'), fx('core_short.lang_mask'));
    checkScaled(results, 'core_short.out', out, fx('core_short.out'));
  })));

  test(`[${variant}] compute_loss with the given noise and timesteps, and its gradients`, () => {
    runner.zeroGrad();
    const loss = torch.scope(() => runner.computeLoss({ ...conditions(), actionGt: fx('in.action_gt') }, {
      noise: fx('in.loss_noise'), timesteps: fx('in.loss_timesteps'),
      trace: (name, t) => checkScaled(results, `loss.${name}`, t, fx(`loss.${name}`)),
    }));
    checkScaled(results, 'loss.value', [loss.item()], fx('loss.value'));
    loss.backward();
    loss.dispose();
    const params = new Map(runner.namedParameters());
    for (const name of GRAD_PARAMS) torch.scope(() => checkScaled(results, `loss.grad.${name}`, params.get(name)!.grad!, fx(`loss.grad.${name}`)));
    let sq = 0;
    for (const p of params.values()) torch.scope(() => {
      const g = p.grad;
      if (g) for (const v of g.toFloat64()) sq += v * v;
    });
    checkScaled(results, 'loss.grad_global_norm', [Math.sqrt(sq)], fx('loss.grad_global_norm'));
    runner.zeroGrad();
  });

  for (const cacheConditions of [true, false]) {
    const tag = cacheConditions ? '' : ' (no condition cache)';
    test(`[${variant}] predict_action: every DPM-Solver++ step and the final actions${tag}`, () => torch.scope(() => {
      const seen: string[] = [];
      const action = runner.predictAction(conditions(), {
        noise: fx('in.sample_init_noise'), cacheConditions,
        trace: (name, t) => {
          seen.push(name);
          checkScaled(results, `sample.${name}${tag}`, t, fx(`sample.${name}`));
        },
      });
      assert.equal(seen.filter((s) => s.startsWith('model_out.')).length, 5);
      assert.equal(seen.filter((s) => s.startsWith('x.')).length, 6);
      checkScaled(results, `sample.action${tag}`, action, fx('sample.action'));
      assert.ok(maxAbsDiff(action.toFloat64(), otherIo.get('sample.action')!.toFloat64()) > 1e-2, `sample.action must not match the ${other} fixture`);
      // the solver schedule the fixture used
      checkScaled(results, 'sample.timesteps', runner.sampleScheduler.setTimesteps(5).timesteps, fx('sample.timesteps'), 0);
      checkScaled(results, 'sample.sigmas', runner.sampleScheduler.setTimesteps(5).sigmas, fx('sample.sigmas'), 1e-6);
    }));
  }

  test(`[${variant}] every output tensor of the fixture file was compared`, () => {
    // core_short.lang_mask is the input mask's first 11 columns, used as given
    checkScaled(results, 'core_short.lang_mask', torch.scope(() => fx('in.lang_attn_mask').slice(1, 0, 11).toFloat64()), fx('core_short.lang_mask'), 0);
    const outputs = [...io.keys()].filter((k) => !k.startsWith('in.'));
    const unchecked = outputs.filter((k) => !results.has(k));
    assert.deepEqual(unchecked, [], 'fixture tensors without a parity check');
  });
}

test('official sin-cos initialisation of the positional embeddings', () => {
  const init = torch.loadSafetensors(fixture('rdt', 'tiny_a.pos_embed_init.safetensors')).tensors;
  const runner = tinyRunner('timm103-unbiased-var');
  const names = ['x_pos_embed', 'lang_cond_pos_embed', 'img_cond_pos_embed'];
  runner.model.sinCosTables().forEach(([p, table], i) => {
    const want = init.get(`init.model.${names[i]}`)!;
    assert.deepEqual(p.shape, want.shape);
    assert.ok(maxAbsDiff(table, want.toFloat64()) <= 1e-6, `${names[i]} sin-cos table`);
  });
  runner.dispose();
  for (const t of init.values()) t.dispose();
});

test('the tiny runner\'s loss is deterministic from a seeded generator', () => torch.scope(() => {
  const io = loadIo('timm103-unbiased-var');
  const runner = tinyRunner('timm103-unbiased-var');
  const batch = {
    langTokens: io.get('in.lang_tokens')!, langMask: io.get('in.lang_attn_mask')!, imgTokens: io.get('in.img_tokens')!,
    stateTokens: io.get('in.state_tokens')!, actionMask: io.get('in.action_mask')!, ctrlFreqs: io.get('in.ctrl_freqs')!,
    actionGt: io.get('in.action_gt')!,
  };
  const l1 = torch.noGrad(() => runner.computeLoss(batch, { generator: new torch.Generator(7) }).item());
  const l2 = torch.noGrad(() => runner.computeLoss(batch, { generator: new torch.Generator(7) }).item());
  const l3 = torch.noGrad(() => runner.computeLoss(batch, { generator: new torch.Generator(8) }).item());
  assert.equal(l1, l2);
  assert.notEqual(l1, l3);
  const a1 = runner.predictAction(batch, { generator: new torch.Generator(3) });
  const a2 = runner.predictAction(batch, { generator: new torch.Generator(3) });
  assert.equal(maxAbsDiff(a1.toFloat64(), a2.toFloat64()), 0);
  runner.dispose();
  for (const t of io.values()) t.dispose();
}));
