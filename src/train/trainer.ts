// `train(cfg, opts)`: a fine-tuning run, composed of its parts: the data (data_setup.ts), the model,
// encoders, optimizer and EMA (build.ts), the state that is saved and resumed (checkpoint.ts),
// and the loop (loop.ts); several processes train through dist/. Other code plugs in through hooks (hooks.ts); the
// built-in ones are registered in builtinHooks below, the same way.
import { join } from 'node:path';
import * as torch from '../engine/index.js';
import { CachedTextEncoder } from '../encoders/text_cache.js';
import { valueNormalizationOf } from '../policy/conventions.js';
import { checkEncoderFolders, DEFAULT_CONFIG, type TrainConfig } from './config.js';
import { buildParts, type TrainParts } from './build.js';
import { PolicyFolderWriter, RunState, removeHalfWrittenCheckpoints, resolveResume, resumeFrom } from './checkpoint.js';
import { openTrainData, resolveDataFormat, type TrainData } from './data_setup.js';
import { mergeHooks, type ResolvedHooks, type TrainContext, type TrainHooks } from './hooks.js';
import { runLoop } from './loop.js';
import { sampleEvaluator, type SampleMetrics } from './sample_eval.js';
import { TrainError } from './errors.js';
import type { StopSignal } from './stop_signals.js';
import { checkResumeConfig, claimRunFolder, ensureWritableDir, rewindJsonl } from './run_folder.js';
import { DataParallel } from './dist/ddp.js';
import { Zero2 } from './dist/zero.js';
import type { ProcessGroup } from '../engine/distributed.js';

export { TrainError } from './errors.js';
export type { TrainHooks, TrainContext, Evaluator, GradientSync, ModelFolderWriter, ModelFolderInfo, ModelFolderKind, EncoderFactory } from './hooks.js';

export interface TrainOptions {
  /** Stop (as if killed) right after this optimizer step; used to test resume. */
  haltAfterStep?: number;
  /** Called while a checkpoint is being written (after the model, before it is marked complete): fault injection for tests. */
  onCheckpointWrite?: (tmpDir: string, step: number) => void;
  /** Print progress and a summary (default true). */
  verbose?: boolean;
  /** Extra hooks (gradient sync, evaluators, model-folder writers, encoders), added after the built-in ones. */
  hooks?: TrainHooks;
  /**
   * The process group of a data-parallel run (initProcessGroup; the CLI makes it from the torchrun
   * environment). Each rank trains on its block of every global batch of train_batch_size x world size;
   * rank 0 alone writes the output folder.
   */
  group?: ProcessGroup;
}

export interface TrainResult {
  outputDir: string;
  steps: number;
  losses: number[];
  skippedSteps: number;
  sampleBefore: SampleMetrics | null;
  sampleAfter: SampleMetrics | null;
  lastCheckpoint: string | null;
  finalModelDir: string | null;
  /** SIGINT/SIGTERM when the run was stopped by one (a checkpoint at the current step was saved first), else null. */
  stoppedBy: StopSignal | null;
  samplesPerSecond: number;
  dataWaitShare: number;
}

/**
 * The hooks every run has: the sample-MSE evaluator and the policy.json writer of every saved model folder;
 * with several processes, the gradient averaging of data-parallel training.
 */
function builtinHooks(cfg: TrainConfig, policy: PolicyFolderWriter, dist: DataParallel | null): TrainHooks {
  return { evaluators: [sampleEvaluator(cfg)], modelFolderWriters: [policy.write], ...(dist ? { gradientSync: dist.gradientSync() } : {}) };
}

/** Problems that need no data or model to find: reported before anything slow starts. */
function checkUpFront(cfg: TrainConfig, hooks: ResolvedHooks): void {
  const m = /^cuda(?::(\d+))?$/.exec(cfg.device);
  if (m) {
    const count = torch.cuda.isAvailable() ? torch.cuda.deviceCount() : 0;
    if (Number(m[1] ?? 0) >= count)
      throw new TrainError(`device: '${cfg.device}' is not available (${count ? `this machine has cuda:0..cuda:${count - 1}` : 'no CUDA device, or a libtorch built without CUDA'}); set device: cpu or another GPU`);
  }
  if (!hooks.encoders) checkEncoderFolders(cfg);
  if (cfg.lora.enabled && !cfg.pretrained_model_name_or_path)
    throw new TrainError('lora.enabled needs pretrained_model_name_or_path: LoRA adapts pretrained weights, and a model ' +
      "initialised from scratch has a zero output layer, so its frozen base passes no gradient to the adapters");
}

