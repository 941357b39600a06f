// Batch -> model inputs: the official condition dropout, state noise, and image augmentation.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { DataLoader, cloneBatch } from '../src/data/loader.js';
import type { Batch } from '../src/data/dataset.js';
import { prepareInputs, type Augment } from '../src/train/conditioning.js';
import { SampleRng } from '../src/train/sample_rng.js';
import { augmentImages } from '../src/train/image_aug.js';
import { Rng } from '../src/data/rng.js';
import { DemoTextEncoder, DemoVisionEncoder } from '../src/encoders/demo.js';
import { maxAbsDiff } from './helpers/assert-close.js';

let batch: Batch;
const enc = { text: new DemoTextEncoder(32, 16), vision: new DemoVisionEncoder(24) };

before(async () => {
  const root = join(mkdtempSync(join(tmpdir(), 'rdt-cond-')), 'data');
  await writeSyntheticSuite({ root, suite: 'libero_object', tasks: 1, demos: 2, meanLength: 20, size: 32, seed: 5 });
  const loader = await DataLoader.create({ dataset: { root }, batchSize: 6, workers: 0, sampler: { seed: 1 } });
  batch = cloneBatch(await loader.next());
  await loader.close();
});

const aug = (p: number, extra: Partial<Augment> = {}): Augment => ({
  condMaskProb: p, camExtMaskProb: -1, stateNoiseSnr: null, imageAug: false,
  stateMean: new Float32Array(128).fill(0.25), stateStd: new Float32Array(128).fill(1), rng: new SampleRng(3, { step: 0, epoch: 0, first: 0 }), ...extra,
});

test('without dropout the inputs are the batch itself', () => {
  const a = prepareInputs(batch, enc, null);
  const b = prepareInputs(batch, enc, aug(0));
  assert.deepEqual(a.stateTokens.shape, [6, 1, 128]);
  assert.deepEqual(a.imgTokens.shape, [6, 54, 24]);
  assert.deepEqual(Array.from(a.stateTokens.toFloat64()), Array.from(batch.state, Number));
  assert.deepEqual(Array.from(a.actionMask.toFloat64()), Array.from(batch.elemMask, Number));
  for (const k of ['stateTokens', 'imgTokens', 'langTokens', 'actionMask', 'ctrlFreqs', 'actionGt'] as const)
    assert.equal(maxAbsDiff(a[k].toFloat64(), b[k].toFloat64()), 0, k);
});

test('cond_mask_prob 1 drops every condition the official way', () => {
  const x = prepareInputs(batch, enc, aug(1));
  assert.deepEqual(x.ctrlFreqs.tolist(), [0, 0, 0, 0, 0, 0], 'control frequency -> 0');
  assert.ok(Array.from(x.stateTokens.toFloat64()).every((v) => v === 0.25), 'state -> dataset mean state');
  assert.ok(Array.from(x.actionMask.toFloat64()).every((v) => v === 0), 'state_elem_mask -> zeros');
  // Every image is the background, so all 6 images of a sample encode identically.
  const bg = new Uint8Array(32 * 32 * 3).fill(127);
  const bgTok = enc.vision.encode(bg, 1, 32, 32).toFloat64();
  const img = x.imgTokens.toFloat64();
  for (let i = 0; i < 36; i++) assert.equal(maxAbsDiff(img.slice(i * 9 * 24, (i + 1) * 9 * 24), bgTok), 0);
  const empty = enc.text.encode(['']).tokens.toFloat64();
  assert.equal(maxAbsDiff(x.langTokens.toFloat64().slice(0, empty.length), empty), 0, 'instruction -> ""');
});

test('state noise at 40 dB adds N(0, std/100) on filled slots only', () => {
  const x = prepareInputs(batch, enc, aug(0, { stateNoiseSnr: 40 }));
  const s = x.stateTokens.toFloat64();
  let filled = 0, sq = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s[i] - batch.state[i];
    if (batch.stateMask[i]) {
      filled++;
      sq += d * d;
    } else assert.equal(d, 0, `slot ${i % 128} is not filled and must stay 0`);
  }
  const rms = Math.sqrt(sq / filled);
  assert.ok(rms > 0.007 && rms < 0.013, `noise RMS ${rms} should be about 0.01`);
});

test('image augmentation touches only valid frames, about half of them, reproducibly', () => {
  const n = batch.size * batch.historySize * 3;
  const a = Uint8Array.from(batch.images);
  const b = Uint8Array.from(batch.images);
  const na = augmentImages(a, batch.imageMask, n, 32, 32, ((r) => () => r.next())(new Rng(42)));
  augmentImages(b, batch.imageMask, n, 32, 32, ((r) => () => r.next())(new Rng(42)));
  assert.deepEqual(a, b, 'same seed, same pixels');
  const frame = 32 * 32 * 3;
  let changed = 0;
  for (let f = 0; f < n; f++) {
    const same = a.subarray(f * frame, (f + 1) * frame).every((v, i) => v === batch.images[f * frame + i]);
    if (!batch.imageMask[f]) assert.ok(same, `background frame ${f} must stay untouched`);
    if (!same) changed++;
  }
  const valid = batch.imageMask.reduce((s, v) => s + v, 0);
  assert.equal(changed, na);
  assert.ok(changed > valid * 0.2 && changed < valid * 0.8, `${changed} of ${valid} valid frames augmented`);
});
