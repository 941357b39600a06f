// Grad mode as closures (torch.no_grad / enable_grad), restored even when fn throws.
import { N } from './native.js';
import { Tensor } from './tensor.js';

export function isGradEnabled(): boolean {
  return N.isGradEnabled();
}

function withGradMode<R>(enabled: boolean, fn: () => R): R {
  const prev = N.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    N.setGradEnabled(prev);
  }
}

/** Run fn with autograd off (torch.no_grad). */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn);
}
/** Run fn with autograd on (torch.enable_grad). */
export function enableGrad<R>(fn: () => R): R {
  return withGradMode(true, fn);
}

/** `using _ = noGradGuard()` restores the previous mode at the end of the block. */
export function noGradGuard(): { [Symbol.dispose](): void } {
  const prev = N.setGradEnabled(false);
  return { [Symbol.dispose]: () => void N.setGradEnabled(prev) };
}

/** torch.autograd.grad: gradients of outputs w.r.t. inputs (null where an input is unused). */
export function grad(
  outputs: Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean } = {},
): (Tensor | null)[] {
  const hs = N.autogradGrad(
    outputs.map((t) => t.h), inputs.map((t) => t.h), opts.gradOutputs?.map((t) => t.h) ?? null,
    opts.retainGraph ?? false, opts.createGraph ?? false,
  );
  return hs.map((h) => (h ? new Tensor(h) : null));
}