/** Run a training job. Everything it builds (model, optimizer, EMA, encoders, loader) is freed when it returns or fails. */
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const dist = opts.group && opts.group.worldSize > 1
    ? new DataParallel(opts.group, { bucketBytes: cfg.ddp.bucket_cap_mb * 2 ** 20, overlap: cfg.ddp.overlap_comm })
    : null;
  const main = !dist || dist.isMain;
  // Only rank 0 talks; the launcher prefixes and forwards every rank's errors.
  const verbose = (opts.verbose ?? true) && main;
  const say = (s: string) => void (verbose && process.stderr.write(s + '\n'));
  const policy = new PolicyFolderWriter();
  const hooks = mergeHooks(builtinHooks(cfg, policy, dist), opts.hooks);
  checkUpFront(cfg, hooks);
  const out = cfg.output_dir;
  if (main) {
    ensureWritableDir(out);
    for (const t of removeHalfWrittenCheckpoints(out)) say(`removed a half-written checkpoint left by an earlier run: ${t}`);
  }
  torch.manualSeed(cfg.seed);
  resolveDataFormat(cfg);

  // One output_dir, one run: a fresh run does not write over another run; a resumed one continues its own.
  // Rank 0 prepares the folder before the other ranks look at it.
  let resume = main ? resolveResume(out, cfg.resume_from_checkpoint) : null;
  if (main) {
    if (resume) {
      for (const change of checkResumeConfig(resume.path, cfg, dist?.worldSize ?? 1)) say(`resuming with a changed setting: ${change}`);
      const removed = rewindJsonl(join(out, 'metrics.jsonl'), RunState.readProgress(resume.path).global_step);
      if (removed) say(`metrics.jsonl: removed ${removed} lines logged after ${resume.path} (the run continues from there)`);
    } else claimRunFolder(out, { overwrite: cfg.overwrite, say });
  }
  dist?.group.barrier();
  if (!main) resume = resolveResume(out, cfg.resume_from_checkpoint);
  const start = resume ? RunState.readProgress(resume.path).loader : undefined;
  let data: TrainData | null = null;
  let parts: TrainParts | null = null;
  try {
    // Rank 0 computes (or checks) the cached dataset statistics first; the others then read them.
    const shard = dist ? { rank: dist.rank, worldSize: dist.worldSize } : undefined;
    if (main) data = await openTrainData(cfg, out, start, shard);
    dist?.group.barrier();
    if (!main) data = await openTrainData(cfg, out, start, shard);
    if (!data) throw new Error('internal: no training data');
    if (cfg.zero_stage === 2 && !dist)
      throw new TrainError('zero_stage: 2 shards the optimizer state across processes, and this run has one; ' +
        'start it with --nproc_per_node N (or torchrun), or set zero_stage: 0');
    for (const k of ['bucket_cap_mb', 'overlap_comm'] as const)
      if (!dist && cfg.ddp[k] !== DEFAULT_CONFIG.ddp[k])
        throw new TrainError(`ddp.${k}: ${cfg.ddp[k]} applies to several processes, and this run has one; ` +
          `start it with --nproc_per_node N (or torchrun), or remove it (default ${DEFAULT_CONFIG.ddp[k]})`);
    let zero: Zero2 | null = null;
    parts = buildParts(cfg, hooks.encoders, say, dist && cfg.zero_stage === 2 ? (trainable) => (zero = new Zero2(dist, trainable)).owned() : undefined);
    if (cfg.value_normalization === 'zscore') {
      parts.runner.setValueNormalization(valueNormalizationOf(data.stats.libero));
      say(`value_normalization: zscore: the model sees the state and the actions as z-scores of ${data.statsPath}`);
    }
    // From here each backward's gradient hooks feed the reducer (buckets reduced while backward runs).
    dist?.attach(parts.trainable, zero);
    if (zero) {
      // Each rank says what it keeps (the launcher prefixes the other ranks' lines), so sharding is visible.
      const z = zero as Zero2;
      const elems = (ps: { numel(): number }[]) => ps.reduce((a, p) => a + p.numel(), 0);
      if (opts.verbose ?? true)
        process.stderr.write(`ZeRO-2: rank ${z.dp.rank} keeps the optimizer state of ${z.mine.length} of ${z.params.length} trained parameters ` +
          `(${elems(z.owned())} of ${elems([...z.params])} elements)\n`);
    }
    const cached = parts.encoders.text;
    if (cached instanceof CachedTextEncoder) {
      // Every instruction of the data (training and held-out demos share their files' instructions) and dropout's "".
      cached.requireAll(['', ...data.dataset.instructions], 'the instruction of the training data');
      say(`text encoder: T5 tokens from the cache ${cached.cache.path} (${cached.cache.entries.size} texts, ${cached.identity.dtype}, computed on ${cached.cache.device}; T5 not loaded)`);
    }
    const ctx: TrainContext = { cfg, outputDir: out, parts, data, say, dist };
    policy.prepare(ctx);
    const state = new RunState(parts, dist?.worldSize ?? 1, zero);
    if (resume) {
      resumeFrom(ctx, state, resume.path);
      say(`resumed from ${resume.path} at step ${state.step}`);
    }
    if (dist) {
      // Every rank starts from rank 0's weights (and float32 masters), whatever it built or loaded. Sharded
      // masters have a single owner each (built from the same seed or loaded from the same checkpoint).
      dist.broadcastFromMain([...parts.runner.parameters(), ...(zero ? [] : parts.masters?.masters ?? [])]);
      say(`data-parallel: ${dist.worldSize} processes (${opts.group!.backend}), gradients averaged in buckets of ${dist.bucketBytes / 2 ** 20} MB ` +
        (dist.overlap ? 'during backward' : 'after backward') +
        (zero ? '; ZeRO-2: each process keeps the masters, AdamW state and gradients of its share of the parameters' : ''));
    }
    const r = await runLoop(ctx, state, hooks, { haltAfterStep: opts.haltAfterStep, onCheckpointWrite: opts.onCheckpointWrite, verbose, resumedFrom: resume?.path ?? null });
    return {
      outputDir: out, steps: state.step, losses: r.losses, skippedSteps: state.skipped,
      sampleBefore: (r.atStart.get('sample') as unknown as SampleMetrics | undefined) ?? null,
      sampleAfter: (r.atEnd.get('sample') as unknown as SampleMetrics | undefined) ?? null,
      lastCheckpoint: r.lastCheckpoint, finalModelDir: r.finalModelDir, stoppedBy: r.stoppedBy, samplesPerSecond: r.samplesPerSecond, dataWaitShare: r.dataWaitShare,
    };
  } finally {
    dist?.detach();
    parts?.dispose();
    await data?.close();
  }
}
