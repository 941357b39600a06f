// The random draws of training, keyed per sample. Every draw made for a sample (condition dropout, state
// noise, image augmentation, diffusion noise and timestep) comes from a generator seeded by the run seed,
// the draw's kind, the optimizer step and the sample's position in the global data stream. So a sample
// gets the same draws whichever process holds it and whatever the batch around it: a run's trajectory
// does not depend on the number of processes, and a resumed run draws exactly as an uninterrupted one
// without saving any generator state.
import * as torch from '../engine/index.js';
import { hash32 } from '../data/rng.js';

/** One independent stream per kind of draw, so turning one augmentation on does not shift the others. */
export const DRAW_KINDS = { dropout: 1, stateNoise: 2, imageAug: 3, diffusion: 4 } as const;
export type DrawKind = keyof typeof DRAW_KINDS;

/** Where a micro-batch's samples sit: the optimizer step, and the global stream position of its first sample. */
export interface BatchKey {
  step: number;
  epoch: number;
  /** Global stream position (within `epoch`, may run past its end) of sample 0 of this batch. */
  first: number;
}

/** Seeds one reused CPU generator per (kind, sample) of a micro-batch. */
export class SampleRng {
  private readonly g: torch.Generator;
  constructor(
    readonly seed: number,
    readonly key: BatchKey,
  ) {
    this.g = new torch.Generator(0);
  }

  /** The generator for sample `b` of the batch and one kind of draw, freshly seeded (draws from it in a fixed order). */
  gen(kind: DrawKind, b: number): torch.Generator {
    const k = [this.seed, DRAW_KINDS[kind], this.key.step, this.key.epoch, this.key.first + b];
    // 52 bits of seed from two 32-bit hashes (a generator seed is a uint64; JS numbers are exact to 2^53).
    return this.g.manualSeed((hash32(...k, 1) & 0xfffff) * 2 ** 32 + hash32(...k, 2));
  }

  /** Per-sample uniform [0, 1) draws: B x n values, sample-major. */
  uniform(kind: DrawKind, B: number, n: number): Float32Array {
    const out = new Float32Array(B * n);
    for (let b = 0; b < B; b++) out.set(torch.scope(() => torch.rand([n], { generator: this.gen(kind, b) }).data() as Float32Array), b * n);
    return out;
  }

  /** Per-sample standard normal draws: B x n values, sample-major. */
  normal(kind: DrawKind, B: number, n: number): Float32Array {
    const out = new Float32Array(B * n);
    for (let b = 0; b < B; b++) out.set(torch.scope(() => torch.randn([n], { generator: this.gen(kind, b) }).data() as Float32Array), b * n);
    return out;
  }

  /**
   * The diffusion noise (B, horizon, actionDim) and timesteps (B,) int64 of RDT's loss, per sample: the noise
   * first, then the timestep, as the official code draws them. CPU float32 tensors; the runner casts them.
   */
  diffusion(B: number, horizon: number, actionDim: number, numTrainTimesteps: number): { noise: torch.Tensor; timesteps: torch.Tensor } {
    const noise = new Float32Array(B * horizon * actionDim);
    const t = new BigInt64Array(B);
    for (let b = 0; b < B; b++) {
      const g = this.gen('diffusion', b);
      torch.scope(() => {
        noise.set(torch.randn([horizon * actionDim], { generator: g }).data() as Float32Array, b * horizon * actionDim);
        t[b] = BigInt(torch.randint(0, numTrainTimesteps, [1], { generator: g }).item());
      });
    }
    return { noise: torch.tensor(noise, { shape: [B, horizon, actionDim] }), timesteps: torch.tensor(t) };
  }
}
