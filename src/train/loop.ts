// The training loop. One optimizer step = `gradient_accumulation_steps` micro-batches; then the
// gradient synchroniser (if one is registered), the non-finite check, clipping, the LR schedule,
// AdamW, EMA and logging; evaluators every N steps; and (every `checkpointing_period` steps and at
// the end) a checkpoint holding everything needed to continue exactly where the run stopped.
import { basename, join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { optim } from '../engine/index.js';
import type { LoadedBatch } from '../data/loader.js';
import { writeFileAtomic } from '../util/atomic.js';
import { effectiveBatch, REPORT_SINKS, type TrainConfig } from './config.js';
import { prepareInputs, type Augment } from './conditioning.js';
import { SampleRng } from './sample_rng.js';
import { disposeState } from './dist/zero.js';
import { RUN_CONFIG, saveCheckpoint, saveFinal, type RunState } from './checkpoint.js';
import type { Evaluator, ResolvedHooks, TrainContext } from './hooks.js';
import { lrFactor } from './lr_schedule.js';
import { JsonlSink, Metrics, type MetricSink } from '../metrics/sink.js';
import { Progress } from '../metrics/progress.js';
import { TensorBoardSink } from '../metrics/tensorboard.js';
import { accumulateGradients } from './step.js';
import { WandbSink } from '../metrics/wandb.js';
import { TrainError } from './errors.js';
import { StopSignals, type StopSignal } from './stop_signals.js';

export interface LoopOptions {
  /** Stop (as if killed) right after this optimizer step. */
  haltAfterStep?: number;
  /** Fault injection while a checkpoint is written (see TrainOptions). */
  onCheckpointWrite?: (tmpDir: string, step: number) => void;
  verbose: boolean;
  /** The checkpoint the run resumed from, if any. */
  resumedFrom: string | null;
}

export interface LoopResult {
  losses: number[];
  /** Evaluator results before the first step (fresh runs) and after the last one, by evaluator name. */
  atStart: Map<string, Record<string, number>>;
  atEnd: Map<string, Record<string, number>>;
  lastCheckpoint: string | null;
  finalModelDir: string | null;
  /** The signal that stopped the run early (after saving a checkpoint), or null. */
  stoppedBy: StopSignal | null;
  samplesPerSecond: number;
  dataWaitShare: number;
}

/** `startStep`: the first step this process logs (after a resume: the checkpoint's step + 1). */
function makeSinks(cfg: TrainConfig, dir: string, startStep: number): MetricSink[] {
  const sinks: MetricSink[] = [];
  for (const r of cfg.report_to) {
    if (r === 'jsonl') sinks.push(new JsonlSink(join(dir, 'metrics.jsonl')));
    else if (r === 'tensorboard') sinks.push(new TensorBoardSink(join(dir, 'tensorboard'), startStep));
    else if (r === 'wandb') sinks.push(new WandbSink({ project: 'rdt-libero', name: basename(dir), id: basename(dir), dir, config: cfg }));
    else if (r !== 'none') throw new TrainError(`report_to: unknown sink '${r}' (use ${REPORT_SINKS.join(', ')})`);
  }
  return sinks;
}

function prefixed(p: string, m: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (typeof v === 'number') out[p + k] = v;
  return out;
}

/** Optimizer steps of the run: max_train_steps, or num_train_epochs over the training steps at the effective batch. */
export function totalSteps(cfg: TrainConfig, datasetSteps: number, worldSize = 1): number {
  return cfg.max_train_steps ?? Math.ceil((cfg.num_train_epochs * datasetSteps) / effectiveBatch(cfg, worldSize));
}

export async function runLoop(ctx: TrainContext, state: RunState, hooks: ResolvedHooks, o: LoopOptions): Promise<LoopResult> {
  const { cfg, parts, data, say, dist } = ctx;
  const { runner, optimizer, masters, ema, trainable } = parts;
  const zero = dist?.zero ?? null;
  const out = ctx.outputDir;
  // Rank 0 alone writes the output folder (config, metrics, TensorBoard, checkpoints) and runs the evaluators.
  const main = !dist || dist.isMain;
  const W = dist?.worldSize ?? 1;
  const total = totalSteps(cfg, data.dataset.index.total, W);
  const augment: Omit<Augment, 'rng'> = {
    condMaskProb: cfg.cond_mask_prob, camExtMaskProb: cfg.cam_ext_mask_prob, stateNoiseSnr: cfg.state_noise_snr,
    stateMean: data.stateMean, stateStd: data.stateStd, imageAug: cfg.image_aug,
  };
  const rc = runner.config;

  if (main) writeFileAtomic(join(out, RUN_CONFIG), toYaml(cfg));
  const metrics = new Metrics(main ? makeSinks(cfg, out, state.step === 0 ? 0 : state.step + 1) : []);
  const signals = new StopSignals(say);
  let stoppedBy: StopSignal | null = null;
  try {
    const ds = data.dataset;
    say(`rdt-libero train: ${runner.numParameters()} parameters (${trainable.reduce((a, p) => a + p.numel(), 0)} trained), ` +
      `${ds.index.total} training steps in ${ds.suites.join(', ')}, encoders ${parts.encoders.text.isDemo ? 'DEMO (not T5/SigLIP)' : `${parts.encoders.text.name} + ${parts.encoders.vision.name}`}`);
    say(`effective batch ${effectiveBatch(cfg, W)} = ${cfg.train_batch_size} x ${cfg.gradient_accumulation_steps} accumulation x ${W} process${W > 1 ? 'es' : ''}; ` +
      `lr ${cfg.learning_rate} ${cfg.lr_scheduler} (warmup ${cfg.lr_warmup_steps}); ${total} optimizer steps; output ${out}`);

    const evaluate = async (ev: Evaluator, into?: Map<string, Record<string, number>>) => {
      const m = await ev.evaluate(runner, state.step, ctx);
      if (!m) return;
      metrics.log(state.step, prefixed(`${ev.name}/`, m));
      into?.set(ev.name, m);
    };
    const atStart = new Map<string, Record<string, number>>();
    if (state.step === 0 && main) for (const ev of hooks.evaluators) if (ev.atStart) await evaluate(ev, atStart);

    const losses: number[] = [];
    let lastCheckpoint = o.resumedFrom;
    const progress = new Progress(total, 'train', state.step, !o.verbose || !main);
    let dataWait = 0;
    let samplesSeen = 0;
    const t0 = performance.now();

    runner.train();
    try {
      while (state.step < total) {
        let rng: SampleRng | null = null;
        let { loss, finite } = await accumulateGradients(runner, cfg.gradient_accumulation_steps, async () => {
          // One turn of the event loop per micro-batch: Ctrl-C / SIGTERM handlers run here even when the loader
          // answers without waiting (num_workers 0), so a stop request is seen within one micro-batch.
          await new Promise<void>((resolve) => setImmediate(resolve));
          const w0 = performance.now();
          const batch: LoadedBatch = await data.loader.next();
          dataWait += performance.now() - w0;
          state.position = batch.next;
          samplesSeen += batch.size * W;
          // This rank's samples are block `rank` of the global batch that starts at batch.position.
          rng = new SampleRng(cfg.seed, { step: state.step, epoch: batch.epoch, first: batch.position + (dist?.rank ?? 0) * batch.size });
          return prepareInputs(batch, parts.encoders, { ...augment, rng }, cfg.device);
        }, () => rng!.diffusion(cfg.train_batch_size, rc.pred_horizon, rc.action_dim, rc.noise_scheduler.num_train_timesteps),
        dist ? { run: (l, last) => dist.backward(l, last), always: true } : undefined);
        if (hooks.gradientSync) {
          const agreed = await hooks.gradientSync({ step: state.step, loss, finite, params: trainable }, ctx);
          if (agreed) ({ loss, finite } = agreed);
        }
        if (!finite) {
          runner.zeroGrad();
          state.skipped++;
          state.badInRow++;
          metrics.log(state.step, { 'train/skipped_nonfinite': state.skipped });
          if (state.badInRow >= cfg.max_bad_steps)
            throw new TrainError(`loss was NaN/Inf in ${state.badInRow} optimizer steps in a row (at step ${state.step}); stopping. ` +
              'Lower learning_rate, check the data statistics (rdt-libero data inspect), or raise max_bad_steps.');
          continue;
        }
        state.badInRow = 0;
        const lr = cfg.learning_rate * lrFactor(cfg.lr_scheduler, state.step, cfg.lr_warmup_steps, total);
        for (const g of optimizer.paramGroups) g.lr = lr;
        if (masters) masters.gradsToMasters();
        const gradNorm = zero ? zero.clipGradNorm(parts.optimized, cfg.max_grad_norm) : optim.clipGradNorm_(parts.optimized, cfg.max_grad_norm);
        optimizer.step();
        optimizer.zeroGrad(); // the trained parameters, or their float32 masters
        if (masters) {
          runner.zeroGrad(); // the bf16 gradients the masters were fed from
          masters.mastersToParams();
        }
        zero?.broadcastParams(); // every parameter takes its owner's update
        ema?.update(runner);
        const step = ++state.step;
        losses.push(loss);
        const sps = samplesSeen / ((performance.now() - t0) / 1000);
        if (step % cfg.log_every === 0 || step === total || step === 1)
          metrics.log(step, { 'train/loss': loss, 'train/lr': lr, 'train/grad_norm': gradNorm, 'train/samples_per_s': sps, 'train/ema_decay': ema?.decay ?? 0 });
        progress.update(step, { loss, lr, 'samples/s': sps });
        if (main)
          for (const ev of hooks.evaluators)
            if (ev.every > 0 && step % ev.every === 0 && !(ev.atEnd && step === total)) await evaluate(ev);
        // Rank 0 writes; the others confirm they finished the same step before it is marked complete.
        const checkpoint = () => {
          // Sharded: rank 0 first collects the unsharded optimizer state (a collective of every rank).
          if (zero) state.gathered = zero.gather(optimizer, masters?.masters ?? null);
          try {
            return main ? saveCheckpoint(ctx, state, hooks, o.onCheckpointWrite) : (dist!.agreeStep(step), null);
          } finally {
            if (state.gathered) disposeState(state.gathered);
            state.gathered = null;
          }
        };
        const saved = step % cfg.checkpointing_period === 0 || step === total;
        if (saved) lastCheckpoint = checkpoint();
        // All ranks stop at the same step when any of them was asked to (the launcher forwards signals to all).
        const stop = dist ? dist.any(signals.requested !== null) : signals.requested !== null;
        if (stop) {
          // Ctrl-C or a scheduler's SIGTERM: this step is complete; keep it, then stop.
          stoppedBy = signals.requested ?? 'SIGTERM';
          if (!saved) lastCheckpoint = checkpoint();
          say(`${stoppedBy}: stopped after step ${step}; checkpoint ${lastCheckpoint}`);
          break;
        }
        if (o.haltAfterStep !== undefined && step >= o.haltAfterStep) break;
      }
    } finally {
      progress.done();
      signals.dispose();
      await data.close();
    }

    const halted = state.step < total;
    const atEnd = new Map<string, Record<string, number>>();
    if (!halted && main) for (const ev of hooks.evaluators) if (ev.atEnd) await evaluate(ev, atEnd);
    const finalModelDir = halted || !main ? null : saveFinal(ctx, state, hooks);
    const elapsed = (performance.now() - t0) / 1000;
    return { losses, atStart, atEnd, lastCheckpoint, finalModelDir, stoppedBy, samplesPerSecond: samplesSeen / elapsed, dataWaitShare: dataWait / 1000 / elapsed };
  } finally {
    metrics.close();
  }
}
