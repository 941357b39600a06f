// DDPM forward noising, as diffusers 0.27.2 `DDPMScheduler(num_train_timesteps=1000,
// beta_schedule="squaredcos_cap_v2", prediction_type="sample", clip_sample=False)`.
// Training only uses `add_noise` (rdt-spec.md 3.1). The tables are computed in plain JS, bit for
// bit as PyTorch computes them (test/fixtures/README.md explains the cumprod).
import * as torch from '../../engine/index.js';
import type { Tensor } from '../../engine/index.js';
import { ModelError } from '../errors.js';

/**
 * GLIDE cosine betas: beta_i = min(1 - abar((i+1)/n) / abar(i/n), 0.999) with
 * abar(s) = cos^2((s + 0.008) / 1.008 * pi / 2), computed in doubles and stored as float32.
 */
export function squaredcosCapV2Betas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (s: number) => Math.cos(((s + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const betas = new Float32Array(n);
  for (let i = 0; i < n; i++) betas[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return betas;
}

/** The noise-schedule tables shared by DDPM and DPM-Solver++ (float32, like torch). */
export interface ScheduleTables {
  betas: Float32Array;
  /** 1 - beta, rounded to float32. */
  alphas: Float32Array;
  /**
   * Cumulative product of the float32 alphas. torch.cumprod on CPU accumulates in double, so this
   * is the float64 running product rounded to float32 once per entry (not a float32 running product).
   */
  alphasCumprod: Float32Array;
}

export function scheduleTables(numTrainTimesteps: number): ScheduleTables {
  const betas = squaredcosCapV2Betas(numTrainTimesteps);
  const alphas = new Float32Array(numTrainTimesteps);
  const alphasCumprod = new Float32Array(numTrainTimesteps);
  let acc = 1;
  for (let i = 0; i < numTrainTimesteps; i++) {
    alphas[i] = 1 - betas[i];
    acc *= alphas[i];
    alphasCumprod[i] = acc;
  }
  return { betas, alphas, alphasCumprod };
}

export class DDPMScheduler {
  readonly numTrainTimesteps: number;
  readonly tables: ScheduleTables;
  // alphas_cumprod as a float32 tensor per device, made on first use and kept.
  readonly #acp = new Map<string, Tensor>();

  constructor(opts: { numTrainTimesteps?: number } = {}) {
    this.numTrainTimesteps = opts.numTrainTimesteps ?? 1000;
    this.tables = scheduleTables(this.numTrainTimesteps);
  }

  /** alphas_cumprod as a kept float32 tensor on `device`. */
  alphasCumprod(device = 'cpu'): Tensor {
    let t = this.#acp.get(device);
    if (!t) {
      t = torch.tensor(this.tables.alphasCumprod, { device }).keep();
      this.#acp.set(device, t);
    }
    return t;
  }

  /**
   * x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, with t per batch row (int64, shape (B,)).
   * As in diffusers, abar is cast to the sample dtype first, so bf16 samples give bf16 arithmetic.
   */
  addNoise(original: Tensor, noise: Tensor, timesteps: Tensor): Tensor {
    if (timesteps.ndim !== 1 || timesteps.shape[0] !== original.shape[0])
      throw new ModelError(`addNoise: timesteps must have shape [${original.shape[0]}] (one per batch row), got [${timesteps.shape}]`);
    return torch.scope(() => {
      const acp = this.alphasCumprod(original.device).to({ dtype: original.dtype }); // (T,) in the sample dtype
      const abar = acp.indexSelect(0, timesteps.to({ device: original.device, dtype: 'int64' })); // (B,)
      const bcast = [original.shape[0], ...original.shape.slice(1).map(() => 1)];
      const sqrtAlpha = abar.pow(0.5).reshape(bcast); // (B,) -> (B, 1, ..., 1)
      const sqrtOneMinus = abar.neg().add(1).pow(0.5).reshape(bcast); // 1 - abar, (B, 1, ..., 1)
      return sqrtAlpha.mul(original).add(sqrtOneMinus.mul(noise));
    });
  }

  dispose(): void {
    for (const t of this.#acp.values()) t.dispose();
    this.#acp.clear();
  }
}
