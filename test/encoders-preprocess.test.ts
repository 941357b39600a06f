// RDT image preprocessing against PIL (fixtures/encoders/preprocess.*.safetensors): expand2square
// placement, the uint8 -> pixel value table, and PIL's bicubic resize, exact at every fixture size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/engine/index.js';
import { PIXEL_LUT, expandToSquare, preprocessImages, resizeBicubicPil } from '../src/encoders/image_preprocess.js';
import { loadEncIo } from './helpers/encoder-fixtures.js';

const io = loadEncIo('preprocess.io.safetensors');
const big = loadEncIo('preprocess.384.safetensors');
const images = [...io.keys()].filter((k) => /^image\.\d+\.original$/.test(k)).map((k) => Number(k.split('.')[1]));
const sizesOf = (k: number) => [...io.keys()].filter((x) => x.startsWith(`image.${k}.pil.resized.`)).map((x) => Number(x.split('.').pop()));
const bytes = (t: torch.Tensor) => t.data() as Uint8Array;

test('the uint8 -> pixel value table equals SiglipImageProcessor\'s', () => {
  assert.deepEqual(Array.from(PIXEL_LUT), Array.from(io.get('lut.uint8_to_pixel_value')!.data() as Float32Array));
});

test('expand2square pads with 127 and pastes where RDT does', () => {
  assert.ok(images.length > 0);
  for (const k of images) {
    const o = io.get(`image.${k}.original`)!;
    const [h, w] = o.shape;
    const sq = expandToSquare(bytes(o), h, w);
    const off = Array.from(io.get(`image.${k}.paste_offset`)!.data() as BigInt64Array, Number);
    assert.deepEqual([sq.x, sq.y], off, `image ${k}`);
    assert.deepEqual(Buffer.from(sq.data), Buffer.from(bytes(io.get(`image.${k}.padded`)!)), `image ${k}`);
  }
});

test('the bicubic resize equals PIL bit for bit at every fixture size', () => {
  for (const k of images) {
    const p = io.get(`image.${k}.padded`)!;
    assert.ok(sizesOf(k).length > 0);
    for (const s of sizesOf(k)) {
      const got = resizeBicubicPil(bytes(p), p.shape[0], p.shape[1], s, s);
      const want = bytes(io.get(`image.${k}.pil.resized.${s}`)!);
      let differ = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differ++;
      assert.equal(differ, 0, `image ${k} at ${s}: ${differ} values differ from PIL`);
    }
  }
});

test('the whole pipeline gives SiglipImageProcessor\'s pixel values (float32, CHW)', () => {
  const check = (k: number, s: number, want: Float32Array) => {
    const o = io.get(`image.${k}.original`)!;
    const got = preprocessImages(bytes(o), 1, o.shape[0], o.shape[1], s);
    assert.equal(got.length, want.length);
    assert.ok(got.every((v, i) => v === want[i]), `image ${k} at ${s}`);
  };
  for (const k of images)
    for (const key of [...io.keys()].filter((x) => x.startsWith(`image.${k}.pil.pixel_values.`)))
      check(k, Number(key.split('.').pop()), io.get(key)!.data() as Float32Array);
  for (const key of [...big.keys()].filter((x) => /^image\.\d+\.pil\.pixel_values\.\d+$/.test(x)))
    check(Number(key.split('.')[1]), Number(key.split('.').pop()), big.get(key)!.data() as Float32Array);
  // A missing camera: the solid background image.
  for (const key of [...io.keys()].filter((x) => x.startsWith('background.pil.pixel_values.'))) {
    const s = Number(key.split('.').pop());
    const got = preprocessImages(new Uint8Array(7 * 5 * 3).fill(127), 1, 7, 5, s);
    assert.ok(got.every((v, i) => v === (io.get(key)!.data() as Float32Array)[i]));
  }
});

test('libtorch bicubic (antialias) is measurably further from PIL than ours (docs/encoders.md)', () => {
  for (const key of [...big.keys()].filter((x) => /^image\.\d+\.torch\.pixel_values\.\d+$/.test(x))) {
    const pil = big.get(key.replace('.torch.', '.pil.'))!;
    const d = torch.scope(() => big.get(key)!.sub(pil).abs().max().item());
    console.log(`${key}: libtorch float path vs PIL max |diff| ${d.toFixed(4)} (ours: 0)`);
    assert.ok(d > 0);
  }
});
