// The fine-tuning loop. One optimizer step = `gradient_accumulation_steps` micro-batches; then
// clipping, the LR schedule, AdamW, EMA, and (every `checkpointing_period` steps) an atomic
// checkpoint holding everything needed to continue exactly where the run stopped.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import * as torch from '../engine/index.js';
import { optim, type Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../engine/io/index.js';
import { RDTRunner } from '../model/runner.js';
import { PRESETS, parseRdtConfig, rdtPreset, type RdtConfig } from '../model/config.js';
import { loadRdtCheckpoint, saveRdtCheckpoint, loadRunnerState, readCheckpointConfig } from '../model/checkpoint.js';
import { DataLoader, cloneBatch, type LoadedBatch } from '../data/loader.js';
import type { Batch } from '../data/dataset.js';
import { loadOrComputeStats } from '../data/stats.js';
import { createEncoders, demoEncoderIdentity } from '../encoders/demo.js';
import { type TrainConfig, effectiveBatch } from './config.js';
import { lrFactor } from './lr_schedule.js';
import { Ema } from './ema.js';
import { injectLora, markOnlyLoraTrainable, loraStateDict, isLoraKey } from './lora.js';
import { MasterWeights } from './mixed_precision.js';
import { prepareInputs, type Augment, type Encoders } from './conditioning.js';
import { accumulateGradients } from './step.js';
import { sampleEvaluate, type SampleMetrics } from './sample_eval.js';
import { removeStaleTemporaries, resolveResume, writeCheckpoint, TRAINER_STATE } from './checkpoint_dir.js';
import { saveState, loadState } from './state_file.js';
import { JsonlSink, Metrics, Progress, TensorBoardSink, type MetricSink } from './metrics.js';
import { WandbSink } from './wandb.js';
import { writeFileAtomic } from '../util/atomic.js';
import { TrainError } from './errors.js';
import { policyConventions, writePolicyFolder } from '../policy/index.js';

export { TrainError } from './errors.js';

export interface TrainOptions {
  /** Stop (as if killed) right after this optimizer step; used to test resume. */
  haltAfterStep?: number;
  /** Called while a checkpoint is being written (after the model, before it is marked complete): fault injection for tests. */
  onCheckpointWrite?: (tmpDir: string, step: number) => void;
  /** Print progress and a summary (default true). */
  verbose?: boolean;
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
  samplesPerSecond: number;
  dataWaitShare: number;
}

interface TrainerState {
  global_step: number;
  loader: { epoch: number; position: number };
  ema_updates: number;
  skipped_steps: number;
  bad_in_row: number;
}

function buildEncoders(runner: RDTRunner): Encoders {
  const c = runner.config;
  const { vision, text } = createEncoders(demoEncoderIdentity(c));
  const tokensNeeded = c.img_cond_len;
  const perImage = vision.tokensPerImage;
  if (tokensNeeded !== 6 * perImage) {
    [vision, text].forEach((e) => e.dispose());
    throw new TrainError(`model expects img_cond_len ${tokensNeeded} image tokens, the demo vision encoder gives 2 history x 3 cameras x ${perImage} = ${6 * perImage}; use a config with img_cond_len ${6 * perImage}`);
  }
  return { vision, text };
}

const ARCH_KEYS = ['lang_token_dim', 'img_token_dim', 'img_cond_len', 'max_lang_cond_len', 'action_dim', 'pred_horizon'] as const;

/** Differences between two architectures, as 'key: a vs b' lines (empty when they agree). */
function archDiff(a: RdtConfig, b: RdtConfig): string[] {
  const d: string[] = [];
  for (const k of ['hidden_size', 'depth', 'num_heads'] as const) if (a.rdt[k] !== b.rdt[k]) d.push(`rdt.${k}: ${a.rdt[k]} vs ${b.rdt[k]}`);
  for (const k of ARCH_KEYS) if (a[k] !== b[k]) d.push(`${k}: ${a[k]} vs ${b[k]}`);
  return d;
}

/** `model`: a preset name, or a hub config.json (or a folder holding one). */
function modelConfig(model: string): RdtConfig {
  if (model in PRESETS) return rdtPreset(model);
  if (existsSync(model)) return model.endsWith('.json') ? parseRdtConfig(JSON.parse(readFileSync(model, 'utf8')), model) : readCheckpointConfig(model).config;
  return rdtPreset(model); // unknown name: the preset error with its did-you-mean
}

/** Problems that need no data or model to find: reported before anything slow starts. */
function checkUpFront(cfg: TrainConfig): void {
  if (cfg.encoders === 'official')
    throw new TrainError(
      "encoders: 'official' needs the T5-v1.1-XXL and SigLIP encoders, which this version of rdt-libero does not ship yet; " +
        'set encoders: demo to train with the deterministic demo encoders (results are only meaningful for testing)',
    );
  if (cfg.lora.enabled && !cfg.pretrained_model_name_or_path)
    throw new TrainError('lora.enabled needs pretrained_model_name_or_path: LoRA adapts pretrained weights, and a model ' +
      "initialised from scratch has a zero output layer, so its frozen base passes no gradient to the adapters");
}

function buildRunner(cfg: TrainConfig): RDTRunner {
  if (cfg.pretrained_model_name_or_path) {
    const path = cfg.pretrained_model_name_or_path;
    const { runner } = loadRdtCheckpoint(path, { dtype: 'float32', device: cfg.device });
    if (cfg.model !== 'auto') {
      const diff = archDiff(modelConfig(cfg.model), runner.config);
      if (diff.length) {
        runner.dispose();
        throw new TrainError(`pretrained checkpoint ${path} does not match model '${cfg.model}' (${diff.join('; ')}); ` +
          'set model: auto to use the checkpoint\'s own architecture, or pick the matching preset');
      }
    }
    return runner;
  }
  const config = modelConfig(cfg.model === 'auto' ? 'rdt-1b' : cfg.model);
  return new RDTRunner(config, { dtype: 'float32', device: cfg.device, generator: new torch.Generator(cfg.seed) });
}

function makeSinks(cfg: TrainConfig, dir: string): MetricSink[] {
  const sinks: MetricSink[] = [];
  for (const r of cfg.report_to) {
    if (r === 'jsonl') sinks.push(new JsonlSink(join(dir, 'metrics.jsonl')));
    else if (r === 'tensorboard') sinks.push(new TensorBoardSink(join(dir, 'tensorboard')));
    else if (r === 'wandb') sinks.push(new WandbSink({ project: 'rdt-libero', name: basename(dir), id: basename(dir), dir, config: cfg }));
    else if (r === 'none') continue;
    else throw new TrainError(`report_to: unknown sink '${r}' (use jsonl, tensorboard, wandb or none)`);
  }
  return sinks;
}

/** Run a training job. Everything it builds (model, optimizer, EMA, encoders) is freed when it returns or fails. */
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const owned: { dispose(): void }[] = [];
  try {
    return await runTraining(cfg, opts, owned);
  } finally {
    for (const o of owned.reverse()) o.dispose();
  }
}

