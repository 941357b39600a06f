// One optimizer step's gradient work: forward/backward over the micro-batches of a gradient-
// accumulation group. Each micro-batch loss is divided by the group size, so the summed gradients
// equal those of one batch holding all of them (the loss is a mean over equal-sized batches).
import * as torch from '../engine/index.js';
import type { nn, Tensor } from '../engine/index.js';
import type { RDTRunner, LossOptions } from '../model/runner.js';
import type { ModelInputs } from './conditioning.js';

export interface AccumulatedStep {
  /** Optimizer steps completed before this one (0 for the first). */
  step: number;
  /** Mean loss over this process's micro-batches. */
  loss: number;
  finite: boolean;
  /** The trained parameters; their `.grad` holds this process's accumulated gradients. */
  params: nn.Parameter[];
}

export interface MicroResult {
  /** Mean loss over the group (NaN/Inf if any micro-batch was non-finite). */
  loss: number;
  finite: boolean;
}

/**
 * How a micro-batch's loss is back-propagated. Data-parallel training passes its own (DataParallel.backward),
 * which reduces the gradients during the last micro-batch's backward; `always`: that last one is back-propagated
 * even when its loss is non-finite, so that every rank runs the same backward and issues the same collectives
 * (the step is then skipped on every rank, its gradients discarded).
 */
export interface Backward {
  run(loss: Tensor, last: boolean): void;
  always: boolean;
}

/**
 * Accumulate gradients of `runner.computeLoss` over `micro` (inputs built lazily, one at a time, so only
 * one micro-batch's activations live at once). A non-finite micro-batch loss is not back-propagated
 * (except the last one under `backward.always`).
 */
export async function accumulateGradients(
  runner: RDTRunner,
  count: number,
  micro: (i: number) => Promise<ModelInputs> | ModelInputs,
  lossOptions: (i: number) => LossOptions = () => ({}),
  backward: Backward = { run: (l) => l.backward(), always: false },
): Promise<MicroResult> {
  let sum = 0;
  let finite = true;
  for (let i = 0; i < count; i++) {
    const inputs = await micro(i);
    // The forward runs in its own scope, so only the loss outlives it: no JS handle keeps the
    // activations alive while backward frees them.
    const l = torch.scope(() => runner.computeLoss(inputs, lossOptions(i)).div(count));
    const v = l.item() * count;
    const last = i === count - 1;
    if (Number.isFinite(v) || (last && backward.always)) backward.run(l, last);
    l.dispose();
    for (const t of Object.values(inputs)) t.dispose();
    if (!Number.isFinite(v)) finite = false;
    sum += v;
  }
  return { loss: sum / count, finite };
}
