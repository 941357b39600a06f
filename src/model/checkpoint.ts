// RDT checkpoints: the hub layout (config.json + pytorch_model.bin or model.safetensors, bf16 or
// fp32), DeepSpeed's mp_rank_00_model_states.pt ("module" key) and the EMA ema/model.safetensors,
// all with the official state-dict keys (rdt-spec.md 1.8, 1.9, 6.3). Loading is strict: every
// missing, unexpected and mis-shaped key is reported at once. We save config.json +
// model.safetensors with the same keys, which the Python hub mixin loads back.
import { writeFileAtomic } from '../util/atomic.js';
import { recordChecksums, verifyChecksum, type VerifyLevel } from '../util/checksums.js';
import { existsSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as torch from '../engine/index.js';
import { nn, type Tensor, type DType, type Device } from '../engine/index.js';
import { parseRdtConfig, hubConfigText, type RdtConfig, type RmsNormVariant } from './config.js';
import { ModelError } from './errors.js';
import { RDTRunner } from './runner.js';

export type WeightsKind = 'safetensors' | 'bin' | 'deepspeed' | 'ema';

/** Where each kind of weights file lives inside a checkpoint directory, in the order 'auto' tries them (the hub mixin prefers safetensors). */
const LAYOUT: [WeightsKind, string][] = [
  ['safetensors', 'model.safetensors'],
  ['bin', 'pytorch_model.bin'],
  ['deepspeed', join('pytorch_model', 'mp_rank_00_model_states.pt')],
  ['deepspeed', 'mp_rank_00_model_states.pt'],
  ['ema', join('ema', 'model.safetensors')],
];

export interface LoadCheckpointOptions {
  /** Model dtype (default float32). Weights stored in another dtype are converted explicitly. */
  dtype?: DType;
  device?: Device;
  /** Which weights of the directory to load (default 'auto': model.safetensors, then pytorch_model.bin, then DeepSpeed, then EMA). */
  weights?: 'auto' | WeightsKind;
  /** Missing and unexpected keys are errors (default true). Shape mismatches always are. */
  strict?: boolean;
  /** Override the RmsNorm formula (the config's `rms_norm`, default timm 1.0.3's). */
  rmsNorm?: RmsNormVariant;
  /** Check the weights against the checksums.json saved beside them (default 'quick'; see src/util/checksums.ts). */
  verify?: VerifyLevel;
  /**
   * A folder of a LoRA run (adapter_model.safetensors beside the weights) holds only the base weights in
   * model.safetensors: loading them alone would silently give the base model. 'refuse' (default): a ModelError
   * with the lora-merge command to run. 'ignore': load the base weights, for callers that add the adapters
   * themselves (lora-merge).
   */
  adapters?: 'refuse' | 'ignore';
}

/** The file a LoRA run saves its adapters in, beside the base weights (src/train/checkpoint.ts writes it). */
export const LORA_ADAPTER_FILE = 'adapter_model.safetensors';

/**
 * The LoRA adapters that belong to the weights in `dir`, if any: `dir/adapter_model.safetensors`, or for an ema/
 * folder its parent's. `checkpoint` is the folder lora-merge takes.
 */
export function loraAdapters(dir: string): { file: string; checkpoint: string } | null {
  const dirs = basename(dir) === 'ema' ? [dir, dirname(dir)] : [dir];
  for (const d of dirs) {
    const file = join(d, LORA_ADAPTER_FILE);
    if (existsSync(file)) return { file, checkpoint: d };
  }
  return null;
}

/** What to do with a LoRA folder: the exact lora-merge command, and the folder to load afterwards. */
export function loraMergeHint(checkpoint: string): string {
  const d = checkpoint.replace(/(.)[\\/]+$/, '$1');
  return `fold them into the weights first: rdt-libero lora-merge --checkpoint ${d} --out ${d}-merged, then load ${d}-merged`;
}

/** The weights file to load from `path` (a checkpoint directory, or a weights file inside one). */
export function findWeights(path: string, weights: 'auto' | WeightsKind = 'auto'): { dir: string; file: string; kind: WeightsKind } {
  if (!existsSync(path)) throw new ModelError(`checkpoint ${path} does not exist`);
  if (statSync(path).isFile()) {
    const kind: WeightsKind = path.endsWith('.safetensors') ? (dirname(path).endsWith('ema') ? 'ema' : 'safetensors')
      : path.endsWith('.bin') ? 'bin' : 'deepspeed';
    return { dir: dirname(path), file: path, kind };
  }
  for (const [kind, rel] of LAYOUT) {
    if (weights !== 'auto' && weights !== kind) continue;
    const file = join(path, rel);
    if (existsSync(file)) return { dir: path, file, kind };
  }
  const wanted = LAYOUT.filter(([k]) => weights === 'auto' || weights === k).map(([, rel]) => rel);
  throw new ModelError(`checkpoint ${path}: no weights found (looked for ${wanted.join(', ')})`);
}

/** config.json of a checkpoint: in its directory or, for ema/ and pytorch_model/ subfolders, the parent. */
export function readCheckpointConfig(dir: string): { config: RdtConfig; path: string } {
  for (const d of [dir, dirname(dir)]) {
    const p = join(d, 'config.json');
    if (!existsSync(p)) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(readFileSync(p, 'utf8'));
    } catch (e) {
      throw new ModelError(`${p}: not valid JSON (${(e as Error).message})`);
    }
    return { config: parseRdtConfig(obj, p), path: p };
  }
  throw new ModelError(`checkpoint ${dir}: no config.json (the hub layout keeps it beside the weights)`);
}

