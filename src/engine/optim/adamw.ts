// torch.optim.AdamW: decoupled weight decay and bias correction. Each parameter group is stepped by ONE
// native call (native/ops_optim.cc). By default float32 parameters go through ATen's fused AdamW kernel
// (torch.optim.AdamW(fused=True): one pass over memory per parameter; equal to the single-tensor update
// within float32 rounding) and others (bf16) through PyTorch's default single-tensor algorithm, op for op;
// `fused: false` uses the single-tensor algorithm everywhere. State is kept (never scope-owned) and saves
// in PyTorch's layout.
import { N, type Handle } from '../native.js';
import { Tensor, EngineError } from '../tensor.js';
import { scalarTensor, zerosLike } from '../create.js';
import { noGrad } from '../autograd.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface AdamWConstructorOptions extends AdamWOptions {
  /** Step float32 parameters with the fused kernel (default true); false: PyTorch's single-tensor algorithm for all. */
  fused?: boolean;
}

/** A group as given to the constructor: its params, and overrides of the defaults. */
export interface ParamGroupSpec extends AdamWOptions {
  params: Tensor[];
}

/** A live parameter group; lr (and the others) may be changed between steps, e.g. by an LR schedule. */
export interface ParamGroup {
  params: Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** PyTorch's optimizer state_dict layout (keys as PyTorch writes them). */
export interface AdamWStateDict {
  state: Record<number, { step: Tensor | number; exp_avg: Tensor; exp_avg_sq: Tensor }>;
  param_groups: {
    lr: number;
    betas: [number, number];
    eps: number;
    weight_decay: number;
    params: number[];
    [other: string]: unknown;
  }[];
}

export class OptimError extends EngineError {
  override name = 'OptimError';
}

function check(o: Required<AdamWOptions>, where: string): void {
  if (!(o.lr >= 0)) throw new OptimError(`${where}: invalid learning rate ${o.lr}`);
  if (!(o.eps >= 0)) throw new OptimError(`${where}: invalid epsilon ${o.eps}`);
  for (const [i, b] of o.betas.entries())
    if (!(b >= 0 && b < 1)) throw new OptimError(`${where}: invalid beta parameter at index ${i}: ${b}`);
  if (!(o.weightDecay >= 0)) throw new OptimError(`${where}: invalid weight decay ${o.weightDecay}`);
}

export class AdamW {
  readonly defaults: Required<AdamWOptions>;
  readonly paramGroups: ParamGroup[] = [];
  readonly fused: boolean;
  readonly #state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | ParamGroupSpec[], opts: AdamWConstructorOptions = {}) {
    this.fused = opts.fused ?? true;
    this.defaults = { lr: opts.lr ?? 1e-3, betas: opts.betas ?? [0.9, 0.999], eps: opts.eps ?? 1e-8, weightDecay: opts.weightDecay ?? 1e-2 };
    check(this.defaults, 'AdamW');
    if (params.length === 0) throw new OptimError('AdamW: got an empty parameter list');
    const specs: ParamGroupSpec[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroupSpec[]);
    const seen = new Set<Tensor>();
    for (const [gi, s] of specs.entries()) {
      for (const p of s.params) {
        if (seen.has(p)) throw new OptimError(`AdamW: a parameter appears twice (group ${gi}); each must be in exactly one group`);
        seen.add(p);
      }
      const g: ParamGroup = {
        params: [...s.params],
        lr: s.lr ?? this.defaults.lr,
        betas: s.betas ?? [...this.defaults.betas],
        eps: s.eps ?? this.defaults.eps,
        weightDecay: s.weightDecay ?? this.defaults.weightDecay,
      };
      check(g, `AdamW group ${gi}`);
      this.paramGroups.push(g);
    }
  }

  /** One update of every parameter that has a gradient (others are skipped, as in PyTorch). */
  step(): void {
    for (const g of this.paramGroups) {
      const has: boolean[] = N.gradsDefined(g.params.map((p) => p.h));
      const ps: Handle[] = [];
      const ms: Handle[] = [];
      const vs: Handle[] = [];
      const steps: number[] = [];
      for (let i = 0; i < g.params.length; i++) {
        if (!has[i]) continue;
        const p = g.params[i];
        let s = this.#state.get(p);
        if (!s) {
          s = { step: 0, expAvg: zerosLike(p).keep(), expAvgSq: zerosLike(p).keep() };
          this.#state.set(p, s);
        }
        s.step += 1;
        ps.push(p.h);
        ms.push(s.expAvg.h);
        vs.push(s.expAvgSq.h);
        steps.push(s.step);
      }
      if (ps.length) N.adamwStep(ps, ms, vs, steps, g.lr, g.betas[0], g.betas[1], g.eps, g.weightDecay, this.fused);
    }
  }

