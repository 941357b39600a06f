// `rdt-libero train --dry-run`: the memory each process holds for the model's state, from the model's real
// parameter list (built on the meta device: shapes, no storage), for the run's precision, LoRA, EMA, world size,
// ZeRO stage, gradient buckets and accumulation. Activations, encoders and the data loader come on top and depend
// on the batch; this is the part that grows with the model and that sharding (ZeRO-2) divides. test/ddp-memory
// measures it with the CPU allocator's statistics on real multi-process runs.
//
// Per rank, with P parameters of which T train, g bytes per weight and gradient (2 under bf16, else 4), Tm the
// trained elements whose optimizer side this rank keeps (T, or its ZeRO-2 share) and B the largest gradient bucket
// (ddp.bucket_cap_mb, or one parameter larger than that):
//   weights          P x g                       optimizer state  Tm x 8 (AdamW exp_avg + exp_avg_sq, float32)
//   master weights   bf16 only: Tm x 4           EMA              P x 4 (float32 shadow), when ema.enabled
// and what comes and goes within a step (src/train/dist/ddp.ts, native/grad_reducer.cc):
//   end of backward  ZeRO-0: the local gradients T x g, and every bucket in flight (a flat copy: T x g).
//                    ZeRO-2: the gradients leave for their bucket as it launches and only owners get theirs back
//                    (Tm x g); at most 2 buckets are in flight, plus the one being copied: 3 x B. With gradient
//                    accumulation or ddp.overlap_comm false the whole local gradient T x g exists when the
//                    reduction starts, and one bucket is copied at a time: T x g + B.
//   optimizer step   the averaged gradients (T x g, or Tm x g), under bf16 also their float32 copy on the
//                    masters (x 4 instead of x g, the bf16 ones still held).
//   ZeRO-2 broadcast each owner's updated parameters travel as one flat tensor: the largest owner's share x g.
// The peak is the largest of these moments.
import type { TrainConfig } from './config.js';
import { buildMetaRunner } from './build.js';
import { partition } from './dist/zero.js';

export interface MemoryRow {
  weights: number;
  /** The most gradient memory outside the buckets at once (local, averaged, and bf16's float32 copy). */
  gradients: number;
  masterWeights: number;
  optimizerState: number;
  ema: number;
  /** The most held in gradient buckets at once. */
  reductionBuffers: number;
  /** The largest total at any one moment of a step (not the sum of the rows: they peak at different moments). */
  peak: number;
}

export interface MemoryPlan {
  parameters: number;
  trained: number;
  worldSize: number;
  precision: 'float32' | 'bf16';
  /** Plain data parallelism (zero_stage 0): every rank a full copy. */
  dataParallel: MemoryRow;
  /** ZeRO-2 (zero_stage 2), for the rank with the largest share. */
  zero2: MemoryRow;
  /** ZeRO-2, rank by rank. */
  zero2Ranks: MemoryRow[];
}

/** What the memory depends on, beyond the parameter list. */
export interface PlanOptions {
  bf16: boolean;
  ema: boolean;
  worldSize: number;
  /** ddp.bucket_cap_mb in bytes. */
  bucketBytes: number;
  /** Gradients reduced during backward (ddp.overlap_comm). */
  overlap: boolean;
  gradientAccumulation: number;
}

