// DEMO ENCODERS. Deterministic stand-ins for T5 and SigLIP so training and evaluation run end to end
// on any machine today: fixed random projections of pooled image patches, and of hashed instruction
// words. They carry real information (which image, which words) but no pre-trained knowledge, so a
// policy trained on them is only good for the demo and tests. Everything they touch says "demo".
import * as torch from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { TextEncoder, VisionEncoder } from './types.js';

import { EncoderError } from './errors.js';

export { EncoderError };

/** Patches: the image is average-pooled to (grid*cells)^2 and each grid cell's cells^2 RGB means form one patch. */
export class DemoVisionEncoder implements VisionEncoder {
  readonly name = 'demo-vision (fixed random patch projection; NOT SigLIP)';
  readonly isDemo = true;
  readonly tokensPerImage: number;
  readonly #proj: Tensor; // (cells*cells*3, tokenDim)
  readonly #posEmb: Tensor; // (tokensPerImage, tokenDim): tells the patches apart

  constructor(readonly tokenDim: number, readonly grid = 3, readonly cells = 4, readonly seed = 1234) {
    this.tokensPerImage = grid * grid;
    const feat = cells * cells * 3;
    const gen = new torch.Generator(seed);
    this.#proj = torch.scope(() => torch.randn([feat, tokenDim], { generator: gen }).div(Math.sqrt(feat))).keep();
    this.#posEmb = torch.scope(() => torch.randn([this.tokensPerImage, tokenDim], { generator: gen }).mul(0.5)).keep();
  }

  /** Average-pool each image into patch features in [-1, 1], (n, grid*grid, cells*cells*3). */
  patchFeatures(images: Uint8Array, n: number, height: number, width: number): Float32Array {
    const side = this.grid * this.cells;
    const feat = this.cells * this.cells * 3;
    const out = new Float32Array(n * this.tokensPerImage * feat);
    const sum = new Float64Array(side * side * 3);
    const cnt = new Float64Array(side * side);
    for (let i = 0; i < n; i++) {
      sum.fill(0);
      cnt.fill(0);
      const base = i * height * width * 3;
      for (let y = 0; y < height; y++) {
        const cy = Math.min(side - 1, Math.floor((y * side) / height));
        for (let x = 0; x < width; x++) {
          const cx = Math.min(side - 1, Math.floor((x * side) / width));
          const c = cy * side + cx;
          const p = base + (y * width + x) * 3;
          sum[c * 3] += images[p];
          sum[c * 3 + 1] += images[p + 1];
          sum[c * 3 + 2] += images[p + 2];
          cnt[c]++;
        }
      }
      for (let gy = 0; gy < this.grid; gy++)
        for (let gx = 0; gx < this.grid; gx++) {
          const tok = gy * this.grid + gx;
          let k = (i * this.tokensPerImage + tok) * feat;
          for (let sy = 0; sy < this.cells; sy++)
            for (let sx = 0; sx < this.cells; sx++) {
              const c = (gy * this.cells + sy) * side + gx * this.cells + sx;
              for (let ch = 0; ch < 3; ch++) out[k++] = sum[c * 3 + ch] / Math.max(1, cnt[c]) / 127.5 - 1;
            }
        }
    }
    return out;
  }

  identity(): DemoVisionIdentity {
    return { kind: 'demo', token_dim: this.tokenDim, grid: this.grid, cells: this.cells, seed: this.seed };
  }

  encode(images: Uint8Array, n: number, height: number, width: number): Tensor {
    if (images.length !== n * height * width * 3)
      throw new Error(`demo vision encoder: expected ${n}x${height}x${width}x3 = ${n * height * width * 3} bytes, got ${images.length}`);
    const feats = this.patchFeatures(images, n, height, width);
    return torch.scope(() => {
      const f = torch.tensor(feats, { shape: [n, this.tokensPerImage, this.cells * this.cells * 3] });
      return f.matmul(this.#proj).add(this.#posEmb); // (n, tokens, tokenDim)
    });
  }

  dispose(): void {
    this.#proj.dispose();
    this.#posEmb.dispose();
  }
}

/**
 * The colours a palette encoder gives one token each: the primaries and secondaries, black, white and grey. The
 * test back-end draws its blocks in red, green, blue and yellow on a table that is nearest to grey, with dark
 * fingers; the other colours' tokens say "absent" there.
 */
export const DEMO_PALETTE: readonly (readonly [number, number, number])[] = Object.freeze([
  [0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255], [128, 128, 128],
] as const);

/** What a palette is (policy.json's encoders.vision.palette is checked by the same rule). */
export const PALETTE_RULE = 'a non-empty list of [r, g, b] integers in 0..255';
export function isPalette(p: unknown): p is number[][] {
  return Array.isArray(p) && p.length > 0 &&
    p.every((c) => Array.isArray(c) && c.length === 3 && c.every((x) => Number.isInteger(x) && x >= 0 && x <= 255));
}

/** Values per palette token after its identity: presence, centroid x, centroid y, spread. */
const PALETTE_FEATURES = 4;

/**
 * One token per palette colour: a fixed random identity vector (the same for that colour in every image, so a
 * model can learn "the instruction's colour -> that token" as a lookup) followed by what the image shows of the
 * colour: 4 sqrt(fraction of pixels), 3 x its centroid (x right, y down, in [-1, 1] of the upright image) and 3 x
 * its RMS spread around the centroid; zeros when the colour is absent. Every pixel counts for its nearest palette
 * colour. A stand-in for a pre-trained encoder that sees objects and where they are, which random patch
 * projections (DemoVisionEncoder) do not give a small model trained for a minute (README, demo section).
 */
export class DemoPaletteEncoder implements VisionEncoder {
  readonly name = 'demo-palette (one token per palette colour: presence, centroid, spread; NOT SigLIP)';
  readonly isDemo = true;
  readonly tokensPerImage: number;
  readonly #identity: Float32Array; // (colours, tokenDim - 4)
  readonly #nearest = new Map<number, number>(); // packed RGB -> palette index: a rendered scene has few colours

