// The embedded demo, end to end on one CPU: record a scripted expert's demonstrations in the simulator's test
// back-end (record.ts), fine-tune a tiny RDT on them with the demo encoders (src/train), then measure closed-loop
// success with `rdt-libero eval --sim test` on initial states the demonstrations did not use, for the untrained
// and the trained policy and at several exec horizons. The report is report.ts; the command line, cli/demo.ts.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { hubConfigText, rdtPreset } from '../model/config.js';
import { loadConfig, type TrainConfig } from '../train/config.js';
import type { Evaluator } from '../train/hooks.js';
import { PolicyFolderWriter, writeModelFolder } from '../train/checkpoint.js';
import type { TrainResult } from '../train/trainer.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { recordChecksums } from '../util/checksums.js';
import { DemoError, DemoStopped } from './errors.js';
import { type EvalRun, runEvalChild } from './eval_child.js';
import { recordDemos, recordedFiles } from './record.js';

/** Everything the demo's outcome depends on; `rdt-libero demo` uses DEMO or, with --quick, QUICK. */
export interface DemoSettings {
  suite: string;
  tasks: number[];
  /** Camera height = width, px, of the recordings, hence of the policy and the evaluation. */
  resolution: number;
  /** Demonstrations per task, from initial states firstDemoInit, firstDemoInit + 1, ... */
  demosPerTask: number;
  /** Evaluation uses initial states 0 .. episodes - 1 (openpi's order), so episodes <= firstDemoInit keeps them held out. */
  firstDemoInit: number;
  episodes: number;
  maxSteps: number;
  steps: number;
  batch: number;
  learningRate: number;
  /** The model: the tiny preset with these config.json overrides. */
  model: Record<string, unknown>;
  /** Exec horizons to evaluate the trained policy at; the first is the headline (its videos are kept). */
  execHorizons: number[];
  /** Also evaluate with ACT temporal ensembling at this k (null: not). */
  temporalEnsemble: number | null;
  /** Simulator workers per evaluation. */
  workers: number;
  seed: number;
}

export interface DemoPaths {
  out: string;
  data: string;
  model: string;
  train: string;
  untrained: string;
  eval: string;
}

export function demoPaths(out: string): DemoPaths {
  return { out, data: join(out, 'data'), model: join(out, 'model.json'), train: join(out, 'train'), untrained: join(out, 'untrained'), eval: join(out, 'eval') };
}

export interface PhaseTime {
  name: string;
  wallS: number;
}

export interface DemoResult {
  settings: DemoSettings;
  paths: DemoPaths;
  recorded: { files: string[]; demos: number; steps: number; reused: boolean };
  cfg: TrainConfig;
  train: TrainResult;
  /** The trained policy folder evaluated (the last checkpoint's EMA weights). */
  policy: string;
  untrained: EvalRun;
  /** One per exec horizon of settings.execHorizons, then temporal ensembling when set. */
  trained: { label: string; run: EvalRun }[];
  phases: PhaseTime[];
  wallS: number;
  loadStart: number[];
  loadEnd: number[];
  /** CPU seconds: this process, and its finished children (evaluations, simulators, ffmpeg). */
  cpuS: { self: number; children: number | null };
}

/** The demonstrations' record: reused when it matches the settings. */
function recordingKey(s: DemoSettings) {
  return { suite: s.suite, tasks: s.tasks, inits: [s.firstDemoInit, s.firstDemoInit + s.demosPerTask], resolution: s.resolution, seed: s.seed, expert: 1 };
}