/** Per-rank rows for parameters of `sizes` elements (all of them) of which `trained[i]` train. */
export function memoryRows(sizes: readonly number[], trained: readonly boolean[], o: PlanOptions): { dataParallel: MemoryRow; zero2Ranks: MemoryRow[] } {
  const W = o.worldSize;
  const g = o.bf16 ? 2 : 4;
  const P = sizes.reduce((a, n) => a + n, 0);
  const tSizes = sizes.filter((_, i) => trained[i]);
  const T = tSizes.reduce((a, n) => a + n, 0);
  const ema = o.ema ? P * 4 : 0;
  const bucket = Math.min(T * g, Math.max(o.bucketBytes, ...tSizes.map((n) => n * g)));

  // One rank's moments; tm: the trained elements whose optimizer side it keeps, owner: the largest owner's share.
  const rowFor = (tm: number, zero2: boolean, ownerMax: number): MemoryRow => {
    const base = P * g + (o.bf16 ? tm * 4 : 0) + tm * 8 + ema;
    const f32Copy = o.bf16 ? tm * 4 : 0;
    const whole = o.gradientAccumulation > 1 || !o.overlap || W === 1;
    // [gradients, buffers] at the end of backward, and the gradients of the optimizer step.
    const [gradsR, bufR] = !zero2 ? [T * g, W > 1 ? T * g : 0] : whole ? [T * g, bucket] : [tm * g, Math.min(T * g, 3 * bucket)];
    const gradsS = tm * g + f32Copy;
    const broadcast = zero2 ? ownerMax * g : 0;
    return {
      weights: P * g, gradients: Math.max(gradsR, gradsS), masterWeights: o.bf16 ? tm * 4 : 0, optimizerState: tm * 8, ema,
      reductionBuffers: bufR, peak: base + Math.max(gradsR + bufR, gradsS, broadcast),
    };
  };
  const owner = partition(tSizes, W);
  const shares = Array.from({ length: W }, (_, r) => tSizes.reduce((a, n, i) => a + (owner[i] === r ? n : 0), 0));
  const ownerMax = Math.max(...shares);
  return { dataParallel: rowFor(T, false, 0), zero2Ranks: shares.map((tm) => rowFor(tm, true, ownerMax)) };
}

/** The plan for a run config at a world size, from its model's parameter list. */
export function memoryPlan(cfg: TrainConfig, worldSize: number): MemoryPlan {
  const runner = buildMetaRunner(cfg);
  try {
    const params = runner.parameters();
    const sizes = params.map((p) => p.numel());
    const trained = params.map((p) => p.requiresGrad);
    const bf16 = cfg.mixed_precision === 'bf16';
    const rows = memoryRows(sizes, trained, {
      bf16, ema: cfg.ema.enabled, worldSize, bucketBytes: cfg.ddp.bucket_cap_mb * 2 ** 20, overlap: cfg.ddp.overlap_comm,
      gradientAccumulation: cfg.gradient_accumulation_steps,
    });
    const zero2 = rows.zero2Ranks.reduce((a, b) => (b.peak > a.peak ? b : a));
    return {
      parameters: sizes.reduce((a, n) => a + n, 0), trained: sizes.reduce((a, n, i) => a + (trained[i] ? n : 0), 0), worldSize,
      precision: bf16 ? 'bf16' : 'float32', dataParallel: rows.dataParallel, zero2, zero2Ranks: rows.zero2Ranks,
    };
  } finally {
    runner.dispose();
  }
}

const GiB = (b: number) => (b / 2 ** 30).toFixed(2);

/** The table `train --dry-run` prints. */
export function formatMemoryPlan(p: MemoryPlan, model: string): string {
  const cols: [string, keyof MemoryRow][] = [
    ['weights', 'weights'], ['gradients', 'gradients'], ['master weights', 'masterWeights'], ['optimizer state', 'optimizerState'],
    ['EMA', 'ema'], ['gradient buckets', 'reductionBuffers'], ['peak at once', 'peak'],
  ];
  const lines = [
    `model ${model}: ${p.parameters.toLocaleString('en-US')} parameters, ${p.trained.toLocaleString('en-US')} trained; ${p.precision}; ${p.worldSize} process${p.worldSize > 1 ? 'es' : ''}`,
    'per-rank memory of the model state (GiB; activations, encoders and data come on top):',
    `  ${'what'.padEnd(20)}${'data-parallel'.padStart(15)}${'ZeRO-2 *'.padStart(12)}`,
    ...cols.map(([label, k]) => `  ${label.padEnd(20)}${GiB(p.dataParallel[k]).padStart(15)}${GiB(p.zero2[k]).padStart(12)}`),
    '  each row is the most it holds at once; they peak at different moments of a step, so the peak is not their sum',
    '  * zero_stage: 2 (float32 masters, AdamW state and averaged gradients sharded by whole parameters; the rank with the largest share)',
  ];
  if (p.worldSize > 1 && p.zero2Ranks.length > 1) lines.push(`  ZeRO-2 peak by rank: ${p.zero2Ranks.map((r) => GiB(r.peak)).join(', ')}`);
  lines.push('  a ZeRO-2 checkpoint also gathers the whole optimizer state on rank 0 while it is written');
  return lines.join('\n') + '\n';
}
