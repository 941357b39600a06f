// The T5 language-embedding cache: one safetensors file holding, per distinct instruction, T5's tokens
// (L_i, D) float32 without padding, under the name sha256(text + encoder identity). The identity (sha256
// of config.json and of the tokenizer files, and the dtype the encoder ran in) is recorded in the
// metadata; a cache is only used with the identity it was made with. `rdt-libero encode --cache`
// writes it (always with the empty instruction of language dropout), extends it when texts are added,
// and training then reads it instead of loading T5 (T5-XXL is ~9.5 GB in bfloat16).
//
// Live encoding (T5TextEncoder.encode) encodes each distinct text alone and pads with zeros, as the
// official RDT does with its precomputed embeddings, so a cached batch is the live batch bit for bit.
import { createHash } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as torch from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { fsyncPath } from '../util/atomic.js';
import { EncoderError, quote } from './errors.js';
import { configHash, padTokenRows, tokenizerHash, type T5TextEncoder } from './official.js';
import type { TextEncoder } from './types.js';

/** What decides T5's tokens for a text: the weights' config, the tokenizer files, and the dtype it ran in. */
export interface TextCacheIdentity {
  config_sha256: string;
  tokenizer_sha256: string;
  dtype: 'float32' | 'bfloat16';
}

const FORMAT = 'rdt-libero t5 text cache v1';

/** The tensor name of `text` in a cache made with `id`. */
export function textCacheKey(text: string, id: TextCacheIdentity): string {
  return createHash('sha256').update(`${id.config_sha256}\0${id.tokenizer_sha256}\0${id.dtype}\0${text}`).digest('hex');
}

/** The identity of T5 folders by hashing their files alone (nothing is loaded). */
export function textCacheIdentityOf(dirs: { text: string; tokenizer?: string | null }, dtype: 'float32' | 'bfloat16'): TextCacheIdentity {
  return { config_sha256: configHash(dirs.text), tokenizer_sha256: tokenizerHash(dirs.tokenizer ?? dirs.text), dtype };
}

const sameIdentity = (a: TextCacheIdentity, b: TextCacheIdentity) =>
  a.config_sha256 === b.config_sha256 && a.tokenizer_sha256 === b.tokenizer_sha256 && a.dtype === b.dtype;

/** T5 tokens of one text alone, (L, D) float32 on the encoder's device (no padding, </s> included). */
export function encodeOne(enc: T5TextEncoder, text: string): Tensor {
  return torch.scope(() => {
    const { tokens } = enc.encodeWithIds([text], 1);
    return tokens.select(0, 0).contiguous();
  });
}

/** A cache file read into memory: text -> tokens (L, D) float32 on the CPU. */
export class TextCache {
  private constructor(
    readonly path: string, readonly identity: TextCacheIdentity, readonly tokenDim: number, readonly entries: Map<string, Tensor>,
    /** The device kind(s) the tokens were computed on (bf16 results differ between CPU and CUDA kernels). */
    readonly device: string,
  ) {}

  /** Read `path`; `want` (the encoder the run would use) must equal the recorded identity. */
  static read(path: string, want?: TextCacheIdentity, fix = 'remake it with rdt-libero encode --cache'): TextCache {
    if (!existsSync(path)) throw new EncoderError(`text cache ${path} does not exist; ${fix}`);
    const { tensors, metadata } = torch.loadSafetensors(path);
    const fail = (why: string): never => {
      for (const t of tensors.values()) t.dispose();
      throw new EncoderError(`text cache ${path}: ${why}; ${fix}`);
    };
    if (metadata.format !== FORMAT) fail(`not a T5 text cache (metadata format '${metadata.format ?? ''}', expected '${FORMAT}')`);
    let id: TextCacheIdentity;
    let texts: string[];
    try {
      id = JSON.parse(metadata.identity) as TextCacheIdentity;
      texts = JSON.parse(metadata.texts) as string[];
    } catch {
      return fail('unreadable identity or texts metadata');
    }
    if (want && !sameIdentity(id, want))
      fail(`made with another text encoder (config ${id.config_sha256.slice(0, 12)}..., tokenizer ${id.tokenizer_sha256.slice(0, 12)}..., ${id.dtype}), ` +
        `not this one (config ${want.config_sha256.slice(0, 12)}..., tokenizer ${want.tokenizer_sha256.slice(0, 12)}..., ${want.dtype})`);
    const entries = new Map<string, Tensor>();
    for (const text of texts) {
      const t = tensors.get(textCacheKey(text, id));
      if (!t) fail(`no tokens for ${quote(text)} listed in its metadata`);
      entries.set(text, t!);
    }
    // Entries no listed text names (none in a file written here) are freed.
    const kept = new Set(entries.values());
    for (const t of tensors.values()) if (!kept.has(t)) t.dispose();
    return new TextCache(path, id, Number(metadata.token_dim), entries, metadata.device ?? 'unknown');
  }

