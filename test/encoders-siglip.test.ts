// The SigLIP vision tower against transformers' SiglipVisionModel (fixtures/encoders/siglip.io.safetensors):
// patch embeddings, embeddings, every layer and last_hidden_state within 1e-5 in float32; bf16 within one bf16
// ulp of the same computation run by PyTorch on this machine; vision-only and full SigLIP checkpoints give
// identical towers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { loadSiglipVision } from '../src/encoders/siglip_load.js';
import { EncoderError } from '../src/encoders/errors.js';
import { BF16, enc, loadEncIo, maxDiff, scratch, torchReference, worstExcess } from './helpers/encoder-fixtures.js';

const io = loadEncIo('siglip.io.safetensors');
const pixels = io.get('pixel_values')!;
const tmp = scratch('rdt-siglip-');
after(tmp.clean);

for (const folder of ['siglip', 'siglip-full']) {
  test(`float32 (${folder}): every intermediate and last_hidden_state within 1e-5`, () => {
    const m = loadSiglipVision(enc(folder));
    try {
      torch.scope(() => {
        assert.equal(m.numPatches, io.get('last_hidden_state')!.shape[1]);
        const o = m.forward(pixels, { intermediates: true });
        const checks: [string, torch.Tensor][] = [['patch_embeds', o.patchEmbeds!], ['embeddings', o.embeddings!],
          ...o.layerOutputs!.map((t, i): [string, torch.Tensor] => [`layer_out.${i}`, t]), ['last_hidden_state', o.lastHiddenState]];
        for (const [k, t] of checks) {
          assert.ok(io.has(k), k);
          const d = maxDiff(t, io.get(k)!);
          if (k === 'last_hidden_state') console.log(`siglip float32 ${folder}: max |diff| ${d.toExponential(2)}`);
          assert.ok(d <= 1e-5, `${k}: ${d}`);
        }
      });
    } finally {
      m.dispose();
    }
  });
}

test('bfloat16: within one bf16 ulp of the same computation in PyTorch on this machine (eager and sdpa), and float32 is not', () => {
  // bf16 GEMMs round differently from CPU to CPU, so the bf16 reference is made here, by the installed torch
  // (test/py/encoders_ref.py), not read from the fixture (made on another CPU). Its float32 run must equal
  // transformers' fixture: that shows the reference is transformers' function.
  const ref = torchReference('siglip', 'siglip', 'bfloat16', 'siglip.io.safetensors');
  const ref32 = torchReference('siglip', 'siglip', 'float32', 'siglip.io.safetensors');
  const m = loadSiglipVision(enc('siglip'), { dtype: 'bfloat16' });
  const sdpa = loadSiglipVision(enc('siglip'), { dtype: 'bfloat16', attention: 'sdpa' });
  const f32 = loadSiglipVision(enc('siglip'));
  try {
    torch.scope(() => {
      assert.ok(maxDiff(ref32.get('last_hidden_state')!, io.get('last_hidden_state')!) <= 1e-5, 'the PyTorch reference computes transformers\' function');
      const o = m.forward(pixels, { intermediates: true });
      assert.equal(o.lastHiddenState.dtype, 'bfloat16');
      const want = ref.get('last_hidden_state')!;
      console.log(`siglip bf16 eager: max |diff| ${maxDiff(o.lastHiddenState, want).toExponential(2)} vs PyTorch here, ` +
        `${maxDiff(o.lastHiddenState, io.get('bf16.last_hidden_state')!).toExponential(2)} vs the fixture (made on another CPU)`);
      assert.ok(worstExcess(o.embeddings!, ref.get('embeddings')!, BF16.atol, BF16.rtol) <= 0, 'embeddings');
      assert.ok(worstExcess(o.lastHiddenState, want, BF16.atol, BF16.rtol) <= 0, 'last_hidden_state');
      assert.ok(worstExcess(f32.forward(pixels).lastHiddenState, want, BF16.atol, BF16.rtol) > 0, 'the tolerance tells bf16 from float32');
      const os = sdpa.forward(pixels).lastHiddenState;
      console.log(`siglip bf16 sdpa: max |diff| ${maxDiff(os, ref.get('sdpa.last_hidden_state')!).toExponential(2)} vs PyTorch sdpa here`);
      assert.ok(worstExcess(os, ref.get('sdpa.last_hidden_state')!, BF16.atol, BF16.rtol) <= 0, 'sdpa');
      // A coarse portable guard on top: bf16 stays within 5% of the output range of transformers' float32 output
      // (measured: 0.049 of a range of about 3.5), so a reference and an engine that went wrong together still fail.
      const range = torch.scope(() => io.get('last_hidden_state')!.abs().max().item());
      assert.ok(maxDiff(o.lastHiddenState, io.get('last_hidden_state')!) <= 0.05 * range, 'bf16 near transformers\' float32');
    });
  } finally {
    m.dispose();
    sdpa.dispose();
    f32.dispose();
    for (const t of [...ref.values(), ...ref32.values()]) t.dispose();
  }
});

