// Learning-rate multipliers with diffusers' `get_scheduler` semantics (a LambdaLR over optimizer
// steps): the LR used for optimizer step n (0-based) is base_lr * factor(n). So with warmup the
// very first step runs at LR 0, exactly as in the official trainer.
import type { LrSchedulerName } from './config.js';

export function lrFactor(name: LrSchedulerName, step: number, warmup: number, total: number): number {
  switch (name) {
    case 'constant':
      return 1;
    case 'constant_with_warmup':
      return step < warmup ? step / Math.max(1, warmup) : 1;
    case 'linear':
      if (step < warmup) return step / Math.max(1, warmup);
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      // num_cycles = 0.5: one half cosine from 1 to 0 after warmup.
      if (step < warmup) return step / Math.max(1, warmup);
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
    }
  }
}
