// Sample evaluation (the official `train/sample.py`, rdt-spec.md 6.4): predictAction on held-out
// batches against the ground-truth chunk, with no dropout or noise. Reports the official
// overall_avg_sample_mse / overall_avg_sample_l2err, plus errors in physical units per slot group:
// end-effector position in cm, rotation in degrees (geodesic angle of the 6-D rotation), velocity in
// cm/s and deg/s, and the gripper open fraction.
import * as torch from '../engine/index.js';
import type { RDTRunner } from '../model/runner.js';
import type { Batch } from '../data/dataset.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import { rot6dToMat, matMulT } from '../data/rotation.js';
import { prepareInputs, type Encoders } from './conditioning.js';
import type { TrainConfig } from './config.js';
import type { Evaluator } from './hooks.js';

export interface SampleMetrics {
  overall_avg_sample_mse: number;
  overall_avg_sample_l2err: number;
  /** Mean |error| of the end-effector position slots (30-32), cm. */
  eef_pos_err_cm?: number;
  /** Mean rotation error of the 6-D rotation slots (33-38), degrees. */
  eef_rot_err_deg?: number;
  /** Mean |error| of the linear velocity slots (39-41): cm/s (or LIBERO units for raw_delta). */
  eef_vel_err?: number;
  /** Mean |error| of the angular velocity slots (42-44): deg/s (or LIBERO units for raw_delta). */
  eef_angvel_err?: number;
  /** Mean |error| of the gripper open fraction (slot 10). */
  gripper_err?: number;
  samples: number;
}

const POS = [30, 31, 32];
const ROT = [33, 38];
const VEL = [39, 40, 41];
const ANG = [42, 43, 44];
const GRIP = 10;

/**
 * `valueNorm`: per-slot RMS of the targets over the dataset, for l2err. The official code divides by the
 * episode's state RMS because its actions live in the state's slots; LIBERO encodings put actions in
 * their own slots (velocities), so we use the action RMS there and the state RMS elsewhere.
 */
export function sampleEvaluate(runner: RDTRunner, batches: Batch[], enc: Encoders, opts: { seed: number; valueNorm: Float32Array; rawDelta: boolean; device?: string }): SampleMetrics {
  const A = STATE_VEC_LEN;
  const wasTraining = runner.training;
  runner.eval();
  const gen = new torch.Generator(opts.seed);
  let mseSum = 0, l2Sum = 0, n = 0;
  const acc = { pos: [0, 0], rot: [0, 0], vel: [0, 0], ang: [0, 0], grip: [0, 0] };
  try {
    for (const batch of batches) {
      const { pred, gt, mask } = torch.noGrad(() => torch.scope(() => {
        const inp = prepareInputs(batch, enc, null, opts.device);
        const p = runner.predictAction(inp, { generator: gen });
        return { pred: p.toFloat64(), gt: inp.actionGt.toFloat64(), mask: Float64Array.from(batch.elemMask.subarray(0, batch.size * A)) };
      }));
      const T = batch.chunkSize;
      for (let b = 0; b < batch.size; b++) {
        let se = 0, l2 = 0, m = 0;
        for (let t = 0; t < T; t++) {
          if (!batch.actionMask[b * T + t]) continue; // end padding is not a real target
          const o = (b * T + t) * A;
          for (let k = 0; k < A; k++) {
            const w = mask[b * A + k];
            if (!w) continue;
            const e = pred[o + k] - gt[o + k];
            se += e * e;
            l2 += Math.abs(e) / (opts.valueNorm[k] + 1e-3);
            m++;
          }
          // Physical-unit errors only where the action encoding writes (not the state-only slots).
          const act = (k: number) => batch.actionSlotMask[b * A + k] !== 0;
          const add = (slot: keyof typeof acc, v: number) => { acc[slot][0] += v; acc[slot][1]++; };
          if (act(POS[0])) for (const k of POS) add('pos', Math.abs(pred[o + k] - gt[o + k]) * 100);
          if (act(ROT[0])) {
            const R = matMulT(rot6dToMat(pred, o + ROT[0]), rot6dToMat(gt, o + ROT[0]));
            const c = Math.min(1, Math.max(-1, (R[0] + R[4] + R[8] - 1) / 2));
            add('rot', (Math.acos(c) * 180) / Math.PI);
          }
          const velScale = opts.rawDelta ? 1 : 100;
          const angScale = opts.rawDelta ? 1 : 180 / Math.PI;
          if (act(VEL[0])) for (const k of VEL) add('vel', Math.abs(pred[o + k] - gt[o + k]) * velScale);
          if (act(ANG[0])) for (const k of ANG) add('ang', Math.abs(pred[o + k] - gt[o + k]) * angScale);
          if (act(GRIP)) add('grip', Math.abs(pred[o + GRIP] - gt[o + GRIP]));
        }
        if (m) {
          mseSum += se / m;
          l2Sum += l2 / m;
          n++;
        }
      }
    }
  } finally {
    if (wasTraining) runner.train();
  }
  const mean = (x: number[]) => (x[1] ? x[0] / x[1] : undefined);
  const out: SampleMetrics = { overall_avg_sample_mse: mseSum / Math.max(1, n), overall_avg_sample_l2err: l2Sum / Math.max(1, n), samples: n };
  const put = (k: keyof SampleMetrics, v: number | undefined) => { if (v !== undefined) (out as unknown as Record<string, number>)[k] = v; };
  put('eef_pos_err_cm', mean(acc.pos));
  put('eef_rot_err_deg', mean(acc.rot));
  put('eef_vel_err', mean(acc.vel));
  put('eef_angvel_err', mean(acc.ang));
  put('gripper_err', mean(acc.grip));
  return out;
}

/**
 * The built-in evaluator: sample MSE on the fixed held-out batches before a fresh run, every
 * `sample_period` steps and after the last step (logged as sample/*). Off with sample_period 0.
 */
export function sampleEvaluator(cfg: TrainConfig): Evaluator {
  return {
    name: 'sample',
    every: cfg.sample_period,
    atStart: true,
    atEnd: true,
    evaluate: (runner, _step, ctx) => {
      const { sampleBatches, valueNorm } = ctx.data;
      if (!sampleBatches.length) return null;
      const m = sampleEvaluate(runner, sampleBatches, ctx.parts.encoders, {
        seed: cfg.seed, valueNorm, rawDelta: cfg.data.action_encoding === 'raw_delta', device: cfg.device,
      });
      return m as unknown as Record<string, number>;
    },
  };
}
