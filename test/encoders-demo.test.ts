// The demo encoders: deterministic, shape-correct, and sensitive to their inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { DemoTextEncoder, DemoVisionEncoder, demoEncoderIdentity } from '../src/encoders/demo.js';
import { maxAbsDiff } from './helpers/assert-close.js';

test('demo vision encoder: (N, 9, D) tokens, deterministic, different images differ', () => {
  const H = 32, W = 32;
  const imgs = new Uint8Array(2 * H * W * 3);
  for (let i = 0; i < H * W * 3; i++) imgs[i] = (i * 7) % 256; // image 0: a pattern; image 1: all zero
  const a = new DemoVisionEncoder(24);
  const b = new DemoVisionEncoder(24);
  const ta = a.encode(imgs, 2, H, W);
  const tb = b.encode(imgs, 2, H, W);
  assert.deepEqual(ta.shape, [2, 9, 24]);
  assert.equal(maxAbsDiff(ta.toFloat64(), tb.toFloat64()), 0, 'same seed, same tokens');
  const d = ta.toFloat64();
  assert.ok(maxAbsDiff(d.slice(0, 9 * 24), d.slice(9 * 24)) > 0.1, 'different images give different tokens');
  // An all-zero image pools to -1 everywhere: each patch token is -sum(proj) + pos, finite.
  assert.ok(Array.from(d).every(Number.isFinite));
  assert.throws(() => a.encode(new Uint8Array(10), 1, H, W), /expected 1x32x32x3 = 3072 bytes, got 10/);
});

test('demo text encoder: padded tokens with a mask; same words, same tokens', () => {
  const enc = new DemoTextEncoder(32, 16);
  const { tokens, mask } = enc.encode(['put the bowl on the plate', 'open the drawer']);
  assert.deepEqual(tokens.shape, [2, 6, 32]);
  assert.deepEqual(mask.tolist(), [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]);
  const again = enc.encode(['Put the bowl on the plate!']);
  const t0 = tokens.toFloat64().slice(0, 6 * 32);
  assert.equal(maxAbsDiff(again.tokens.toFloat64(), t0), 0, 'case and punctuation do not matter');
  torch.scope(() => assert.ok(tokens.isfinite().all().item() === 1));
});

test('demo encoders of a model: the vision grid follows img_cond_len (2 history x 3 cameras x grid^2); other lengths are refused', () => {
  const dims = { lang_token_dim: 32, img_token_dim: 24, max_lang_cond_len: 16 };
  assert.deepEqual(demoEncoderIdentity({ ...dims, img_cond_len: 54 }).vision, { kind: 'demo', token_dim: 24, grid: 3, cells: 4, seed: 1234 });
  assert.deepEqual(demoEncoderIdentity({ ...dims, img_cond_len: 216 }).vision, { kind: 'demo', token_dim: 24, grid: 6, cells: 2, seed: 1234 });
  assert.throws(() => demoEncoderIdentity({ ...dims, img_cond_len: 150 }), /img_cond_len 150 is not such a number/); // grid 5 does not divide 12
  assert.throws(() => demoEncoderIdentity({ ...dims, img_cond_len: 55 }), /img_cond_len 55/);
});