  constructor(readonly tokenDim: number, readonly palette: readonly (readonly number[])[] = DEMO_PALETTE, readonly seed = 1234) {
    if (tokenDim <= PALETTE_FEATURES) throw new EncoderError(`demo palette encoder: token_dim ${tokenDim} leaves no room for the colour identity (> ${PALETTE_FEATURES} needed)`);
    if (!isPalette(palette)) throw new EncoderError(`demo palette encoder: the palette must be ${PALETTE_RULE}`);
    this.tokensPerImage = palette.length;
    const gen = new torch.Generator(seed);
    this.#identity = torch.scope(() => Float32Array.from(torch.randn([palette.length, tokenDim - PALETTE_FEATURES], { generator: gen }).toFloat64()));
  }

  /** (n, colours, tokenDim) as a flat array: identity rows, then the four measured values. */
  tokens(images: Uint8Array, n: number, height: number, width: number): Float32Array {
    const K = this.palette.length;
    const D = this.tokenDim;
    const idDim = D - PALETTE_FEATURES;
    const pal = this.palette.flat();
    const out = new Float32Array(n * K * D);
    const cnt = new Float64Array(K), sx = new Float64Array(K), sy = new Float64Array(K), sq = new Float64Array(K);
    for (let i = 0; i < n; i++) {
      cnt.fill(0), sx.fill(0), sy.fill(0), sq.fill(0);
      const base = i * height * width * 3;
      for (let y = 0; y < height; y++) {
        const v = (2 * y + 1) / height - 1;
        for (let x = 0; x < width; x++) {
          const p = base + (y * width + x) * 3;
          const r = images[p], g = images[p + 1], b = images[p + 2];
          const key = (r << 16) | (g << 8) | b;
          let best = this.#nearest.get(key);
          if (best === undefined) {
            let bestD = Infinity;
            best = 0;
            for (let k = 0; k < K; k++) {
              const d = (r - pal[3 * k]) ** 2 + (g - pal[3 * k + 1]) ** 2 + (b - pal[3 * k + 2]) ** 2;
              if (d < bestD) (bestD = d), (best = k);
            }
            if (this.#nearest.size >= 1 << 16) this.#nearest.clear(); // natural images have many colours
            this.#nearest.set(key, best);
          }
          const u = (2 * x + 1) / width - 1;
          cnt[best]++, sx[best] += u, sy[best] += v, sq[best] += u * u + v * v;
        }
      }
      for (let k = 0; k < K; k++) {
        const o = (i * K + k) * D;
        out.set(this.#identity.subarray(k * idDim, (k + 1) * idDim), o);
        if (!cnt[k]) continue;
        const mx = sx[k] / cnt[k], my = sy[k] / cnt[k];
        out[o + idDim] = 4 * Math.sqrt(cnt[k] / (height * width));
        out[o + idDim + 1] = 3 * mx;
        out[o + idDim + 2] = 3 * my;
        out[o + idDim + 3] = 3 * Math.sqrt(Math.max(0, sq[k] / cnt[k] - mx * mx - my * my));
      }
    }
    return out;
  }

  identity(): DemoPaletteIdentity {
    return { kind: 'demo', tokens: 'palette', token_dim: this.tokenDim, palette: this.palette.map((c) => [...c]), seed: this.seed };
  }

  encode(images: Uint8Array, n: number, height: number, width: number): Tensor {
    if (images.length !== n * height * width * 3)
      throw new Error(`demo palette encoder: expected ${n}x${height}x${width}x3 = ${n * height * width * 3} bytes, got ${images.length}`);
    return torch.tensor(this.tokens(images, n, height, width), { shape: [n, this.tokensPerImage, this.tokenDim] });
  }

  dispose(): void {}
}

/** FNV-1a, so a word maps to the same row on every machine and run. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function demoTokenize(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

export class DemoTextEncoder implements TextEncoder {
  readonly name = 'demo-text (hashed word embeddings; NOT T5)';
  readonly isDemo = true;
  readonly #table: Tensor; // (vocab, tokenDim)
  readonly #pos: Tensor; // (maxLength, tokenDim)

  constructor(readonly tokenDim: number, readonly maxLength = 32, readonly vocab = 4096, readonly seed = 4321) {
    const gen = new torch.Generator(seed);
    this.#table = torch.scope(() => torch.randn([vocab, tokenDim], { generator: gen })).keep();
    this.#pos = torch.scope(() => torch.randn([maxLength, tokenDim], { generator: gen }).mul(0.1)).keep();
  }

  identity(): DemoTextIdentity {
    return { kind: 'demo', token_dim: this.tokenDim, max_length: this.maxLength, vocab: this.vocab, seed: this.seed };
  }

  encode(instructions: string[]): { tokens: Tensor; mask: Tensor } {
    const ids = instructions.map((s) => {
      const words = demoTokenize(s).slice(0, this.maxLength);
      return words.length ? words.map((w) => fnv1a(w) % this.vocab) : [0];
    });
    const L = Math.max(...ids.map((x) => x.length));
    const flat = new BigInt64Array(instructions.length * L);
    const mask = new Uint8Array(instructions.length * L);
    ids.forEach((row, b) => row.forEach((id, j) => {
      flat[b * L + j] = BigInt(id);
      mask[b * L + j] = 1;
    }));
    return torch.scope(() => {
      const idx = torch.tensor(flat, { shape: [instructions.length, L] });
      const tokens = this.#table.indexSelect(0, idx.flatten()).reshape([instructions.length, L, this.tokenDim])
        .add(this.#pos.slice(0, 0, L));
      const m = torch.tensor(mask, { shape: [instructions.length, L], dtype: 'bool' });
      return { tokens, mask: m };
    });
  }

  dispose(): void {
    this.#table.dispose();
    this.#pos.dispose();
  }
}

// ---- identities: what the factory (factory.ts) rebuilds a demo pair from ----

/** What a demo text encoder is: every parameter its output depends on. */
export interface DemoTextIdentity {
  kind: 'demo';
  token_dim: number;
  max_length: number;
  vocab: number;
  seed: number;
}

/** What a demo vision encoder is. */
export interface DemoVisionIdentity {
  kind: 'demo';
  token_dim: number;
  grid: number;
  cells: number;
  seed: number;
}

/** What a demo palette encoder is (`tokens: 'palette'` tells it from the patch encoder's identity). */
export interface DemoPaletteIdentity {
  kind: 'demo';
  tokens: 'palette';
  token_dim: number;
  palette: number[][];
  seed: number;
}

export const isPaletteIdentity = (v: { kind: string }): v is DemoPaletteIdentity => (v as { tokens?: string }).tokens === 'palette';

/** Cells per side the demo vision encoder pools an image into (grid x cells = 12 for every grid it supports). */
const DEMO_SIDE = 12;

/**
 * The demo encoders a model of these dimensions trains with. The vision grid follows the model's image tokens:
 * img_cond_len = 2 history x 3 cameras x grid^2 (tiny: 54 -> grid 3 of 4x4 cells; 216 -> grid 6 of 2x2 cells).
 */
export function demoEncoderIdentity(dims: { lang_token_dim: number; img_token_dim: number; max_lang_cond_len: number; img_cond_len: number },
  vision: 'patches' | 'palette' = 'patches'): { text: DemoTextIdentity; vision: DemoVisionIdentity | DemoPaletteIdentity } {
  const text: DemoTextIdentity = { kind: 'demo', token_dim: dims.lang_token_dim, max_length: dims.max_lang_cond_len, vocab: 4096, seed: 4321 };
  if (vision === 'palette') {
    const k = DEMO_PALETTE.length;
    if (dims.img_cond_len !== 6 * k)
      throw new EncoderError(`the demo palette encoder gives 2 history x 3 cameras x ${k} colours = ${6 * k} image tokens; img_cond_len is ${dims.img_cond_len} (tiny: 54)`);
    return { text, vision: { kind: 'demo', tokens: 'palette', token_dim: dims.img_token_dim, palette: DEMO_PALETTE.map((c) => [...c]), seed: 1234 } };
  }
  const grid = Math.round(Math.sqrt(dims.img_cond_len / 6));
  if (grid * grid * 6 !== dims.img_cond_len || DEMO_SIDE % grid !== 0)
    throw new EncoderError(`the demo vision encoder gives 2 history x 3 cameras x grid^2 tokens with grid in 1, 2, 3, 4, 6, 12; img_cond_len ${dims.img_cond_len} is not such a number (tiny: 54)`);
  return { text, vision: { kind: 'demo', token_dim: dims.img_token_dim, grid, cells: DEMO_SIDE / grid, seed: 1234 } };
}
