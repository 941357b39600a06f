// ZeRO-2-style sharding of the optimizer side (zero_stage: 2), on top of data-parallel training (ddp.ts).
// Each trained parameter is owned by one rank (whole parameters, balanced by size); a rank keeps the float32
// master weight, the AdamW moments and the averaged gradient of its own parameters only. The gradients are
// reduced bucket by bucket during backward, each bucket's segment of an owner to that owner only (the
// GradReducer's owners mode: an uneven reduce-scatter, as DeepSpeed's stage-2 average_tensor issues it as one
// reduce per partition); every rank drops its local gradients once they are in a bucket, so no rank ever holds
// the full reduced gradients. After AdamW, each owner broadcasts its updated parameters. Clipping uses the global
// gradient norm, computed from every rank's per-parameter norms exactly as one process computes it.
// Checkpoints keep the unsharded layout: before one is written, rank 0 collects every owner's state, so a
// sharded run resumes with any world size, sharded or not, and its optimizer state loads in Python as before.
// Divergence from DeepSpeed's ZeRO-2: ownership is by whole parameter, not by flat partitions of equal size.
import * as torch from '../../engine/index.js';
import { optim, type nn, type Tensor } from '../../engine/index.js';
import type { AdamWStateDict } from '../../engine/optim/adamw.js';
import type { ProcessGroup } from '../../engine/distributed.js';
import { TrainError } from '../errors.js';

/** Owner rank of each parameter: largest first, each to the least-loaded rank (ties: lowest rank). */
export function partition(sizes: readonly number[], worldSize: number): number[] {
  const load = new Array<number>(worldSize).fill(0);
  const owner = new Array<number>(sizes.length).fill(0);
  const order = sizes.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [s, i] of order) {
    let r = 0;
    for (let k = 1; k < worldSize; k++) if (load[k] < load[r]) r = k;
    owner[i] = r;
    load[r] += s;
  }
  return owner;
}

/** An optimizer state in the unsharded layout, as one process would have saved it. */
export interface FullState {
  optimizer: AdamWStateDict;
  masters?: Tensor[];
}

export class Zero2 {
  readonly owner: number[];
  /** Indices (into the trained parameters) this rank owns, in order. */
  readonly mine: number[];

  constructor(
    /** The data-parallel run (ddp.ts's DataParallel): its ranks and which parameters had gradients last step. */
    readonly dp: { readonly rank: number; readonly worldSize: number; readonly group: ProcessGroup; readonly lastDefined: boolean[] },
    /** Every trained parameter, in the trainer's order (the unsharded optimizer's order). */
    readonly params: readonly nn.Parameter[],
  ) {
    this.owner = partition(params.map((p) => p.numel()), dp.worldSize);
    this.mine = params.map((_, i) => i).filter((i) => this.owner[i] === dp.rank);
    if (!this.mine.length)
      throw new TrainError(`zero_stage: 2 with ${dp.worldSize} processes leaves rank ${dp.rank} no trained parameter (there are ${params.length}); use fewer processes or zero_stage: 0`);
  }

  /** The parameters whose optimizer state this rank keeps. */
  owned(): nn.Parameter[] {
    return this.mine.map((i) => this.params[i]);
  }

  /**
   * clip_grad_norm_ over the whole model while each rank holds its own parameters' gradients (`owned`: those, or
   * their float32 masters, in this.mine's order). The per-parameter norms of every rank are assembled in the
   * model's order (an all-reduce in which each position has one non-zero term, so the sum is exact) and reduced
   * by the same native code as optim.clipGradNorm_: the total norm and the clipped gradients are the bits of an
   * unsharded run. Returns the total norm (the same on every rank).
   */
  clipGradNorm(owned: readonly Tensor[], maxNorm: number): number {
    const defined = this.dp.lastDefined;
    if (defined.length !== this.params.length) throw new TrainError('internal: clipGradNorm before the first gradient reduction');
    return torch.noGrad(() => torch.scope(() => {
      const position = new Map<number, number>();
      defined.forEach((d, i) => d && position.set(i, position.size));
      const mineWithGrad = this.mine.filter((i) => defined[i]);
      const local = optim.gradNorms(owned);
      const all = torch.zeros([position.size], { dtype: local.numel() ? local.dtype : 'float32', device: owned[0].device });
      mineWithGrad.forEach((i, k) => all.narrow(0, position.get(i)!, 1).copy_(local.narrow(0, k, 1)));
      this.dp.group.allReduce(all, 'sum');
      return optim.clipGradsWithNorms(owned, all, maxNorm);
    }));
  }

