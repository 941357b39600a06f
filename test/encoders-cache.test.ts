// The T5 token cache (src/encoders/text_cache.ts, `rdt-libero encode --cache`, training's text_cache): a cached
// batch equals live encoding bit for bit; the cache is extended, not rewritten; training with it never loads T5
// (its folder here holds config.json but no weights) and gives the same losses as training live, condition
// dropout's "" included; a cache missing a text or made with another encoder is refused in one line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { toHubJson } from '../src/model/config.js';
import { T5TextEncoder } from '../src/encoders/official.js';
import { CachedTextEncoder, TextCache, buildTextCache, textCacheIdentityOf, textCacheKey } from '../src/encoders/text_cache.js';
import { fixture, repoRoot } from './helpers/fixtures.js';
import { fixtureEncoderRdt } from './helpers/encoder-fixtures.js';
import { tempDir } from './helpers/python.js';
import { undisposed } from './helpers/leaks.js';

const T5 = fixture('encoders', 't5');
const SIGLIP = fixture('encoders', 'siglip');
const TOKENIZER = fixture('encoders', 'tokenizer');
const { dir: work, cleanup } = tempDir('text-cache');
after(cleanup);
const root = join(work, 'data');
const MODEL = join(work, 'official-tiny.json');
// A T5 folder with config.json and no weights: hashing works, loading fails, so a run that trains with it never loaded T5.
const NO_WEIGHTS = join(work, 't5-config-only');

const same = (a: Float64Array | number[], b: Float64Array | number[]) => a.length === b.length && Array.prototype.every.call(a, (x: number, i: number) => Object.is(x, b[i]));

function cli(args: string[]): { code: number; stderr: string } {
  try {
    execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'encode', ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    return { code: 0, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stderr: string };
    return { code: err.status, stderr: err.stderr };
  }
}

const config = (over: Record<string, unknown>) => loadConfig({
  overrides: {
    model: MODEL, encoders: 'official', text_encoder: T5, vision_encoder: SIGLIP, tokenizer: TOKENIZER,
    train_batch_size: 2, gradient_accumulation_steps: 1, max_train_steps: 2, learning_rate: 1e-3, checkpointing_period: 2,
    sample_period: 0, report_to: ['none'], mixed_precision: 'no', cond_mask_prob: 0.5, seed: 3,
    data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
    output_dir: join(work, `run-${Math.random().toString(36).slice(2)}`),
    ...over,
  },
});

/** train() with its stderr lines captured. */
async function trainSaying(over: Record<string, unknown>): Promise<{ losses: number[]; said: string; out: string }> {
  const cfg = config(over);
  const write = process.stderr.write.bind(process.stderr);
  let said = '';
  process.stderr.write = ((s: string | Uint8Array) => { said += String(s); return true; }) as typeof process.stderr.write;
  try {
    const r = await train(cfg, { verbose: true });
    return { losses: r.losses, said, out: cfg.output_dir };
  } finally {
    process.stderr.write = write;
  }
}

before(async () => {
  writeFileSync(MODEL, JSON.stringify(toHubJson(fixtureEncoderRdt({
    max_lang_cond_len: 1024, lang_pos_embed_config: [['lang', -1024]], rdt: { hidden_size: 32, depth: 2, num_heads: 2 },
  }))));
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 16, size: 32, seed: 5 });
  await writeSyntheticSuite({ root, suite: 'libero_object', tasks: 1, demos: 3, meanLength: 16, size: 32, seed: 6 });
  mkdirSync(NO_WEIGHTS);
  copyFileSync(join(T5, 'config.json'), join(NO_WEIGHTS, 'config.json'));
});

test('a cached batch equals live encoding bit for bit; the cache is extended, not rewritten', () => {
  const live0 = undisposed();
  const file = join(work, 'roundtrip.safetensors');
  const enc = T5TextEncoder.load(T5, { tokenizerDir: TOKENIZER });
  try {
    const first = ['put the bowl on the plate', 'open the top drawer and put the bowl inside'];
    assert.deepEqual(buildTextCache(file, enc, first), { added: 3, kept: 0 }, 'the two texts and ""');
    const more = [...first, 'turn on the stove'];
    assert.deepEqual(buildTextCache(file, enc, more), { added: 1, kept: 3 });
    assert.deepEqual(buildTextCache(file, enc, more), { added: 0, kept: 4 }, 'nothing to add: nothing encoded');
    const id = textCacheIdentityOf({ text: T5, tokenizer: TOKENIZER }, 'float32');
    const cache = TextCache.read(file, id);
    const cached = new CachedTextEncoder(cache, T5, TOKENIZER, 1024);
    try {
      assert.deepEqual([...cache.entries.keys()].sort(), ['', ...more].sort());
      const { metadata, tensors } = torch.loadSafetensors(file);
      assert.deepEqual(JSON.parse(metadata.identity), id);
      assert.ok(tensors.has(textCacheKey('turn on the stove', id)));
      for (const t of tensors.values()) t.dispose();
      // Unpadded rows (L_i, D): each text encoded alone.
      torch.scope(() => {
        for (const t of ['', ...more]) {
          const alone = enc.encodeWithIds([t], 1);
          assert.deepEqual(cache.entries.get(t)!.shape, [alone.batch.length, enc.tokenDim]);
          assert.ok(same(cache.entries.get(t)!.toFloat64(), alone.tokens.toFloat64()), t);
        }
      });
      // A training batch: repeats, different lengths, and dropout's "".
      const batch = [more[1], '', more[0], more[1], more[2]];
      torch.scope(() => {
        const live = enc.encode(batch);
        const c = cached.encode(batch);
        assert.deepEqual(c.tokens.shape, live.tokens.shape);
        assert.ok(same(c.tokens.toFloat64(), live.tokens.toFloat64()), 'tokens bit for bit');
        assert.ok(same(c.mask.toFloat64(), live.mask.toFloat64()), 'mask');
        assert.equal(c.mask.dtype, 'bool');
      });
      assert.throws(() => cached.encode(['never cached']), /text cache .*roundtrip\.safetensors lacks the instruction "never cached"; run rdt-libero encode .*--cache/);
    } finally {
      cached.dispose();
    }
    assert.throws(() => TextCache.read(file, { ...id, dtype: 'bfloat16' }), /made with another text encoder/);
  } finally {
    enc.dispose();
  }
  const bf = T5TextEncoder.load(T5, { tokenizerDir: TOKENIZER, dtype: 'bfloat16' });
  try {
    assert.throws(() => buildTextCache(file, bf, ['x']), /roundtrip\.safetensors: made with another text encoder .*float32.*bfloat16/);
  } finally {
    bf.dispose();
  }
  assert.equal(undisposed(), live0, 'nothing leaked');
});