  /** Texts of `texts` not in the cache (distinct, in order). */
  missing(texts: Iterable<string>): string[] {
    return [...new Set(texts)].filter((t) => !this.entries.has(t));
  }

  dispose(): void {
    for (const t of this.entries.values()) t.dispose();
    this.entries.clear();
  }
}

/** Write a cache atomically (temporary file in the same folder, fsync, rename). */
function writeCache(path: string, id: TextCacheIdentity, tokenDim: number, entries: Map<string, Tensor>, device: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  const tensors: Record<string, Tensor> = {};
  for (const [text, t] of entries) tensors[textCacheKey(text, id)] = t;
  try {
    torch.saveSafetensors(tmp, tensors, { format: FORMAT, identity: JSON.stringify(id), token_dim: String(tokenDim), device, texts: JSON.stringify([...entries.keys()]) });
    fsyncPath(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncPath(dirname(path));
}

/**
 * Make or extend the cache at `path` so it holds every text of `texts` and "" with `enc`: texts already
 * there are kept (not re-encoded); a cache made with another encoder is refused. Returns the counts.
 */
export function buildTextCache(path: string, enc: T5TextEncoder, texts: string[]): { added: number; kept: number } {
  const id: TextCacheIdentity = { config_sha256: enc.configSha256, tokenizer_sha256: enc.tokenizerSha256, dtype: enc.model.dtype as TextCacheIdentity['dtype'] };
  if (id.dtype !== 'float32' && id.dtype !== 'bfloat16') throw new EncoderError(`text cache: the encoder runs in ${id.dtype}; use float32 or bfloat16`);
  const old = existsSync(path) ? TextCache.read(path, id, `delete it or give another --cache file for this encoder`) : null;
  const entries = new Map<string, Tensor>(old?.entries ?? []);
  const want = [...new Set(['', ...texts])].filter((t) => !entries.has(t));
  const made: Tensor[] = [];
  try {
    for (const t of want) {
      const row = torch.scope(() => encodeOne(enc, t).to({ device: 'cpu' }));
      made.push(row);
      entries.set(t, row);
    }
    const kind = enc.model.device.split(':')[0];
    const device = !old || old.device.split(',').includes(kind) ? old?.device ?? kind : `${old.device},${kind}`;
    if (want.length || !old) writeCache(path, id, enc.tokenDim, entries, device);
    return { added: want.length, kept: entries.size - want.length };
  } finally {
    for (const t of made) t.dispose();
    old?.dispose();
  }
}

/**
 * A TextEncoder over a cache: no T5 in memory. Carries the identity of the T5 folders it stands for, so
 * the run records the same encoders as a live one. A text not in the cache is refused in one line.
 */
export class CachedTextEncoder implements TextEncoder {
  readonly isDemo = false;
  readonly name: string;

  constructor(
    readonly cache: TextCache,
    /** The T5 folders (only hashed) and the longest instruction in tokens, as T5TextEncoder has them. */
    readonly dir: string,
    readonly tokenizerDir: string,
    readonly maxLength: number,
    readonly device = 'cpu',
  ) {
    this.name = `t5-encoder cache (${cache.path}, ${cache.identity.dtype})`;
  }

  get tokenDim(): number {
    return this.cache.tokenDim;
  }

  get identity(): TextCacheIdentity {
    return this.cache.identity;
  }

  /** Refuse (one line naming the cache and what to run) when any of `texts` is not cached. */
  requireAll(texts: Iterable<string>, what = 'the instruction'): void {
    const miss = this.cache.missing(texts);
    if (miss.length)
      throw new EncoderError(`text cache ${this.cache.path} lacks ${what} ${miss.slice(0, 3).map((t) => quote(t)).join(', ')}` +
        `${miss.length > 3 ? ` (and ${miss.length - 3} more)` : ''}; run rdt-libero encode --text-encoder ${this.dir} --dataset-root ROOT --cache ${this.cache.path} to extend it`);
  }

  encode(instructions: string[]): { tokens: Tensor; mask: Tensor } {
    this.requireAll(instructions);
    for (const t of new Set(instructions)) {
      const n = this.cache.entries.get(t)!.shape[0];
      if (n > this.maxLength)
        throw new EncoderError(`instruction ${quote(t)} is ${n} tokens (with </s>) in ${this.cache.path}, over the maximum ${this.maxLength}; shorten it`);
    }
    return torch.scope(() => {
      const out = padTokenRows(instructions.map((t) => this.cache.entries.get(t)!));
      return this.device === 'cpu' ? out : { tokens: out.tokens.to({ device: this.device }), mask: out.mask.to({ device: this.device }) };
    });
  }

  dispose(): void {
    this.cache.dispose();
  }
}
