// `rdt-libero train --config run.yaml [overrides]`: argument parsing and the summary only; the work is in
// src/train, and failures are reported by main.ts (exit 2 for usage or config errors, 1 for runtime errors).
import { relative, resolve } from 'node:path';
import { loadConfig, parseOverrides } from '../train/config.js';
import { configHelp } from '../train/config.js';
import { UsageError } from '../util/errors.js';
import { helpPointer, parseCommandArgs } from './args.js';
import { formatDuration } from '../metrics/progress.js';
import { StopSignals } from '../train/stop_signals.js';
import type { TrainResult } from '../train/trainer.js';
import type { TrainConfig } from '../train/config.js';
import type { ProcessGroup } from '../engine/distributed.js';

export const TRAIN_USAGE = `usage: rdt-libero train [--config run.yaml] [launcher flags] [overrides...]

Fine-tunes RDT on LIBERO-format HDF5 files. Settings come from the defaults below, then the YAML file,
then the command-line overrides, each written as any of
  key=value    --key value    --key=value
with dotted keys for nested sections (data.dataset_root=/data/libero, lora.enabled=true) and lists as
a,b or [a, b]. Resume with --resume_from_checkpoint latest (or a checkpoint-N folder).
The resolved config is saved as <output_dir>/run_config.yaml.

Several processes (data-parallel; train_batch_size is per process, the global batch is it x processes):
  --nproc_per_node N   start N worker processes on this node and supervise them (like torchrun)
  --nnodes M           nodes in the job (default 1); --node_rank K this node (0..M-1)
  --master_addr HOST   host of rank 0 (default 127.0.0.1); --master_port P its port (default 29500)
  --dist_timeout_s S   a collective that waits longer than this fails the job (default 1800)
  --dry-run            run nothing: print each process's memory for weights, gradients, master weights
                       and optimizer state at this config and --nproc_per_node x --nnodes
Under torchrun (torchrun --no-python --nproc_per_node N rdt-libero train ...) or SLURM-made torchrun
variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), each process joins as its rank.
Backend: NCCL when device is cuda (each process takes cuda:LOCAL_RANK), Gloo on cpu.

keys (default, meaning):
`;

function usage(): string {
  return `${TRAIN_USAGE}${configHelp()}\n\nexit codes: 0 done, 1 runtime error (data, model, training), 2 usage or config error\n`;
}

const LAUNCH_FLAGS = ['nproc_per_node', 'nnodes', 'node_rank', 'master_addr', 'master_port', 'dist_timeout_s'] as const;
const TRAIN_ARGS = {
  command: 'train', usage,
  options: { config: { type: 'string', short: 'c' }, 'dry-run': { type: 'boolean' }, ...Object.fromEntries(LAUNCH_FLAGS.map((f) => [f, { type: 'string' }])) as Record<(typeof LAUNCH_FLAGS)[number], { type: 'string' }> },
} as const;

/**
 * Split the arguments the shared parser reads (`--config FILE`, `-c FILE`, `--config=FILE`, `--help`, `-h`)
 * from the free-form overrides (key=value, --key value, --key=value), which loadConfig validates key by key.
 */
export function splitTrainArgs(args: readonly string[]): { own: string[]; overrides: string[] } {
  const own: string[] = [];
  const overrides: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const flag = /^--(\w+)/.exec(a)?.[1];
    const launch = (LAUNCH_FLAGS as readonly string[]).includes(flag ?? '');
    if (a === '-h' || a === '--help' || a === '--dry-run' || a.startsWith('--config=') || (launch && a.includes('='))) own.push(a);
    else if (a === '--config' || a === '-c' || launch) own.push(a, ...(i + 1 < args.length ? [args[++i]] : []));
    else overrides.push(a);
  }
  return { own, overrides };
}

const f3 = (x: number | undefined) => (x === undefined ? 'n/a' : Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3));

