// A SentencePiece model file (`spiece.model`, a serialized sentencepiece.ModelProto) turned into the
// `tokenizer.json` object that T5TokenizerFast builds from it (transformers' T5 converter): the unigram
// vocabulary with its scores, then the extra-id sentinels <extra_id_{n-1}> .. <extra_id_0>; the
// nmt_nfkc precompiled char map, right strip and run-of-spaces replacement as the normaliser; Metaspace
// pre-tokenizer; `</s>` appended. Only the protobuf fields this needs are decoded.
import { readFileSync } from 'node:fs';
import { EncoderError } from './errors.js';

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  /** TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  unkId: number;
  byteFallback: boolean;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
}

class Reader {
  pos: number;
  constructor(readonly buf: Uint8Array, readonly file: string, readonly start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.corrupt();
      const b = this.buf[this.pos++];
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 128;
    }
    throw this.corrupt();
  }
  corrupt(): EncoderError {
    return new EncoderError(`${this.file}: not a valid SentencePiece model (protobuf ends or breaks at byte ${this.pos}); ` +
      'download spiece.model again');
  }
  /** Each field as (number, wire type, value or [start, end) of a length-delimited payload). */
  *fields(): Generator<{ no: number; wire: number; v: number; s: number; e: number }> {
    while (this.pos < this.end) {
      const key = this.varint();
      const no = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 0) yield { no, wire, v: this.varint(), s: 0, e: 0 };
      else if (wire === 1) { this.skip(8); yield { no, wire, v: 0, s: this.pos - 8, e: this.pos }; }
      else if (wire === 5) { this.skip(4); yield { no, wire, v: 0, s: this.pos - 4, e: this.pos }; }
      else if (wire === 2) {
        const n = this.varint();
        this.skip(n);
        yield { no, wire, v: 0, s: this.pos - n, e: this.pos };
      } else throw this.corrupt();
    }
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw this.corrupt();
    this.pos += n;
  }
}

/** Decode the parts of a ModelProto that tokenization needs. */
export function readSentencePieceModel(path: string): SentencePieceModel {
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch {
    throw new EncoderError(`${path}: cannot read the SentencePiece model; the T5 tokenizer folder must hold spiece.model ` +
      '(or tokenizer.json), as google/t5-v1_1-xxl ships it');
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const m: SentencePieceModel = {
    pieces: [], modelType: 1, unkId: 0, byteFallback: false, precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true, removeExtraWhitespaces: true,
  };
  for (const f of new Reader(buf, path).fields()) {
    if (f.no === 1 && f.wire === 2) {
      const p = { piece: '', score: 0, type: 1 };
      for (const g of new Reader(buf, path, f.s, f.e).fields()) {
        if (g.no === 1 && g.wire === 2) p.piece = utf8.decode(buf.subarray(g.s, g.e));
        else if (g.no === 2 && g.wire === 5) p.score = dv.getFloat32(g.s, true);
        else if (g.no === 3 && g.wire === 0) p.type = g.v;
      }
      m.pieces.push(p);
    } else if (f.no === 2 && f.wire === 2) {
      for (const g of new Reader(buf, path, f.s, f.e).fields()) {
        if (g.no === 3 && g.wire === 0) m.modelType = g.v;
        else if (g.no === 40 && g.wire === 0) m.unkId = g.v;
        else if (g.no === 35 && g.wire === 0) m.byteFallback = g.v !== 0;
      }
    } else if (f.no === 3 && f.wire === 2) {
      for (const g of new Reader(buf, path, f.s, f.e).fields()) {
        if (g.no === 2 && g.wire === 2) m.precompiledCharsmap = buf.subarray(g.s, g.e);
        else if (g.no === 3 && g.wire === 0) m.addDummyPrefix = g.v !== 0;
        else if (g.no === 4 && g.wire === 0) m.removeExtraWhitespaces = g.v !== 0;
      }
    }
  }
  if (m.pieces.length === 0) throw new EncoderError(`${path}: the SentencePiece model has no pieces; download spiece.model again`);
  if (m.modelType !== 1)
    throw new EncoderError(`${path}: SentencePiece model_type ${m.modelType} is not unigram (1); T5 tokenizers are unigram`);
  return m;
}

export interface AddedTokenSpec {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
}

/**
 * The tokenizer.json object T5TokenizerFast would write for this model with `extraIds` sentinels.
 * `added` overrides the added-token flags (from tokenizer_config.json's added_tokens_decoder).
 */
export function t5TokenizerJson(m: SentencePieceModel, extraIds: number, added?: AddedTokenSpec[]): Record<string, unknown> {
  const vocab: [string, number][] = m.pieces.map((p) => [p.piece, p.score]);
  for (let i = extraIds - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0]);
  const specials = ['<pad>', '</s>', '<unk>'];
  const addedTokens = added ?? [
    ...m.pieces.flatMap((p, id) => (p.type === 2 || p.type === 3) && specials.includes(p.piece)
      ? [{ id, content: p.piece, lstrip: false, rstrip: false }] : []),
    ...Array.from({ length: extraIds }, (_, k) => ({ id: m.pieces.length + k, content: `<extra_id_${extraIds - 1 - k}>`, lstrip: true, rstrip: true })),
  ];
  const eosId = vocab.findIndex(([p]) => p === '</s>');
  const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: m.addDummyPrefix ? 'always' : 'never', split: true };
  const normalizers: Record<string, unknown>[] = [];
  if (m.precompiledCharsmap.length)
    normalizers.push({ type: 'Precompiled', precompiled_charsmap: Buffer.from(m.precompiledCharsmap).toString('base64') });
  if (m.removeExtraWhitespaces) {
    normalizers.push({ type: 'Strip', strip_left: false, strip_right: true });
    normalizers.push({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: '\u2581' });
  }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens.map((t) => ({ ...t, single_word: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: metaspace,
    post_processor: eosId < 0 ? null : {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [eosId], tokens: ['</s>'] } },
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: m.unkId, vocab, byte_fallback: m.byteFallback },
  };
}
