// Full-step enumeration: every valid (file, demo, step) is a sample, not one sample per episode.
// A demo becomes a list of steps; step k pairs an observation index obs[k] with the action index act[k] executed
// from it. Alignment: the released files store the observation *after* its action (obs[j] shows the result of
// actions[j]); 'realign' pairs obs[j-1] with actions[j] so that each action is paired with what was seen before it
// (as at evaluation), losing the first action; 'stored' keeps the file's pairing; 'auto' realigns 'original'
// files and keeps 'regenerated' ones (already recorded before the action).
import type { DemoLowDim, Layout } from './hdf5/libero_file.js';

export const ALIGNMENTS = ['auto', 'stored', 'realign'] as const;
export type Alignment = (typeof ALIGNMENTS)[number];

export interface IndexOptions {
  align: Alignment;
  /** Drop the no-op steps at the start of each demo (the robot waiting before it moves). */
  skipLeadingIdle: boolean;
  /** Drop every no-op step, as the OpenVLA no-noops replay does. */
  dropNoops: boolean;
}

export const DEFAULT_INDEX: Readonly<IndexOptions> = Object.freeze({ align: 'auto', skipLeadingIdle: true, dropNoops: false });

/** OpenVLA's no-op rule: |a[0:6]| < 1e-4 and the gripper equals the previous action's (first action: norm test only). */
export const NOOP_NORM = 1e-4;

export function isNoop(actions: ArrayLike<number>, j: number): boolean {
  let n = 0;
  for (let i = 0; i < 6; i++) n += actions[j * 7 + i] ** 2;
  if (Math.sqrt(n) >= NOOP_NORM) return false;
  return j === 0 || actions[j * 7 + 6] === actions[(j - 1) * 7 + 6];
}

export interface EpisodeSteps {
  obs: Int32Array;
  act: Int32Array;
}

export function resolveAlignment(align: Alignment, layout: Layout): 'stored' | 'realign' {
  return align === 'auto' ? (layout === 'original' ? 'realign' : 'stored') : align;
}

/** The step list of one demo of length T. */
export function episodeSteps(ld: Pick<DemoLowDim, 'actions'>, T: number, layout: Layout, opts: IndexOptions): EpisodeSteps {
  const shift = resolveAlignment(opts.align, layout) === 'realign' ? 1 : 0;
  const obs: number[] = [];
  const act: number[] = [];
  let leading = opts.skipLeadingIdle;
  for (let k = 0; k + shift < T; k++) {
    const j = k + shift;
    const noop = isNoop(ld.actions, j);
    if (leading && noop) continue;
    leading = false;
    if (opts.dropNoops && noop) continue;
    obs.push(k);
    act.push(j);
  }
  return { obs: Int32Array.from(obs), act: Int32Array.from(act) };
}

export interface IndexedEpisode extends EpisodeSteps {
  /** Position of the file in the dataset's file list. */
  file: number;
  demo: string;
  /** Position of the suite in the dataset's suite list. */
  suite: number;
}

/** All steps of all episodes, addressable by one global index 0..total-1. */
export class StepIndex {
  readonly episodes: IndexedEpisode[];
  /** offsets[e] = global index of episode e's first step; offsets[episodes.length] = total. */
  readonly offsets: Float64Array;

  constructor(episodes: IndexedEpisode[]) {
    this.episodes = episodes;
    this.offsets = new Float64Array(episodes.length + 1);
    for (let e = 0; e < episodes.length; e++) this.offsets[e + 1] = this.offsets[e] + episodes[e].obs.length;
  }

  get total(): number {
    return this.offsets[this.episodes.length];
  }

  /** Global index -> (episode, step within the episode), by binary search. */
  locate(i: number): { episode: number; k: number } {
    if (!(i >= 0 && i < this.total)) throw new RangeError(`step index ${i} out of range [0, ${this.total})`);
    let lo = 0;
    let hi = this.episodes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.offsets[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return { episode: lo, k: i - this.offsets[lo] };
  }

  /** Global index ranges [start, end) of each suite (episodes are grouped by suite in order). */
  suiteRanges(nSuites: number): [number, number][] {
    const r: [number, number][] = Array.from({ length: nSuites }, () => [Infinity, -Infinity] as [number, number]);
    this.episodes.forEach((ep, e) => {
      r[ep.suite][0] = Math.min(r[ep.suite][0], this.offsets[e]);
      r[ep.suite][1] = Math.max(r[ep.suite][1], this.offsets[e + 1]);
    });
    return r.map(([a, b]) => (a === Infinity ? [0, 0] : [a, b]));
  }
}
