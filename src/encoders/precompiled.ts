// The `Precompiled` normaliser of SentencePiece tokenizers (T5's `nmt_nfkc`), reading the char map
// itself. @huggingface/tokenizers approximates this normaliser with NFKC plus a few rules and ignores
// the map; this one follows what Hugging Face tokenizers (the Rust library behind T5TokenizerFast) does.
//
// The map is [u32 LE trie size][darts-clone double-array trie: u32 units][NUL-terminated replacement
// strings]. The trie maps UTF-8 byte sequences to offsets of their replacements. Hugging Face's rule:
// each extended grapheme cluster shorter than 6 bytes is looked up as a whole, and when some prefix of it
// is a key, the whole cluster is replaced by the replacement of the shortest such key; otherwise each code
// point is looked up on its own and replaced, or kept.
import * as tokenizers from '@huggingface/tokenizers';
import { EncoderError } from './errors.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

export class Charsmap {
  readonly #units: Uint32Array;
  readonly #blob: Uint8Array;
  readonly #cache = new Map<number, string>();

  constructor(bytes: Uint8Array, where: string) {
    if (bytes.length < 4) throw new EncoderError(`${where}: the precompiled char map is too short; download the tokenizer again`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize % 4 || 4 + trieSize > bytes.length)
      throw new EncoderError(`${where}: the precompiled char map is corrupt (trie of ${trieSize} bytes in ${bytes.length})`);
    this.#units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.#units.length; i++) this.#units[i] = dv.getUint32(4 + i * 4, true);
    this.#blob = bytes.subarray(4 + trieSize);
  }

  /** The replacement of the shortest key that is a prefix of `key`, or null (darts common prefix search, first hit). */
  lookup(key: Uint8Array): string | null {
    const u = this.#units;
    const offset = (unit: number) => (unit >>> 10) << ((unit & 512) >>> 6);
    let pos = 0;
    if (!u.length) return null;
    pos ^= offset(u[pos]);
    for (const c of key) {
      if (c === 0) return null;
      pos ^= c;
      if (pos >= u.length) return null;
      const unit = u[pos];
      if ((unit & 0x800000ff) >>> 0 !== c) return null;
      pos ^= offset(unit);
      if ((unit >>> 8) & 1) return this.#replacement(u[pos] & 0x7fffffff);
    }
    return null;
  }

  #replacement(at: number): string {
    let s = this.#cache.get(at);
    if (s === undefined) {
      let end = at;
      while (end < this.#blob.length && this.#blob[end] !== 0) end++;
      s = dec.decode(this.#blob.subarray(at, end));
      this.#cache.set(at, s);
    }
    return s;
  }
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

export function normalizeWithCharsmap(map: Charsmap, text: string): string {
  let out = '';
  for (const { segment } of graphemes.segment(text)) {
    const bytes = enc.encode(segment);
    if (bytes.length < 6) {
      const r = map.lookup(bytes);
      if (r !== null) {
        out += r;
        continue;
      }
    }
    for (const ch of segment) {
      const r = map.lookup(enc.encode(ch));
      out += r ?? ch;
    }
  }
  return out;
}

// The package's .d.ts files use extensionless relative imports, which NodeNext resolution cannot follow
// for its normalizer classes; the class is exported at run time, so it is typed here.
interface NormalizerLike {
  normalize(text: string): string;
}
export const PrecompiledNormalizer = (tokenizers as unknown as { PrecompiledNormalizer: new (config: object) => NormalizerLike })
  .PrecompiledNormalizer;
export const SequenceNormalizer = (tokenizers as unknown as { SequenceNormalizer: new (config: object) => NormalizerLike & { normalizers: unknown[] } })
  .SequenceNormalizer;

/** The library's Precompiled normaliser with its approximation replaced by the real char map. */
export class CharsmapNormalizer extends PrecompiledNormalizer {
  readonly #map: Charsmap;
  constructor(config: { type: 'Precompiled'; precompiled_charsmap: string }, where: string) {
    super(config);
    this.#map = new Charsmap(Buffer.from(config.precompiled_charsmap, 'base64'), where);
  }
  override normalize(text: string): string {
    return normalizeWithCharsmap(this.#map, text);
  }
}
