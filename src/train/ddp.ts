// Data-parallel training over a c10d process group (src/engine/distributed.ts): what the trainer does
// differently when it is one of several processes. Rank 0's weights are broadcast at the start; after each
// optimizer step's micro-batches, gradients are averaged in buckets (each bucket flattened into one tensor
// and all-reduced once, every bucket in flight before the first is waited for); gradient accumulation
// communicates only after the last micro-batch, because the trainer calls the sync once per optimizer step.
// Ranks also agree on the loss, on skipping a non-finite step, on stopping, and on the step of each
// checkpoint before it is declared complete.
import * as torch from '../engine/index.js';
import type { nn, Tensor } from '../engine/index.js';
import { DistributedError, type ProcessGroup } from '../engine/distributed.js';
import type { GradientSync } from './hooks.js';
import type { Zero2 } from './zero.js';

export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  /** zero_stage 2: the sharding of the optimizer side (set once the model is built). */
  zero: Zero2 | null = null;
  constructor(
    readonly group: ProcessGroup,
    /** Bytes of gradient per all-reduce: PyTorch DDP's default bucket_cap_mb of 25. */
    readonly bucketBytes = 25 * 2 ** 20,
  ) {
    this.rank = group.rank;
    this.worldSize = group.worldSize;
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Overwrite every given tensor with rank 0's (weights, masters) so all ranks start from the same state. */
  broadcastFromMain(tensors: readonly Tensor[]): void {
    torch.noGrad(() => this.group.broadcast(tensors, 0));
  }

  /** True on every rank when it is true on any (a stop request seen by one process stops all at the same step). */
  any(flag: boolean): boolean {
    return torch.scope(() => {
      const t = torch.tensor([flag ? 1 : 0], { dtype: 'float32' });
      this.group.allReduce(t, 'max');
      return t.item() > 0;
    });
  }

  /** Fails unless every rank is at `step` (called before a checkpoint is marked complete). */
  agreeStep(step: number): void {
    const [lo, hi] = torch.scope(() => {
      const t = torch.tensor([-step, step], { dtype: 'float64' });
      this.group.allReduce(t, 'max');
      return Array.from(t.toFloat64());
    });
    if (-lo !== step || hi !== step)
      throw new DistributedError(`checkpoint at step ${step}: the ranks are at steps ${-lo}..${hi}; the checkpoint is not marked complete`);
  }

  /** Split the parameters (in order) into buckets of about bucketBytes of gradient each. */
  buckets(params: readonly nn.Parameter[]): nn.Parameter[][] {
    const out: nn.Parameter[][] = [];
    let cur: nn.Parameter[] = [];
    let bytes = 0;
    for (const p of params) {
      const b = p.numel() * torch.DTYPE_BYTES[p.dtype];
      if (cur.length && bytes + b > this.bucketBytes) {
        out.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(p);
      bytes += b;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  /** Average the gradients of `params` across ranks, in place, one all-reduce per bucket. */
  averageGradients(params: readonly nn.Parameter[]): void {
    const W = this.worldSize;
    torch.scope(() => {
      const flats: Tensor[] = [];
      const grads: Tensor[][] = [];
      for (const bucket of this.buckets(params)) {
        const gs = bucket.map((p) => p.grad!);
        grads.push(gs);
        flats.push(torch.cat(gs.map((g) => g.reshape([-1]))));
      }
      this.group.allReduce(flats, 'sum');
      torch.noGrad(() => {
        flats.forEach((flat, k) => {
          flat.mul_(1 / W);
          let off = 0;
          for (const g of grads[k]) {
            g.copy_(flat.narrow(0, off, g.numel()).view(g.shape));
            off += g.numel();
          }
        });
      });
    });
  }

  /**
   * The trainer's gradient synchroniser. One small all-reduce first (loss, non-finite flag, how many
   * parameters have gradients): a step is skipped on every rank when any rank's loss was NaN/Inf; then the
   * gradients are averaged. Parameters without a gradient (unused in this forward) stay without one, as in
   * a one-process run; ranks must agree which those are.
   */
  gradientSync(): GradientSync {
    return (s) => {
      const has = defined(s.params);
      const withGrad = s.params.filter((_, i) => has[i]);
      const [lossSum, bad, minDefined, maxDefined] = torch.scope(() => {
        const sums = torch.tensor([Number.isFinite(s.loss) ? s.loss : 0, s.finite ? 0 : 1], { dtype: 'float64' });
        const counts = torch.tensor([-withGrad.length, withGrad.length], { dtype: 'float64' });
        this.group.allReduce(sums, 'sum');
        this.group.allReduce(counts, 'max');
        const [a, b] = Array.from(sums.toFloat64());
        const [c, d] = Array.from(counts.toFloat64());
        return [a, b, -c, d];
      });
      if (bad > 0) return { loss: NaN, finite: false };
      if (minDefined !== maxDefined)
        throw new DistributedError(`step ${s.step}: ranks have gradients for ${minDefined} to ${maxDefined} of the ${s.params.length} trained ` +
          'parameters; every rank must run the same model on batches of the same shape');
      this.averageGradients(withGrad);
      return { loss: lossSum / this.worldSize, finite: true };
    };
  }
}

function defined(params: readonly nn.Parameter[]): boolean[] {
  return params.map((p) => {
    const g = p.grad;
    g?.dispose();
    return g !== null;
  });
}