test('a full SigLIP checkpoint and a vision-only one load to identical towers (text tower and head skipped)', () => {
  const a = loadSiglipVision(enc('siglip'));
  const b = loadSiglipVision(enc('siglip-full'));
  try {
    const sa = a.stateDict();
    const sb = b.stateDict();
    assert.deepEqual([...sb.keys()], [...sa.keys()]);
    assert.ok([...sa.keys()].every((k) => k.startsWith('vision_model.') && !k.startsWith('vision_model.head.')));
    for (const [k, t] of sa) assert.equal(torch.scope(() => t.eq(sb.get(k)!).all().item()), 1, k);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('a config.json that does not match the weights is a one-line error', () => {
  const dir = tmp.copy('siglip', 'bad');
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  c.intermediate_size = (c.intermediate_size as number) * 2;
  c.num_hidden_layers = (c.num_hidden_layers as number) + 1;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  const live = torch.liveTensors();
  assert.throws(() => loadSiglipVision(dir), (e: Error) =>
    e instanceof EncoderError && e.message.startsWith(`${dir}: config.json does not match the weights`) &&
    /mis-shaped \(vision_model\.encoder\.layers\.0\.mlp\.fc1\.weight/.test(e.message) && /missing/.test(e.message) && !e.message.includes('\n'));
  assert.equal(torch.liveTensors(), live);
  c.hidden_act = 'quick_gelu';
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  assert.throws(() => loadSiglipVision(dir), /hidden_act 'quick_gelu' is not supported/);
});

test('pixel values of the wrong shape are refused', () => {
  const m = loadSiglipVision(enc('siglip'));
  try {
    torch.scope(() => assert.throws(() => m.forward(pixels.narrow(3, 0, pixels.shape[3] - 1)), /expects pixel values/));
  } finally {
    m.dispose();
  }
});

test('image_size not a multiple of patch_size (so400m: 384 / 14): floor(image_size / patch_size)^2 patches, the remainder pixels dropped as the stride conv does', () => {
  // The fixture tower with image_size 62: floor(62 / 14) = 4 patches a side, as at 56, so its weights still fit.
  const dir = join(tmp.dir, 'siglip-62');
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(enc('siglip', 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, image_size: cfg.image_size + cfg.patch_size - 1 }));
  copyFileSync(enc('siglip', 'model.safetensors'), join(dir, 'model.safetensors'));
  const big = loadSiglipVision(dir);
  const small = loadSiglipVision(enc('siglip'));
  try {
    assert.equal(big.numPatches, Math.floor((cfg.image_size + cfg.patch_size - 1) / cfg.patch_size) ** 2);
    assert.equal(big.numPatches, small.numPatches);
    torch.scope(() => {
      // The same pixels with extra right and bottom margins: a stride-14 conv never reads them.
      const [n, c, s] = pixels.shape;
      const padded = torch.randn([n, c, s + cfg.patch_size - 1, s + cfg.patch_size - 1], { generator: new torch.Generator(3) });
      padded.narrow(2, 0, s).narrow(3, 0, s).copy_(pixels);
      const a = big.forward(padded).lastHiddenState;
      const b = small.forward(pixels).lastHiddenState;
      assert.equal(maxDiff(a, b), 0);
    });
  } finally {
    big.dispose();
    small.dispose();
  }
});
