// Exponential moving average of the model weights, kept in float32 beside the model.
// e <- decay * e + (1 - decay) * p for trained parameters. The official EMAModel also copies frozen
// ones every step; they never change during training, so their copy made at construction (or loaded
// on resume) stays exact and the per-step copy is skipped (with LoRA that is nearly the whole model).
import * as torch from '../engine/index.js';
import type { Tensor, nn } from '../engine/index.js';
import type { EmaConfig } from './config.js';

// The EMA decay schedule of the official RDT trainer (Diffusion Policy's EMAModel, rdt-spec.md 6.2):
// decay(n) = 0 while n' <= 0, else clamp(1 - (1 + n'/inv_gamma)^-power, min, max),
// with n' = n - update_after_step - 1 and n the number of EMA updates already made.
// Divergence from the official code, on purpose: we update once per OPTIMIZER step; the official
// loop calls it on every micro-batch, so with gradient accumulation its EMA horizon shrinks.
export function emaDecay(updatesSoFar: number, c: EmaConfig): number {
  const step = Math.max(0, updatesSoFar - c.update_after_step - 1);
  if (step <= 0) return 0;
  const value = 1 - (1 + step / c.inv_gamma) ** -c.power;
  return Math.max(c.min_value, Math.min(value, c.max_value));
}

export class Ema {
  readonly shadow = new Map<string, Tensor>();
  /** EMA updates made so far (the `n` of the decay schedule); saved for exact resume. */
  updates = 0;

  constructor(model: nn.Module, readonly cfg: EmaConfig) {
    torch.noGrad(() => {
      for (const [name, p] of model.namedParameters()) this.shadow.set(name, p.to({ dtype: 'float32', copy: true }).keep()); // under noGrad: a plain copy
    });
  }

  get decay(): number {
    return emaDecay(this.updates, this.cfg);
  }

  update(model: nn.Module): void {
    const w = 1 - this.decay;
    torch.noGrad(() =>
      torch.scope(() => {
        for (const [name, p] of model.namedParameters()) {
          const s = this.shadow.get(name);
          if (!s || !p.requiresGrad) continue;
          // One float32 copy at a time (bf16 weights): kept to the end of the scope they would add up to a second
          // float32 copy of the whole model at every update.
          const f = p.dtype === 'float32' ? p : p.to('float32');
          s.lerp_(f, w);
          if (f !== p) f.dispose();
        }
      }),
    );
    this.updates++;
  }

  /** The averaged weights under the model's state-dict names (live tensors; save, do not dispose). */
  stateDict(): Map<string, Tensor> {
    return this.shadow;
  }

  loadStateDict(sd: Map<string, Tensor>, updates: number): void {
    torch.noGrad(() => {
      for (const [name, s] of this.shadow) {
        const t = sd.get(name);
        if (!t) throw new Error(`EMA state: parameter '${name}' is missing from the checkpoint's ema weights`);
        s.copy_(t);
      }
    });
    this.updates = updates;
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
    this.shadow.clear();
  }
}
