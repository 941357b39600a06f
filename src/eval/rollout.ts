// One episode in one simulator worker: reset to the fixed initial state, the protocol's wait steps, then
// receding-horizon execution: ask for a chunk, execute `execHorizon` of its steps (each decoded against the pose
// measured just before it), observe, ask again; or, with temporal ensembling, ask at every step and average the
// overlapping chunks' actions (ACT: weights exp(-k i), i = 0 for the oldest). Success = the env's done flag at
// any policy step. Observations reach the policy through the data layer (obsFrameFromEnv + ObservationHistory,
// then buildObservation inside the policy), exactly as in training; the wait steps' frames are not part of the
// history, which starts empty at the first policy step like a training episode. Request i of the episode is sampled
// with requestSeed(seed, suite, task, episode, i) (seeding.ts), whatever worker, batch or resume it runs in.
// A simulator error (the env raised in reset or step) ends the episode as a failure that carries the error, as
// openpi's LIBERO client counts it, unless the run asks to stop on it; any other error propagates.
// A perturbed episode (perturb.ts) sends its simulator perturbation with the reset (applied before the wait steps),
// gives the policy its instruction variant, and puts its image noise on every camera image the policy sees; the
// frame sink (the video) gets the same noisy images, so a video shows what the policy saw.
import { type ObsFrame, ObservationHistory, obsFrameFromEnv } from '../data/adapter.js';
import { EvalError, SimEnvError } from './errors.js';
import { type EpisodePerturbation, noisyImage } from './perturb.js';
import { requestSeed } from './seeding.js';
import type { ChunkBatcher } from './chunk_batcher.js';
import type { EvalProtocol } from './protocol.js';
import type { ActionChunk, ChunkPolicy } from './chunk_policy.js';
import type { SidecarWorker, SimObs } from './sidecar.js';

export interface EpisodeSpec {
  suite: string;
  task: number;
  /** Episode number within the task (0-based). */
  episode: number;
  init: number;
  /** --seed: the base of the env seed and of the requests' sampling seeds. */
  seed: number;
  /** The perturbation set's name (perturb.ts), or undefined for the standard condition. */
  perturbation?: string;
}

export interface RolloutOptions {
  protocol: EvalProtocol;
  maxSteps: number;
  execHorizon: number;
  /** ACT temporal-ensembling coefficient k; null = receding horizon. */
  temporalEnsemble: number | null;
  language: string;
  /** Seed numpy and the env before the reset (per-episode seeding), or let the reset draw on (per-task). */
  seedReset: boolean;
  /** A simulator error ends the episode as a recorded failure (false) or propagates and stops the run (true). */
  stopOnEnvError: boolean;
  /** This episode's perturbation draw (perturb.ts drawEpisode), or null for a standard episode. */
  perturbation?: EpisodePerturbation | null;
}

export interface EpisodeOutcome {
  success: boolean;
  /** Policy steps executed (wait steps not counted). */
  steps: number;
  envSteps: number;
  modelCalls: number;
  /** Policy steps at which a chunk was requested. */
  replans: number[];
  /** The simulator error that ended the episode (a failure), or null. */
  error: string | null;
  /** What the simulator reported applying (the reset reply's `perturbation`), or null. */
  simApplied: Record<string, unknown> | null;
}

/** Called with every observation (reset, wait steps, policy steps), for videos. */
export type FrameSink = (o: SimObs, policyStep: number | null) => void;