  /** After AdamW: every parameter takes its owner's updated value (one broadcast per owner, flattened). */
  broadcastParams(): void {
    torch.noGrad(() => {
      for (let r = 0; r < this.dp.worldSize; r++) {
        const ps = this.params.filter((_, i) => this.owner[i] === r);
        torch.scope(() => {
          const flat = torch.cat(ps.map((p) => p.detach().reshape([-1])));
          this.dp.group.broadcast(flat, r);
          if (r === this.dp.rank) return;
          let off = 0;
          for (const p of ps) {
            p.copy_(flat.narrow(0, off, p.numel()).view(p.shape));
            off += p.numel();
          }
        });
      }
    });
  }

  /**
   * Collective: rank 0 receives every parameter's AdamW state (and float32 master) from its owner and returns
   * the unsharded state (tensors owned by the caller); other ranks return null. One parameter at a time, so
   * no rank holds more than one foreign parameter's state at once.
   */
  gather(optimizer: { stateDict(): AdamWStateDict }, masters: readonly Tensor[] | null): FullState | null {
    // The optimizer's own moment tensors, and its step counts as numbers (stateDict makes scalar tensors of them).
    const local = torch.scope(() => {
      const sd = optimizer.stateDict();
      const st = new Map<number, { step: number; exp_avg: Tensor; exp_avg_sq: Tensor }>();
      for (const [k, v] of Object.entries(sd.state))
        st.set(Number(k), { step: v.step instanceof torch.Tensor ? v.step.item() : Number(v.step), exp_avg: v.exp_avg, exp_avg_sq: v.exp_avg_sq });
      return { st, group: sd.param_groups[0] };
    });
    const main = this.dp.rank === 0;
    const state: AdamWStateDict['state'] = {};
    const fullMasters: Tensor[] = [];
    torch.noGrad(() => {
      this.params.forEach((p, i) => {
        const o = this.owner[i];
        const li = this.mine.indexOf(i);
        const mineHere = o === this.dp.rank;
        const s = mineHere ? local.st.get(li) : undefined;
        const kept = torch.scope(() => {
          const step = torch.tensor([s ? s.step : -1], { dtype: 'float64' });
          this.dp.group.broadcast(step, o);
          const stepN = step.item();
          const fresh = () => torch.zeros(p.shape, { dtype: 'float32', device: p.device });
          const ts: Tensor[] = [];
          if (stepN >= 0) ts.push(mineHere ? s!.exp_avg.clone() : fresh(), mineHere ? s!.exp_avg_sq.clone() : fresh());
          if (masters) ts.push(mineHere ? masters[li].detach().clone() : fresh());
          if (ts.length) this.dp.group.broadcast(ts, o);
          if (!main) return null;
          for (const t of ts) t.keep();
          return { stepN, ts };
        });
        if (!kept) return;
        let k = 0;
        if (kept.stepN >= 0) {
          state[i] = { step: torch.scalarTensor(kept.stepN, { dtype: 'float32' }).keep(), exp_avg: kept.ts[k++], exp_avg_sq: kept.ts[k++] };
        }
        if (masters) fullMasters.push(kept.ts[k++]);
      });
    });
    if (!main) return null;
    return { optimizer: { state, param_groups: [{ ...local.group, params: this.params.map((_, i) => i) }] }, ...(masters ? { masters: fullMasters } : {}) };
  }

  /** This rank's part of an unsharded state (a resumed checkpoint of any world size), renumbered for its optimizer. */
  select(full: { optimizer: AdamWStateDict; masters?: Tensor[] }): { optimizer: AdamWStateDict; masters?: Tensor[] } {
    const state: AdamWStateDict['state'] = {};
    const entries = full.optimizer.state instanceof Map ? Object.fromEntries(full.optimizer.state) : full.optimizer.state;
    this.mine.forEach((i, li) => {
      const s = (entries as AdamWStateDict['state'])[i];
      if (s) state[li] = s;
    });
    const [g] = full.optimizer.param_groups;
    if (full.optimizer.param_groups.length !== 1 || g.params.length !== this.params.length)
      throw new TrainError(`the checkpoint's optimizer state has ${g?.params.length} parameters in ${full.optimizer.param_groups.length} group(s); this run trains ${this.params.length} in 1`);
    return {
      optimizer: { state, param_groups: [{ ...g, params: this.mine.map((_, li) => li) }] },
      ...(full.masters ? { masters: this.mine.map((i) => full.masters![i]) } : {}),
    };
  }
}

/** Free the tensors of a gathered state. */
export function disposeState(s: FullState): void {
  for (const e of Object.values(s.optimizer.state)) {
    if (e.step instanceof torch.Tensor) e.step.dispose();
    e.exp_avg.dispose();
    e.exp_avg_sq.dispose();
  }
  for (const m of s.masters ?? []) m.dispose();
}
