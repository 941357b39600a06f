// What a run saves and resumes from, in one place. output_dir/checkpoint-N/ (listed by policy/checkpoints.ts) holds:
// - the model folder: the hub layout (config.json + model.safetensors with the base weights, which Python loads as
//   it is) plus, with LoRA, adapter_model.safetensors (rdt-libero lora-merge folds them in); its ema/ twin;
// - the policy.json that makes each model folder self-describing (PolicyFolderWriter), and the files of any other
//   registered model-folder writer (hooks.ts);
// - the run state: the AdamW state and float32 masters (training_state.{json,safetensors}: a JSON skeleton whose
//   tensors are {"__tensor__": key} into the safetensors file, PyTorch's layout, readable from Python), the
//   counters (trainer_state.json, written last: it marks the checkpoint complete) and run_config.yaml.
// Each checkpoint is written to a temporary sibling and renamed into place when complete, so a run killed at any
// moment leaves the previous complete checkpoint usable; checkpoints_total_limit deletes the oldest (the official
// trainer never deletes). final/ is a model folder alone. No generator is saved: every training draw is keyed by
// (seed, step, sample) (sample_rng.ts), so the step and the loader position are all a resume needs to draw the same.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import * as torch from '../engine/index.js';
import { Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../engine/io/index.js';
import { hubConfigText, type RdtConfig } from '../model/config.js';
import { loadRunnerState, saveRdtCheckpoint } from '../model/checkpoint.js';
import type { RDTRunner } from '../model/runner.js';
import { CHECKPOINT_NAME as NAME, TRAINER_STATE, listCheckpoints, type CheckpointRef } from '../policy/checkpoints.js';
import { policyConventions, writePolicyFile, type PolicyConventions } from '../policy/index.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { recordChecksums, verifyFolder } from '../util/checksums.js';
import type { TrainParts } from './build.js';
import type { Ema } from './ema.js';
import { ConfigError, TrainError } from './errors.js';
import type { ModelFolderKind, ModelFolderWriter, ResolvedHooks, TrainContext } from './hooks.js';
import { isLoraKey, loraStateDict } from './lora.js';
import { readJsonFile } from './run_folder.js';
import type { FullState, Zero2 } from './dist/zero.js';

export const RUN_CONFIG = 'run_config.yaml';
export const FINAL_DIR = 'final';
export const WEIGHTS = 'model.safetensors';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const EMA_DIR = 'ema';
/** training_state.{json,safetensors}: the tensors of the run state, in PyTorch's optimizer layout. */
const TRAINING_STATE = 'training_state';

// ---- the checkpoint-N folders of output_dir ----

/** Resolve `--resume_from_checkpoint latest|PATH` to a checkpoint directory (or null: start fresh). */
export function resolveResume(outputDir: string, spec: string | null): CheckpointRef | null {
  if (!spec) return null;
  if (spec === 'latest') {
    const all = listCheckpoints(outputDir);
    if (!all.length)
      throw new ConfigError(`resume_from_checkpoint: latest, but ${outputDir} holds no complete checkpoint to resume; ` +
        'drop --resume_from_checkpoint to start a new run, or point output_dir at the run to continue');
    return all[all.length - 1];
  }
  const path = resolve(spec);
  const m = NAME.exec(basename(path));
  if (!existsSync(path)) throw new ConfigError(`resume_from_checkpoint: ${path} does not exist; use 'latest' or an existing checkpoint-N folder`);
  if (!existsSync(join(path, TRAINER_STATE)))
    throw new ConfigError(`resume_from_checkpoint: ${path} is not a complete checkpoint (no ${TRAINER_STATE}); use 'latest' or a checkpoint-N folder`);
  return { step: m ? Number(m[1]) : -1, path };
}

/** Write checkpoint-{step} atomically with `fill(tmpDir)`, then delete the oldest beyond `limit`. */
export function writeCheckpoint(outputDir: string, step: number, fill: (dir: string) => void, limit: number | null): string {
  const dir = join(outputDir, `checkpoint-${step}`);
  writeDirAtomic(dir, fill);
  if (limit !== null && limit > 0) {
    const all = listCheckpoints(outputDir);
    for (const old of all.slice(0, Math.max(0, all.length - limit))) rmSync(old.path, { recursive: true, force: true });
  }
  return dir;
}

/** Remove half-written checkpoint temporaries left by a run that was killed (`.checkpoint-N.tmp-PID`). */
export function removeHalfWrittenCheckpoints(outputDir: string): string[] {
  if (!existsSync(outputDir)) return [];
  const stale = readdirSync(outputDir).filter((n) => /^\.checkpoint-\d+\.tmp-\d+/.test(n));
  for (const n of stale) rmSync(join(outputDir, n), { recursive: true, force: true });
  return stale;
}

// ---- model folders ----

/** config.json + model.safetensors (base weights only) and, with LoRA, adapter_model.safetensors. */
export function writeModelFolder(runner: RDTRunner, dir: string, lora: boolean): void {
  // checksums.json is recorded once the whole folder (adapters, ema/, the writers' files) is on disk.
  saveRdtCheckpoint(runner, dir, { filter: (k) => !isLoraKey(k), checksums: false });
  if (lora) saveSafetensors(join(dir, ADAPTER_WEIGHTS), loraStateDict(runner));
}

/** Load what writeModelFolder wrote into `runner` (strict for the base weights, unless the adapters live apart). */
export function loadModelFolder(runner: RDTRunner, dir: string, lora: boolean): void {
  const weights = join(dir, WEIGHTS);
  // With LoRA the adapters live in their own file, so the base file lacks their keys.
  loadRunnerState(runner, loadSafetensors(weights).tensors, { source: weights, strict: !lora });
  if (lora) {
    const file = join(dir, ADAPTER_WEIGHTS);
    runner.loadStateDict(loadSafetensors(file).tensors, { strict: false, castDtype: true, source: file });
  }
}

/** ema/: the float32 averaged weights under the model's state-dict names, and the config.json that describes them. */
export function writeEmaFolder(ema: Ema, config: RdtConfig, dir: string): void {
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, WEIGHTS), ema.stateDict(), { format: 'pt' });
  writeFileAtomic(join(dir, 'config.json'), hubConfigText(config));
}