export function trainSummary(cfg: TrainConfig, r: TrainResult, seconds: number): string {
  const rel = (p: string) => {
    const r = relative(process.cwd(), resolve(p));
    return !r ? '.' : r.startsWith('..') ? resolve(p) : r;
  };
  const n = Math.max(1, Math.min(10, Math.floor(r.losses.length / 5)));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  const b = r.sampleBefore, a = r.sampleAfter;
  const lines = [
    `train done: ${r.steps} optimizer steps in ${formatDuration(seconds)}, ${r.samplesPerSecond.toFixed(1)} samples/s, ` +
      `${(100 * r.dataWaitShare).toFixed(0)}% waiting for data${r.skippedSteps ? `, ${r.skippedSteps} steps skipped (NaN/Inf loss)` : ''}`,
    r.losses.length ? `  loss (mean of first/last ${n} steps this run): ${f3(mean(r.losses.slice(0, n)))} -> ${f3(mean(r.losses.slice(-n)))}` : '  no optimizer step ran in this invocation',
  ];
  if (b || a) {
    // Before -> after on a fresh run; only the end value on a resumed one (the "before" was measured by the first run).
    const ba = (x: number | undefined, y: number | undefined) => (b ? `${f3(x)} -> ${f3(y)}` : f3(y));
    lines.push(`  held-out sample MSE${b ? '' : ' at the end'}: ${ba(b?.overall_avg_sample_mse, a?.overall_avg_sample_mse)}` +
      (a?.eef_pos_err_cm !== undefined ? `; position error ${ba(b?.eef_pos_err_cm, a.eef_pos_err_cm)} cm` : '') +
      (a?.eef_rot_err_deg !== undefined ? `, rotation ${ba(b?.eef_rot_err_deg, a.eef_rot_err_deg)} deg` : ''));
  }
  if (cfg.encoders !== 'official') lines.push('  (DEMO encoders: these numbers are only meaningful as a pipeline check)');
  lines.push(`  last checkpoint: ${r.lastCheckpoint ? rel(r.lastCheckpoint) : '(none)'}`);
  if (r.finalModelDir) lines.push(`  final weights:   ${rel(r.finalModelDir)}`);
  if (cfg.report_to.includes('jsonl')) lines.push(`  metrics:         ${rel(resolve(cfg.output_dir, 'metrics.jsonl'))}`);
  if (cfg.report_to.includes('tensorboard')) lines.push(`  tensorboard:     tensorboard --logdir ${rel(resolve(cfg.output_dir, 'tensorboard'))}`);
  return lines.join('\n') + '\n';
}

function intFlag(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${v}'; ${helpPointer('train')}`);
  return n;
}