function isStateDictLike(v: unknown): v is Map<unknown, unknown> | Record<string, unknown> {
  return v instanceof Map || (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype);
}

/** A state dict from an unpickled checkpoint: a bare dict, or DeepSpeed's {"module": dict}. */
function stateDictOf(value: unknown, file: string): Map<string, Tensor> {
  if (!isStateDictLike(value)) throw new ModelError(`${file}: the checkpoint does not hold a dict of tensors`);
  let entries: [unknown, unknown][] = value instanceof Map ? [...value.entries()] : Object.entries(value);
  const module = entries.find(([k]) => k === 'module')?.[1];
  if (module !== undefined && isStateDictLike(module)) entries = module instanceof Map ? [...module.entries()] : Object.entries(module);
  const out = new Map<string, Tensor>();
  const bad: string[] = [];
  for (const [k, v] of entries) {
    if (typeof k === 'string' && v instanceof torch.Tensor) out.set(k, v);
    else bad.push(String(k));
  }
  if (bad.length) throw new ModelError(`${file}: not a state dict: ${bad.slice(0, 8).join(', ')}${bad.length > 8 ? ', ...' : ''} are not tensors`);
  return out;
}

/** Read the state dict of a weights file (tensors in the file's dtype, on the CPU). */
export function readStateDict(file: string, kind: WeightsKind): Map<string, Tensor> {
  if (kind === 'safetensors' || kind === 'ema') return torch.loadSafetensors(file).tensors;
  return stateDictOf(torch.loadTorchCheckpoint(file), file);
}

/**
 * Load `state` into `runner` strictly, converting dtypes. The error lists every missing,
 * unexpected and mis-shaped key, says which file, and adds a hint when the weights come from
 * another architecture or another size of RDT.
 */
export function loadRunnerState(runner: RDTRunner, state: Map<string, Tensor>, opts: { source: string; configPath?: string; strict?: boolean }): void {
  const strict = opts.strict ?? true;
  const hasCore = [...state.keys()].some((k) => k.startsWith('model.blocks.'));
  if (!hasCore) {
    const first = [...state.keys()].slice(0, 5).join(', ');
    throw new ModelError(`${opts.source} is not an RDT checkpoint: it has no 'model.blocks.*' keys (${state.size} tensors; first: ${first || 'none'})`);
  }
  try {
    runner.loadStateDict(state, { strict, castDtype: true, source: opts.source });
  } catch (e) {
    if (!(e instanceof nn.StateDictError)) throw e;
    const cfg = runner.config;
    const hint = opts.configPath
      ? `\n  the model was built from ${opts.configPath} (hidden_size ${cfg.rdt.hidden_size}, depth ${cfg.rdt.depth}, ` +
        `num_heads ${cfg.rdt.num_heads}, lang_token_dim ${cfg.lang_token_dim}, img_token_dim ${cfg.img_token_dim}, ` +
        `max_lang_cond_len ${cfg.max_lang_cond_len}, img_cond_len ${cfg.img_cond_len}); do the weights belong to this config?`
      : '';
    throw new ModelError(`${e.message}${hint}${describeWeights(state)}`);
  }
}

