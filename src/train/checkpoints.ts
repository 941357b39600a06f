// What a run saves and resumes from. A checkpoint-N/ is a model folder (model_folder.ts), its ema/
// twin, the run state (run_state.ts) and the resolved run_config.yaml, written atomically
// (checkpoint_dir.ts) with trainer_state.json last; final/ is a model folder alone. The registered
// model-folder writers (hooks.ts) add their files to each model folder before it is complete.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import * as torch from '../engine/index.js';
import { writeDirAtomic } from '../util/atomic.js';
import { recordChecksums, verifyFolder } from '../util/checksums.js';
import { writeCheckpoint } from './checkpoint_dir.js';
import type { ModelFolderKind, ResolvedHooks, TrainContext } from './hooks.js';
import { EMA_DIR, loadModelFolder, readEmaWeights, writeEmaFolder, writeModelFolder } from './model_folder.js';
import type { RunState } from './run_state.js';

export const RUN_CONFIG = 'run_config.yaml';
export const FINAL_DIR = 'final';

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
