// `rdt-libero demo` (what `npm start` runs): generate a small SYNTHETIC LIBERO-format suite, fine-tune the
// `tiny` RDT on it from scratch with the DEMO encoders on CPU, and report what changed and where the outputs
// are. Argument parsing and the report only; the work is in src/data and src/train.
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import * as torch from '../engine/index.js';
import { writeSyntheticSuite } from '../data/synthetic.js';
import { loadConfig, effectiveBatch, type TrainConfig } from '../train/config.js';
import { formatDuration } from '../train/metrics.js';
import type { SampleMetrics } from '../train/sample_eval.js';
import type { TrainResult } from '../train/trainer.js';
import { parseCommandArgs, positiveInt } from './args.js';

/** The synthetic suite the demo trains on: libero_goal-like, 4 tasks x 5 demos of ~60 steps, 64x64 images. */
export const DEMO_DATA = { suite: 'libero_goal' as const, tasks: 4, demos: 5, meanLength: 60, size: 64, seed: 0 };
export const DEMO_STEPS = 300;
export const QUICK_STEPS = 30;

const USAGE = `usage: rdt-libero demo [--steps N] [--out DIR] [--quick] [--threads N]

Fine-tunes the 'tiny' RDT from scratch, on CPU, on a small SYNTHETIC LIBERO-format suite with the DEMO
encoders (fixed random projections standing in for T5 and SigLIP, which need multi-GB downloads).
It shows that the training pipeline works end to end; the policy it produces is not useful on real LIBERO.

options:
  --steps N     optimizer steps (default ${DEMO_STEPS}; --quick: ${QUICK_STEPS})
  --out DIR     run folder (default runs/demo): data/ holds the generated suite (reused when present),
                train/ the checkpoints and metrics (replaced on every run)
  --quick       a much shorter run (for tests): fewer steps, smaller batches
  --threads N   libtorch CPU threads (default 1: the tiny model gains nothing from more, and idle
                OpenMP threads spin against the data-loading worker on small machines)
`;

/** The demo's training configuration: every key the report mentions is set here, the rest are the defaults. */
export function demoConfig(dataRoot: string, outputDir: string, steps: number, quick: boolean): TrainConfig {
  return loadConfig({
    overrides: {
      model: 'tiny',
      encoders: 'demo',
      output_dir: outputDir,
      seed: 0,
      train_batch_size: quick ? 8 : 16,
      gradient_accumulation_steps: 1,
      learning_rate: 1e-3,
      lr_scheduler: 'cosine',
      lr_warmup_steps: Math.max(1, Math.round(steps / 15)),
      max_train_steps: steps,
      mixed_precision: 'no', // bf16 matmuls are slower than float32 on most CPUs
      checkpointing_period: steps,
      checkpoints_total_limit: 2,
      overwrite: true, // every demo starts over in its folder (the generated suite under data/ is kept)
      sample_period: steps, // evaluate before and after only
      sample_batch_size: quick ? 8 : 32,
      num_sample_batches: quick ? 1 : 2,
      log_every: quick ? 5 : 10,
      ema: { enabled: true },
      // Actions as absolute end-effector targets (position, 6-D rotation, gripper): the synthetic motions are
      // random sinusoids, so their velocities (eef_velocity) are barely predictable in a few hundred steps, while
      // target poses near the current pose are, and their errors read directly in cm and degrees.
      data: { dataset_root: dataRoot, suites: [DEMO_DATA.suite], action_encoding: 'eef_target_pose', holdout_demos_per_task: 1, num_workers: 1 },
    },
  });
}

function suiteReady(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir).filter((f) => f.endsWith('.hdf5')).length === DEMO_DATA.tasks;
}