test('encode --dataset-root --cache: every instruction of the root and "", then training never loads T5 and equals live training', async () => {
  const live0 = undisposed();
  const file = join(work, 'libero.t5cache.safetensors');
  const r = cli(['--text-encoder', T5, '--tokenizer', TOKENIZER, '--dataset-root', root, '--suites', 'libero_goal,libero_object', '--cache', file]);
  assert.equal(r.code, 0, r.stderr);
  const ds = await LiberoDataset.open({ root });
  const cache = TextCache.read(file);
  try {
    assert.deepEqual([...cache.entries.keys()].sort(), [...new Set(['', ...ds.instructions])].sort());
  } finally {
    cache.dispose();
  }
  // Usage errors: exit 2, one line.
  assert.equal(cli(['--text-encoder', T5, '--tokenizer', TOKENIZER, '--cache', file]).code, 2, 'no source of texts');
  assert.equal(cli(['--text-encoder', T5, '--dataset-root', root, '--out', file]).code, 2, '--dataset-root without --cache');

  const live = await trainSaying({});
  const cached = await trainSaying({ text_cache: file, text_encoder: NO_WEIGHTS });
  assert.equal(live.losses.length, 2);
  assert.deepEqual(cached.losses, live.losses, 'same losses, bit for bit');
  assert.match(cached.said, /text encoder: T5 tokens from the cache .*libero\.t5cache\.safetensors \(\d+ texts, float32, computed on cpu; T5 not loaded\)/);
  assert.doesNotMatch(live.said, /from the cache/);
  // policy.json records the same encoder identity (the folder path aside).
  const pol = (x: { out: string }) => JSON.parse(readFileSync(join(x.out, 'checkpoint-2', 'policy.json'), 'utf8')).encoders.text;
  const { path: p1, ...a } = pol(live);
  const { path: p2, ...b } = pol(cached);
  assert.deepEqual(a, b);
  assert.equal(p2, NO_WEIGHTS);
  assert.notEqual(p1, p2);
  assert.equal(undisposed(), live0, 'nothing leaked');
});

test('training refuses a cache that lacks an instruction or was made with another encoder, in one line', async () => {
  const live0 = undisposed();
  const texts = join(work, 'one.json');
  writeFileSync(texts, JSON.stringify(['only this one']));
  const partial = join(work, 'partial.safetensors');
  assert.equal(cli(['--text-encoder', T5, '--tokenizer', TOKENIZER, '--texts', texts, '--cache', partial]).code, 0);
  await assert.rejects(train(config({ text_cache: partial, text_encoder: NO_WEIGHTS }), { verbose: false }),
    (e: Error) => /^text cache .*partial\.safetensors lacks the instruction of the training data ".*"; run rdt-libero encode .*--cache .*partial\.safetensors to extend it$/.test(e.message)
      && !e.message.includes('\n'));
  const bf = join(work, 'bf16.safetensors');
  assert.equal(cli(['--text-encoder', T5, '--tokenizer', TOKENIZER, '--texts', texts, '--cache', bf, '--dtype', 'bfloat16']).code, 0);
  await assert.rejects(train(config({ text_cache: bf, text_encoder: NO_WEIGHTS, encoder_dtype: 'float32' }), { verbose: false }),
    (e: Error) => /^text cache .*bf16\.safetensors: made with another text encoder .*; make it with rdt-libero encode --text-encoder .* --dtype float32 .*--cache .*bf16\.safetensors, or set text_cache: null$/.test(e.message)
      && !e.message.includes('\n'));
  await assert.rejects(train(config({ text_cache: join(work, 'absent.safetensors') }), { verbose: false }), /'text_cache': .*absent\.safetensors does not exist; make it with rdt-libero encode/);
  assert.equal(undisposed(), live0, 'nothing leaked');
});
