// `rdt-libero encode`: run the official condition encoders offline. Texts -> T5 tokens, mask and ids;
// images -> RDT-preprocessed pixel values and SigLIP features. Parses arguments and calls src/encoders.
import { readFileSync } from 'node:fs';
import * as torch from '../engine/index.js';
import type { DType, Tensor } from '../engine/index.js';
import { EncoderError } from '../encoders/errors.js';
import { SiglipVisionEncoder, T5TextEncoder } from '../encoders/official.js';
import { buildTextCache } from '../encoders/text_cache.js';
import { LiberoDataset } from '../data/dataset.js';
import { UsageError } from '../util/errors.js';
import { helpPointer, parseCommandArgs } from './args.js';

const USAGE = `usage: rdt-libero encode --text-encoder DIR --texts FILE.json --out OUT.safetensors [options]
       rdt-libero encode --vision-encoder DIR --images IN.safetensors --out OUT.safetensors [options]
       rdt-libero encode --text-encoder DIR (--dataset-root ROOT [--suites a,b] | --texts FILE.json) --cache FILE [options]

With --cache, T5's tokens of every instruction of the dataset root (or of the texts), plus the empty
instruction of language dropout, are written to FILE (safetensors, one unpadded (L, D) float32 entry
per text, keyed by sha256 of the text and the encoder's identity: config.json and tokenizer hashes and
--dtype). An existing FILE made with the same encoder is extended with the texts it lacks; one made with
another encoder is refused. Training with text_cache: FILE then never loads T5.

Texts (a JSON list of strings) are tokenized with T5's tokenizer (</s> appended, padded to the longest
with id 0, at most 1024 tokens each) and encoded by the T5 encoder; OUT gets
  tokens     (N, L, D) float32   T5EncoderModel last_hidden_state
  mask       (N, L)    uint8     1 = real token (including </s>), 0 = padding
  input_ids  (N, L)    int64
Images (IN's tensor 'images', uint8 (N, H, W, 3) RGB of any size) are padded to a centred square with
(127,127,127), resized bicubic (PIL) to the tower's size, scaled to [-1, 1], and encoded; OUT gets
  pixel_values  (N, 3, S, S) float32
  features      (N, P, D)    float32   SiglipVisionModel last_hidden_state
Both encoders may be given at once (OUT then holds all five tensors).

options:
  --text-encoder DIR    T5 hub folder (config.json + model.safetensors | shards + index | pytorch_model.bin)
  --tokenizer DIR       folder with spiece.model and/or tokenizer.json (default: the text encoder's folder)
  --vision-encoder DIR  SigLIP hub folder (full SigLIP or vision-only)
  --dtype D             float32 (default) or bfloat16
  --device D            cpu (default), cuda, cuda:N
  --batch-size N        texts or images per encoder forward (default 32)
  --attention A         SigLIP attention: eager (default, as transformers' eager path) or sdpa
  --cache FILE          the T5 token cache to make or extend (instead of --out)
  --dataset-root ROOT   with --cache: encode the instruction of every LIBERO file under ROOT
  --suites a,b          with --dataset-root: only these suites (default: all found)
  --instruction-source S  with --dataset-root: filename (default) or problem_info, as the training config's data.instruction_source
`;