async function ensureDemos(s: DemoSettings, p: DemoPaths, say: (l: string) => void): Promise<DemoResult['recorded']> {
  const manifest = join(p.data, 'demos.json');
  const key = JSON.stringify(recordingKey(s));
  if (existsSync(manifest)) {
    const m = JSON.parse(readFileSync(manifest, 'utf8')) as { key: unknown; demos: number; steps: number };
    const files = recordedFiles(p.data, s.suite);
    if (JSON.stringify(m.key) === key && files.length === s.tasks.length) {
      say(`data: reusing ${m.demos} recorded demonstrations in ${join(p.data, s.suite)} (${files.length} tasks)`);
      return { files, demos: m.demos, steps: m.steps, reused: true };
    }
  }
  // Recorded into a temporary folder and renamed: a killed run leaves no half dataset behind.
  const tmp = join(p.out, `.data.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  const inits = Array.from({ length: s.demosPerTask }, (_, i) => s.firstDemoInit + i);
  say(`data: recording the scripted expert in the simulator's test back-end: ${s.suite} tasks ${s.tasks.join(',')}, ` +
    `initial states ${inits[0]}-${inits[inits.length - 1]} (${s.demosPerTask} per task), ${s.resolution}x${s.resolution} cameras`);
  const r = await recordDemos({ root: tmp, suite: s.suite, tasks: s.tasks, inits, resolution: s.resolution, seed: s.seed, workers: s.workers, log: say });
  if (r.dropped) throw new DemoError(`the scripted expert failed ${r.dropped} of ${r.dropped + r.demos} recording episodes (a bug in src/demo/expert.ts or sidecar/reach_env.py)`);
  writeFileAtomic(join(tmp, 'demos.json'), JSON.stringify({ key: JSON.parse(key), demos: r.demos, steps: r.steps }, null, 2) + '\n');
  rmSync(p.data, { recursive: true, force: true });
  renameSync(tmp, p.data);
  const files = recordedFiles(p.data, s.suite);
  return { files, demos: r.demos, steps: r.steps, reused: false };
}

/** The demo's training configuration: every key the report mentions is set here, the rest are the defaults. */
export function demoTrainConfig(s: DemoSettings, p: DemoPaths): TrainConfig {
  return loadConfig({
    overrides: {
      model: p.model,
      // The demo's stand-ins: hashed words and one token per palette colour (src/encoders/demo.ts), and z-scored
      // values; with random patch projections or physical units the tiny model learns only the mean chunk in the
      // demo's budget (README, demo section).
      encoders: 'demo_palette',
      value_normalization: 'zscore',
      output_dir: p.train,
      seed: s.seed,
      train_batch_size: s.batch,
      gradient_accumulation_steps: 1,
      learning_rate: s.learningRate,
      lr_scheduler: 'cosine',
      lr_warmup_steps: Math.max(1, Math.round(s.steps / 15)),
      max_train_steps: s.steps,
      mixed_precision: 'no', // bf16 matmuls are slower than float32 on most CPUs
      checkpointing_period: s.steps,
      checkpoints_total_limit: 1,
      overwrite: true, // every demo trains afresh in its folder (the recorded demonstrations are kept)
      sample_period: s.steps, // sample MSE before and after only
      sample_batch_size: 32,
      num_sample_batches: 1,
      log_every: Math.max(1, Math.round(s.steps / 30)),
      ema: { enabled: true },
      data: { dataset_root: p.data, suites: [s.suite], action_encoding: 'eef_target_pose', holdout_demos_per_task: 1, num_workers: 1 },
    },
  });
}

/** Saves the model as it is before the first step (a policy folder like the checkpoints'), for the untrained baseline. */
function untrainedPolicy(dir: string): Evaluator {
  return {
    name: 'untrained_policy', every: 0, atStart: true,
    evaluate(runner, step, ctx) {
      const writer = new PolicyFolderWriter();
      writer.prepare(ctx);
      writeDirAtomic(dir, (tmp) => {
        writeModelFolder(runner, tmp, false);
        writer.write(tmp, { kind: 'final', step }, ctx);
        recordChecksums(tmp);
      });
      return null;
    },
  };
}

