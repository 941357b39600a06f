// Where other code plugs into a training run without editing the loop (loop.ts): a gradient
// synchroniser (data-parallel training), evaluators, writers that add files to every saved model
// folder, and the condition encoders. `train(cfg, { hooks })` takes them; trainer.ts registers the
// built-in ones (the sample-MSE evaluator) the same way.
import type { RDTRunner } from '../model/runner.js';
import type { TrainConfig } from './config.js';
import type { EncoderFactory } from './encoder_choice.js';
export type { EncoderFactory };
import type { TrainParts } from './build.js';
import type { TrainData } from './data_setup.js';
import { TrainError } from './errors.js';
import type { DataParallel } from './dist/ddp.js';
import type { AccumulatedStep } from './step.js';

/** What a hook can see of the run: the resolved config, the built model and encoders, the data and its statistics. */
export interface TrainContext {
  readonly cfg: TrainConfig;
  readonly outputDir: string;
  readonly parts: TrainParts;
  readonly data: TrainData;
  /** Print a line (silent when the run is not verbose, and on ranks other than 0). */
  readonly say: (line: string) => void;
  /** The process group of a data-parallel run (null for one process): rank, world size, collectives. */
  readonly dist: DataParallel | null;
}

/**
 * Called once per optimizer step, after the micro-batches were accumulated and before the
 * non-finite check, clipping and AdamW: a data-parallel run averages `params`' gradients across
 * processes here. Every process must call its collectives even when its own loss was NaN/Inf, so
 * the hook sees non-finite steps too and returns the loss and finiteness all processes agree on
 * (nothing returned: unchanged).
 */
export type GradientSync = (s: AccumulatedStep, ctx: TrainContext) => { loss: number; finite: boolean } | void | Promise<{ loss: number; finite: boolean } | void>;

/**
 * An evaluation called every `every` optimizer steps with the runner, which is in training mode: an
 * evaluator that needs eval mode switches to it and back (as the sample-MSE evaluator does).
 */
export interface Evaluator {
  /** Metric prefix: the results are logged as `<name>/<key>`. */
  name: string;
  /** Optimizer steps between calls; 0 = never periodically. */
  every: number;
  /** Also before the first step of a fresh run (not a resumed one). */
  atStart?: boolean;
  /** Also after the last step (then the periodic call at the last step is skipped); not when a run is halted early. */
  atEnd?: boolean;
  /** Metrics to log, or null when there was nothing to evaluate. */
  evaluate(runner: RDTRunner, step: number, ctx: TrainContext): Record<string, number> | null | Promise<Record<string, number> | null>;
}

export type ModelFolderKind = 'checkpoint' | 'ema' | 'final';

export interface ModelFolderInfo {
  kind: ModelFolderKind;
  /** The optimizer step the weights are from. */
  step: number;
}

/**
 * Called with each model folder a run saves, after its config.json + model.safetensors (and, with
 * LoRA, adapter_model.safetensors) are written and before the folder is complete:
 * - kind 'checkpoint': `dir` is the checkpoint being written (a temporary sibling of checkpoint-N,
 *   renamed into place once everything, this writer's files included, is on disk);
 * - kind 'ema': `dir` is that checkpoint's ema/ subfolder (only with ema.enabled);
 * - kind 'final': `dir` is the temporary sibling of output_dir/final at the end of a run that
 *   reached its last step.
 * A writer that throws fails the save, and nothing half-written is left under the final name.
 */
export type ModelFolderWriter = (dir: string, info: ModelFolderInfo, ctx: TrainContext) => void;

export interface TrainHooks {
  gradientSync?: GradientSync;
  evaluators?: Evaluator[];
  modelFolderWriters?: ModelFolderWriter[];
  encoders?: EncoderFactory;
}

/** The resolved hooks of a run: lists joined in order; a single-slot hook given twice is an error. */
export interface ResolvedHooks {
  gradientSync: GradientSync | null;
  evaluators: Evaluator[];
  modelFolderWriters: ModelFolderWriter[];
  encoders: EncoderFactory | null;
}

export function mergeHooks(...all: (TrainHooks | undefined)[]): ResolvedHooks {
  const out: ResolvedHooks = { gradientSync: null, evaluators: [], modelFolderWriters: [], encoders: null };
  for (const h of all) {
    if (!h) continue;
    if (h.gradientSync) {
      if (out.gradientSync) throw new TrainError('two gradient synchronisers were registered (hooks.gradientSync); a run has one');
      out.gradientSync = h.gradientSync;
    }
    if (h.encoders) {
      if (out.encoders) throw new TrainError('two encoder factories were registered (hooks.encoders); a run has one');
      out.encoders = h.encoders;
    }
    out.evaluators.push(...(h.evaluators ?? []));
    out.modelFolderWriters.push(...(h.modelFolderWriters ?? []));
  }
  const names = out.evaluators.map((e) => e.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new TrainError(`two evaluators are named '${dup}'; their metrics would mix under '${dup}/', rename one`);
  return out;
}