/** The averaged weights of an ema/ folder (new tensors owned by the caller). */
export function readEmaWeights(dir: string): Map<string, Tensor> {
  return loadSafetensors(join(dir, WEIGHTS)).tensors;
}

// ---- state files: nested state (optimizer state dicts, ...) as safetensors + JSON ----

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function flatten(v: unknown, path: string, tensors: Map<string, Tensor>): Json {
  if (v instanceof Tensor) {
    tensors.set(path, v);
    return { __tensor__: path };
  }
  if (v instanceof Map) return flatten(Object.fromEntries(v), path, tensors);
  if (Array.isArray(v)) return v.map((x, i) => flatten(x, `${path}.${i}`, tensors));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) out[k] = flatten(x, path ? `${path}.${k}` : k, tensors);
    return out;
  }
  if (typeof v === 'bigint') return Number(v);
  return v as Json;
}

function unflatten(v: Json, tensors: Map<string, Tensor>): unknown {
  if (Array.isArray(v)) return v.map((x) => unflatten(x, tensors));
  if (v !== null && typeof v === 'object') {
    if ('__tensor__' in v && typeof v.__tensor__ === 'string') {
      const t = tensors.get(v.__tensor__);
      if (!t) throw new Error(`state file: tensor '${v.__tensor__}' is missing from the .safetensors part`);
      return t;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unflatten(x, tensors);
    return out;
  }
  return v;
}

/** Write `<base>.json` and `<base>.safetensors` (atomically, each). */
export function saveState(base: string, state: unknown): void {
  const tensors = new Map<string, Tensor>();
  const json = flatten(state, '', tensors);
  saveSafetensors(`${base}.safetensors`, tensors);
  writeFileAtomic(`${base}.json`, JSON.stringify(json, null, 1));
}

/** Read back what saveState wrote; tensors are new handles owned by the caller. */
export function loadState(base: string): unknown {
  const json = readJsonFile<Json>(`${base}.json`, 'the training state');
  const { tensors } = loadSafetensors(`${base}.safetensors`);
  return unflatten(json, tensors);
}

// ---- the run state: everything besides the model folders that a resume needs ----

/** trainer_state.json: the counters (written last; its presence marks a checkpoint complete). */
export interface RunProgress {
  global_step: number;
  loader: { epoch: number; position: number };
  ema_updates: number;
  skipped_steps: number;
  bad_in_row: number;
  /** Processes that trained up to this checkpoint (absent in checkpoints from before data-parallel training: 1). */
  world_size?: number;
}

export class RunState {
  /** Optimizer steps completed. */
  step = 0;
  /** Where the loader continues: the start of the next global batch (the same for any number of processes). */
  position = { epoch: 0, position: 0 };
  /** Optimizer steps skipped for a NaN/Inf loss, in all, and in a row now. */
  skipped = 0;
  badInRow = 0;

  /** zero_stage 2: the unsharded state rank 0 collected for the checkpoint being written (Zero2.gather). */
  gathered: FullState | null = null;

  constructor(
    readonly parts: TrainParts,
    readonly worldSize = 1,
    readonly zero: Zero2 | null = null,
  ) {}

  /** The counters of a complete checkpoint (read before the loader is opened: it starts at `loader`). */
  static readProgress(dir: string): RunProgress {
    const file = join(dir, TRAINER_STATE);
    let p: Partial<RunProgress>;
    try {
      p = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new TrainError(`${file}: cannot read the run state (${(e as Error).message.split('\n')[0]}); resume from another checkpoint`);
    }
    const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
    if (!ok(p.global_step) || !ok(p.ema_updates) || !ok(p.skipped_steps) || !ok(p.bad_in_row) || !ok(p.loader?.epoch) || !ok(p.loader?.position))
      throw new TrainError(`${file}: not a trainer state (needs global_step, loader.epoch/position, ema_updates, skipped_steps, bad_in_row); resume from another checkpoint`);
    return p as RunProgress;
  }

  progress(): RunProgress {
    return {
      global_step: this.step, loader: this.position, ema_updates: this.parts.ema?.updates ?? 0,
      skipped_steps: this.skipped, bad_in_row: this.badInRow, world_size: this.worldSize,
    };
  }

  /** Write the AdamW state and the float32 masters into a checkpoint folder. */
  save(dir: string): void {
    const { optimizer, masters } = this.parts;
    if (this.zero) {
      // Sharded: what rank 0 collected, in the layout of an unsharded run.
      if (!this.gathered) throw new Error('internal: a sharded checkpoint needs the gathered optimizer state');
      saveState(join(dir, TRAINING_STATE), this.gathered);
      return;
    }
    torch.scope(() => saveState(join(dir, TRAINING_STATE), { optimizer: optimizer.stateDict(), masters: masters?.masters }));
  }

  /** Write trainer_state.json: call last, once everything else of the checkpoint is written. */
  markComplete(dir: string): void {
    writeFileSync(join(dir, TRAINER_STATE), JSON.stringify(this.progress(), null, 2));
  }

  /**
   * Restore what save() and markComplete() wrote (the EMA update count goes to `ema`, whose weights the
   * caller loads). Call inside a scope: the loaded tensors are copied into the optimizer and masters.
   */
  load(dir: string): RunProgress {
    const p = RunState.readProgress(dir);
    const { optimizer, masters } = this.parts;
    const base = join(dir, TRAINING_STATE);
    if (!existsSync(`${base}.json`)) throw new TrainError(`${dir}: ${TRAINING_STATE}.json is missing; the checkpoint cannot be resumed exactly`);
    // (Checkpoints written before draws were keyed per sample also hold a `generator`, no longer needed.)
    const full = loadState(base) as FullState;
    // Sharded: this rank's part of the (unsharded) saved state.
    const state = this.zero ? this.zero.select(full) : full;
    optimizer.loadStateDict(state.optimizer as never);
    if (masters && state.masters) torch.noGrad(() => masters.masters.forEach((m, i) => m.copy_(state.masters![i])));
    this.step = p.global_step;
    this.position = { ...p.loader };
    this.skipped = p.skipped_steps;
    this.badInRow = p.bad_in_row;
    return p;
  }
}

// ---- saving and resuming ----

function modelFolderWritten(hooks: ResolvedHooks, ctx: TrainContext, dir: string, kind: ModelFolderKind, step: number): void {
  for (const write of hooks.modelFolderWriters) write(dir, { kind, step }, ctx);
}

/**
 * Write output_dir/checkpoint-{step}. `onWrite` runs after everything but the completion marker
 * (fault injection for tests). Returns the checkpoint's path.
 */
export function saveCheckpoint(ctx: TrainContext, state: RunState, hooks: ResolvedHooks, onWrite?: (tmpDir: string, step: number) => void): string {
  if (ctx.dist && !ctx.dist.isMain) throw new Error('internal: only rank 0 writes checkpoints');
  const { parts, cfg } = ctx;
  const step = state.step;
  return writeCheckpoint(ctx.outputDir, step, (dir) => {
    writeModelFolder(parts.runner, dir, parts.lora);
    modelFolderWritten(hooks, ctx, dir, 'checkpoint', step);
    if (parts.ema) {
      writeEmaFolder(parts.ema, parts.runner.config, join(dir, EMA_DIR));
      modelFolderWritten(hooks, ctx, join(dir, EMA_DIR), 'ema', step);
    }
    state.save(dir);
    writeFileSync(join(dir, RUN_CONFIG), toYaml(cfg));
    recordChecksums(dir); // SHA-256 of every weight file, checked on resume
    onWrite?.(dir, step);
    ctx.dist?.agreeStep(step); // every rank finished this step (the others call agreeStep in the loop)
    state.markComplete(dir); // last: marks the checkpoint complete
  }, cfg.checkpoints_total_limit);
}

/** Continue from a checkpoint saveCheckpoint wrote: weights, adapters, EMA, optimizer, masters, counters. */
export function resumeFrom(ctx: TrainContext, state: RunState, dir: string): void {
  const { parts } = ctx;
  verifyFolder(dir, 'quick'); // a damaged file is named before anything is loaded
  // Everything loaded here is copied into the model, optimizer, masters and EMA; the scope frees the
  // loaded copies afterwards (for rdt-1b they are several times the model's size).
  torch.scope(() => {
    loadModelFolder(parts.runner, dir, parts.lora);
    const progress = state.load(dir);
    parts.ema?.loadStateDict(readEmaWeights(join(dir, EMA_DIR)), progress.ema_updates);
  });
}

/** Write output_dir/final (the trained model folder) atomically. Returns its path. */
export function saveFinal(ctx: TrainContext, state: RunState, hooks: ResolvedHooks): string {
  const dir = join(ctx.outputDir, FINAL_DIR);
  writeDirAtomic(dir, (tmp) => {
    writeModelFolder(ctx.parts.runner, tmp, ctx.parts.lora);
    modelFolderWritten(hooks, ctx, tmp, 'final', state.step);
    recordChecksums(tmp);
  });
  return dir;
}

// ---- policy.json: the built-in model-folder writer ----

export class PolicyFolderWriter {
  #conventions: PolicyConventions | null = null;

  /** Derive and check the run's conventions (call once the data, model and encoders are built). */
  prepare(ctx: TrainContext): void {
    const { cfg, data, parts } = ctx;
    this.#conventions = policyConventions({
      adapter: data.dataset.cfg, stats: data.stats.libero, encoders: parts.encoders, rdt: parts.runner.config,
      run: basename(ctx.outputDir), baseModel: cfg.pretrained_model_name_or_path ?? cfg.model, lora: cfg.lora, execHorizon: cfg.exec_horizon,
      dataFormat: data.dataset.format, normalization: cfg.value_normalization,
    });
  }

  readonly write: ModelFolderWriter = (dir, info) => {
    if (!this.#conventions) throw new TrainError('internal: the policy writer was not prepared before the first save');
    const c = this.#conventions;
    writePolicyFile(dir, { ...c, origin: { ...(c.origin ?? { run: '', base_model: '' }), step: info.step, ema: info.kind === 'ema' } });
  };
}