  /** Drop every gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) N.zeroGrads(g.params.map((p) => p.h), true);
  }

  /**
   * The state in torch.optim's layout: parameters numbered across groups in order; exp_avg and
   * exp_avg_sq are the live tensors (not copies); each step is a new float32 scalar tensor owned by
   * the caller's scope, as PyTorch stores it.
   */
  stateDict(): AdamWStateDict {
    const state: AdamWStateDict['state'] = {};
    const groups: AdamWStateDict['param_groups'] = [];
    let idx = 0;
    for (const g of this.paramGroups) {
      const ids: number[] = [];
      for (const p of g.params) {
        const s = this.#state.get(p);
        if (s) state[idx] = { step: scalarTensor(s.step, { dtype: 'float32' }), exp_avg: s.expAvg, exp_avg_sq: s.expAvgSq };
        ids.push(idx++);
      }
      groups.push({
        lr: g.lr, betas: [g.betas[0], g.betas[1]], eps: g.eps, weight_decay: g.weightDecay,
        amsgrad: false, foreach: null, maximize: false, capturable: false, differentiable: false, fused: null,
        decoupled_weight_decay: true, params: ids,
      });
    }
    return { state, param_groups: groups };
  }

  /**
   * Restore a state dict (ours, or torch.optim.AdamW's): hyperparameters per group, and copies of
   * the moments converted to each parameter's dtype and device. Everything is checked first.
   */
  loadStateDict(sd: AdamWStateDict | { state: Map<number | string, unknown>; param_groups: AdamWStateDict['param_groups'] }): void {
    const groups = sd.param_groups;
    if (!Array.isArray(groups) || groups.length !== this.paramGroups.length)
      throw new OptimError(`AdamW.loadStateDict: the state dict has ${groups?.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    const byIndex = new Map<number, Tensor>();
    for (const [gi, g] of groups.entries()) {
      const mine = this.paramGroups[gi];
      if (g.params.length !== mine.params.length)
        throw new OptimError(`AdamW.loadStateDict: group ${gi} has ${g.params.length} parameters in the state dict, ${mine.params.length} here`);
      g.params.forEach((id, k) => byIndex.set(Number(id), mine.params[k]));
    }
    const entries: [number, { step: Tensor | number; exp_avg: Tensor; exp_avg_sq: Tensor }][] =
      sd.state instanceof Map ? [...sd.state].map(([k, v]) => [Number(k), v as never]) : Object.entries(sd.state).map(([k, v]) => [Number(k), v]);
    const problems: string[] = [];
    for (const [id, s] of entries) {
      const p = byIndex.get(id);
      if (!p) { problems.push(`state for parameter ${id}, which no group lists`); continue; }
      for (const key of ['exp_avg', 'exp_avg_sq'] as const) {
        const t = s[key];
        if (!(t instanceof Tensor)) problems.push(`parameter ${id}: ${key} is missing`);
        else if (t.shape.join() !== p.shape.join()) problems.push(`parameter ${id}: ${key} has shape [${t.shape}], the parameter [${p.shape}]`);
      }
    }
    if (problems.length) throw new OptimError(`AdamW.loadStateDict: cannot load:\n  ${problems.join('\n  ')}`);
    for (const s of this.#state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.#state.clear();
    noGrad(() => {
      for (const [id, s] of entries) {
        const p = byIndex.get(id)!;
        const step = s.step instanceof Tensor ? s.step.item() : Number(s.step);
        const conv = (t: Tensor) => {
          const out = zerosLike(p).keep();
          out.copy_(t);
          return out;
        };
        this.#state.set(p, { step, expAvg: conv(s.exp_avg), expAvgSq: conv(s.exp_avg_sq) });
      }
    });
    for (const [gi, g] of groups.entries()) {
      const mine = this.paramGroups[gi];
      mine.lr = g.lr;
      mine.betas = [g.betas[0], g.betas[1]];
      mine.eps = g.eps;
      mine.weightDecay = g.weight_decay;
    }
  }

  /** The step count of a parameter (0 before its first update). */
  stepOf(p: Tensor): number {
    return this.#state.get(p)?.step ?? 0;
  }

  /** Free the optimizer state. */
  dispose(): void {
    for (const s of this.#state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.#state.clear();
  }
}
