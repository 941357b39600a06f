// `rdt-libero train --config run.yaml [overrides]`: argument parsing and the summary only; the work is in
// src/train, and failures are reported by main.ts (exit 2 for usage or config errors, 1 for runtime errors).
import { relative, resolve } from 'node:path';
import { loadConfig, parseOverrides } from '../train/config.js';
import { configHelp } from '../train/config_docs.js';
import { UsageError } from '../util/errors.js';
import { helpPointer, parseCommandArgs } from './args.js';
import { formatDuration } from '../train/metrics.js';
import { StopSignals } from '../train/stop_signals.js';
import type { TrainResult } from '../train/trainer.js';
import type { TrainConfig } from '../train/config.js';

export const TRAIN_USAGE = `usage: rdt-libero train [--config run.yaml] [overrides...]

Fine-tunes RDT on LIBERO-format HDF5 files. Settings come from the defaults below, then the YAML file,
then the command-line overrides, each written as any of
  key=value    --key value    --key=value
with dotted keys for nested sections (data.dataset_root=/data/libero, lora.enabled=true) and lists as
a,b or [a, b]. Resume with --resume_from_checkpoint latest (or a checkpoint-N folder).
The resolved config is saved as <output_dir>/run_config.yaml.

keys (default, meaning):
`;

function usage(): string {
  return `${TRAIN_USAGE}${configHelp()}\n\nexit codes: 0 done, 1 runtime error (data, model, training), 2 usage or config error\n`;
}

const TRAIN_ARGS = { command: 'train', usage, options: { config: { type: 'string', short: 'c' } } } as const;

/**
 * Split the arguments the shared parser reads (`--config FILE`, `-c FILE`, `--config=FILE`, `--help`, `-h`)
 * from the free-form overrides (key=value, --key value, --key=value), which loadConfig validates key by key.
 */
export function splitTrainArgs(args: readonly string[]): { own: string[]; overrides: string[] } {
  const own: string[] = [];
  const overrides: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h' || a === '--help' || a.startsWith('--config=')) own.push(a);
    else if (a === '--config' || a === '-c') own.push(a, ...(i + 1 < args.length ? [args[++i]] : []));
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
  if (cfg.encoders === 'demo') lines.push('  (DEMO encoders: these numbers are only meaningful as a pipeline check)');
  lines.push(`  last checkpoint: ${r.lastCheckpoint ? rel(r.lastCheckpoint) : '(none)'}`);
  if (r.finalModelDir) lines.push(`  final weights:   ${rel(r.finalModelDir)}`);
  if (cfg.report_to.includes('jsonl')) lines.push(`  metrics:         ${rel(resolve(cfg.output_dir, 'metrics.jsonl'))}`);
  if (cfg.report_to.includes('tensorboard')) lines.push(`  tensorboard:     tensorboard --logdir ${rel(resolve(cfg.output_dir, 'tensorboard'))}`);
  return lines.join('\n') + '\n';
}

export async function trainCommand(args: string[]): Promise<number> {
  const { own, overrides } = splitTrainArgs(args);
  const parsed = parseCommandArgs(TRAIN_ARGS, own);
  if (!parsed) return 0;
  const file = parsed.values.config;
  if (!file && !overrides.length)
    throw new UsageError(`give --config run.yaml and/or key=value overrides; ${helpPointer('train')} and every key`);
  const cfg = loadConfig({ file, overrides: parseOverrides(overrides) });
  const { train } = await import('../train/trainer.js');
  const t0 = performance.now();
  const r = await train(cfg);
  process.stdout.write(trainSummary(cfg, r, (performance.now() - t0) / 1000));
  if (r.stoppedBy) {
    // The same command continues the run (an earlier resume flag is replaced, not repeated).
    const again = args.filter((a, i) => !/^(--)?resume_from_checkpoint(=|$)/.test(a) && !/^(--)?resume_from_checkpoint$/.test(args[i - 1] ?? ''));
    const quote = (a: string) => (/^[\w./=:,@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
    process.stderr.write(`stopped by ${r.stoppedBy} after step ${r.steps}; to continue: rdt-libero train ${[...again, '--resume_from_checkpoint', 'latest'].map(quote).join(' ')}\n`);
    return StopSignals.exitCode(r.stoppedBy);
  }
  return 0;
}
