// The T5 tokenizer (T5TokenizerFast's ids) from a hub folder, on @huggingface/tokenizers (pure JS).
// `tokenizer.json` is used when present; a folder with only `spiece.model` (google/t5-v1_1-xxl) is
// converted in memory the way transformers converts it (spiece.ts). `</s>` is appended, pad id 0,
// and an instruction longer than maxLength tokens is refused (RDT asserts <= 1024; it never truncates
// in training).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { EncoderError, quote } from './errors.js';
import { readSentencePieceModel, t5TokenizerJson, type AddedTokenSpec } from './spiece.js';
import { CharsmapNormalizer, PrecompiledNormalizer, SequenceNormalizer } from './precompiled.js';

export const T5_MAX_LENGTH = 1024;

export interface TokenBatch {
  /** (B, L) token ids, right-padded with padId to the longest text. */
  inputIds: number[][];
  /** (B, L) 1 for real tokens (including `</s>`), 0 for padding. */
  attentionMask: number[][];
  length: number;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new EncoderError(`${path}: not valid JSON (${(e as Error).message}); download the tokenizer folder again`);
  }
}

export class T5Tokenizer {
  readonly padId = 0;
  readonly eosId: number;
  /** Where the vocabulary came from: 'tokenizer.json' or 'spiece.model'. */
  readonly source: 'tokenizer.json' | 'spiece.model';
  readonly #tok: Tokenizer;

  private constructor(readonly dir: string, tokenizerJson: Record<string, unknown>, config: Record<string, unknown>,
    source: 'tokenizer.json' | 'spiece.model', readonly maxLength: number) {
    this.source = source;
    try {
      this.#tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new EncoderError(`${join(dir, source)}: cannot build the tokenizer (${(e as Error).message})`);
    }
    useRealCharsmap(this.#tok, join(dir, source));
    const eos = this.#tok.token_to_id('</s>');
    if (eos === undefined) throw new EncoderError(`${join(dir, source)}: the vocabulary has no '</s>' token; not a T5 tokenizer`);
    this.eosId = eos;
  }

  /** Load from a hub folder holding tokenizer.json and/or spiece.model (tokenizer_config.json optional). */
  static fromFolder(dir: string, opts: { maxLength?: number } = {}): T5Tokenizer {
    const cfgPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
    const maxLength = opts.maxLength ?? T5_MAX_LENGTH;
    const tj = join(dir, 'tokenizer.json');
    if (existsSync(tj)) return new T5Tokenizer(dir, readJson(tj), config, 'tokenizer.json', maxLength);
    const sp = join(dir, 'spiece.model');
    if (!existsSync(sp))
      throw new EncoderError(`${sp}: missing; the T5 tokenizer folder needs spiece.model (or tokenizer.json). ` +
        'Download google/t5-v1_1-xxl (it ships spiece.model) and pass that folder (or the tokenizer folder on its own: --tokenizer DIR)');
    const model = readSentencePieceModel(sp);
    const extraIds = typeof config.extra_ids === 'number' ? config.extra_ids : 100;
    return new T5Tokenizer(dir, t5TokenizerJson(model, extraIds, addedFromConfig(config)), config, 'spiece.model', maxLength);
  }

  get vocabSize(): number {
    return this.#tok.get_vocab(true).size;
  }

  /** Ids of one text, `</s>` appended (T5TokenizerFast(text).input_ids). Over maxLength ids is an error. */
  encode(text: string): number[] {
    const ids = this.#tok.encode(text).ids;
    if (ids.length > this.maxLength)
      throw new EncoderError(`instruction ${quote(text)} is ${ids.length} tokens long, over the T5 limit of ${this.maxLength} ` +
        '(RDT never truncates it); shorten the instruction');
    return ids;
  }

  /** tokenizer(texts, padding='longest'): right padding with padId, mask 1 for real tokens. */
  batch(texts: string[]): TokenBatch {
    const ids = texts.map((t) => this.encode(t));
    const length = Math.max(1, ...ids.map((x) => x.length));
    return {
      inputIds: ids.map((x) => [...x, ...new Array<number>(length - x.length).fill(this.padId)]),
      attentionMask: ids.map((x) => [...new Array<number>(x.length).fill(1), ...new Array<number>(length - x.length).fill(0)]),
      length,
    };
  }
}

/** Swap the library's approximate Precompiled normaliser(s) for ones that read the char map (precompiled.ts). */
function useRealCharsmap(tok: Tokenizer, where: string): void {
  const swap = (n: unknown): unknown => n instanceof PrecompiledNormalizer
    ? new CharsmapNormalizer((n as unknown as { config: { type: 'Precompiled'; precompiled_charsmap: string } }).config, where) : n;
  const t = tok as unknown as { normalizer: unknown };
  if (t.normalizer instanceof SequenceNormalizer) t.normalizer.normalizers = t.normalizer.normalizers.map(swap);
  else t.normalizer = swap(t.normalizer);
}

/** tokenizer_config.json's added_tokens_decoder (written by save_pretrained) as added-token specs. */
function addedFromConfig(config: Record<string, unknown>): AddedTokenSpec[] | undefined {
  const dec = config.added_tokens_decoder;
  if (!dec || typeof dec !== 'object') return undefined;
  return Object.entries(dec as Record<string, Record<string, unknown>>)
    .map(([id, t]) => ({ id: Number(id), content: String(t.content), lstrip: t.lstrip === true, rstrip: t.rstrip === true }))
    .sort((a, b) => a.id - b.id);
}