function readTexts(path: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${path}: cannot read a JSON list of strings (${(e as Error).message})`);
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string'))
    throw new UsageError(`${path}: expected a non-empty JSON list of strings, e.g. ["pick up the bowl", ""]`);
  return v as string[];
}

function readImages(path: string): Tensor {
  const header = torch.readSafetensorsHeader(path);
  const info = header.tensors.get('images');
  if (!info)
    throw new EncoderError(`${path}: no tensor 'images' (found ${[...header.tensors.keys()].slice(0, 5).join(', ') || 'none'}); ` +
      'store the frames as images, uint8 (N, H, W, 3)');
  if (info.dtype !== 'uint8' || info.shape.length !== 4 || info.shape[3] !== 3 || info.shape.some((d) => d === 0))
    throw new EncoderError(`${path} [images]: is ${info.dtype} [${info.shape}]; expected uint8 (N, H, W, 3) RGB frames ` +
      '(convert float images with round(x * 255) and stack them as NHWC)');
  return torch.loadSafetensors(path, { keys: ['images'] }).tensors.get('images')!;
}

export async function encode(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    command: 'encode', usage: USAGE, required: [],
    options: {
      'text-encoder': { type: 'string' }, tokenizer: { type: 'string' }, texts: { type: 'string' },
      'vision-encoder': { type: 'string' }, images: { type: 'string' }, out: { type: 'string' },
      dtype: { type: 'string', default: 'float32' }, device: { type: 'string', default: 'cpu' },
      'batch-size': { type: 'string', default: '32' }, attention: { type: 'string', default: 'eager' },
      cache: { type: 'string' }, 'dataset-root': { type: 'string' }, suites: { type: 'string' },
      'instruction-source': { type: 'string', default: 'filename' },
    },
  }, args);
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.cache !== undefined) return encodeCache(values);
  if (values['dataset-root'] !== undefined || values.suites !== undefined)
    throw new UsageError(`--dataset-root and --suites go with --cache FILE; ${helpPointer('encode')}`);
  if (values.out === undefined) throw new UsageError(`missing --out OUT.safetensors (or --cache FILE); ${helpPointer('encode')}`);
  const text = values['text-encoder'];
  const vision = values['vision-encoder'];
  const problems: string[] = [];
  if (!text && !vision) problems.push('give --text-encoder (with --texts) or --vision-encoder (with --images)');
  if (text && !values.texts) problems.push('--text-encoder needs --texts FILE.json');
  if (vision && !values.images) problems.push('--vision-encoder needs --images IN.safetensors');
  if (!text && values.texts) problems.push('--texts needs --text-encoder DIR');
  if (!vision && values.images) problems.push('--images needs --vision-encoder DIR');
  if (values.dtype !== 'float32' && values.dtype !== 'bfloat16') problems.push(`--dtype must be float32 or bfloat16, got '${values.dtype}'`);
  if (values.attention !== 'eager' && values.attention !== 'sdpa') problems.push(`--attention must be eager or sdpa, got '${values.attention}'`);
  if (!/^[1-9]\d*$/.test(values['batch-size']!)) problems.push(`--batch-size must be a positive integer, got '${values['batch-size']}'`);
  let texts: string[] = [];
  if (text && values.texts && !problems.length) {
    try {
      texts = readTexts(values.texts);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (problems.length) throw new UsageError(`${problems.join('; ')}; ${helpPointer('encode')}`);
  const opts = { dtype: values.dtype as DType, device: values.device! };
  const out: Record<string, Tensor> = {};
  const t0 = performance.now();
  const notes: string[] = [];
  torch.scope(() => {
    if (text) {
      const enc = T5TextEncoder.load(text, { ...opts, tokenizerDir: values.tokenizer });
      try {
        const { tokens, mask, batch } = enc.encodeWithIds(texts, Number(values['batch-size']));
        out.tokens = tokens.to({ device: 'cpu' });
        out.mask = mask.to({ dtype: 'uint8', device: 'cpu' });
        out.input_ids = torch.tensor(BigInt64Array.from(batch.inputIds.flat(), (v) => BigInt(v)), { shape: [texts.length, batch.length] });
        notes.push(`${texts.length} texts -> tokens [${out.tokens.shape}]`);
      } finally {
        enc.dispose();
      }
    }
    if (vision) {
      const images = readImages(values.images!);
      const [n, h, w] = images.shape;
      const enc = SiglipVisionEncoder.load(vision, { ...opts, attention: values.attention as 'eager', batchSize: Number(values['batch-size']) });
      try {
        const pixels = enc.pixelValues(images.data() as Uint8Array, n, h, w);
        out.pixel_values = pixels;
        out.features = enc.features(pixels).to({ device: 'cpu' });
        notes.push(`${n} images ${h}x${w} -> features [${out.features.shape}]`);
      } finally {
        enc.dispose();
      }
    }
    torch.saveSafetensors(values.out!, out);
  });
  process.stderr.write(`encode: ${notes.join('; ')} (${values.dtype}, ${values.device}) in ` +
    `${((performance.now() - t0) / 1000).toFixed(2)} s -> ${values.out}\n`);
  return 0;
}

/** `encode --cache`: make or extend the T5 token cache with the texts of a dataset root or a JSON list, and "". */
async function encodeCache(values: Record<string, string | undefined>): Promise<number> {
  const problems: string[] = [];
  if (!values['text-encoder']) problems.push('--cache needs --text-encoder DIR');
  if (values['vision-encoder'] || values.images || values.out) problems.push('--cache takes no --vision-encoder, --images or --out (it writes T5 tokens to the cache file)');
  if (!!values['dataset-root'] === !!values.texts) problems.push('--cache needs one of --dataset-root ROOT or --texts FILE.json');
  if (values.suites && !values['dataset-root']) problems.push('--suites needs --dataset-root ROOT');
  if (values.dtype !== 'float32' && values.dtype !== 'bfloat16') problems.push(`--dtype must be float32 or bfloat16, got '${values.dtype}'`);
  const source = values['instruction-source'];
  if (source !== 'filename' && source !== 'problem_info') problems.push(`--instruction-source must be filename or problem_info, got '${source}'`);
  if (problems.length) throw new UsageError(`${problems.join('; ')}; ${helpPointer('encode')}`);
  let texts: string[];
  let from: string;
  if (values.texts) {
    texts = readTexts(values.texts);
    from = values.texts;
  } else {
    // The data layer's discovery and instruction source, as training reads them.
    const ds = await LiberoDataset.open({
      root: values['dataset-root']!, suites: values.suites ? values.suites.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
      instructionSource: source as 'filename',
    });
    texts = [...ds.instructions];
    from = `${ds.files.length} files of ${ds.suites.join(', ')} under ${values['dataset-root']}`;
  }
  const t0 = performance.now();
  const enc = T5TextEncoder.load(values['text-encoder']!, { dtype: values.dtype as DType, device: values.device!, tokenizerDir: values.tokenizer });
  let r: { added: number; kept: number };
  try {
    r = torch.scope(() => buildTextCache(values.cache!, enc, texts));
  } finally {
    enc.dispose();
  }
  process.stderr.write(`encode: ${new Set(texts).size} distinct instructions from ${from} (+ ""): ${r.added} encoded, ${r.kept} already cached ` +
    `(${values.dtype}, ${values.device}) in ${((performance.now() - t0) / 1000).toFixed(2)} s -> ${values.cache}\n`);
  return 0;
}
