// `rdt-libero train --dry-run`: the memory each process holds for the model's state, from the model's real
// parameter list (built on the meta device: shapes, no storage), for the run's precision, LoRA, EMA and
// world size. Activations, encoders and the data loader come on top and depend on the batch; this table is
// the part that grows with the model and that sharding (ZeRO-2) divides.
//
// What a rank holds, per parameter of n elements (t = trained, all = every parameter):
//   weights          all x 4 (float32) or x 2 (bf16)
//   gradients        t x 4 (float32); under bf16: t x 2 (bf16, from backward) + t x 4 (the float32 copy the masters take)
//   master weights   bf16 only: t x 4
//   optimizer state  AdamW exp_avg + exp_avg_sq: t x 8 (float32)
//   EMA              all x 4 (float32 shadow), when ema.enabled
//   all-reduce       data-parallel only: one flat float copy of the gradients per step (t x 2 or x 4)
// ZeRO-2 (zero_stage: 2) keeps about 1/W of the float32 gradients, masters and optimizer state (whole parameters
// per rank, balanced by size, so a rank's share is close to, not exactly, 1/W; the table shows 1/W).
import type { TrainConfig } from './config.js';
import { buildMetaRunner } from './build.js';

export interface MemoryRow {
  weights: number;
  gradients: number;
  masterWeights: number;
  optimizerState: number;
  ema: number;
  allReduceBuffers: number;
  total: number;
}

export interface MemoryPlan {
  parameters: number;
  trained: number;
  worldSize: number;
  precision: 'float32' | 'bf16';
  /** What each rank holds with plain data parallelism (every rank a full copy): what rdt-libero does. */
  dataParallel: MemoryRow;
  /** The same with ZeRO-2 sharding (zero_stage: 2) of the float32 gradients, masters and optimizer state. */
  zero2: MemoryRow;
}

function row(r: Omit<MemoryRow, 'total'>): MemoryRow {
  return { ...r, total: r.weights + r.gradients + r.masterWeights + r.optimizerState + r.ema + r.allReduceBuffers };
}

/** The per-rank bytes for `all` parameters of which `trained` train, as the table above says. */
export function memoryRows(all: number, trained: number, o: { bf16: boolean; ema: boolean; worldSize: number }): { dataParallel: MemoryRow; zero2: MemoryRow } {
  const W = o.worldSize;
  const wBytes = o.bf16 ? 2 : 4;
  const lowGrads = o.bf16 ? trained * 2 : 0; // bf16 gradients of backward, before the float32 copy
  const f32Grads = trained * 4;
  const masters = o.bf16 ? trained * 4 : 0;
  const adam = trained * 8;
  const ema = o.ema ? all * 4 : 0;
  const comm = W > 1 ? trained * wBytes : 0;
  return {
    dataParallel: row({ weights: all * wBytes, gradients: lowGrads + f32Grads, masterWeights: masters, optimizerState: adam, ema, allReduceBuffers: comm }),
    zero2: row({ weights: all * wBytes, gradients: lowGrads + f32Grads / W, masterWeights: masters / W, optimizerState: adam / W, ema, allReduceBuffers: comm }),
  };
}

/** The plan for a run config at a world size, from its model's parameter list. */
export function memoryPlan(cfg: TrainConfig, worldSize: number): MemoryPlan {
  const runner = buildMetaRunner(cfg);
  try {
    const params = runner.parameters();
    const all = params.reduce((a, p) => a + p.numel(), 0);
    const trained = params.filter((p) => p.requiresGrad).reduce((a, p) => a + p.numel(), 0);
    const bf16 = cfg.mixed_precision === 'bf16';
    return { parameters: all, trained, worldSize, precision: bf16 ? 'bf16' : 'float32', ...memoryRows(all, trained, { bf16, ema: cfg.ema.enabled, worldSize }) };
  } finally {
    runner.dispose();
  }
}

const GiB = (b: number) => (b / 2 ** 30).toFixed(2);

/** The table `train --dry-run` prints. */
export function formatMemoryPlan(p: MemoryPlan, model: string): string {
  const cols: [string, keyof MemoryRow][] = [
    ['weights', 'weights'], ['gradients', 'gradients'], ['master weights', 'masterWeights'], ['optimizer state', 'optimizerState'],
    ['EMA', 'ema'], ['all-reduce buffers', 'allReduceBuffers'], ['total', 'total'],
  ];
  const lines = [
    `model ${model}: ${p.parameters.toLocaleString('en-US')} parameters, ${p.trained.toLocaleString('en-US')} trained; ${p.precision}; ${p.worldSize} process${p.worldSize > 1 ? 'es' : ''}`,
    'per-rank memory of the model state (GiB; activations, encoders and data come on top):',
    `  ${'what'.padEnd(20)}${'data-parallel'.padStart(15)}${'ZeRO-2 *'.padStart(12)}`,
    ...cols.map(([label, k]) => `  ${label.padEnd(20)}${GiB(p.dataParallel[k]).padStart(15)}${GiB(p.zero2[k]).padStart(12)}`),
    '  * zero_stage: 2 (float32 gradients, masters and AdamW state sharded; whole parameters per rank, so about 1/W each)',
  ];
  return lines.join('\n') + '\n';
}
