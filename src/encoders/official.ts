// The official condition encoders behind the TextEncoder / VisionEncoder interfaces the trainer and the
// policy use: T5 (tokenizer + encoder) and the SigLIP tower (RDT preprocessing + tower). Outputs are
// float32 on the CPU-or-model device, whatever dtype the encoder runs in.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { EncoderError } from './errors.js';
import { preprocessImages } from './image_preprocess.js';
import type { SiglipVisionModel, SiglipAttention } from './siglip.js';
import { loadSiglipVision } from './siglip_load.js';
import type { T5EncoderModel } from './t5.js';
import { loadT5Encoder, type EncoderLoadOptions } from './t5_load.js';
import { T5Tokenizer, type TokenBatch } from './tokenizer.js';
import type { TextEncoder, VisionEncoder } from './types.js';

/** sha256 of a folder's config.json: part of an encoder's identity (which weights produced a cache or a checkpoint). */
export function configHash(dir: string): string {
  const p = join(dir, 'config.json');
  return existsSync(p) ? createHash('sha256').update(readFileSync(p)).digest('hex') : '';
}

/** The files of a tokenizer folder that decide its ids (those present), hashed together with their names. */
export const TOKENIZER_FILES = ['tokenizer.json', 'spiece.model', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

/** sha256 over the tokenizer files of `dir` (name, length, bytes of each one present). */
export function tokenizerHash(dir: string): string {
  const h = createHash('sha256');
  for (const f of TOKENIZER_FILES) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    const b = readFileSync(p);
    h.update(`${f}\0${b.length}\0`).update(b);
  }
  return h.digest('hex');
}

/** Rows (L_i, D) -> tokens (B, max L_i, D) zero-padded and mask (B, max L_i) bool. */
export function padTokenRows(rows: Tensor[]): { tokens: Tensor; mask: Tensor } {
  return torch.scope(() => {
    const L = Math.max(...rows.map((r) => r.shape[0]));
    const D = rows[0].shape[1];
    const padded = rows.map((r) => (r.shape[0] === L ? r : torch.cat([r, torch.zeros([L - r.shape[0], D], { dtype: r.dtype, device: r.device })], 0)));
    const mask = Uint8Array.from(rows.flatMap((r) => Array.from({ length: L }, (_, i) => (i < r.shape[0] ? 1 : 0))));
    return { tokens: torch.stack(padded, 0), mask: torch.tensor(mask, { shape: [rows.length, L] }).to({ dtype: 'bool', device: rows[0].device }) };
  });
}

export class T5TextEncoder implements TextEncoder {
  readonly isDemo = false;
  readonly name: string;
  readonly tokenDim: number;
  readonly maxLength: number;
  readonly configSha256: string;
  readonly tokenizerSha256: string;

  private constructor(readonly dir: string, readonly tokenizer: T5Tokenizer, readonly model: T5EncoderModel) {
    this.name = `t5-encoder (${dir}, ${model.dtype})`;
    this.tokenDim = model.config.dModel;
    this.maxLength = tokenizer.maxLength;
    this.configSha256 = configHash(dir);
    this.tokenizerSha256 = tokenizerHash(tokenizer.dir);
  }

  /**
   * The encoder from `dir` and the tokenizer from `tokenizerDir` (default: the same folder, as on the hub).
   * `maxLength` (default 1024, RDT's tokenizer_max_length): longer instructions are refused, quoted.
   */
  static load(dir: string, opts: EncoderLoadOptions & { tokenizerDir?: string; maxLength?: number } = {}): T5TextEncoder {
    const tokenizer = T5Tokenizer.fromFolder(opts.tokenizerDir ?? dir, { maxLength: opts.maxLength });
    const model = loadT5Encoder(dir, opts);
    if (tokenizer.vocabSize > model.config.vocabSize) {
      model.dispose();
      throw new EncoderError(`${opts.tokenizerDir ?? dir}: the tokenizer has ${tokenizer.vocabSize} tokens but ${dir}/config.json ` +
        `has vocab_size ${model.config.vocabSize}; use the tokenizer that belongs to this T5`);
    }
    return new T5TextEncoder(dir, tokenizer, model);
  }

