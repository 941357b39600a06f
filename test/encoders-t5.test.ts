// The T5 v1.1 encoder against transformers' T5EncoderModel (fixtures/encoders/t5.io.safetensors):
// float32 within 1e-5, bf16 within one bf16 ulp of the same computation by PyTorch on this machine, intermediates, the bucket table,
// the three checkpoint layouts, and one-line errors for broken folders.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { loadT5Encoder } from '../src/encoders/t5_load.js';
import { relativePositionBucket } from '../src/encoders/t5.js';
import { EncoderError } from '../src/encoders/errors.js';
import { BF16, config, enc, loadEncIo, maxDiff, scratch, torchReference, worstExcess } from './helpers/encoder-fixtures.js';

const io = loadEncIo('t5.io.safetensors');
const cfg = config('t5');
const groups = [...new Set([...io.keys()].filter((k) => k.endsWith('.input_ids')).map((k) => k.split('.')[0]))];
const tmp = scratch('rdt-t5-');
after(tmp.clean);

test('relative position buckets equal T5 for every fixture position', () => {
  torch.scope(() => {
    const b = relativePositionBucket(io.get('rel_bucket.relative_position')!, cfg.relative_attention_num_buckets as number,
      cfg.relative_attention_max_distance as number);
    assert.equal(maxDiff(b, io.get('rel_bucket.bucket')!), 0);
  });
});

test('float32: last_hidden_state of every input group within 1e-5, intermediates too', () => {
  const m = loadT5Encoder(enc('t5'));
  try {
    assert.ok(groups.length >= 3, `groups ${groups}`);
    for (const g of groups) torch.scope(() => {
      const o = m.forward(io.get(`${g}.input_ids`)!, io.get(`${g}.attention_mask`), { intermediates: true });
      const d = maxDiff(o.lastHiddenState, io.get(`${g}.last_hidden_state`)!);
      console.log(`t5 float32 ${g}: max |diff| ${d.toExponential(2)}`);
      assert.ok(d <= 1e-5, `${g}: ${d}`);
      if (io.has(`${g}.embeds`)) assert.equal(maxDiff(o.embeds!, io.get(`${g}.embeds`)!), 0);
      if (io.has(`${g}.position_bias`)) assert.equal(maxDiff(o.positionBias!, io.get(`${g}.position_bias`)!), 0);
      for (let i = 0; io.has(`${g}.block_out.${i}`); i++)
        assert.ok(maxDiff(o.blockOutputs![i], io.get(`${g}.block_out.${i}`)!) <= 1e-5, `${g} block ${i}`);
    });
  } finally {
    m.dispose();
  }
});

test('bfloat16: within one bf16 ulp of the same computation in PyTorch on this machine, and float32 is not', () => {
  // The bf16 reference is made here by the installed torch (test/py/encoders_ref.py), since bf16 GEMMs round
  // differently from CPU to CPU; its float32 run must equal transformers' fixture (same function).
  const ref = torchReference('t5', 't5', 'bfloat16', 't5.io.safetensors');
  const ref32 = torchReference('t5', 't5', 'float32', 't5.io.safetensors');
  const m = loadT5Encoder(enc('t5'), { dtype: 'bfloat16' });
  const m32 = loadT5Encoder(enc('t5'));
  try {
    for (const g of groups) torch.scope(() => {
      const want = ref.get(`${g}.last_hidden_state`)!;
      assert.ok(maxDiff(ref32.get(`${g}.last_hidden_state`)!, io.get(`${g}.last_hidden_state`)!) <= 1e-5, `${g}: the PyTorch reference computes transformers' function`);
      const o = m.forward(io.get(`${g}.input_ids`)!, io.get(`${g}.attention_mask`), { intermediates: true });
      assert.equal(o.lastHiddenState.dtype, 'bfloat16');
      const fx = io.get(`${g}.bf16.last_hidden_state`);
      console.log(`t5 bf16 ${g}: max |diff| ${maxDiff(o.lastHiddenState, want).toExponential(2)} vs PyTorch here` +
        (fx ? `, ${maxDiff(o.lastHiddenState, fx).toExponential(2)} vs the fixture (made on another CPU)` : ''));
      assert.ok(worstExcess(o.lastHiddenState, want, BF16.atol, BF16.rtol) <= 0, g);
      o.blockOutputs!.forEach((b, i) => assert.ok(worstExcess(b, ref.get(`${g}.block_out.${i}`)!, BF16.atol, BF16.rtol) <= 0, `${g} block ${i}`));
      const f32 = m32.forward(io.get(`${g}.input_ids`)!, io.get(`${g}.attention_mask`)).lastHiddenState;
      if (g === 'batch') assert.ok(worstExcess(f32, want, BF16.atol, BF16.rtol) > 0, 'the bf16 tolerance must tell bf16 from float32');
      // Coarse portable guard: within 5% of the output range of transformers' float32 output (measured: at most
      // 0.066, fixture README), so a reference and an engine that went wrong together still fail.
      const range = torch.scope(() => io.get(`${g}.last_hidden_state`)!.abs().max().item());
      assert.ok(maxDiff(o.lastHiddenState, io.get(`${g}.last_hidden_state`)!) <= 0.05 * range, `${g}: bf16 near transformers' float32`);
    });
  } finally {
    m.dispose();
    m32.dispose();
    for (const t of [...ref.values(), ...ref32.values()]) t.dispose();
  }
});

