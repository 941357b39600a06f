// RDTRunner: the condition adaptors around the RDT core, the diffusion loss and the sampler
// (rdt-spec.md 1.2, 2.3, 3). Field names are the official ones (model, lang_adaptor, img_adaptor,
// state_adaptor), so `runner.stateDict()` has the hub checkpoint's keys.
import * as torch from '../engine/index.js';
import { nn, F, type Tensor, type DType, type Device } from '../engine/index.js';
import { adaptorDepth, type RdtConfig } from './config.js';
import { ModelError } from './errors.js';
import { RDT, disposeConditionCache, type Trace } from './rdt.js';
import { DDPMScheduler } from './schedulers/ddpm.js';
import { DPMSolverMultistepScheduler } from './schedulers/dpm_solver.js';

/**
 * 'linear' -> one Linear; 'mlp{N}x_gelu' -> Linear, then (GELU(tanh), Linear) N-1 times, as a
 * Sequential (so the Linears are children 0, 2, 4, ...). PyTorch default init.
 */
export function buildConditionAdapter(spec: string, inFeatures: number, outFeatures: number, o: { dtype?: DType; device?: Device; generator?: torch.Generator }): nn.TensorModule {
  const depth = adaptorDepth(spec);
  if (depth === null) throw new ModelError(`unknown adaptor type '${spec}'; expected 'linear' or 'mlp{N}x_gelu'`);
  if (spec === 'linear') return new nn.Linear(inFeatures, outFeatures, o);
  const layers: nn.TensorModule[] = [new nn.Linear(inFeatures, outFeatures, o)];
  for (let i = 1; i < depth; i++) layers.push(new nn.GELU({ approximate: 'tanh' }), new nn.Linear(outFeatures, outFeatures, o));
  return new nn.Sequential(...layers);
}

export interface RunnerOptions {
  /** Model dtype (default float32). The official runner keeps its adaptors in float32 at construction; here every parameter has this dtype. */
  dtype?: DType;
  device?: Device;
  /** 'official' initialisation (training from scratch) or 'none' (a checkpoint will be loaded). */
  init?: 'official' | 'none';
  generator?: torch.Generator;
}

/** Already-encoded conditions, as the official predict_action / compute_loss take them. */
export interface Conditions {
  /** (B, L, lang_token_dim) T5 embeddings. */
  langTokens: Tensor;
  /** (B, L): true / nonzero = real token (padding keys are masked out). */
  langMask: Tensor;
  /** (B, img_cond_len, img_token_dim) SigLIP tokens. */
  imgTokens: Tensor;
  /** (B, 1, state_token_dim): the current state in the unified vector. */
  stateTokens: Tensor;
  /** (B, 1, action_dim) 0/1 mask of the unified-vector dimensions the robot uses. */
  actionMask: Tensor;
  /** (B,) control frequency in Hz (0 when dropped). */
  ctrlFreqs: Tensor;
}

export interface LossOptions {
  /** eps (B, horizon, action_dim); drawn with torch.randn otherwise. */
  noise?: Tensor;
  /** (B,) int64 diffusion timesteps; drawn with torch.randint(0, T) otherwise (after the noise, as the official code). */
  timesteps?: Tensor;
  generator?: torch.Generator;
  trace?: Trace;
}

export interface SampleOptions {
  /** x_T (B, horizon, action_dim); drawn with torch.randn otherwise. */
  noise?: Tensor;
  generator?: torch.Generator;
  /** Compute the adapted conditions and every block's cross-attention keys/values once (default true). */
  cacheConditions?: boolean;
  /** Default: noise_scheduler.num_inference_timesteps (5). */
  numInferenceSteps?: number;
  trace?: Trace;
}

/**
 * Per-slot statistics of the physical values (128 each): with them the network sees the state and the action
 * targets as z = (x - mean) / std, and predictAction maps its output back, so every caller keeps physical units.
 * The official RDT feeds physical values, not normalised (rdt-spec.md 4, "Units"); a small model trained from
 * scratch learns far faster on z-scores, where a 1 cm move is not drowned by noise of std 1 (README, demo section).
 */
export interface ValueNormalization {
  stateMean: ArrayLike<number>;
  stateStd: ArrayLike<number>;
  actionMean: ArrayLike<number>;
  actionStd: ArrayLike<number>;
}

