// The one encoder factory: the condition encoders are built from a recorded identity, by the trainer (from its
// config) and by loadPolicy (from policy.json), so a policy runs with exactly the encoders it was trained with.
// Two kinds: 'demo' (the labelled stand-ins of demo.ts, rebuilt from their sizes, palette and seeds) and 'official'
// (T5 v1.1 + SigLIP from hub folders, identified by their paths and the sha256 of their config.json and tokenizer
// files; a folder whose files hash differently is refused, naming which one differs).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DType, Device } from '../engine/index.js';
import { DemoPaletteEncoder, DemoTextEncoder, DemoVisionEncoder, isPaletteIdentity, type DemoPaletteIdentity, type DemoTextIdentity, type DemoVisionIdentity } from './demo.js';
import { EncoderError } from './errors.js';
import { SiglipVisionEncoder, T5TextEncoder, configHash, tokenizerHash } from './official.js';
import { readHubConfig } from './hub_weights.js';
import { parseSiglipConfig } from './siglip_config.js';
import { parseT5Config } from './t5_config.js';
import { CachedTextEncoder } from './text_cache.js';
import { T5_MAX_LENGTH } from './tokenizer.js';
import type { TextEncoder, VisionEncoder } from './types.js';

/** What an official T5 text encoder is: where it was loaded from and what its files hashed to. */
export interface OfficialTextIdentity {
  kind: 'official';
  /** The hub folder of the encoder (config.json + weights), as given to the run. */
  path: string;
  /** The folder the tokenizer was read from (the encoder's own folder on the hub). */
  tokenizer_path: string;
  token_dim: number;
  /** Longest instruction in tokens (with </s>); longer ones are refused. */
  max_length: number;
  /** The dtype the encoder ran in during training (float32 or bfloat16); the default at load. */
  dtype: 'float32' | 'bfloat16';
  /** sha256 of config.json, and of the tokenizer files (tokenizerHash). */
  config_sha256: string;
  tokenizer_sha256: string;
}

/** What an official SigLIP vision tower is. */
export interface OfficialVisionIdentity {
  kind: 'official';
  path: string;
  token_dim: number;
  tokens_per_image: number;
  image_size: number;
  dtype: 'float32' | 'bfloat16';
  config_sha256: string;
}

/** The identity of a pair of condition encoders, as policy.json records it. */
export interface EncoderIdentity {
  text: DemoTextIdentity | OfficialTextIdentity;
  vision: DemoVisionIdentity | DemoPaletteIdentity | OfficialVisionIdentity;
}

export interface CreateEncoderOptions {
  /** Load the official encoders from these folders instead of the recorded paths (a checkpoint moved machines); still checked against the recorded hashes. */
  dirs?: { text?: string; vision?: string; tokenizer?: string };
  /** Device of the official encoders (default cpu). */
  device?: Device;
  /** Their dtype (default: the recorded one). */
  dtype?: 'float32' | 'bfloat16';
}

/** Image tokens one image gives, by the identity alone. */
export function identityTokensPerImage(v: EncoderIdentity['vision']): number {
  if (v.kind === 'official') return v.tokens_per_image;
  return isPaletteIdentity(v) ? v.palette.length : v.grid * v.grid;
}

const short = (h: string) => h.slice(0, 12);

const FLAG: Record<string, string> = { text: '--text-encoder', vision: '--vision-encoder', tokenizer: '--tokenizer' };

/** Refuse a folder whose files hash differently from the recorded identity (null: absent): one line naming the file. */
function checkHash(part: string, what: string, have: string | null, want: string, recordedFrom: string): void {
  if (have === null)
    throw new EncoderError(`encoders.${part}: ${what} does not exist; the policy was trained with ${recordedFrom}: pass that folder (loadPolicy's encoderDirs.${part}, predict ${FLAG[part]} DIR)`);
  if (have !== want)
    throw new EncoderError(`encoders.${part}: ${what} has sha256 ${short(have)}..., but the policy was trained with ${short(want)}... (${recordedFrom}); ` +
      'these are not the encoders the model was trained with: pass the folder it was trained with');
}

const fileHash = (dir: string) => (existsSync(join(dir, 'config.json')) ? configHash(dir) : null);

function createOfficial(id: { text: OfficialTextIdentity; vision: OfficialVisionIdentity }, opts: CreateEncoderOptions): { text: TextEncoder; vision: VisionEncoder } {
  const textDir = opts.dirs?.text ?? id.text.path;
  // A moved text encoder brings its tokenizer when the tokenizer lived in the same folder.
  const tokDir = opts.dirs?.tokenizer ?? (id.text.tokenizer_path === id.text.path ? textDir : id.text.tokenizer_path);
  const visionDir = opts.dirs?.vision ?? id.vision.path;
  checkHash('text', join(textDir, 'config.json'), fileHash(textDir), id.text.config_sha256, join(id.text.path, 'config.json'));
  checkHash('tokenizer', `the tokenizer files of ${tokDir}`, existsSync(tokDir) ? tokenizerHash(tokDir) : null, id.text.tokenizer_sha256, `the tokenizer of ${id.text.tokenizer_path}`);
  checkHash('vision', join(visionDir, 'config.json'), fileHash(visionDir), id.vision.config_sha256, join(id.vision.path, 'config.json'));
  const device = opts.device ?? 'cpu';
  const text = T5TextEncoder.load(textDir, { tokenizerDir: tokDir, dtype: opts.dtype ?? id.text.dtype, device, maxLength: id.text.max_length });
  try {
    const vision = SiglipVisionEncoder.load(visionDir, { dtype: opts.dtype ?? id.vision.dtype, device });
    return { text, vision };
  } catch (e) {
    text.dispose();
    throw e;
  }
}

