// DPM-Solver++(2M) sampling, as diffusers 0.27.2 `DPMSolverMultistepScheduler(num_train_timesteps=1000,
// beta_schedule="squaredcos_cap_v2", prediction_type="sample")` with its defaults: solver_order 2,
// algorithm "dpmsolver++", solver_type "midpoint", lower_order_final, final_sigmas_type "zero",
// linspace timestep spacing (rdt-spec.md 3.2).
//
// The solver is stateless here: `step(k, m_k, x, m_{k-1})` takes the previous model output from the
// caller instead of keeping a history, so the sampling loop owns every tensor's lifetime.
// The per-step coefficients are computed with 0-dim float32 tensors in the same op order as
// diffusers, so float32 and bf16 runs reproduce it bit for bit (see test/fixtures/README.md: in
// bf16, the model-output terms are rounded to bf16 before they are added to the float32 sample term).
import * as torch from '../../engine/index.js';
import type { Tensor } from '../../engine/index.js';
import { ModelError } from '../errors.js';
import { scheduleTables, type ScheduleTables } from './ddpm.js';

/** The result of set_timesteps(n). */
export interface DpmSchedule {
  /** n integer timesteps, descending (n = 5: [999, 799, 599, 400, 200]). */
  timesteps: number[];
  /** n + 1 VE sigmas sqrt((1 - abar) / abar) at those timesteps, then a final 0 (float32). */
  sigmas: Float32Array;
  /** Solver order of each step: 1, 2, ..., 2, 1 (first step: no history; last: sigma 0). */
  orders: number[];
}

/** numpy's round: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export class DPMSolverMultistepScheduler {
  readonly numTrainTimesteps: number;
  readonly solverOrder = 2;
  readonly lowerOrderFinal = true;
  readonly tables: ScheduleTables;
  /** sqrt((1 - abar) / abar) for every training timestep, float32. */
  readonly sigmasFull: Float32Array;

  constructor(opts: { numTrainTimesteps?: number } = {}) {
    this.numTrainTimesteps = opts.numTrainTimesteps ?? 1000;
    this.tables = scheduleTables(this.numTrainTimesteps);
    // With libtorch, not Math.sqrt: torch's float32 `** 0.5` is not always the correctly rounded
    // square root, and the official sigmas differ from it in the last bit at some timesteps.
    this.sigmasFull = torch.scope(() => {
      const acp = torch.tensor(this.tables.alphasCumprod);
      return acp.neg().add(1).div(acp).pow(0.5).data() as Float32Array; // ((1 - abar) / abar) ** 0.5
    });
  }

  /** alpha_t = sqrt(abar), sigma_t = sqrt(1 - abar), lambda_t = log alpha_t - log sigma_t: (T,) float32 tensors. */
  alphaSigmaLambda(): { alphaT: Tensor; sigmaT: Tensor; lambdaT: Tensor } {
    return torch.scope(() => {
      const acp = torch.tensor(this.tables.alphasCumprod);
      const alphaT = acp.sqrt();
      const sigmaT = acp.neg().add(1).sqrt(); // sqrt(1 - abar)
      return { alphaT, sigmaT, lambdaT: alphaT.log().sub(sigmaT.log()) };
    });
  }

  /** set_timesteps(n): timesteps linspace(0, T-1, n+1) rounded, reversed, last dropped; sigmas at them, then 0. */
  setTimesteps(n: number): DpmSchedule {
    if (!Number.isInteger(n) || n < 1 || n > this.numTrainTimesteps)
      throw new ModelError(`DPM-Solver++: the number of inference steps must be an integer in 1..${this.numTrainTimesteps}, got ${n}`);
    // np.linspace(0, last, n + 1): start + i * (delta / n), the last point set to `last` exactly.
    const last = this.numTrainTimesteps - 1;
    const step = last / n;
    const grid = Array.from({ length: n + 1 }, (_, i) => (i === n ? last : i * step));
    const timesteps = grid.map(roundHalfEven).reverse().slice(0, n);
    const sigmas = new Float32Array(n + 1); // final_sigmas_type "zero": the last one stays 0
    timesteps.forEach((t, i) => (sigmas[i] = this.sigmasFull[t]));
    const orders = timesteps.map((_, k) => this.orderAt(k, n));
    return { timesteps, sigmas, orders };
  }

  /** Solver order at step k of n: 1 without history, 1 at the last step (lower_order_final / sigma 0), else 2. */
  orderAt(k: number, n: number): number {
    if (k === 0) return 1;
    if (k === n - 1) return 1;
    return this.solverOrder;
  }

  /**
   * One solver step k (0-based) of `sched`: from x at sigmas[k] to sigmas[k+1], given the x0
   * prediction m (the model's "sample" output) and, for second-order steps, the previous one.
   * Returns the new x in m's dtype (diffusers upcasts x to float32 and casts the result back).
   */
  step(sched: DpmSchedule, k: number, m: Tensor, x: Tensor, mPrev: Tensor | null): Tensor {
    const n = sched.timesteps.length;
    if (k < 0 || k >= n) throw new ModelError(`DPM-Solver++: step ${k} is outside 0..${n - 1}`);
    const order = sched.orders[k];
    if (order === 2 && !mPrev) throw new ModelError(`DPM-Solver++: step ${k} is second order and needs the previous model output`);
    return torch.scope(() => {
      const dev = x.device;
      // VE sigma -> (alpha, sigma, lambda), in diffusers' op order: alpha = 1 / (s^2 + 1)^0.5, sigma = s * alpha.
      const node = (i: number) => {
        const s = torch.scalarTensor(sched.sigmas[i], { device: dev });
        const alpha = s.pow(2).add(1).pow(0.5).reciprocal();
        const sigma = s.mul(alpha);
        return { alpha, sigma, lambda: alpha.log().sub(sigma.log()) };
      };
      const t = node(k + 1);
      const s0 = node(k);
      const sample = x.to({ dtype: 'float32' });
      const h = t.lambda.sub(s0.lambda);
      const coefX = t.sigma.div(s0.sigma); // sigma_t / sigma_s0
      const coefD = () => t.alpha.mul(h.neg().exp().sub(1)); // alpha_t * (exp(-h) - 1)
      let out: Tensor;
      if (order === 1) {
        // DPM-Solver++ first order (DDIM): x_t = (sigma_t / sigma_s) x - alpha_t (e^{-h} - 1) D0
        out = coefX.mul(sample).sub(coefD().mul(m));
      } else {
        // 2M midpoint: D1 = (m_k - m_{k-1}) / r0 with r0 = h_0 / h
        const s1 = node(k - 1);
        const h0 = s0.lambda.sub(s1.lambda);
        const r0 = h0.div(h);
        const d1 = r0.reciprocal().mul(m.sub(mPrev!));
        out = coefX.mul(sample).sub(coefD().mul(m)).sub(coefD().mul(0.5).mul(d1));
      }
      return out.to({ dtype: m.dtype });
    });
  }
}
