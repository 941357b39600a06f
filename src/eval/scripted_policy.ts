// Scripted policies, so the whole evaluation loop can be run and checked without a trained model. The reach experts
// (the sidecar's test back-end, sidecar/reach_env.py) see what a model sees: the observation history turned into
// model input by the data layer's buildObservation, with their own declared conventions, and the instruction.
//   scripted:zero            holds still: every action is openpi's LIBERO_DUMMY_ACTION [0,0,0,0,0,0,-1] (arm still,
//                            gripper open), at LIBERO's own 128 px; for checking a simulator install end to end
//                            (the gated real-LIBERO test), on either back-end.
//   scripted:reach           reads the block's colour from the instruction ("pick up the blue block"), finds that
//                            colour in the upright agentview image (orientation flip_v, the physically correct
//                            one), moves there at up to 0.05 m per step, then closes.
//   scripted:reach-unflipped the same with orientation 'none': it reads the rendered (upside-down) image as
//                            upright, so it aims at the block mirrored in y and fails (the classic LIBERO
//                            orientation bug, libero-facts.md 6.1-6.2).
import { type AdapterConfig, type RobotObs, adapterConfig, allocObservation, buildObservation } from '../data/adapter.js';
import type { ImageOrientation } from '../data/images.js';
import type { PolicyInput } from '../policy/policy.js';
import { UsageError } from '../util/errors.js';
import { EvalError } from './errors.js';
import type { ActionChunk, ChunkPolicy } from './chunk_policy.js';

/** reach_env.py's camera: upright pixel (r, c) of an n x n agentview sees x = -0.3 + (c+0.5) 0.6/n, y = 0.3 - (r+0.5) 0.6/n. */
const BLOCK_Z = 0.92;
const REACHED_M = 0.008;
/** reach_env.py's block colours. */
const BLOCK_RGB: Record<string, readonly [number, number, number]> = {
  red: [220, 30, 30], green: [40, 170, 60], blue: [40, 80, 220], yellow: [230, 200, 30],
};

class ReachExpert implements ChunkPolicy {
  readonly chunkSize = 64;
  readonly historySize = 1;
  readonly resolution = 64;
  readonly checkpointStep = null;
  readonly execHorizon = 16;
  readonly inputs = 'the current frame (64 px agentview, as a model would see it)';
  readonly describe: string;
  private cfg: AdapterConfig;

  constructor(orientation: ImageOrientation, readonly name: string) {
    this.describe = `scripted:${name} (test back-end expert, orientation ${orientation})`;
    this.cfg = adapterConfig({ orientation, historySize: 1, imageHeight: this.resolution, imageWidth: this.resolution, chunkSize: this.chunkSize });
  }

  async predictChunks(inputs: readonly PolicyInput[]): Promise<ActionChunk[]> {
    const n = this.resolution;
    const buf = allocObservation(this.cfg, inputs.length);
    return inputs.map((inp, b) => {
      buildObservation(this.cfg, inp.history, buf, b);
      const colour = Object.keys(BLOCK_RGB).find((c) => inp.instruction.split(/\s+/).includes(c));
      if (!colour) throw new EvalError(`scripted:${this.name}: the instruction '${inp.instruction}' names no block colour (${Object.keys(BLOCK_RGB).join(', ')})`);
      const want = BLOCK_RGB[colour];
      // Camera slot 0 (agentview) of the newest frame, as the model would see it.
      const img = buf.images.subarray(b * 3 * n * n * 3, b * 3 * n * n * 3 + n * n * 3);
      let sr = 0, sc = 0, cnt = 0;
      for (let r = 0; r < n; r++)
        for (let c = 0; c < n; c++) {
          const p = (r * n + c) * 3;
          if (Math.abs(img[p] - want[0]) + Math.abs(img[p + 1] - want[1]) + Math.abs(img[p + 2] - want[2]) < 30) (sr += r, sc += c, cnt++);
        }
      const target = cnt ? [-0.3 + (sc / cnt + 0.5) * 0.6 / n, 0.3 - (sr / cnt + 0.5) * 0.6 / n, BLOCK_Z] : null;
      return {
        length: this.chunkSize,
        action: (_k: number, measured: RobotObs) => {
          const a = new Float64Array(7);
          if (!target) return (a[6] = -1), a; // nothing seen: hold, open
          let dist = 0;
          for (let i = 0; i < 3; i++) dist += (target[i] - measured.eefPos[i]) ** 2;
          if (Math.sqrt(dist) > REACHED_M) {
            for (let i = 0; i < 3; i++) a[i] = Math.max(-1, Math.min(1, (target[i] - measured.eefPos[i]) / 0.05));
            a[6] = -1;
          } else {
            a[6] = 1;
          }
          return a;
        },
      };
    });
  }

  async close(): Promise<void> {}
}

/** Holds still (openpi examples/libero/main.py's LIBERO_DUMMY_ACTION), without looking at the observation. */
class ZeroPolicy implements ChunkPolicy {
  readonly chunkSize = 64;
  readonly historySize = 1;
  readonly resolution = 128;
  readonly checkpointStep = null;
  readonly execHorizon = 16;
  readonly describe = 'scripted:zero (holds still: [0, 0, 0, 0, 0, 0, -1])';
  readonly inputs = 'none (the observation is not looked at)';

  async predictChunks(inputs: readonly PolicyInput[]): Promise<ActionChunk[]> {
    return inputs.map(() => ({ length: this.chunkSize, action: () => Float64Array.from([0, 0, 0, 0, 0, 0, -1]) }));
  }

  async close(): Promise<void> {}
}

export const SCRIPTED = ['reach', 'reach-unflipped', 'zero'] as const;
/** The scripted policies that need the test back-end's geometry. */
export const TEST_BACKEND_ONLY: readonly string[] = ['reach', 'reach-unflipped'];

export function scriptedPolicy(name: string): ChunkPolicy {
  if (name === 'reach') return new ReachExpert('flip_v', name);
  if (name === 'reach-unflipped') return new ReachExpert('none', name);
  if (name === 'zero') return new ZeroPolicy();
  throw new UsageError(`--policy scripted:${name}: unknown scripted policy (known: ${SCRIPTED.map((s) => `scripted:${s}`).join(', ')})`);
}