/** What the weights' shapes say about their architecture, for error messages. */
function describeWeights(state: Map<string, Tensor>): string {
  const dim = (k: string, i: number) => state.get(k)?.shape[i];
  const blocks = new Set([...state.keys()].map((k) => /^model\.blocks\.(\d+)\./.exec(k)?.[1]).filter((x) => x !== undefined));
  const facts = [
    ['hidden_size', dim('model.x_pos_embed', 2)], ['depth', blocks.size || undefined],
    ['lang_token_dim', dim('lang_adaptor.0.weight', 1) ?? dim('lang_adaptor.weight', 1)],
    ['img_token_dim', dim('img_adaptor.0.weight', 1) ?? dim('img_adaptor.weight', 1)],
    ['max_lang_cond_len', dim('model.lang_cond_pos_embed', 1)], ['img_cond_len', dim('model.img_cond_pos_embed', 1)],
  ].filter(([, v]) => v !== undefined);
  return facts.length ? `\n  the weights have ${facts.map(([k, v]) => `${k} ${v}`).join(', ')} (rdt-1b: hidden_size 2048, depth 28; rdt-170m: 1024, 14)` : '';
}

/** Build the runner a checkpoint describes and load its weights. */
export function loadRdtCheckpoint(path: string, opts: LoadCheckpointOptions = {}): { runner: RDTRunner; config: RdtConfig; weightsFile: string; kind: WeightsKind } {
  const w = findWeights(path, opts.weights ?? 'auto');
  const lora = (opts.adapters ?? 'refuse') === 'refuse' ? loraAdapters(w.dir) : null;
  if (lora) throw new ModelError(`${path}: LoRA adapters (${lora.file}) sit beside the base weights, which alone are not the trained model; ${loraMergeHint(lora.checkpoint)}`);
  const { config, path: configPath } = readCheckpointConfig(w.dir);
  if (opts.rmsNorm) config.rms_norm = opts.rmsNorm;
  verifyChecksum(w.file, opts.verify ?? 'quick');
  const runner = new RDTRunner(config, { dtype: opts.dtype ?? 'float32', device: opts.device, init: 'none' });
  try {
    torch.scope(() => {
      const state = readStateDict(w.file, w.kind);
      loadRunnerState(runner, state, { source: w.file, configPath, strict: opts.strict });
    });
    // The file's tensors were freed above; their blocks fit nothing the model runs later, so give them back.
    torch.cpuMemory.emptyCache();
  } catch (e) {
    runner.dispose();
    throw e;
  }
  return { runner, config, weightsFile: w.file, kind: w.kind };
}

/**
 * Save as the hub layout Python reads: `config.json` (json.dumps(indent=2, sort_keys=True)) and
 * `model.safetensors` with the official keys, optionally cast (e.g. to bfloat16 as the hub files), then the
 * folder's checksums.json (skip with checksums: false when the caller writes more files and records them after).
 */
export function saveRdtCheckpoint(runner: RDTRunner, dir: string, opts: { dtype?: DType; filter?: (key: string) => boolean; checksums?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  torch.scope(() => {
    const state = new Map<string, Tensor>();
    for (const [k, t] of runner.stateDict()) if (!opts.filter || opts.filter(k)) state.set(k, opts.dtype && opts.dtype !== t.dtype ? t.to({ dtype: opts.dtype, device: 'cpu' }) : t.device === 'cpu' ? t : t.to({ device: 'cpu' }));
    torch.saveSafetensors(join(dir, 'model.safetensors'), state, { format: 'pt' });
  });
  writeFileAtomic(join(dir, 'config.json'), hubConfigText(runner.config));
  if (opts.checksums ?? true) recordChecksums(dir);
}
