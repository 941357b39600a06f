// One optimizer step's gradient work: forward/backward over the micro-batches of a gradient-
// accumulation group. Each micro-batch loss is divided by the group size, so the summed gradients
// equal those of one batch holding all of them (the loss is a mean over equal-sized batches).
import * as torch from '../engine/index.js';
import type { RDTRunner, LossOptions } from '../model/runner.js';
import type { ModelInputs } from './conditioning.js';

export interface MicroResult {
  /** Mean loss over the group (NaN/Inf if any micro-batch was non-finite). */
  loss: number;
  finite: boolean;
}

/**
 * Accumulate gradients of `runner.computeLoss` over `micro` (inputs built lazily, one at a time, so only
 * one micro-batch's activations live at once). A non-finite micro-batch loss is not back-propagated.
 */
export async function accumulateGradients(
  runner: RDTRunner,
  count: number,
  micro: (i: number) => Promise<ModelInputs> | ModelInputs,
  lossOptions: (i: number) => LossOptions = () => ({}),
): Promise<MicroResult> {
  let sum = 0;
  let finite = true;
  for (let i = 0; i < count; i++) {
    const inputs = await micro(i);
    // The forward runs in its own scope, so only the loss outlives it: no JS handle keeps the
    // activations alive while backward frees them.
    const l = torch.scope(() => runner.computeLoss(inputs, lossOptions(i)).div(count));
    const v = l.item() * count;
    if (Number.isFinite(v)) l.backward();
    l.dispose();
    for (const t of Object.values(inputs)) t.dispose();
    if (!Number.isFinite(v)) finite = false;
    sum += v;
  }
  return { loss: sum / count, finite };
}