/** Build the encoders an identity names. Both halves are of one kind. */
export function createEncoders(id: EncoderIdentity, opts: CreateEncoderOptions = {}): { text: TextEncoder; vision: VisionEncoder } {
  if (id.text.kind !== id.vision.kind)
    throw new EncoderError(`encoders: text kind '${id.text.kind}' and vision kind '${id.vision.kind}' differ; both are 'demo' or both 'official'`);
  if (id.text.kind === 'official') return createOfficial(id as { text: OfficialTextIdentity; vision: OfficialVisionIdentity }, opts);
  const t = id.text as DemoTextIdentity;
  const v = id.vision as DemoVisionIdentity | DemoPaletteIdentity;
  for (const [part, e] of [['text', t], ['vision', v]] as const)
    if (e.kind !== 'demo') throw new EncoderError(`encoders.${part}.kind '${(e as { kind: string }).kind}': known kinds are 'demo' and 'official'`);
  const vision = isPaletteIdentity(v) ? new DemoPaletteEncoder(v.token_dim, v.palette, v.seed) : new DemoVisionEncoder(v.token_dim, v.grid, v.cells, v.seed);
  const text = new DemoTextEncoder(t.token_dim, t.max_length, t.vocab, t.seed);
  return { text, vision };
}

/** Load the official encoders from folders (the trainer's path): frozen, on `device`, in `dtype`. */
export function loadOfficialEncoders(dirs: { text: string; vision: string; tokenizer?: string | null }, opts: { device?: Device; dtype: 'float32' | 'bfloat16'; maxLength?: number }): { text: T5TextEncoder; vision: SiglipVisionEncoder } {
  const text = T5TextEncoder.load(dirs.text, { tokenizerDir: dirs.tokenizer ?? undefined, dtype: opts.dtype, device: opts.device, maxLength: opts.maxLength });
  try {
    return { text, vision: SiglipVisionEncoder.load(dirs.vision, { dtype: opts.dtype, device: opts.device }) };
  } catch (e) {
    text.dispose();
    throw e;
  }
}

const officialDtype = (d: DType, what: string): 'float32' | 'bfloat16' => {
  if (d !== 'float32' && d !== 'bfloat16') throw new EncoderError(`${what} runs in ${d}; only float32 and bfloat16 can be recorded`);
  return d;
};

/** The identity of live encoders (to record what a run trained with). Encoders the factory cannot rebuild are refused. */
export function encoderIdentity(enc: { text: TextEncoder; vision: VisionEncoder }): EncoderIdentity {
  const { text, vision } = enc;
  if (text instanceof DemoTextEncoder && (vision instanceof DemoVisionEncoder || vision instanceof DemoPaletteEncoder))
    return { text: text.identity(), vision: vision.identity() };
  if (text instanceof T5TextEncoder && vision instanceof SiglipVisionEncoder)
    return {
      text: {
        kind: 'official', path: text.dir, tokenizer_path: text.tokenizer.dir, token_dim: text.tokenDim, max_length: text.maxLength,
        dtype: officialDtype(text.model.dtype, text.name), config_sha256: text.configSha256, tokenizer_sha256: text.tokenizerSha256,
      },
      vision: {
        kind: 'official', path: vision.dir, token_dim: vision.tokenDim, tokens_per_image: vision.tokensPerImage, image_size: vision.imageSize,
        dtype: officialDtype(vision.model.dtype, vision.name), config_sha256: vision.configSha256,
      },
    };
  if (text instanceof CachedTextEncoder && vision instanceof SiglipVisionEncoder)
    // The cache stands for the T5 folders it was made with (their hashes were checked when it was read).
    return {
      text: {
        kind: 'official', path: text.dir, tokenizer_path: text.tokenizerDir, token_dim: text.tokenDim, max_length: text.maxLength,
        dtype: text.identity.dtype, config_sha256: text.identity.config_sha256, tokenizer_sha256: text.identity.tokenizer_sha256,
      },
      vision: {
        kind: 'official', path: vision.dir, token_dim: vision.tokenDim, tokens_per_image: vision.tokensPerImage, image_size: vision.imageSize,
        dtype: officialDtype(vision.model.dtype, vision.name), config_sha256: vision.configSha256,
      },
    };
  throw new EncoderError(`cannot record the identity of encoders '${text.name}' / '${vision.name}': the factory knows the demo pair and the official T5 + SigLIP pair`);
}

/**
 * The identity of official encoders described by their folders alone (config.json read, nothing loaded): for a
 * model folder without policy.json (the hub rdt-1b) whose conventions are given by hand.
 */
export function officialEncoderIdentity(dirs: { text: string; vision: string; tokenizer?: string }, opts: { dtype?: 'float32' | 'bfloat16'; maxLength?: number } = {}): EncoderIdentity {
  const t5 = parseT5Config(readHubConfig(dirs.text), join(dirs.text, 'config.json'));
  const sig = parseSiglipConfig(readHubConfig(dirs.vision), join(dirs.vision, 'config.json'));
  const tok = dirs.tokenizer ?? dirs.text;
  const side = sig.gridSize;
  const dtype = opts.dtype ?? 'float32';
  return {
    text: {
      kind: 'official', path: dirs.text, tokenizer_path: tok, token_dim: t5.dModel, max_length: opts.maxLength ?? T5_MAX_LENGTH,
      dtype, config_sha256: configHash(dirs.text), tokenizer_sha256: tokenizerHash(tok),
    },
    vision: { kind: 'official', path: dirs.vision, token_dim: sig.hiddenSize, tokens_per_image: side * side, image_size: sig.imageSize, dtype, config_sha256: configHash(dirs.vision) },
  };
}