/** A slot whose std is below this does not vary in the data: it is centred, not scaled (no division by ~0). */
export const MIN_NORMALIZED_STD = 1e-4;

export class RDTRunner extends nn.Module {
  model: RDT;
  lang_adaptor: nn.TensorModule;
  img_adaptor: nn.TensorModule;
  state_adaptor: nn.TensorModule;

  readonly noiseScheduler: DDPMScheduler;
  readonly sampleScheduler: DPMSolverMultistepScheduler;
  /** (1, 1, 128) each; null = physical values, as the official runner. Not parameters: not in stateDict. */
  #norm: { stateMean: Tensor; stateStd: Tensor; actionMean: Tensor; actionStd: Tensor } | null = null;

  constructor(readonly config: RdtConfig, opts: RunnerOptions = {}) {
    super();
    const ns = config.noise_scheduler;
    // parseRdtConfig refuses every other value; this catches configs built by hand.
    if (ns.type !== 'ddpm' || ns.beta_schedule !== 'squaredcos_cap_v2' || ns.prediction_type !== 'sample' || ns.clip_sample !== false)
      throw new ModelError(`noise_scheduler ${JSON.stringify(ns)}: only type 'ddpm', beta_schedule 'squaredcos_cap_v2', prediction_type 'sample' and clip_sample false are implemented; read configs with parseRdtConfig`);
    const o = { dtype: opts.dtype, device: opts.device, generator: opts.generator };
    const D = config.rdt.hidden_size;
    this.model = new RDT(config, { ...o, init: opts.init });
    this.lang_adaptor = buildConditionAdapter(config.lang_adaptor, config.lang_token_dim, D, o);
    this.img_adaptor = buildConditionAdapter(config.img_adaptor, config.img_token_dim, D, o);
    // state + its 0/1 mask, concatenated (rdt-spec.md 2.3)
    this.state_adaptor = buildConditionAdapter(config.state_adaptor, config.state_token_dim * 2, D, o);
    const T = ns.num_train_timesteps;
    this.noiseScheduler = new DDPMScheduler({ numTrainTimesteps: T });
    this.sampleScheduler = new DPMSolverMultistepScheduler({ numTrainTimesteps: T });
  }

  /** Free the parameters and the schedulers' cached tables. */
  override dispose(): void {
    super.dispose();
    this.noiseScheduler.dispose();
    this.setValueNormalization(null);
  }

  /** Train on / sample in z-scores of these statistics from now on (null: physical values). */
  setValueNormalization(v: ValueNormalization | null): void {
    if (this.#norm) for (const t of Object.values(this.#norm)) t.dispose();
    this.#norm = null;
    if (!v) return;
    const vec = (name: string, xs: ArrayLike<number>, std: boolean) => {
      const A = name.startsWith('state') ? this.config.state_token_dim : this.config.action_dim;
      if (xs.length !== A) throw new ModelError(`value normalization: ${name} has ${xs.length} values, the model's vectors ${A}`);
      if (!Array.from(xs).every(Number.isFinite)) throw new ModelError(`value normalization: ${name} has a value that is not a finite number`);
      const out = Float32Array.from(xs, (x) => (std && x < MIN_NORMALIZED_STD ? 1 : x));
      return torch.tensor(out, { shape: [1, 1, A] }).keep();
    };
    this.#norm = {
      stateMean: vec('stateMean', v.stateMean, false), stateStd: vec('stateStd', v.stateStd, true),
      actionMean: vec('actionMean', v.actionMean, false), actionStd: vec('actionStd', v.actionStd, true),
    };
  }

  get normalizesValues(): boolean {
    return this.#norm !== null;
  }