async function runTraining(cfg: TrainConfig, opts: TrainOptions, owned: { dispose(): void }[]): Promise<TrainResult> {
  const verbose = opts.verbose ?? true;
  const say = (s: string) => verbose && process.stderr.write(s + '\n');
  checkUpFront(cfg);
  const out = cfg.output_dir;
  mkdirSync(out, { recursive: true });
  for (const t of removeStaleTemporaries(out)) say(`removed a half-written checkpoint left by an earlier run: ${t}`);
  torch.manualSeed(cfg.seed);

  // ---- data ----
  if (!cfg.data.dataset_root) throw new TrainError('data.dataset_root is not set: point it at a folder holding LIBERO suites (e.g. libero_spatial/)');
  const datasetOptions = {
    root: cfg.data.dataset_root,
    suites: cfg.data.suites.length ? cfg.data.suites : undefined,
    instructionSource: cfg.data.instruction_source,
    index: {
      align: cfg.data.realign_obs_action ? ('realign' as const) : ('auto' as const),
      skipLeadingIdle: cfg.data.skip_idle_steps,
      dropNoops: cfg.data.drop_noops,
    },
    adapter: { encoding: cfg.data.action_encoding, ctrlFreq: cfg.ctrl_freq },
  };

  const resume = resolveResume(out, cfg.resume_from_checkpoint);
  const prior = resume ? (JSON.parse(readFileSync(join(resume.path, TRAINER_STATE), 'utf8')) as TrainerState) : null;

  const loader = await DataLoader.create({
    dataset: { ...datasetOptions, split: { holdoutPerTask: cfg.data.holdout_demos_per_task, part: 'train' as const } },
    batchSize: cfg.train_batch_size,
    workers: cfg.data.num_workers,
    sampler: { seed: cfg.seed, weights: Object.keys(cfg.data.suite_weights).length ? cfg.data.suite_weights : undefined },
    start: prior?.loader,
  });
  const ds = loader.dataset;
  if (ds.index.total === 0) throw new TrainError(`no training steps found under ${cfg.data.dataset_root} (suites: ${ds.suites.join(', ') || 'none'})`);
  const { stats } = loadOrComputeStats(ds, join(out, 'stats'));
  const st = stats.libero;
  const stateMean = Float32Array.from(st.state_mean);
  const stateStd = Float32Array.from(st.state_std);
  const rms = (mean: number[], std: number[], i: number) => Math.sqrt(mean[i] ** 2 + std[i] ** 2);
  const valueNorm = Float32Array.from(st.state_mean, (_, i) => Math.max(rms(st.state_mean, st.state_std, i), rms(st.action_mean, st.action_std, i)));

  // Batches for sample evaluation, fixed and built once: from the held-out demos, or (with
  // holdout_demos_per_task 0, e.g. single-demo overfitting) from the training demos themselves.
  const heldOut = cfg.data.holdout_demos_per_task > 0;
  const holdout = cfg.sample_period > 0
    ? await DataLoader.create({
      dataset: heldOut ? { ...datasetOptions, split: { holdoutPerTask: cfg.data.holdout_demos_per_task, part: 'holdout' as const } } : datasetOptions,
      batchSize: cfg.sample_batch_size, workers: 0, sampler: { seed: cfg.seed + 1 },
    })
    : null;
  const sampleBatches: Batch[] = [];
  if (holdout) {
    // Loader batches are pooled (valid until the next call): keep copies.
    for (let i = 0; i < cfg.num_sample_batches && holdout.dataset.index.total > 0; i++) sampleBatches.push(cloneBatch(await holdout.next()));
    await holdout.close();
  }

  // ---- model ----
  const runner = buildRunner(cfg);
  owned.push(runner);
  const enc = buildEncoders(runner);
  owned.push(enc.text, enc.vision);
  const policy = policyConventions({ adapter: ds.cfg, stats: st, encoders: enc, rdt: runner.config, run: basename(out), baseModel: cfg.pretrained_model_name_or_path ?? cfg.model, lora: cfg.lora });
  if (cfg.lora.enabled) {
    const adapted = injectLora(runner.model, { rank: cfg.lora.rank, alpha: cfg.lora.alpha, targets: cfg.lora.targets, generator: new torch.Generator(cfg.seed + 7) });
    markOnlyLoraTrainable(runner, cfg.lora.train_adaptors ? ['lang_adaptor.', 'img_adaptor.', 'state_adaptor.'] : []);
    say(`LoRA: rank ${cfg.lora.rank}, alpha ${cfg.lora.alpha}, ${adapted.length} adapted linears`);
  }
  const trainable = runner.parameters().filter((p) => p.requiresGrad);
  const bf16 = cfg.mixed_precision === 'bf16';
  const masters = bf16 ? new MasterWeights(trainable) : null;
  if (masters) owned.push(masters);
  if (bf16) runner.to({ dtype: 'bfloat16' });
  const optimizer = new optim.AdamW(masters ? masters.masters : trainable, {
    lr: cfg.learning_rate, betas: [cfg.adam_beta1, cfg.adam_beta2], eps: cfg.adam_epsilon, weightDecay: cfg.adam_weight_decay,
  });
  owned.push(optimizer);
  const ema = cfg.ema.enabled ? new Ema(runner, cfg.ema) : null;
  if (ema) owned.push(ema);
  const gen = new torch.Generator(cfg.seed + 1000); // noise, timesteps, condition dropout

  let step = 0;
  let skipped = 0;
  let badInRow = 0;
  if (resume && prior) {
    const ck = resume.path;
    // Everything loaded here is copied into the model, optimizer, masters and EMA; the scope frees the
    // loaded copies afterwards (for rdt-1b they are several times the model's size).
    torch.scope(() => {
      const weights = join(ck, 'model.safetensors');
      // With LoRA the adapters live in their own file, so the base file lacks their keys.
      loadRunnerState(runner, loadSafetensors(weights).tensors, { source: weights, strict: !cfg.lora.enabled });
      if (cfg.lora.enabled) {
        const lora = join(ck, 'adapter_model.safetensors');
        runner.loadStateDict(loadSafetensors(lora).tensors, { strict: false, castDtype: true, source: lora });
      }
      const state = loadState(join(ck, 'training_state')) as { optimizer: unknown; generator: Tensor; masters?: Tensor[] };
      optimizer.loadStateDict(state.optimizer as never);
      gen.setState(state.generator);
      if (masters && state.masters) torch.noGrad(() => masters.masters.forEach((m, i) => m.copy_(state.masters![i])));
      if (ema) ema.loadStateDict(loadSafetensors(join(ck, 'ema', 'model.safetensors')).tensors, prior.ema_updates);
    });
    step = prior.global_step;
    skipped = prior.skipped_steps;
    badInRow = prior.bad_in_row;
    say(`resumed from ${ck} at step ${step}`);
  }

  const totalSteps = cfg.max_train_steps ?? Math.ceil((cfg.num_train_epochs * ds.index.total) / effectiveBatch(cfg));
  const augment: Augment = {
    condMaskProb: cfg.cond_mask_prob, camExtMaskProb: cfg.cam_ext_mask_prob, stateNoiseSnr: cfg.state_noise_snr,
    stateMean, stateStd, imageAug: cfg.image_aug, generator: gen,
  };

  writeFileAtomic(join(out, 'run_config.yaml'), toYaml(cfg));
  const metrics = new Metrics(makeSinks(cfg, out));
  say(`rdt-libero train: ${runner.numParameters()} parameters (${trainable.reduce((a, p) => a + p.numel(), 0)} trained), ` +
    `${ds.index.total} training steps in ${ds.suites.join(', ')}, encoders ${enc.text.isDemo ? 'DEMO (not T5/SigLIP)' : 'official'}`);
  say(`effective batch ${effectiveBatch(cfg)} = ${cfg.train_batch_size} x ${cfg.gradient_accumulation_steps} accumulation x 1 process; ` +
    `lr ${cfg.learning_rate} ${cfg.lr_scheduler} (warmup ${cfg.lr_warmup_steps}); ${totalSteps} optimizer steps; output ${out}`);

  const evalNow = (): SampleMetrics | null =>
    sampleBatches.length ? sampleEvaluate(runner, sampleBatches, enc, { seed: cfg.seed, valueNorm, rawDelta: cfg.data.action_encoding === 'raw_delta', device: cfg.device }) : null;
  const sampleBefore = step === 0 ? evalNow() : null;
  if (sampleBefore) metrics.log(step, prefixed('sample/', sampleBefore));

  const losses: number[] = [];
  let lastCheckpoint: string | null = resume?.path ?? null;
  let position = prior?.loader ?? { epoch: 0, position: 0 };
  const progress = new Progress(totalSteps, 'train', step, !verbose);
  let dataWait = 0;
  const t0 = performance.now();
  let samplesSeen = 0;

  const saveCheckpoint = () => {
    const state: TrainerState = { global_step: step, loader: position, ema_updates: ema?.updates ?? 0, skipped_steps: skipped, bad_in_row: badInRow };
    lastCheckpoint = writeCheckpoint(out, step, (dir) => {
      // The hub layout (config.json + model.safetensors), base weights only: adapters go to their own file.
      saveRdtCheckpoint(runner, dir, { filter: (k) => !isLoraKey(k) });
      if (cfg.lora.enabled) saveSafetensors(join(dir, 'adapter_model.safetensors'), loraStateDict(runner));
      if (ema) {
        mkdirSync(join(dir, 'ema'));
        saveSafetensors(join(dir, 'ema', 'model.safetensors'), ema.stateDict(), { format: 'pt' });
      }
      torch.scope(() => saveState(join(dir, 'training_state'), {
        optimizer: optimizer.stateDict(), generator: gen.getState(), masters: masters?.masters,
      }));
      writeFileSync(join(dir, 'run_config.yaml'), toYaml(cfg));
      writePolicyFolder(dir, policy, step); // policy.json (and ema/policy.json): the data conventions of these weights
      opts.onCheckpointWrite?.(dir, step);
      writeFileSync(join(dir, TRAINER_STATE), JSON.stringify(state, null, 2)); // last: marks the checkpoint complete
    }, cfg.checkpoints_total_limit);
  };

  runner.train();
  try {
    while (step < totalSteps) {
      const { loss, finite } = await accumulateGradients(runner, cfg.gradient_accumulation_steps, async () => {
        const w0 = performance.now();
        const batch: LoadedBatch = await loader.next();
        dataWait += performance.now() - w0;
        position = batch.next;
        samplesSeen += batch.size;
        return prepareInputs(batch, enc, augment, cfg.device);
      }, () => ({ generator: gen }));
      if (!finite) {
        runner.zeroGrad();
        skipped++;
        badInRow++;
        metrics.log(step, { 'train/skipped_nonfinite': skipped });
        if (badInRow >= cfg.max_bad_steps)
          throw new TrainError(`loss was NaN/Inf in ${badInRow} optimizer steps in a row (at step ${step}); stopping. ` +
            'Lower learning_rate, check the data statistics (rdt-libero data inspect), or raise max_bad_steps.');
        continue;
      }
      badInRow = 0;
      const lr = cfg.learning_rate * lrFactor(cfg.lr_scheduler, step, cfg.lr_warmup_steps, totalSteps);
      for (const g of optimizer.paramGroups) g.lr = lr;
      if (masters) masters.gradsToMasters();
      const gradNorm = optim.clipGradNorm_(masters ? masters.masters : trainable, cfg.max_grad_norm);
      optimizer.step();
      optimizer.zeroGrad(); // the trained parameters, or their float32 masters
      if (masters) {
        runner.zeroGrad(); // the bf16 gradients the masters were fed from
        masters.mastersToParams();
      }
      ema?.update(runner);
      step++;
      losses.push(loss);
      const sps = samplesSeen / ((performance.now() - t0) / 1000);
      if (step % cfg.log_every === 0 || step === totalSteps || step === 1)
        metrics.log(step, { 'train/loss': loss, 'train/lr': lr, 'train/grad_norm': gradNorm, 'train/samples_per_s': sps, 'train/ema_decay': ema?.decay ?? 0 });
      progress.update(step, { loss, lr, 'samples/s': sps });
      if (cfg.sample_period > 0 && step % cfg.sample_period === 0 && step !== totalSteps) {
        const m = evalNow();
        if (m) metrics.log(step, prefixed('sample/', m));
      }
      if (step % cfg.checkpointing_period === 0 || step === totalSteps) saveCheckpoint();
      if (opts.haltAfterStep !== undefined && step >= opts.haltAfterStep) break;
    }
  } finally {
    progress.done();
    await loader.close();
  }

  const halted = step < totalSteps;
  const sampleAfter = halted ? null : evalNow();
  if (sampleAfter) metrics.log(step, prefixed('sample/', sampleAfter));
  let finalModelDir: string | null = null;
  if (!halted) {
    finalModelDir = join(out, 'final');
    saveRdtCheckpoint(runner, finalModelDir, { filter: (k) => !isLoraKey(k) });
    if (cfg.lora.enabled) saveSafetensors(join(finalModelDir, 'adapter_model.safetensors'), loraStateDict(runner));
    writePolicyFolder(finalModelDir, policy, step);
  }
  metrics.close();
  const elapsed = (performance.now() - t0) / 1000;
  return {
    outputDir: out, steps: step, losses, skippedSteps: skipped, sampleBefore, sampleAfter, lastCheckpoint, finalModelDir,
    samplesPerSecond: samplesSeen / elapsed, dataWaitShare: dataWait / 1000 / elapsed,
  };
}

function prefixed(p: string, m: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (typeof v === 'number') out[p + k] = v;
  return out;
}

