// `rdt-libero encode` end to end on the fixture encoders: texts -> tokens/mask/input_ids equal to
// transformers (the padded batch of t5.io), images of any size -> SigLIP preprocessing and features equal
// to transformers (siglip.io), and bad input rejected with one-line errors and usage exit codes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { repoRoot } from './helpers/fixtures.js';
import { BF16, config, longCase, enc, loadEncIo, maxDiff, scratch, tokenizerCases, torchReference, worstExcess } from './helpers/encoder-fixtures.js';

const tmp = scratch('rdt-encode-');
after(tmp.clean);
const t5io = loadEncIo('t5.io.safetensors');
const sgio = loadEncIo('siglip.io.safetensors');
const pre = loadEncIo('preprocess.io.safetensors');
const S = (config('siglip') as { image_size: number }).image_size;

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'encode', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { code: err.status, stdout: err.stdout, stderr: err.stderr };
  }
}

test('texts: tokens, mask and input_ids equal transformers on the padded batch (hub layout: tokenizer beside the weights)', () => {
  // google/t5-v1_1-xxl keeps spiece.model next to config.json; build that layout from the fixture folders.
  const hub = tmp.copy('t5', 't5-hub');
  for (const f of readdirSync(enc('tokenizer'))) if (f !== 'tokenizer.json') cpSync(enc('tokenizer', f), join(hub, f));
  const texts = join(tmp.dir, 'texts.json');
  writeFileSync(texts, JSON.stringify(tokenizerCases().batch.texts));
  const out = join(tmp.dir, 'text.safetensors');
  const r = cli(['--text-encoder', hub, '--texts', texts, '--out', out, '--batch-size', '3']); // chunks of 3 + 1, padded to the longest of all
  assert.equal(r.code, 0, r.stderr);
  torch.scope(() => {
    const o = torch.loadSafetensors(out).tensors;
    assert.deepEqual([...o.keys()].sort(), ['input_ids', 'mask', 'tokens']);
    assert.equal(o.get('tokens')!.dtype, 'float32');
    assert.equal(o.get('mask')!.dtype, 'uint8');
    assert.equal(o.get('input_ids')!.dtype, 'int64');
    assert.deepEqual(o.get('input_ids')!.tolist(), t5io.get('batch.input_ids')!.tolist());
    assert.deepEqual(o.get('mask')!.tolist(), t5io.get('batch.attention_mask')!.tolist());
    assert.ok(maxDiff(o.get('tokens')!, t5io.get('batch.last_hidden_state')!) <= 1e-5);
    // bf16 run: float32 output holding the bf16 model's values
    const r16 = cli(['--text-encoder', hub, '--texts', texts, '--out', out, '--dtype', 'bfloat16']);
    assert.equal(r16.code, 0, r16.stderr);
    const o16 = torch.loadSafetensors(out).tensors;
    assert.equal(o16.get('tokens')!.dtype, 'float32');
    // against the same bf16 computation by PyTorch on this machine (bf16 GEMMs round differently across CPUs)
    const ref = torchReference('t5', 't5', 'bfloat16', 't5.io.safetensors');
    assert.ok(worstExcess(o16.get('tokens')!, ref.get('batch.last_hidden_state')!, BF16.atol, BF16.rtol) <= 0);
    for (const t of ref.values()) t.dispose();
  });
});

test('images of any size: pixel values and features equal transformers for each fixture image', () => {
  const rows = [...pre.keys()].filter((k) => /^image\.\d+\.original$/.test(k)).map((k) => Number(k.split('.')[1]));
  assert.ok(rows.length > 0);
  for (const k of rows) torch.scope(() => {
    const img = pre.get(`image.${k}.original`)!.unsqueeze(0).repeat([2, 1, 1, 1]); // (2, H, W, 3)
    const inPath = join(tmp.dir, `img${k}.safetensors`);
    const out = join(tmp.dir, `feat${k}.safetensors`);
    torch.saveSafetensors(inPath, { images: img });
    const r = cli(['--vision-encoder', enc('siglip-full'), '--images', inPath, '--out', out, '--batch-size', '1']);
    assert.equal(r.code, 0, r.stderr);
    const o = torch.loadSafetensors(out).tensors;
    const pv = o.get('pixel_values')!;
    assert.deepEqual(pv.shape, [2, 3, S, S]);
    assert.equal(maxDiff(pv.select(0, 1), pre.get(`image.${k}.pil.pixel_values.${S}`)!), 0);
    const f = o.get('features')!;
    assert.deepEqual(f.shape.slice(1), sgio.get('last_hidden_state')!.shape.slice(1));
    for (let i = 0; i < 2; i++) assert.ok(maxDiff(f.select(0, i), sgio.get('last_hidden_state')!.select(0, k)) <= 1e-5, `image ${k}`);
  });
});

test('bad images, texts and flags: one-line errors naming the file, usage errors exit 2, --help exits 0', () => {
  const out = join(tmp.dir, 'bad-out.safetensors');
  const bad = (name: string, tensors: Record<string, torch.Tensor>, re: RegExp) => {
    const p = join(tmp.dir, `${name}.safetensors`);
    torch.scope(() => torch.saveSafetensors(p, tensors));
    const r = cli(['--vision-encoder', enc('siglip'), '--images', p, '--out', out]);
    assert.equal(r.code, 1, name);
    assert.ok(r.stderr.includes(p), `${name}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
  };
  torch.scope(() => {
    bad('float-images', { images: torch.zeros([1, 8, 8, 3]) }, /is float32 \[1,8,8,3\]; expected uint8 \(N, H, W, 3\)/);
    bad('rank3-images', { images: torch.zeros([8, 8, 3], { dtype: 'uint8' }) }, /is uint8 \[8,8,3\]; expected uint8 \(N, H, W, 3\)/);
    bad('chw-images', { images: torch.zeros([1, 3, 8, 8], { dtype: 'uint8' }) }, /expected uint8 \(N, H, W, 3\)/);
    bad('no-images', { frames: torch.zeros([1, 8, 8, 3], { dtype: 'uint8' }) }, /no tensor 'images' \(found frames\)/);
  });
  const { cases, model_max_length: maxLen } = tokenizerCases();
  const longText = longCase(cases, maxLen);
  const texts = join(tmp.dir, 'long.json');
  writeFileSync(texts, JSON.stringify(['turn on the stove', longText.text]));
  const r = cli(['--text-encoder', enc('t5'), '--tokenizer', enc('tokenizer'), '--texts', texts, '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`instruction ".*" (\\(\\d+ characters\\) )?is \\d+ tokens long, over the T5 limit of ${maxLen}`));
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const noTok = cli(['--text-encoder', enc('t5'), '--texts', texts, '--out', out]);
  assert.match(noTok.stderr, /spiece\.model: missing.*--tokenizer DIR/);
  const notList = join(tmp.dir, 'notlist.json');
  writeFileSync(notList, '{"a": 1}');
  assert.equal(cli(['--text-encoder', enc('t5'), '--texts', notList, '--out', out]).code, 2);
  assert.equal(cli(['--texts', texts, '--out', out]).code, 2);
  assert.equal(cli(['--vision-encoder', enc('siglip'), '--out', out]).code, 2);
  assert.equal(cli(['--bogus']).code, 2);
  assert.equal(cli(['--text-encoder', enc('t5'), '--texts', texts, '--out', out, '--dtype', 'float16']).code, 2);
  const help = cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: rdt-libero encode --text-encoder DIR --texts FILE\.json --out OUT\.safetensors/);
});