  /**
   * Tokenize all texts (padded to the longest of them all, as tokenizer(texts, padding='longest')), then
   * encode `batchSize` rows at a time; also returns the padded ids.
   */
  encodeWithIds(instructions: string[], batchSize = 64): { tokens: Tensor; mask: Tensor; batch: TokenBatch } {
    const batch = this.tokenizer.batch(instructions);
    const out = torch.scope(() => {
      const b = instructions.length;
      const ids = torch.tensor(BigInt64Array.from(batch.inputIds.flat(), (v) => BigInt(v)), { shape: [b, batch.length] })
        .to({ device: this.model.device });
      const mask = torch.tensor(Uint8Array.from(batch.attentionMask.flat()), { shape: [b, batch.length] }).to({ device: this.model.device });
      const parts: Tensor[] = [];
      for (let i = 0; i < b; i += batchSize) {
        const n = Math.min(batchSize, b - i);
        parts.push(torch.scope(() => this.model.forward(ids.narrow(0, i, n), mask.narrow(0, i, n)).lastHiddenState.float()));
      }
      return { tokens: parts.length === 1 ? parts[0] : torch.cat(parts, 0), mask: mask.to('bool') };
    });
    return { ...out, batch };
  }

  /**
   * Training's and the policy's encoding: each distinct text encoded alone (no padding inside T5), the rows
   * zero-padded to the longest, as the official RDT pads its precomputed embeddings. A cached batch
   * (text_cache.ts) is therefore this batch bit for bit.
   */
  encode(instructions: string[]): { tokens: Tensor; mask: Tensor } {
    return torch.scope(() => {
      const rows = new Map<string, Tensor>();
      for (const t of instructions) if (!rows.has(t)) rows.set(t, this.encodeWithIds([t], 1).tokens.select(0, 0));
      return padTokenRows(instructions.map((t) => rows.get(t)!));
    });
  }

  dispose(): void {
    this.model.dispose();
  }
}

export class SiglipVisionEncoder implements VisionEncoder {
  readonly isDemo = false;
  readonly name: string;
  readonly tokenDim: number;
  readonly tokensPerImage: number;
  readonly imageSize: number;
  readonly configSha256: string;

  private constructor(readonly dir: string, readonly model: SiglipVisionModel, readonly batchSize: number) {
    this.name = `siglip-vision (${dir}, ${model.dtype})`;
    this.tokenDim = model.config.hiddenSize;
    this.tokensPerImage = model.numPatches;
    this.imageSize = model.config.imageSize;
    this.configSha256 = configHash(dir);
  }

  static load(dir: string, opts: EncoderLoadOptions & { attention?: SiglipAttention; batchSize?: number } = {}): SiglipVisionEncoder {
    return new SiglipVisionEncoder(dir, loadSiglipVision(dir, opts), opts.batchSize ?? 32);
  }

  /** RDT's preprocessing: (n, 3, S, S) float32 pixel values on the CPU. */
  pixelValues(images: Uint8Array, n: number, height: number, width: number): Tensor {
    if (images.length !== n * height * width * 3)
      throw new EncoderError(`images: ${images.length} bytes for ${n} images of ${height}x${width}x3 (expected ${n * height * width * 3})`);
    const s = this.imageSize;
    return torch.tensor(preprocessImages(images, n, height, width, s), { shape: [n, 3, s, s] });
  }

  /** Features of preprocessed pixel values, in batches: (n, P, D) float32. */
  features(pixelValues: Tensor): Tensor {
    const n = pixelValues.shape[0];
    return torch.scope(() => {
      const parts: Tensor[] = [];
      for (let i = 0; i < n; i += this.batchSize)
        parts.push(torch.scope(() => this.model.forward(pixelValues.narrow(0, i, Math.min(this.batchSize, n - i))).lastHiddenState.float()));
      return parts.length === 1 ? parts[0] : torch.cat(parts, 0);
    });
  }

  encode(images: Uint8Array, n: number, height: number, width: number): Tensor {
    return torch.scope(() => this.features(this.pixelValues(images, n, height, width)));
  }

  dispose(): void {
    this.model.dispose();
  }
}