  /** (x - mean) / std in x's dtype and device, or x itself without statistics. */
  #normalize(x: Tensor, which: 'state' | 'action'): Tensor {
    if (!this.#norm) return x;
    const o = { dtype: x.dtype, device: x.device };
    const [m, s] = which === 'state' ? [this.#norm.stateMean, this.#norm.stateStd] : [this.#norm.actionMean, this.#norm.actionStd];
    return x.sub(m.to(o)).div(s.to(o));
  }

  #denormalizeAction(z: Tensor): Tensor {
    if (!this.#norm) return z;
    const o = { dtype: z.dtype, device: z.device };
    return z.mul(this.#norm.actionStd.to(o)).add(this.#norm.actionMean.to(o));
  }

  get dtype(): DType {
    return this.model.x_pos_embed.dtype;
  }
  get device(): Device {
    return this.model.x_pos_embed.device;
  }

  /** Validate shapes (errors name the tensor and the expected shape) and cast to the model dtype/device. */
  #prepare(c: Conditions, extra: Record<string, Tensor> = {}): Conditions & Record<string, Tensor> {
    const cfg = this.config;
    const B = c.langTokens.shape[0];
    const L = c.langTokens.shape[1];
    const expect = (name: string, t: Tensor | undefined, shape: (number | string)[]) => {
      const ok = t && t.ndim === shape.length && shape.every((d, i) => typeof d === 'string' || t.shape[i] === d);
      if (!ok) throw new ModelError(`${name} must have shape (${shape.join(', ')}), got ${t ? `[${t.shape}]` : 'nothing'}`);
    };
    expect('lang_tokens', c.langTokens, ['B', 'L', cfg.lang_token_dim]);
    if (L < 1 || L > cfg.max_lang_cond_len) throw new ModelError(`lang_tokens has ${L} tokens; this model takes 1..${cfg.max_lang_cond_len} (max_lang_cond_len)`);
    expect('lang_mask', c.langMask, [B, L]);
    expect('img_tokens', c.imgTokens, [B, cfg.img_cond_len, cfg.img_token_dim]);
    expect('state', c.stateTokens, [B, 1, cfg.state_token_dim]);
    expect('action_mask', c.actionMask, [B, 1, cfg.action_dim]);
    expect('ctrl_freq', c.ctrlFreqs, [B]);
    const shapes: Record<string, (number | string)[]> = {
      noise: [B, cfg.pred_horizon, cfg.action_dim],
      actionGt: [B, cfg.pred_horizon, cfg.action_dim],
      timesteps: [B],
    };
    const names: Record<string, string> = { noise: 'noise', actionGt: 'action_gt', timesteps: 'timesteps' };
    for (const [k, t] of Object.entries(extra)) if (t) expect(names[k], t, shapes[k]);
    const dtype = this.dtype;
    const device = this.device;
    const cast = (t: Tensor) => t.to({ dtype, device });
    const out: Record<string, Tensor> = {
      langTokens: cast(c.langTokens),
      langMask: c.langMask.to({ device }).ne(0), // bool, true = attend
      imgTokens: cast(c.imgTokens),
      stateTokens: cast(c.stateTokens),
      actionMask: cast(c.actionMask),
      ctrlFreqs: c.ctrlFreqs.to({ device }),
    };
    for (const [k, t] of Object.entries(extra)) if (t) out[k] = k === 'timesteps' ? t.to({ device, dtype: 'int64' }) : cast(t);
    return out as unknown as Conditions & Record<string, Tensor>;
  }

  /** lang_adaptor, img_adaptor, state_adaptor on their tokens. */
  adaptConditions(langTokens: Tensor, imgTokens: Tensor, stateTokens: Tensor): { lang: Tensor; img: Tensor; state: Tensor } {
    return torch.scope(() => ({
      lang: this.lang_adaptor.forward(langTokens),
      img: this.img_adaptor.forward(imgTokens),
      state: this.state_adaptor.forward(stateTokens),
    }));
  }

  /**
   * The official compute_loss: x_t = add_noise(a0, eps, t); tokens = state_adaptor([state; x_t] ++ mask);
   * pred = RDT(...) (the x0 prediction); loss = MSE(pred, a0) over every element, unmasked (rdt-spec.md 3.1).
   * With value normalization, a0 and the state are z-scores (the loss is then in z units).
   */
  computeLoss(batch: Conditions & { actionGt: Tensor }, opts: LossOptions = {}): Tensor {
    return torch.scope(() => {
      const c = this.#prepare(batch, { actionGt: batch.actionGt, ...(opts.noise ? { noise: opts.noise } : {}), ...(opts.timesteps ? { timesteps: opts.timesteps } : {}) });
      const B = c.langTokens.shape[0];
      const actionGt = this.#normalize(c.actionGt, 'action');
      c.stateTokens = this.#normalize(c.stateTokens, 'state');
      const gen = { generator: opts.generator, device: this.device };
      const noise = c.noise ?? torch.randn(actionGt.shape, { ...gen, dtype: actionGt.dtype });
      const timesteps = c.timesteps ?? torch.randint(0, this.config.noise_scheduler.num_train_timesteps, [B], gen);
      const noisy = this.noiseScheduler.addNoise(actionGt, noise, timesteps); // (B, horizon, A)
      opts.trace?.('noisy_action', noisy);
      const traj = torch.cat([c.stateTokens, noisy], 1); // (B, 1 + horizon, A)
      const mask = c.actionMask.expand([B, traj.shape[1], this.config.action_dim]); // (B, 1, A) -> (B, 1 + horizon, A)
      const a = this.adaptConditions(c.langTokens, c.imgTokens, torch.cat([traj, mask], 2)); // state_adaptor on (B, 1 + horizon, 2A)
      opts.trace?.('model_in', a.state);
      const pred = this.model.forward(a.state, c.ctrlFreqs, timesteps, a.lang, a.img, c.langMask);
      opts.trace?.('pred', pred);
      return F.mseLoss(pred, actionGt); // prediction_type "sample": the target is a0
    });
  }

  /**
   * The official predict_action: 5 DPM-Solver++(2M) steps from x_T ~ N(0, I); at every step the
   * action tokens are state_adaptor(x ++ mask); the result is x * mask (rdt-spec.md 3.2).
   * Returns (B, horizon, action_dim) in the model dtype, in physical units (with value normalization the sample
   * is mapped back, then masked). Runs without autograd.
   */
  predictAction(inputs: Conditions, opts: SampleOptions = {}): Tensor {
    return torch.noGrad(() => torch.scope(() => {
      const c = this.#prepare(inputs, opts.noise ? { noise: opts.noise } : {});
      const cfg = this.config;
      const B = c.langTokens.shape[0];
      const cache = opts.cacheConditions ?? true;
      const a = this.adaptConditions(c.langTokens, c.imgTokens, torch.cat([this.#normalize(c.stateTokens, 'state'), c.actionMask], 2)); // state: (B, 1, D)
      opts.trace?.('state_traj', a.state);
      const cond = cache ? this.model.prepareConditions(a.lang, a.img, c.langMask) : null;
      if (cond) [a.lang, a.img].forEach((t) => t.dispose()); // the cache holds all the steps need
      try {
        const mask = c.actionMask.expand([B, cfg.pred_horizon, cfg.action_dim]); // (B, 1, A) -> (B, horizon, A)
        const sched = this.sampleScheduler.setTimesteps(opts.numInferenceSteps ?? cfg.noise_scheduler.num_inference_timesteps);
        let x = c.noise ?? torch.randn([B, cfg.pred_horizon, cfg.action_dim], { dtype: this.dtype, device: this.device, generator: opts.generator });
        let mPrev: Tensor | null = null;
        opts.trace?.('x.0', x);
        sched.timesteps.forEach((step, k) => {
          const { m, next } = torch.scope(() => {
            const tokens = this.state_adaptor.forward(torch.cat([x, mask], 2)); // (B, horizon, 2A) -> (B, horizon, D)
            const modelIn = torch.cat([a.state, tokens], 1); // (B, 1 + horizon, D)
            if (k === 0) opts.trace?.('model_in.0', modelIn);
            const t = torch.tensor(new BigInt64Array([BigInt(step)]), { device: this.device }); // (1,), broadcast over the batch
            const m = cond
              ? this.model.forwardCached(modelIn, c.ctrlFreqs, t, cond)
              : this.model.forward(modelIn, c.ctrlFreqs, t, a.lang, a.img, c.langMask);
            return { m, next: this.sampleScheduler.step(sched, k, m, x, mPrev) };
          });
          opts.trace?.(`model_out.${k}`, m);
          opts.trace?.(`x.${k + 1}`, next);
          if (mPrev) mPrev.dispose();
          if (x !== c.noise) x.dispose();
          mPrev = m;
          x = next;
        });
        return this.#denormalizeAction(x).mul(mask);
      } finally {
        if (cond) disposeConditionCache(cond);
      }
    }));
  }
}
