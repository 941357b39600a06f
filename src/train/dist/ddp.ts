// Data-parallel training over a c10d process group (src/engine/distributed.ts): what the trainer does
// differently when it is one of several processes. Rank 0's weights are broadcast at the start. Gradients are
// averaged in buckets by a GradReducer (PyTorch DDP's Reducer): each bucket is reduced as soon as backward has
// produced its gradients, while backward goes on (ddp.overlap_comm), in buckets of ddp.bucket_cap_mb; with
// gradient accumulation only the last micro-batch's backward communicates (DDP's no_sync), so the result is the
// sum of every micro-batch on every rank, as before. Under ZeRO-2 the buckets are reduced to the parameters'
// owners only (zero.ts). Ranks also agree on the loss, on skipping a non-finite step, on the bucket layout, on
// stopping, and on the step of each checkpoint before it is declared complete.
import * as torch from '../../engine/index.js';
import type { nn, Tensor } from '../../engine/index.js';
import { DistributedError, type GradReducer, type ProcessGroup, type ReducerStep } from '../../engine/distributed.js';
import type { AccumulatedStep } from '../step.js';
import type { Zero2 } from './zero.js';

export interface DataParallelOptions {
  /** Bytes of gradient per bucket: PyTorch DDP's default bucket_cap_mb of 25. */
  bucketBytes?: number;
  /** Reduce buckets during backward (true) or after it (false); bit-identical results. */
  overlap?: boolean;
}

/** What the last optimizer step's gradient reduction did (for benches and logs). */
export interface SyncStats {
  /** Milliseconds the step spent after its last backward until the averaged gradients were ready (finalize + control all-reduce). */
  afterBackwardMs: number;
  /** Milliseconds the host was blocked waiting for buckets, in backward and after. */
  waitMs: number;
  buckets: number;
  /** Buckets launched while backward was still running. */
  launchedInBackward: number;
}

export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  readonly bucketBytes: number;
  readonly overlap: boolean;
  /** zero_stage 2: the sharding of the optimizer side (set by attach). */
  zero: Zero2 | null = null;
  /** The reducer of the trained parameters' gradients (set by attach). */
  reducer: GradReducer | null = null;
  /** The last step's reduction (see SyncStats). */
  last: SyncStats | null = null;
  /** Which trained parameters had a gradient in the last step (the same on every rank: gradientSync checks). */
  lastDefined: boolean[] = [];
  constructor(
    readonly group: ProcessGroup,
    opts: DataParallelOptions = {},
  ) {
    this.rank = group.rank;
    this.worldSize = group.worldSize;
    this.bucketBytes = opts.bucketBytes ?? 25 * 2 ** 20;
    this.overlap = opts.overlap ?? true;
  }

  /**
   * Hook the trained parameters' gradient accumulators: from now on backward(loss, last) reduces their gradients.
   * `zero` (zero_stage 2): each bucket is reduced to the parameters' owners only.
   */
  attach(params: readonly nn.Parameter[], zero: Zero2 | null = null): void {
    if (this.reducer) throw new DistributedError('the data-parallel gradients are already attached to a model');
    this.zero = zero;
    this.reducer = this.group.gradReducer(params, { bucketBytes: this.bucketBytes, overlap: this.overlap, ...(zero ? { owners: zero.owner } : {}) });
  }

  /**
   * loss.backward() for one micro-batch; `last`: the optimizer step's last one, whose backward reduces the
   * accumulated gradients (the earlier ones only accumulate locally, as under DDP's no_sync).
   */
  backward(loss: Tensor, last: boolean): void {
    if (!this.reducer) throw new DistributedError('backward before attach(): the gradients have nowhere to go');
    this.reducer.backward(loss, last);
  }

  /** Remove the gradient hooks (the end of a run). */
  detach(): void {
    this.reducer?.destroy();
    this.reducer = null;
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

  /**
   * The trainer's gradient synchroniser, called after the step's last backward. It waits for the buckets still in
   * flight (launching those backward did not complete), then runs one small all-reduce: the loss, a non-finite flag,
   * how many parameters had gradients and the bucket layout's fingerprint. A step is skipped on every rank when any
   * rank's loss was NaN/Inf. Parameters without a gradient (unused in this forward) stay without one, as in a
   * one-process run; ranks must agree which those are, and in which order their gradients became ready.
   */
  gradientSync(): (s: AccumulatedStep) => { loss: number; finite: boolean } {
    return (s) => {
      if (!this.reducer) throw new DistributedError('gradientSync before attach(): no gradients are hooked');
      const t0 = performance.now();
      const r: ReducerStep = this.reducer.finalize();
      const withGrad = r.defined.filter(Boolean).length;
      this.lastDefined = r.defined;
      const [lossSum, bad, minDefined, maxDefined, minLayout, maxLayout] = torch.scope(() => {
        const sums = torch.tensor([Number.isFinite(s.loss) ? s.loss : 0, s.finite ? 0 : 1], { dtype: 'float64' });
        const maxes = torch.tensor([-withGrad, withGrad, -r.fingerprint, r.fingerprint], { dtype: 'float64' });
        this.group.allReduce(sums, 'sum');
        this.group.allReduce(maxes, 'max');
        const [a, b] = Array.from(sums.toFloat64());
        const [c, d, e, f] = Array.from(maxes.toFloat64());
        return [a, b, -c, d, -e, f];
      });
      this.last = { afterBackwardMs: performance.now() - t0, waitMs: r.waitMs, buckets: r.buckets, launchedInBackward: r.launchedInBackward };
      if (minLayout !== maxLayout)
        throw new DistributedError(`step ${s.step}: the ranks formed different gradient buckets (their backward produced gradients in different orders), ` +
          'so the averaged gradients would mix parameters; every rank must run the same model on batches of the same shape');
      if (bad > 0) return { loss: NaN, finite: false };
      if (minDefined !== maxDefined)
        throw new DistributedError(`step ${s.step}: ranks have gradients for ${minDefined} to ${maxDefined} of the ${s.params.length} trained ` +
          'parameters; every rank must run the same model on batches of the same shape');
      return { loss: lossSum / this.worldSize, finite: true };
    };
  }
}