export async function trainCommand(args: string[]): Promise<number> {
  const { own, overrides } = splitTrainArgs(args);
  const parsed = parseCommandArgs(TRAIN_ARGS, own);
  if (!parsed) return 0;
  const v = parsed.values;
  const file = v.config;
  if (!file && !overrides.length)
    throw new UsageError(`give --config run.yaml and/or key=value overrides; ${helpPointer('train')} and every key`);
  const cfg = loadConfig({ file, overrides: parseOverrides(overrides) });
  // Loads the native addon: imported here, so `train --help` and config errors need no libtorch.
  const { envFromTorchrun, initProcessGroup } = await import('../engine/distributed.js');

  if (v['dry-run']) {
    // Nothing runs: the per-rank memory of the model state at this config and world size.
    const world = v.nproc_per_node !== undefined ? intFlag('nproc_per_node', v.nproc_per_node, 1) * intFlag('nnodes', v.nnodes, 1) : envFromTorchrun()?.worldSize ?? 1;
    if (world < 1) throw new UsageError('--nproc_per_node and --nnodes must be >= 1');
    const { memoryPlan, formatMemoryPlan } = await import('../train/memory_plan.js');
    process.stdout.write(formatMemoryPlan(memoryPlan(cfg, world), cfg.pretrained_model_name_or_path ?? cfg.model));
    return 0;
  }

  if (v.nproc_per_node !== undefined) {
    // The launcher: start this node's workers with the same command line, minus the launcher flags.
    if (envFromTorchrun()) throw new UsageError('--nproc_per_node inside a torchrun job (WORLD_SIZE is set): let torchrun start the processes, or run without torchrun');
    const { launch } = await import('../train/dist/launch.js');
    const workerArgs = [process.argv[1], 'train', ...(file ? ['--config', file] : []), ...overrides,
      ...(v.dist_timeout_s !== undefined ? ['--dist_timeout_s', v.dist_timeout_s] : [])];
    const r = await launch({
      nprocPerNode: intFlag('nproc_per_node', v.nproc_per_node, 1), nnodes: intFlag('nnodes', v.nnodes, 1), nodeRank: intFlag('node_rank', v.node_rank, 0),
      masterAddr: v.master_addr ?? '127.0.0.1', masterPort: intFlag('master_port', v.master_port, 29500), command: process.execPath, args: workerArgs,
      // For rank 0's "to continue" line: the command the user typed, launcher flags included.
      env: { RDT_TRAIN_COMMAND: JSON.stringify(args) },
    });
    return r.code;
  }
  for (const f of ['nnodes', 'node_rank', 'master_addr', 'master_port'] as const)
    if (v[f] !== undefined) throw new UsageError(`--${f} is a launcher flag: give it with --nproc_per_node (under torchrun, give it to torchrun)`);

  const env = envFromTorchrun();
  const timeoutS = v.dist_timeout_s === undefined ? 1800 : Number(v.dist_timeout_s);
  if (!(timeoutS > 0)) throw new UsageError(`--dist_timeout_s must be a positive number of seconds, got '${v.dist_timeout_s}'`);
  if (v.dist_timeout_s !== undefined && !(env && env.worldSize > 1))
    throw new UsageError('--dist_timeout_s applies to a job of several processes: add --nproc_per_node N or run under torchrun');
  let group: ProcessGroup | undefined;
  const launcher = Number(process.env.RDT_LAUNCHER_PID);
  if (launcher > 0) {
    // Started by --nproc_per_node: a worker whose launcher died (kill -9) has nobody to report to; it stops.
    setInterval(() => {
      if (process.ppid !== launcher) {
        process.stderr.write(`the launcher (pid ${launcher}) is gone; stopping this worker\n`);
        process.exit(1);
      }
    }, 1000).unref();
  }
  if (env && env.worldSize > 1) {
    const cuda = cfg.device.startsWith('cuda');
    // One GPU per process: a plain 'cuda' means this process's local rank.
    if (cfg.device === 'cuda') cfg.device = `cuda:${env.localRank}`;
    group = initProcessGroup({ env, backend: cuda ? 'nccl' : 'gloo', timeoutMs: Math.round(timeoutS * 1000) });
  }
  const { train } = await import('../train/trainer.js');
  const t0 = performance.now();
  try {
    const r = await train(cfg, { group });
    if (group && group.rank !== 0) return r.stoppedBy ? StopSignals.exitCode(r.stoppedBy) : 0;
    process.stdout.write(trainSummary(cfg, r, (performance.now() - t0) / 1000));
    if (r.stoppedBy) {
      // The same command continues the run (an earlier resume flag is replaced, not repeated).
      const typed = process.env.RDT_TRAIN_COMMAND ? (JSON.parse(process.env.RDT_TRAIN_COMMAND) as string[]) : args;
      const again = typed.filter((a, i, all) => !/^(--)?resume_from_checkpoint(=|$)/.test(a) && !/^(--)?resume_from_checkpoint$/.test(all[i - 1] ?? ''));
      const quote = (a: string) => (/^[\w./=:,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
      process.stderr.write(`stopped by ${r.stoppedBy} after step ${r.steps}; to continue: rdt-libero train ${[...again, '--resume_from_checkpoint', 'latest'].map(quote).join(' ')}\n`);
      return StopSignals.exitCode(r.stoppedBy);
    }
    return 0;
  } finally {
    group?.destroy();
  }
}
