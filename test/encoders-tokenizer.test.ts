// The T5 tokenizer against Hugging Face T5TokenizerFast on every fixture case, from tokenizer.json and
// from spiece.model alone (converted in memory); padding='longest' batches; the 1024-token limit.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { T5Tokenizer } from '../src/encoders/tokenizer.js';
import { readSentencePieceModel, t5TokenizerJson } from '../src/encoders/spiece.js';
import { EncoderError } from '../src/encoders/errors.js';
import { RdtError } from '../src/util/errors.js';
import { Charsmap, normalizeWithCharsmap } from '../src/encoders/precompiled.js';
import { enc, longCase, scratch, tokenizerCases, type TokenizerCase } from './helpers/encoder-fixtures.js';

type TokenizerCaseWithNorm = TokenizerCase & { normalized_sentencepiece: string };

const cases = tokenizerCases();
const tmp = scratch('rdt-tok-');
after(tmp.clean);
// A hub folder without tokenizer.json (google/t5-v1_1-xxl's layout), and one with spiece.model only.
const spOnly = join(tmp.dir, 'spiece-only');
mkdirSync(spOnly);
for (const f of ['spiece.model', 'tokenizer_config.json', 'special_tokens_map.json']) cpSync(enc('tokenizer', f), join(spOnly, f));
const bare = join(tmp.dir, 'bare');
mkdirSync(bare);
cpSync(enc('tokenizer', 'spiece.model'), join(bare, 'spiece.model'));

const folders: [string, string, string][] = [
  ['tokenizer.json', enc('tokenizer'), 'tokenizer.json'],
  ['spiece.model + tokenizer_config.json', spOnly, 'spiece.model'],
  ['spiece.model alone', bare, 'spiece.model'],
];

for (const [what, dir, source] of folders) {
  test(`ids equal T5TokenizerFast on every case (${what})`, () => {
    const tok = T5Tokenizer.fromFolder(dir, { maxLength: Number.MAX_SAFE_INTEGER });
    assert.equal(tok.source, source);
    const wrong = cases.cases.filter((c) => JSON.stringify(tok.encode(c.text)) !== JSON.stringify(c.input_ids_fast));
    assert.deepEqual(wrong.map((c) => c.kind), [], 'cases whose ids differ from input_ids_fast');
    assert.ok(cases.cases.length > 0);
  });

  test(`padding='longest' batch equals the fixture (${what})`, () => {
    const b = T5Tokenizer.fromFolder(dir).batch(cases.batch.texts);
    assert.deepEqual(b.inputIds, cases.batch.input_ids);
    assert.deepEqual(b.attentionMask, cases.batch.attention_mask);
  });
}

test('where slow and fast tokenizers disagree, we give the fast ids (documented in docs/encoders.md)', () => {
  const tok = T5Tokenizer.fromFolder(enc('tokenizer'));
  const disagree = cases.cases.filter((c) => !c.slow_fast_agree);
  assert.equal(disagree.length, cases.slow_fast_disagreements.length);
  for (const c of disagree) {
    assert.deepEqual(tok.encode(c.text), c.input_ids_fast);
    assert.notDeepEqual(tok.encode(c.text), c.input_ids_slow);
  }
});

test('spiece.model converts to the vocabulary and normaliser of tokenizer.json', () => {
  const ref = JSON.parse(readFileSync(enc('tokenizer', 'tokenizer.json'), 'utf8'));
  const cfg = JSON.parse(readFileSync(enc('tokenizer', 'tokenizer_config.json'), 'utf8'));
  const ours = t5TokenizerJson(readSentencePieceModel(enc('tokenizer', 'spiece.model')), cfg.extra_ids ?? 100) as Record<string, any>;
  assert.equal(ours.model.unk_id, ref.model.unk_id);
  assert.equal(ours.model.vocab.length, ref.model.vocab.length);
  for (let i = 0; i < ref.model.vocab.length; i++) {
    assert.equal(ours.model.vocab[i][0], ref.model.vocab[i][0], `piece ${i}`);
    assert.equal(Math.fround(ours.model.vocab[i][1]), Math.fround(ref.model.vocab[i][1]), `score of piece ${i}`);
  }
  assert.deepEqual(ours.normalizer, ref.normalizer);
  assert.deepEqual(ours.pre_tokenizer, ref.pre_tokenizer);
  assert.deepEqual(ours.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content]),
    ref.added_tokens.map((t: { id: number; content: string }) => [t.id, t.content]));
});

test('an instruction over the model_max_length is an EncoderError that quotes it', () => {
  const tok = T5Tokenizer.fromFolder(enc('tokenizer'));
  assert.equal(tok.maxLength, cases.model_max_length);
  const long = longCase(cases.cases, cases.model_max_length);
  const n = long.ids?.length ?? T5Tokenizer.fromFolder(enc('tokenizer'), { maxLength: Number.MAX_SAFE_INTEGER }).encode(long.text).length;
  assert.ok(n > cases.model_max_length);
  assert.throws(() => tok.encode(long.text), (e: Error) => {
    assert.ok(e instanceof EncoderError && e instanceof RdtError);
    assert.match(e.message, new RegExp(`${n} tokens long, over the T5 limit of ${cases.model_max_length}`));
    assert.ok(e.message.includes(JSON.stringify(long.text).slice(0, 40)), 'the message quotes the instruction');
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  // Exactly at the limit is accepted.
  const exact = T5Tokenizer.fromFolder(enc('tokenizer'), { maxLength: n });
  assert.equal(exact.encode(long.text).length, n);
});

test('a folder with neither spiece.model nor tokenizer.json names spiece.model', () => {
  const dir = join(tmp.dir, 'empty');
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
  assert.throws(() => T5Tokenizer.fromFolder(dir), (e: Error) =>
    e instanceof EncoderError && e.message.includes(join(dir, 'spiece.model')) && /missing/.test(e.message) && !e.message.includes('\n'));
  writeFileSync(join(dir, 'spiece.model'), 'not a protobuf');
  assert.throws(() => T5Tokenizer.fromFolder(dir), (e: Error) => e instanceof EncoderError && /not a valid SentencePiece model/.test(e.message));
});

test('the char-map normaliser gives sentencepiece\'s normalised text on every case', () => {
  const tj = JSON.parse(readFileSync(enc('tokenizer', 'tokenizer.json'), 'utf8'));
  const pre = (tj.normalizer.normalizers ?? [tj.normalizer]).find((n: { type: string }) => n.type === 'Precompiled');
  const map = new Charsmap(Buffer.from(pre.precompiled_charsmap, 'base64'), 'tokenizer.json');
  const all = tokenizerCases().cases as (TokenizerCaseWithNorm)[];
  const wrong = all.filter((c) => {
    // sentencepiece's own whitespace rules (remove_extra_whitespaces, dummy prefix, spaces as U+2581)
    const t = normalizeWithCharsmap(map, c.text).replace(/^ +| +$/g, '').replace(/ +/g, ' ');
    return (t ? `\u2581${t.replace(/ /g, '\u2581')}` : '') !== c.normalized_sentencepiece;
  });
  assert.deepEqual(wrong.map((c) => c.kind), []);
});
