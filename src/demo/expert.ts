// The scripted expert of the test back-end's block tasks (sidecar/reach_env.py), the demonstrator the embedded demo
// records. Like LIBERO's human demonstrators it sees the true simulator state (the 21-number state every reply
// carries), not the images: it flies to the named block along a funnel (high while far, descending as it closes
// in), then closes the gripper on it. Each demonstration draws its own speed, gain, funnel slope and sideways
// curve, so the motions are smooth and slightly varied, as real demonstrations are.
import { Rng } from '../data/rng.js';

/** reach_env.py's state layout: [time, eef xyz (1-3), eef quat xyzw (4-7), gripper command (8), block xyz x 4 (9-20)]. */
export const BLOCK_STATE = { dim: 21, eefPos: 1, grip: 8, blocks: 9 } as const;
/** reach_env.py's block order in the state, and the colour word each instruction names. */
export const BLOCK_COLOURS = ['red', 'green', 'blue', 'yellow'] as const;

/** The colour an instruction names ("pick up the blue block" -> 2), or -1. */
export function namedBlock(instruction: string): number {
  const words = instruction.toLowerCase().split(/[^a-z]+/);
  return BLOCK_COLOURS.findIndex((c) => words.includes(c));
}

/** OSC_POSE: one unit of a[0:3] moves 0.05 m. */
const STEP_M = 0.05;

export class BlockExpert {
  private readonly vmax: number;
  private readonly gain: number;
  private readonly slope: number;
  private readonly curve: number;
  private closing = false;

  /** `block`: index into BLOCK_COLOURS; `seed`: this demonstration's style. */
  constructor(readonly block: number, seed: number) {
    const r = new Rng(seed);
    this.vmax = r.uniform(0.55, 0.85);
    this.gain = r.uniform(0.4, 0.6);
    this.slope = r.uniform(0.5, 1.0);
    this.curve = r.uniform(-0.2, 0.2);
  }

  /** The next 7-D command for the simulator state `s` (reach_env.py layout). */
  act(s: ArrayLike<number>): Float64Array {
    const p = [s[BLOCK_STATE.eefPos], s[BLOCK_STATE.eefPos + 1], s[BLOCK_STATE.eefPos + 2]];
    const o = BLOCK_STATE.blocks + 3 * this.block;
    const b = [s[o], s[o + 1], s[o + 2]];
    const dx = b[0] - p[0], dy = b[1] - p[1];
    const dh = Math.hypot(dx, dy);
    const a = new Float64Array(7);
    if (!this.closing && dh < 0.008 && Math.abs(p[2] - b[2]) < 0.01) this.closing = true;
    if (this.closing) {
      // Hold over the block (small corrections) while the fingers close: about 7 steps.
      for (let i = 0; i < 3; i++) a[i] = (0.5 * (b[i] - p[i])) / STEP_M;
      a[6] = 1;
      return a;
    }
    // Funnel: stay above the block in proportion to the horizontal distance still to go.
    const goal = [b[0], b[1], b[2] + Math.min(0.25, this.slope * Math.max(0, dh - 0.01))];
    for (let i = 0; i < 3; i++) a[i] = (this.gain * (goal[i] - p[i])) / STEP_M;
    // A sideways curve that fades out near the block.
    if (dh > 1e-6) {
      const k = this.curve * Math.min(1, dh / 0.1);
      a[0] += (-dy / dh) * k;
      a[1] += (dx / dh) * k;
    }
    const n = Math.hypot(a[0], a[1], a[2]);
    if (n > this.vmax) for (let i = 0; i < 3; i++) a[i] *= this.vmax / n;
    a[6] = -1;
    return a;
  }
}