export async function runEpisode(
  worker: SidecarWorker, batcher: ChunkBatcher, env: number, policy: ChunkPolicy, spec: EpisodeSpec, opts: RolloutOptions, onFrame?: FrameSink,
): Promise<EpisodeOutcome> {
  const replans: number[] = [];
  const live: { chunk: ActionChunk; start: number }[] = [];
  let success = false;
  let steps = 0;
  let error: string | null = null;
  let envSteps = 0;
  let o: SimObs;
  let simApplied: Record<string, unknown> | null = null;
  const pert = opts.perturbation ?? null;
  // The images the policy (and the video) sees: with image noise, every camera image noised from the episode's
  // noise seed and the env step, so a re-run draws the same noise.
  const seen = (x: SimObs): SimObs => {
    if (!pert?.noise) return x;
    const obs = { ...x.obs };
    let cam = 0;
    for (const k of ['agentview_image', 'robot0_eye_in_hand_image'])
      if (obs[k] instanceof Uint8Array) obs[k] = noisyImage(obs[k] as Uint8Array, Math.round(Math.sqrt((obs[k] as Uint8Array).length / 3)), pert.noise, x.t, cam++);
    return { ...x, obs };
  };
  /** One env step, timed for the batcher's gather rule; policyStep null for wait steps. */
  const stepEnv = async (action: ArrayLike<number>, policyStep: number | null) => {
    const t0 = performance.now();
    o = seen(await worker.step(action));
    envSteps = o.t;
    batcher.noteStep((performance.now() - t0) / 1000);
    onFrame?.(o, policyStep);
  };
  try {
    batcher.setDue(env, Infinity);
    policy.startEpisode?.(env);
    const r = await worker.reset({ initIndex: spec.init, seed: opts.seedReset ? spec.seed : undefined, perturb: pert?.sim ?? undefined });
    simApplied = r.perturbation ?? null;
    o = seen(r);
    onFrame?.(o, null);
    const { waitSteps, waitAction } = opts.protocol;
    for (let i = 0; i < waitSteps; i++) {
      batcher.setDue(env, waitSteps - i);
      await stepEnv(waitAction, null);
    }
    const history = new ObservationHistory(policy.historySize);
    let frame: ObsFrame = obsFrameFromEnv(o.obs);
    history.push(frame);
    const ask = async (at: number): Promise<ActionChunk> => {
      const seed = requestSeed(spec.seed, spec.suite, spec.task, spec.episode, replans.length);
      replans.push(at);
      const chunk = await batcher.request(env, { history: [...history.current], instruction: pert?.instruction ?? opts.language }, seed);
      if (chunk.length < (opts.temporalEnsemble === null ? opts.execHorizon : 1))
        throw new EvalError(`the policy returned a ${chunk.length}-step chunk; exec_horizon is ${opts.execHorizon}`);
      return chunk;
    };
    for (let t = 0; t < opts.maxSteps; t++) {
      let action: Float64Array;
      if (opts.temporalEnsemble === null) {
        const cur = live[0];
        if (!cur || t - cur.start >= opts.execHorizon) live.splice(0, live.length, { chunk: await ask(t), start: t });
        const { chunk, start } = live[0];
        batcher.setDue(env, start + opts.execHorizon - t - 1);
        action = chunk.action(t - start, frame.robot);
      } else {
        live.push({ chunk: await ask(t), start: t });
        while (live.length && t - live[0].start >= live[0].chunk.length) live.shift();
        batcher.setDue(env, 1);
        action = ensemble(live, t, frame, opts.temporalEnsemble);
      }
      await stepEnv(action, t + 1);
      steps = t + 1;
      frame = obsFrameFromEnv(o.obs);
      history.push(frame);
      if (o.done) {
        success = true;
        break;
      }
    }
  } catch (e) {
    if (!(e instanceof SimEnvError) || opts.stopOnEnvError) throw e;
    error = e.message;
  } finally {
    batcher.leave(env);
  }
  return { success, steps, envSteps, modelCalls: replans.length, replans, error, simApplied };
}

/** ACT's temporal ensemble: every live chunk's action for this step, weighted exp(-k i) with i = 0 the oldest. */
function ensemble(live: readonly { chunk: ActionChunk; start: number }[], step: number, frame: ObsFrame, k: number): Float64Array {
  const out = new Float64Array(7);
  let wsum = 0;
  live.forEach(({ chunk, start }, i) => {
    const w = Math.exp(-k * i);
    const a = chunk.action(step - start, frame.robot);
    for (let d = 0; d < 7; d++) out[d] += w * a[d];
    wsum += w;
  });
  for (let d = 0; d < 7; d++) out[d] /= wsum;
  return out;
}