/** Generate the suite under `<out>/data` unless it is there; written to a temp folder first so a killed run leaves no half suite. */
async function ensureData(out: string, say: (s: string) => void): Promise<string> {
  const root = join(out, 'data');
  const suiteDir = join(root, DEMO_DATA.suite);
  if (suiteReady(suiteDir)) {
    say(`data: reusing the synthetic suite in ${suiteDir}`);
    return root;
  }
  const tmp = join(out, `.data.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  const t0 = performance.now();
  const files = await writeSyntheticSuite({ root: tmp, ...DEMO_DATA });
  rmSync(root, { recursive: true, force: true });
  renameSync(tmp, root);
  say(`data: generated a SYNTHETIC ${DEMO_DATA.suite}-like suite (${files.length} tasks x ${DEMO_DATA.demos} demos, ` +
    `~${DEMO_DATA.meanLength} steps, ${DEMO_DATA.size}x${DEMO_DATA.size} images) in ${suiteDir} ` +
    `(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return root;
}

/** A path relative to the working directory when it lies inside it, else absolute. */
export function shortPath(p: string): string {
  const r = relative(process.cwd(), resolve(p));
  return !r ? '.' : r.startsWith('..') ? resolve(p) : r;
}

const f3 = (x: number | undefined) => (x === undefined ? 'n/a' : Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));

function sampleRows(b: SampleMetrics | null, a: SampleMetrics | null): string[] {
  const rows: [string, keyof SampleMetrics][] = [
    ['sample MSE (overall_avg_sample_mse)', 'overall_avg_sample_mse'],
    ['sample L2 error (normalised)', 'overall_avg_sample_l2err'],
    ['end-effector position error, cm', 'eef_pos_err_cm'],
    ['end-effector rotation error, deg', 'eef_rot_err_deg'],
    ['linear velocity error, cm/s', 'eef_vel_err'],
    ['angular velocity error, deg/s', 'eef_angvel_err'],
    ['gripper error (open fraction)', 'gripper_err'],
  ];
  return rows
    .filter(([, k]) => b?.[k] !== undefined || a?.[k] !== undefined)
    .map(([label, k]) => `  ${label.padEnd(38)} ${f3(b?.[k]).padStart(9)} -> ${f3(a?.[k]).padStart(9)}`);
}

/** Mean of the first / last `n` losses (single steps are noisy: the diffusion timestep is random). */
export function lossEnds(losses: number[]): { first: number; last: number; n: number } {
  const n = Math.max(1, Math.min(10, Math.floor(losses.length / 5)));
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return { first: mean(losses.slice(0, n)), last: mean(losses.slice(-n)), n };
}

export function demoReport(cfg: TrainConfig, r: TrainResult, seconds: number, dataRoot: string): string {
  const rel = shortPath;
  const { first, last, n } = lossEnds(r.losses);
  const ck = r.lastCheckpoint ? rel(r.lastCheckpoint) : '(none)';
  const tbDir = join(cfg.output_dir, 'tensorboard');
  const tbFile = existsSync(tbDir) ? readdirSync(tbDir).find((f) => f.startsWith('events.out.tfevents')) : undefined;
  const lines = [
    '',
    '================ rdt-libero demo: report ================',
    'DEMO ENCODERS + SYNTHETIC DATA: the numbers below show that training works end to end; they say',
    'nothing about performance on real LIBERO (no T5/SigLIP, no simulator).',
    '',
    `trained the tiny RDT (from scratch) for ${r.steps} optimizer steps in ${formatDuration(seconds)} on CPU ` +
      `(batch ${effectiveBatch(cfg)}, ${r.samplesPerSecond.toFixed(1)} samples/s, ${(100 * r.dataWaitShare).toFixed(0)}% of the time waiting for data)`,
    `training loss (mean of the first/last ${n} steps): ${f3(first)} -> ${f3(last)}  (${((100 * (first - last)) / first).toFixed(0)}% lower)`,
    `predicted 64-step action chunks (end-effector target poses) on held-out demos (1 per task, ${r.sampleAfter?.samples ?? r.sampleBefore?.samples ?? 0} samples), before -> after:`,
    ...sampleRows(r.sampleBefore, r.sampleAfter),
    '',
    'outputs:',
    `  checkpoint          ${ck}/  (config.json, model.safetensors, ema/model.safetensors, trainer_state.json, training_state.*)`,
    `  final weights       ${r.finalModelDir ? rel(r.finalModelDir) + '/' : '(none)'}`,
    `  metrics (JSONL)     ${rel(join(cfg.output_dir, 'metrics.jsonl'))}`,
    `  TensorBoard         ${tbFile ? rel(join(tbDir, tbFile)) : rel(tbDir)}   (tensorboard --logdir ${rel(tbDir)})`,
    `  resolved config     ${rel(join(cfg.output_dir, 'run_config.yaml'))}`,
    `  synthetic data      ${rel(join(dataRoot, DEMO_DATA.suite))}/`,
    '',
    'next steps:',
    `  resume this run:    node dist/src/cli/main.js train --config ${rel(join(cfg.output_dir, 'run_config.yaml'))} max_train_steps=${r.steps * 2} --resume_from_checkpoint latest`,
    '  real LIBERO:        node dist/src/cli/main.js train --config run.yaml  with data.dataset_root: /path/to/libero (folders',
    '                      libero_spatial/, libero_goal/, ...), model: rdt-1b or pretrained_model_name_or_path,',
    '                      train_batch_size x gradient_accumulation_steps = 256; see README "Fine-tuning on LIBERO".',
    "  encoders:           real fine-tuning uses 'encoders: official' with text_encoder / vision_encoder (T5-v1.1-XXL +",
    "                      SigLIP hub folders; README \"The official encoders\"); 'encoders: demo' is a labelled stand-in",
    '                      that only makes sense with the tiny model and for testing.',
    '  all config keys:    node dist/src/cli/main.js train --help',
  ];
  return lines.join('\n') + '\n';
}

const DEMO_ARGS = {
  command: 'demo',
  usage: USAGE,
  options: { steps: { type: 'string' }, out: { type: 'string', default: 'runs/demo' }, quick: { type: 'boolean' }, threads: { type: 'string', default: '1' } },
} as const;

export async function demo(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(DEMO_ARGS, args);
  if (!parsed) return 0;
  const { values } = parsed;
  const quick = values.quick;
  const steps = values.steps !== undefined ? positiveInt('steps', values.steps, 'demo') : quick ? QUICK_STEPS : DEMO_STEPS;
  torch.setNumThreads(positiveInt('threads', values.threads, 'demo'));
  const out = values.out;
  const say = (s: string) => process.stderr.write(s + '\n');
  say('rdt-libero demo: fine-tuning the tiny RDT with DEMO encoders (NOT T5/SigLIP) on SYNTHETIC LIBERO-format data, on CPU');
  const t0 = performance.now();
  const dataRoot = await ensureData(out, say);
  const trainDir = join(out, 'train');
  if (existsSync(trainDir) && statSync(trainDir).isDirectory()) {
    say(`replacing the previous demo run in ${trainDir}`);
    rmSync(trainDir, { recursive: true, force: true });
  }
  const cfg = demoConfig(dataRoot, trainDir, steps, quick);
  const { train } = await import('../train/trainer.js');
  const t1 = performance.now();
  const r = await train(cfg);
  const t2 = performance.now();
  process.stdout.write(demoReport(cfg, r, (t2 - t1) / 1000, dataRoot));
  process.stdout.write(`(total ${formatDuration((t2 - t0) / 1000)} including data generation and evaluation)\n`);
  return 0;
}
