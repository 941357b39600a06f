// The demo encoders: deterministic, shape-correct, and sensitive to their inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { DEMO_PALETTE, DemoPaletteEncoder, DemoTextEncoder, DemoVisionEncoder, demoEncoderIdentity } from '../src/encoders/demo.js';
import { createEncoders, encoderIdentity, identityTokensPerImage } from '../src/encoders/factory.js';
import { parsePolicyFile } from '../src/policy/file.js';
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

test('demo palette encoder: one token per colour = fixed identity + presence, centroid and spread of its pixels (nearest colour)', () => {
  // A 16 x 16 grey-ish table (nearest palette colour: grey), a 4 x 4 block of the test back-end's red (220, 30, 30)
  // at rows 2-5, columns 8-11, and a dark 1 x 8 finger (50, 50, 50) on row 12, columns 0-7.
  const H = 16, W = 16;
  const img = new Uint8Array(H * W * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const rgb = y >= 2 && y <= 5 && x >= 8 && x <= 11 ? [220, 30, 30] : y === 12 && x < 8 ? [50, 50, 50] : [200, 180, 150];
      img.set(rgb, (y * W + x) * 3);
    }
  const enc = new DemoPaletteEncoder(24);
  assert.equal(enc.tokensPerImage, DEMO_PALETTE.length);
  const both = new Uint8Array(2 * H * W * 3);
  both.set(img, 0); // image 1: all black
  const t = enc.encode(both, 2, H, W);
  assert.deepEqual(t.shape, [2, 9, 24]);
  const v = t.toFloat64();
  const tail = (i: number, k: number) => Array.from(v.slice((i * 9 + k) * 24 + 20, (i * 9 + k + 1) * 24));
  // The documented rule, by hand: pixel centres at (2x + 1) / W - 1; a run of n pixels 2/W apart has variance
  // (2/W)^2 (n^2 - 1) / 12 along it.
  const varRun = (n: number) => (2 / W) ** 2 * (n * n - 1) / 12;
  const close = (got: number[], want: number[], what: string) =>
    assert.ok(got.every((g, j) => Math.abs(g - want[j]) < 1e-5), `${what}: ${got.map((x) => x.toFixed(5))} vs ${want.map((x) => x.toFixed(5))}`);
  close(tail(0, 2), [4 * Math.sqrt(16 / 256), 3 * ((2 * 9.5 + 1) / 16 - 1), 3 * ((2 * 3.5 + 1) / 16 - 1), 3 * Math.sqrt(2 * varRun(4))], 'red');
  close(tail(0, 0), [4 * Math.sqrt(8 / 256), 3 * ((2 * 3.5 + 1) / 16 - 1), 3 * ((2 * 12 + 1) / 16 - 1), 3 * Math.sqrt(varRun(8))], 'black (the finger)');
  close(tail(0, 4), [0, 0, 0, 0], 'blue is absent');
  close(tail(1, 0), [4, 0, 0, 3 * Math.sqrt(2 * varRun(16))], 'an all-black image: black everywhere');
  // The identity part is fixed per colour: the same in both images, different between colours.
  const id = (i: number, k: number) => v.slice((i * 9 + k) * 24, (i * 9 + k) * 24 + 20);
  for (let k = 0; k < 9; k++) assert.equal(maxAbsDiff(id(0, k), id(1, k)), 0);
  assert.ok(maxAbsDiff(id(0, 2), id(0, 3)) > 0.5);
  assert.throws(() => new DemoPaletteEncoder(4), /token_dim 4 leaves no room/);
  assert.throws(() => enc.encode(new Uint8Array(10), 1, H, W), /expected 1x16x16x3 = 768 bytes, got 10/);
});

test('demo palette identity: chosen per model, recorded in policy.json and rebuilt to the same encoder', () => {
  const dims = { lang_token_dim: 32, img_token_dim: 24, max_lang_cond_len: 16, img_cond_len: 54 };
  const id = demoEncoderIdentity(dims, 'palette');
  assert.deepEqual(id.vision, { kind: 'demo', tokens: 'palette', token_dim: 24, palette: DEMO_PALETTE.map((c) => [...c]), seed: 1234 });
  assert.equal(identityTokensPerImage(id.vision), 9);
  assert.throws(() => demoEncoderIdentity({ ...dims, img_cond_len: 216 }, 'palette'), /2 history x 3 cameras x 9 colours = 54 image tokens; img_cond_len is 216/);
  const enc = createEncoders(id);
  assert.ok(enc.vision instanceof DemoPaletteEncoder);
  assert.deepEqual(encoderIdentity(enc), id, 'the live encoders record the identity they were built from');
  const img = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37) % 256);
  const again = createEncoders(JSON.parse(JSON.stringify(id)));
  assert.equal(maxAbsDiff(enc.vision.encode(img, 1, 8, 8).toFloat64(), again.vision.encode(img, 1, 8, 8).toFloat64()), 0);
  // policy.json: the palette is validated; a patch identity (no 'tokens') still reads as before.
  const file = (vision: unknown) => ({
    format: 'rdt-libero.policy', version: 1, action: { encoding: 'eef_target_pose', chunk_size: 64, ctrl_freq: 20, exec_horizon: 16 },
    state: { use_joints: false, slots: [10, 30, 31, 32, 33, 34, 35, 36, 37, 38] },
    cameras: { slots: { agentview: 0, eye_in_hand: 1 }, orientation: 'flip_v', height: 64, width: 64, history: 2 },
    statistics: null, encoders: { text: id.text, vision }, lora: null, origin: null,
  });
  assert.deepEqual(parsePolicyFile(file(id.vision), 'p.json').encoders.vision, id.vision);
  assert.throws(() => parsePolicyFile(file({ ...id.vision, palette: [[0, 0, 300]] }), 'p.json'), /p\.json: field 'encoders\.vision\.palette' must be a non-empty list of \[r, g, b\] integers in 0\.\.255/);
  assert.throws(() => parsePolicyFile(file({ ...id.vision, grid: 3 }), 'p.json'), /field 'encoders\.vision\.grid' is not a policy field/);
  assert.deepEqual(parsePolicyFile(file(demoEncoderIdentity(dims).vision), 'p.json').encoders.vision, demoEncoderIdentity(dims).vision);
  for (const e of [enc, again]) (e.text.dispose(), e.vision.dispose());
});
