// A seeded, shuffled epoch over every step, resumable from (epoch, position), with weighted mixing across suites
// and sharding by rank/world size. Stateless: the index at (epoch, position) is a pure function of the seed, so
// resuming needs only those two numbers.
//
// Unweighted: epoch e is one permutation of all N steps, so it visits every step exactly once.
// Weighted: suite k contributes m_k = round(N * w_k / sum w) steps per epoch, drawn from its own endless stream of
// shuffled passes (pass c of suite k is a permutation seeded by (seed, k, c)), continuing where the previous epoch
// stopped; the epoch's draws are then shuffled together. Weights proportional to suite sizes reproduce the
// unweighted visit counts (every step once per epoch).
// Sharding (data-parallel training): positions count samples of the one global stream (epoch after epoch), the
// same for any number of processes. A global batch of W * n positions is split into W contiguous blocks and rank
// r takes block r, so the ranks see disjoint samples that together are exactly what one process taking W * n
// would see, and a saved position resumes with any world size.
import { hash32, permutation } from './rng.js';

export interface SamplerOptions {
  seed: number;
  rank?: number;
  worldSize?: number;
  /** Relative weight per suite name (a suite left out gets 0). Omit for a plain epoch over all steps. */
  weights?: Record<string, number>;
}

export interface SuiteRange {
  name: string;
  start: number;
  end: number;
}

export class EpochSampler {
  readonly total: number;
  readonly rank: number;
  readonly worldSize: number;
  private readonly suites: SuiteRange[];
  private readonly counts: number[] | null;
  private readonly seed: number;
  private cached: { epoch: number; list: Uint32Array } | null = null;

  constructor(suites: SuiteRange[], opts: SamplerOptions) {
    this.suites = suites;
    this.seed = opts.seed >>> 0;
    this.rank = opts.rank ?? 0;
    this.worldSize = opts.worldSize ?? 1;
    if (!(this.worldSize >= 1 && this.rank >= 0 && this.rank < this.worldSize)) throw new Error(`sampler: rank ${this.rank} not in [0, worldSize ${this.worldSize})`);
    const N = suites.reduce((a, s) => a + s.end - s.start, 0);
    if (opts.weights) {
      for (const k of Object.keys(opts.weights))
        if (!suites.some((s) => s.name === k)) throw new Error(`sampler: weight for unknown suite '${k}' (have ${suites.map((s) => s.name).join(', ')})`);
      const w = suites.map((s) => Math.max(0, opts.weights![s.name] ?? 0));
      const sw = w.reduce((a, b) => a + b, 0);
      if (!(sw > 0)) throw new Error('sampler: all suite weights are zero');
      this.counts = w.map((x, k) => (suites[k].end > suites[k].start ? Math.round((N * x) / sw) : 0));
      this.total = this.counts.reduce((a, b) => a + b, 0);
    } else {
      this.counts = null;
      this.total = N;
    }
    if (this.total === 0) throw new Error('sampler: no steps to sample');
  }

  /** Samples per epoch (of the global stream, shared by all ranks). */
  get epochLength(): number {
    return this.total;
  }

  /** The epoch's sample order (the global stream's positions 0..total-1 of that epoch). */
  epochList(epoch: number): Uint32Array {
    if (this.cached?.epoch === epoch) return this.cached.list;
    let list: Uint32Array;
    if (!this.counts) {
      const perm = permutation(this.total, hash32(this.seed, epoch));
      // map 0..N-1 onto the suites' global ranges (contiguous, in order)
      list = perm;
      const starts = this.suites.map((s) => s.start);
      if (!(starts.length === 1 && starts[0] === 0) || this.suites.some((s, k) => k > 0 && s.start !== this.suites[k - 1].end)) {
        const flat: number[] = [];
        for (const s of this.suites) for (let i = s.start; i < s.end; i++) flat.push(i);
        list = perm.map((p) => flat[p]);
      }
    } else {
      const draws = new Uint32Array(this.total);
      let o = 0;
      this.suites.forEach((s, k) => {
        const n = s.end - s.start;
        const m = this.counts![k];
        let pass = -1;
        let perm: Uint32Array | null = null;
        for (let q = epoch * m; q < (epoch + 1) * m; q++) {
          const c = Math.floor(q / n);
          if (c !== pass) {
            pass = c;
            perm = permutation(n, hash32(this.seed, 7919, k, c));
          }
          draws[o++] = s.start + perm![q % n];
        }
      });
      const mix = permutation(this.total, hash32(this.seed, epoch, 104729));
      list = mix.map((p) => draws[p]);
    }
    this.cached = { epoch, list };
    return list;
  }

  /** The global step index at (epoch, position) of the global stream. */
  at(epoch: number, position: number): number {
    return this.epochList(epoch)[position];
  }

  /**
   * This rank's `n` indices of the global batch of worldSize * n samples that starts at `from`, crossing into
   * later epochs; `next` is where the following global batch starts (the same on every rank).
   */
  take(from: { epoch: number; position: number }, n: number): { indices: number[]; next: { epoch: number; position: number } } {
    const advance = (p: { epoch: number; position: number }, k: number) => {
      const q = p.position + k;
      return { epoch: p.epoch + Math.floor(q / this.total), position: q % this.total };
    };
    const indices: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = advance(from, this.rank * n + i);
      indices.push(this.at(p.epoch, p.position));
    }
    return { indices, next: advance(from, this.worldSize * n) };
  }
}