/** The `rdt-libero eval` arguments of one demo evaluation. */
export function evalArgs(s: DemoSettings, policy: string, out: string, mode: { execHorizon: number } | { temporalEnsemble: number }, videos: 'none' | 'failures' | 'all'): string[] {
  return [
    '--policy', policy, '--sim', 'test', '--suite', s.suite, '--tasks', s.tasks.join(','), '--episodes', String(s.episodes),
    '--max-steps', String(s.maxSteps), ...('execHorizon' in mode ? ['--exec-horizon', String(mode.execHorizon)] : ['--temporal-ensemble', String(mode.temporalEnsemble)]),
    '--seed', '7', '--workers', String(s.workers), '--threads', '1', '--videos', videos, '--out', out,
  ];
}

/** CPU seconds of the finished children this process waited for (Linux /proc; null elsewhere). */
function childrenCpuS(): number | null {
  try {
    const f = readFileSync('/proc/self/stat', 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100; // cutime + cstime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

export async function runDemo(s: DemoSettings, out: string, say: (line: string) => void): Promise<DemoResult> {
  if (s.episodes > s.firstDemoInit) throw new DemoError(`${s.episodes} evaluation episodes per task would reuse initial states of the demonstrations (they start at ${s.firstDemoInit})`);
  const p = demoPaths(out);
  const t0 = performance.now();
  const loadStart = loadavg();
  const phases: PhaseTime[] = [];
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    const r = await fn();
    phases.push({ name, wallS: (performance.now() - t) / 1000 });
    return r;
  };
  mkdirSync(out, { recursive: true });
  const recorded = await phase('record demonstrations', () => ensureDemos(s, p, say));

  for (const d of [p.train, p.untrained, p.eval]) rmSync(d, { recursive: true, force: true });
  writeFileSync(p.model, hubConfigText(rdtPreset('tiny', s.model)));
  const cfg = demoTrainConfig(s, p);
  const { train } = await import('../train/trainer.js');
  say(`train: the tiny RDT (${p.model}) from scratch with the DEMO encoders, ${s.steps} steps of batch ${s.batch}`);
  const tr = await phase('train', () => train(cfg, { hooks: { evaluators: [untrainedPolicy(p.untrained)] } }));
  // A stop signal ends the demo here: the trainer has saved and returned, and the user asked to stop.
  if (tr.stoppedBy) throw new DemoStopped(tr.stoppedBy);
  if (!tr.lastCheckpoint) throw new DemoError(`training in ${p.train} wrote no checkpoint`);
  const policy = join(tr.lastCheckpoint, 'ema');

  const untrained = await phase('evaluate untrained', () =>
    runEvalChild(evalArgs(s, p.untrained, join(p.eval, 'untrained'), { execHorizon: s.execHorizons[0] }, 'none'), say, 'eval untrained: '));
  const trained: DemoResult['trained'] = [];
  for (const [i, h] of s.execHorizons.entries()) {
    const label = `exec_horizon ${h}`;
    const run = await phase(`evaluate trained, ${label}`, () =>
      runEvalChild(evalArgs(s, policy, join(p.eval, `trained-h${h}`), { execHorizon: h }, i === 0 ? 'all' : 'failures'), say, `eval trained (${label}): `));
    trained.push({ label, run });
  }
  if (s.temporalEnsemble !== null) {
    const k = s.temporalEnsemble;
    const label = `temporal ensembling k=${k}`;
    const run = await phase(`evaluate trained, ${label}`, () =>
      runEvalChild(evalArgs(s, policy, join(p.eval, 'trained-te'), { temporalEnsemble: k }, 'failures'), say, `eval trained (${label}): `));
    trained.push({ label, run });
  }
  const cpu = process.cpuUsage();
  return {
    settings: s, paths: p, recorded, cfg, train: tr, policy, untrained, trained, phases,
    wallS: (performance.now() - t0) / 1000, loadStart, loadEnd: loadavg(),
    cpuS: { self: (cpu.user + cpu.system) / 1e6, children: childrenCpuS() },
  };
}
