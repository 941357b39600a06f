// The EMA decay schedule of the official RDT trainer (Diffusion Policy's EMAModel, rdt-spec.md 6.2):
// decay(n) = 0 while n' <= 0, else clamp(1 - (1 + n'/inv_gamma)^-power, min, max),
// with n' = n - update_after_step - 1 and n the number of EMA updates already made.
// Divergence from the official code, on purpose: we update once per OPTIMIZER step; the official
// loop calls it on every micro-batch, so with gradient accumulation its EMA horizon shrinks.
import type { EmaConfig } from './config.js';

export function emaDecay(updatesSoFar: number, c: EmaConfig): number {
  const step = Math.max(0, updatesSoFar - c.update_after_step - 1);
  if (step <= 0) return 0;
  const value = 1 - (1 + step / c.inv_gamma) ** -c.power;
  return Math.max(c.min_value, Math.min(value, c.max_value));
}
