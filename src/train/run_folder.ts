// One output_dir belongs to one run. A new run refuses a folder that holds another run's outputs (unless told to
// resume or to overwrite), a resume refuses a config that would change the run's trajectory, and the metrics of
// a resumed run are cut back to the checkpoint's step so they read as one timeline.
import { existsSync, readFileSync, readdirSync, rmSync, accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { TrainError } from './errors.js';
import type { TrainConfig } from './config.js';
import { writeFileAtomic } from '../util/atomic.js';

/** What a run writes directly under output_dir (checkpoint-N/ folders are matched by name). */
const RUN_OUTPUTS = ['run_config.yaml', 'metrics.jsonl', 'tensorboard', 'final', 'stats'];
const CHECKPOINT = /^checkpoint-\d+$/;

/**
 * Keys whose change on resume leaves the run's past untouched: the step budget and how often things are saved,
 * logged or evaluated, where data are read from (same files, other mount point) and how many reader threads.
 * Everything else (seed, batch, LR, encoding, model, data selection, ...) changes the trajectory and is refused.
 */
export const RESUME_SAFE_KEYS = new Set([
  'max_train_steps', 'num_train_epochs', 'checkpointing_period', 'checkpoints_total_limit', 'sample_period',
  'sample_batch_size', 'num_sample_batches', 'log_every', 'report_to', 'resume_from_checkpoint', 'overwrite',
  'output_dir', 'device', 'data.num_workers', 'data.dataset_root', 'max_bad_steps', 'zero_stage',
  'ddp.bucket_cap_mb', 'ddp.overlap_comm',
]);

/** Make output_dir usable and writable, with a one-line error naming the folder when it is not. */
export function ensureWritableDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'is not writable'
      : code === 'ENOTDIR' ? 'cannot be created (a part of its path is a file)'
      : code === 'EEXIST' ? 'is a file, not a folder'
      : `cannot be created (${code})`;
    let parent = dir;
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
    throw new TrainError(`output_dir ${dir} ${why}${parent !== dir ? ` (nearest existing folder: ${parent})` : ''}; choose another output_dir or fix its permissions`);
  }
  if (!statSync(dir).isDirectory()) throw new TrainError(`output_dir ${dir} is a file, not a folder; choose another output_dir`);
}

/** Outputs of an earlier run found in dir (names), empty when the folder is new or empty of run outputs. */
export function earlierRunOutputs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => RUN_OUTPUTS.includes(n) || CHECKPOINT.test(n)).sort();
}

/**
 * A fresh run (not resuming) in `dir`: refused when the folder holds another run's outputs, unless `overwrite`,
 * which deletes them first (say() reports what was removed).
 */
export function claimRunFolder(dir: string, opts: { overwrite: boolean; say?: (s: string) => void }): void {
  const found = earlierRunOutputs(dir);
  if (!found.length) return;
  if (!opts.overwrite)
    throw new TrainError(`output_dir ${dir} holds another run (${found.join(', ')}); pass --resume_from_checkpoint latest to continue it, ` +
      '--overwrite true to delete it and start over, or choose a new output_dir');
  for (const n of found) rmSync(join(dir, n), { recursive: true, force: true });
  opts.say?.(`overwrite: removed the earlier run's ${found.join(', ')} from ${dir}`);
}

type Plain = Record<string, unknown>;
const isObj = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function flatten(o: Plain, prefix = '', out: Map<string, unknown> = new Map()): Map<string, unknown> {
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isObj(v) && key !== 'data.suite_weights') flatten(v, key, out);
    else out.set(key, v);
  }
  return out;
}

/**
 * Compare the resolved config of a resumed run with the one its checkpoint was written with (`run_config.yaml`
 * inside the checkpoint). Throws listing every changed key that alters the trajectory; returns the safe changes
 * as 'key: old -> new' lines.
 */
export function checkResumeConfig(checkpointDir: string, now: TrainConfig, worldSize = 1): string[] {
  const path = join(checkpointDir, 'run_config.yaml');
  if (!existsSync(path)) throw new TrainError(`${path} is missing: the checkpoint does not record the config it was trained with, so a resume cannot be checked; resume from a checkpoint written by rdt-libero`);
  let then: unknown;
  try {
    then = parseYaml(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TrainError(`${path}: not valid YAML (${(e as Error).message.split('\n')[0]}); the checkpoint is damaged, resume from an earlier one`);
  }
  if (!isObj(then)) throw new TrainError(`${path}: not a config mapping; the checkpoint is damaged, resume from an earlier one`);
  const a = flatten(then);
  const b = flatten(now as unknown as Plain);
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  const refused: string[] = [];
  const safe: string[] = [];
  // The per-process batch may change with the number of processes as long as the global batch does not
  // (the data stream and every random draw are laid out per global position, so the trajectory continues).
  const worldThen = readWorldSize(checkpointDir);
  const globalThen = Number(a.get('train_batch_size')) * worldThen;
  if (a.get('train_batch_size') !== b.get('train_batch_size') && globalThen === now.train_batch_size * worldSize) {
    safe.push(`train_batch_size: ${show(a.get('train_batch_size'))} x ${worldThen} processes -> ${now.train_batch_size} x ${worldSize} (the same global batch)`);
    a.delete('train_batch_size');
    b.delete('train_batch_size');
  }
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (JSON.stringify(a.get(k)) === JSON.stringify(b.get(k))) continue;
    (RESUME_SAFE_KEYS.has(k) ? safe : refused).push(`${k}: ${show(a.get(k))} -> ${show(b.get(k))}`);
  }
  if (refused.length)
    throw new TrainError(`cannot resume from ${checkpointDir} with a changed config (${refused.join('; ')}): these change the run's trajectory; ` +
      'resume with the settings of the checkpoint, or start a new run in a new output_dir (set pretrained_model_name_or_path to the checkpoint to fine-tune from it)');
  return safe;
}

/** The world size a checkpoint was trained with (trainer_state.json; 1 for checkpoints that predate it). */
function readWorldSize(checkpointDir: string): number {
  try {
    const w = JSON.parse(readFileSync(join(checkpointDir, 'trainer_state.json'), 'utf8')).world_size;
    return Number.isInteger(w) && w >= 1 ? w : 1;
  } catch {
    return 1; // an unreadable trainer state is reported by the resume itself
  }
}

/**
 * Cut metrics.jsonl back to the lines of steps <= `step` (the checkpoint a run resumes from), dropping a torn
 * last line left by a killed process, so the resumed run's metrics continue one timeline. Returns the number of
 * lines removed.
 */
export function rewindJsonl(path: string, step: number): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, 'utf8').split('\n');
  const keep: string[] = [];
  let removed = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    let rec: { step?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      removed++; // torn by a kill mid-write
      continue;
    }
    if (typeof rec.step === 'number' && rec.step <= step) keep.push(line);
    else removed++;
  }
  if (removed) writeFileAtomic(path, keep.length ? keep.join('\n') + '\n' : '');
  return removed;
}

/** Read a JSON file of a checkpoint; a damaged one is named in a one-line error (not a bare SyntaxError). */
export function readJsonFile<T>(path: string, what: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TrainError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code}); resume from an earlier checkpoint`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new TrainError(`${path}: ${what} is not valid JSON (${(e as Error).message}); the checkpoint is damaged, resume from an earlier one`);
  }
}