test('padding does not change real positions: each batch row alone equals its padded row', () => {
  const m = loadT5Encoder(enc('t5'));
  try {
    torch.scope(() => {
      const ids = io.get('batch.input_ids')!;
      const mask = io.get('batch.attention_mask')!;
      const full = m.forward(ids, mask).lastHiddenState;
      for (let r = 0; r < ids.shape[0]; r++) {
        const n = mask.select(0, r).sum().item();
        const alone = m.forward(ids.narrow(0, r, 1).narrow(1, 0, n)).lastHiddenState;
        assert.ok(maxDiff(alone, full.narrow(0, r, 1).narrow(1, 0, n)) <= 1e-5, `row ${r}`);
      }
    });
  } finally {
    m.dispose();
  }
});

test('model.safetensors, sharded safetensors and pytorch_model.bin load to identical weights', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const models = ['t5', 't5-sharded', 't5-bin'].map((d) => loadT5Encoder(enc(d), { dtype }));
    try {
      const [a, ...rest] = models.map((m) => m.stateDict());
      assert.equal(a.size, 2 + (cfg.num_layers as number) * ((cfg.feed_forward_proj as string).startsWith('gated') ? 9 : 8) + 1);
      for (const b of rest) {
        assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
        for (const [k, t] of a) {
          assert.equal(b.get(k)!.dtype, dtype);
          assert.ok(torch.scope(() => t.eq(b.get(k)!).all().item()) === 1, `${dtype} ${k}`);
        }
      }
    } finally {
      for (const m of models) m.dispose();
    }
  }
});

test('a shard listed in the index but absent is a one-line error naming it', () => {
  const dir = tmp.copy('t5-sharded', 'sharded-missing');
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  const shard = [...new Set(Object.values(index.weight_map as Record<string, string>))].pop()!;
  rmSync(join(dir, shard));
  assert.throws(() => loadT5Encoder(dir), (e: Error) =>
    e instanceof EncoderError && e.message.includes(join(dir, shard)) && /listed in .* is missing/.test(e.message) && !e.message.includes('\n'));
});

test('a config.json that does not match the weights is a one-line error listing the keys', () => {
  const edits: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ['d_ff', (c) => { c.d_ff = (c.d_ff as number) + 8; }, /mis-shaped \(encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight is \[/],
    ['more layers', (c) => { c.num_layers = (c.num_layers as number) + 1; }, /missing \(encoder\.block\.\d+\./],
    ['fewer layers', (c) => { c.num_layers = (c.num_layers as number) - 1; }, /unexpected \(encoder\.block\.\d+\./],
    ['vocab', (c) => { c.vocab_size = (c.vocab_size as number) + 1; }, /shared\.weight is \[/],
  ];
  for (const [name, edit, re] of edits) {
    const dir = tmp.copy('t5', `bad-${name.replace(/ /g, '-')}`);
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    edit(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    const live = torch.liveTensors();
    assert.throws(() => loadT5Encoder(dir), (e: Error) => {
      assert.ok(e instanceof EncoderError, name);
      assert.ok(e.message.startsWith(`${dir}: config.json does not match the weights`), e.message);
      assert.match(e.message, re, name);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.equal(torch.liveTensors(), live, `${name}: a failed load leaves no tensor alive`);
  }
  assert.throws(() => loadT5Encoder(enc('t5'), { dtype: 'float16' }), /float32 or bfloat16/);
});
