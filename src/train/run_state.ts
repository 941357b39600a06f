// The state of a run that is not the weights: everything a checkpoint must hold, besides its model
// folders, to continue exactly where the run stopped. One object, saved and loaded by the same
// code: the step counter, the loader position, the EMA update count, the skipped/bad counters, and the
// AdamW state and float32 masters. No generator: every training draw is keyed by (seed, step, sample)
// (sample_rng.ts), so the step and the loader position are all a resume needs to draw the same.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../engine/index.js';
import type { TrainParts } from './build.js';
import { TRAINER_STATE } from '../policy/checkpoints.js';
import { loadState, saveState } from './state_file.js';
import { TrainError } from './errors.js';
import type { FullState, Zero2 } from './zero.js';

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

/** training_state.{json,safetensors}: the tensors of the state, in PyTorch's optimizer layout. */
const TRAINING_STATE = 'training_state';

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
