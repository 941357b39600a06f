// The data side of a run: the training loader (resuming at a saved position), the dataset
// statistics (cached under output_dir/stats), and the fixed batches of the sample-MSE evaluation.
import { join } from 'node:path';
import { DataLoader, cloneBatch } from '../data/loader.js';
import { type Batch, type DatasetOptions, type LiberoDataset, detectFormat } from '../data/dataset.js';
import { loadOrComputeStats, type DatasetStatFile } from '../data/stats.js';
import type { TrainConfig } from './config.js';
import { runModelConfig } from './build.js';
import { TrainError } from './errors.js';

export interface TrainData {
  readonly loader: DataLoader;
  readonly dataset: LiberoDataset;
  /** dataset_stat.json of the training split: per suite folder and combined as 'libero'. */
  readonly stats: DatasetStatFile;
  readonly statsPath: string;
  /** Per-slot state mean and std of the training split (mean-state dropout, state noise). */
  readonly stateMean: Float32Array;
  readonly stateStd: Float32Array;
  /** Per-slot RMS of states and actions, the sample evaluation's l2err scale. */
  readonly valueNorm: Float32Array;
  /** Sample-evaluation batches (copies; empty with sample_period 0). */
  readonly sampleBatches: Batch[];
  /** Stop the loader's workers (safe to call twice). */
  close(): Promise<void>;
}

/** The dataset options of the config, without the demo split; action chunks as long as the model's (pred_horizon). */
export function datasetOptions(cfg: TrainConfig): DatasetOptions {
  const chunkSize = runModelConfig(cfg).pred_horizon;
  return {
    root: cfg.data.dataset_root,
    format: cfg.data.format,
    lerobotMapping: cfg.data.lerobot_mapping,
    suites: cfg.data.suites.length ? cfg.data.suites : undefined,
    instructionSource: cfg.data.instruction_source,
    index: { align: cfg.data.align, skipLeadingIdle: cfg.data.skip_idle_steps, dropNoops: cfg.data.drop_noops },
    adapter: { encoding: cfg.data.action_encoding, ctrlFreq: cfg.ctrl_freq, chunkSize },
  };
}

/**
 * data.format 'auto' resolved from dataset_root (before a resume compares configs and before run_config.yaml is
 * written, so both record 'hdf5' or 'lerobot').
 */
export function resolveDataFormat(cfg: TrainConfig): void {
  if (cfg.data.format === 'auto' && cfg.data.dataset_root) cfg.data.format = detectFormat(cfg.data.dataset_root);
}

/**
 * Open the training data; `start` is the loader position of a resumed run, `shard` this process's place in
 * a data-parallel run (it loads its block of each global batch).
 */
export async function openTrainData(cfg: TrainConfig, outputDir: string, start?: { epoch: number; position: number },
  shard?: { rank: number; worldSize: number }): Promise<TrainData> {
  if (!cfg.data.dataset_root) throw new TrainError('data.dataset_root is not set: point it at a folder holding LIBERO suites (e.g. libero_spatial/)');
  const options = datasetOptions(cfg);
  const holdoutPerTask = cfg.data.holdout_demos_per_task;
  const loader = await DataLoader.create({
    dataset: { ...options, split: { holdoutPerTask, part: 'train' } },
    batchSize: cfg.train_batch_size,
    workers: cfg.data.num_workers,
    sampler: { seed: cfg.seed, weights: Object.keys(cfg.data.suite_weights).length ? cfg.data.suite_weights : undefined, ...shard },
    start,
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await loader.close();
  };
  try {
    const ds = loader.dataset;
    if (ds.index.total === 0) throw new TrainError(`no training steps found under ${cfg.data.dataset_root} (suites: ${ds.suites.join(', ') || 'none'})`);
    const { stats, path: statsPath } = loadOrComputeStats(ds, join(outputDir, 'stats'));
    const st = stats.libero;
    const rms = (mean: number[], std: number[], i: number) => Math.sqrt(mean[i] ** 2 + std[i] ** 2);
    const valueNorm = Float32Array.from(st.state_mean, (_, i) => Math.max(rms(st.state_mean, st.state_std, i), rms(st.action_mean, st.action_std, i)));
    return {
      loader, dataset: ds, stats, statsPath, valueNorm,
      stateMean: Float32Array.from(st.state_mean), stateStd: Float32Array.from(st.state_std),
      sampleBatches: await sampleBatches(cfg, options), close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Batches for sample evaluation, fixed and built once: from the held-out demos, or (with
 * holdout_demos_per_task 0, e.g. single-demo overfitting) from the training demos themselves.
 */
async function sampleBatches(cfg: TrainConfig, options: DatasetOptions): Promise<Batch[]> {
  if (cfg.sample_period <= 0) return [];
  const heldOut = cfg.data.holdout_demos_per_task > 0;
  const holdout = await DataLoader.create({
    dataset: heldOut ? { ...options, split: { holdoutPerTask: cfg.data.holdout_demos_per_task, part: 'holdout' } } : options,
    batchSize: cfg.sample_batch_size, workers: 0, sampler: { seed: cfg.seed + 1 },
  });
  const out: Batch[] = [];
  try {
    // Loader batches are pooled (valid until the next call): keep copies.
    for (let i = 0; i < cfg.num_sample_batches && holdout.dataset.index.total > 0; i++) out.push(cloneBatch(await holdout.next()));
  } finally {
    await holdout.close();
  }
  return out;
}
