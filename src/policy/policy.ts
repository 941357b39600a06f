// loadPolicy(dir): a saved model folder -> one object that turns an observation history + instruction into a
// decoded 7-D LIBERO action chunk. It composes the data adapter (buildObservation in, decodeAction out), the
// condition encoders (built from the recorded identity) and the model (RDTRunner.predictAction), configured
// only from the folder's policy.json, so it sees exactly what training saw.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../engine/index.js';
import type { DType, Device, Tensor } from '../engine/index.js';
import { type AdapterConfig, type ObsFrame, type RobotObs, buildObservation, decodeAction, poseOf, stateSlots } from '../data/adapter.js';
import { allocBatch } from '../data/dataset.js';
import { type Pose, getEncoding } from '../data/encodings/index.js';
import type { ImageOrientation } from '../data/images.js';
import { rot6dToMat } from '../data/rotation.js';
import { SLOTS, STATE_VEC_LEN } from '../data/state_vec.js';
import { demoEncoderIdentity } from '../encoders/demo.js';
import { type EncoderIdentity, createEncoders, identityTokensPerImage } from '../encoders/factory.js';
import type { TextEncoder, VisionEncoder } from '../encoders/types.js';
import { findWeights, loadRdtCheckpoint, loraAdapters, loraMergeHint, readCheckpointConfig } from '../model/checkpoint.js';
import type { RDTRunner } from '../model/runner.js';
import { modelInputs } from './inputs.js';
import { CachedTextEncoder } from './text_embeddings.js';
import { type ModelSizes, adapterFromConventions, checkAgainstModel, modelSizes, valueNormalizationOf } from './conventions.js';
import { POLICY_FILE, POLICY_FORMAT, POLICY_VERSION, type PolicyConventions, parsePolicyFile, readPolicyFile } from './file.js';
import { PolicyError } from './errors.js';
import type { VerifyLevel } from '../util/checksums.js';

/** Conventions for a model folder without policy.json (e.g. the official hub rdt-1b), given by hand. */
export interface ExplicitConventions {
  encoding: string;
  orientation: ImageOrientation;
  imageHeight: number;
  imageWidth: number;
  useJoints?: boolean;
  /** Default 20 (LIBERO). */
  ctrlFreq?: number;
  /** 'demo': the demo encoders at the config's token sizes; official ones: officialEncoderIdentity(dirs). */
  encoders: 'demo' | EncoderIdentity;
}

export interface LoadPolicyOptions {
  /** Only for folders without policy.json; a folder with one is refused if these are given too. */
  conventions?: ExplicitConventions;
  dtype?: DType;
  device?: Device;
  /**
   * Official encoders: load them from these folders instead of the paths policy.json records (the checkpoint moved
   * machines). Each is still checked against the recorded sha256 of its config.json (and tokenizer files).
   */
  encoderDirs?: { text?: string; vision?: string; tokenizer?: string };
  /** Official encoders: run them in this dtype instead of the one they were trained in. */
  encoderDtype?: 'float32' | 'bfloat16';
  /** Checksum check of the weights (default 'quick'; src/util/checksums.ts). */
  verify?: VerifyLevel;
  /** Where the "no policy.json, using explicit conventions" line goes (default: stderr). */
  warn?: (line: string) => void;
}

/** Sampling seeds are integers in [0, SEED_LIMIT): what the evaluation's request seeds, the openpi 'seed' key and the server's own sequence draw from. */
export const SEED_LIMIT = 2 ** 31;

/** One observation: the last `history` frames, oldest first (null before the episode start), and the instruction. */
export interface PolicyInput {
  history: readonly (ObsFrame | null)[];
  instruction: string;
}

export interface PredictOptions {
  /** Noise for the sampler: a generator, a seed, or x_T itself (B, chunk, 128). Default: the global generator. */
  generator?: torch.Generator;
  seed?: number;
  /**
   * One seed per observation: row b's x_T is drawn alone from a generator seeded with seeds[b], exactly as
   * predict(input b, { seed: seeds[b] }) draws it for a batch of one, so an observation's chunk depends on its own
   * seed and never on what it was batched with (beyond float rounding). The server and the evaluation use this.
   */
  seeds?: readonly number[];
  noise?: Tensor;
  /** Solver steps (default: the config's num_inference_timesteps). */
  steps?: number;
  /** Also return the raw (B, chunk, 128) chunk. */
  raw?: boolean;
  /** Per batch row, the pose measured (or to be measured) before each chunk step; see decodeChunk. */
  poses?: readonly (readonly (Pose | RobotObs | null | undefined)[] | undefined)[];
}

export interface PolicyOutput {
  batch: number;
  chunk: number;
  /** (B, chunk, 7) LIBERO commands: [dx, dy, dz, rx, ry, rz] in [-1, 1], gripper -1 open / +1 close. */
  actions: Float64Array;
  /** (B, chunk, 128) unified vectors, when asked for. */
  raw?: Float64Array;
}

export class Policy {
  readonly adapter: AdapterConfig;
  /** The text encoder behind the per-process instruction cache (text_embeddings.ts): each instruction is encoded once. */
  private readonly text: CachedTextEncoder;

  constructor(
    readonly dir: string,
    readonly conventions: PolicyConventions,
    readonly runner: RDTRunner,
    readonly encoders: { text: TextEncoder; vision: VisionEncoder },
    readonly sizes: ModelSizes,
    /** False when the conventions were given by hand (no policy.json). */
    readonly recorded: boolean,
    /** What identifies the text encoder's outputs (recorded identity, folders, dtype, device): the cache's key. */
    textKey: string,
  ) {
    this.adapter = adapterFromConventions(conventions);
    this.text = new CachedTextEncoder(encoders.text, textKey);
  }

  /** Text-encoder calls so far (one per distinct instruction). */
  get textEncodes(): number {
    return this.text.calls;
  }

  get chunkSize(): number {
    return this.adapter.chunkSize;
  }
  get historySize(): number {
    return this.adapter.historySize;
  }

  /** Observations -> decoded chunks (and the raw chunks on request). One sampler call for the whole batch. */
  predict(inputs: PolicyInput | readonly PolicyInput[], opts: PredictOptions = {}): PolicyOutput {
    const list = Array.isArray(inputs) ? (inputs as readonly PolicyInput[]) : [inputs as PolicyInput];
    const B = list.length;
    if (B === 0) throw new PolicyError('predict: no observations given');
    const batch = allocBatch(this.adapter, B);
    list.forEach((x, b) => {
      if (x.history.length !== this.adapter.historySize)
        throw new PolicyError(`observation ${b}: history of ${x.history.length} frames, the policy takes ${this.adapter.historySize} (cameras.history in ${POLICY_FILE})`);
      buildObservation(this.adapter, x.history, batch, b);
      batch.instruction[b] = x.instruction;
    });
    const generator = opts.generator ?? (opts.seed !== undefined ? new torch.Generator(opts.seed) : undefined);
    if (opts.seeds && opts.seeds.length !== B) throw new PolicyError(`predict: ${opts.seeds.length} seeds for ${B} observations`);
    const raw = torch.noGrad(() => torch.scope(() => {
      const inp = modelInputs(batch, { text: this.text, vision: this.encoders.vision }, this.runner.device);
      const noise = opts.noise ?? (opts.seeds ? this.noiseFor(opts.seeds) : undefined);
      return this.runner.predictAction(inp, { generator, noise, numInferenceSteps: opts.steps }).toFloat64();
    }));
    const measured = list.map((x) => poseOf(x.history[x.history.length - 1]!.robot));
    const actions = this.decodeChunk(raw, measured, opts.poses);
    return { batch: B, chunk: this.chunkSize, actions, ...(opts.raw ? { raw } : {}) };
  }

  /** x_T (B, chunk, 128) with row b drawn alone from a generator seeded with seeds[b] (see PredictOptions.seeds). */
  private noiseFor(seeds: readonly number[]): Tensor {
    const r = this.runner;
    return torch.cat(seeds.map((s) => torch.randn([1, this.chunkSize, STATE_VEC_LEN], { dtype: r.dtype, device: r.device, generator: new torch.Generator(s) })), 0);
  }

  /**
   * Raw chunks (B, chunk, 128) -> LIBERO commands (B, chunk, 7), one decodeAction per step. Step 0 is decoded
   * against the pose measured now. A later step k is decoded against poses[b][k] when given (an evaluator that
   * executes step by step knows the pose it measures before each step, which is exactly what training encoded
   * against); otherwise against the pose the chunk itself planned for step k-1 (its target at 30-38, for encodings
   * that write one), because an OSC controller that reaches each goal within its 50 ms step starts step k there.
   * Encodings without a pose target (velocities, raw deltas) decode the same against any pose.
   */
  decodeChunk(raw: Float64Array, measured: readonly Pose[], poses?: PredictOptions['poses']): Float64Array {
    const B = measured.length;
    const T = this.chunkSize;
    const A = STATE_VEC_LEN;
    if (raw.length !== B * T * A) throw new PolicyError(`decodeChunk: ${raw.length} values, expected ${B} x ${T} x ${A}`);
    const slots = getEncoding(this.adapter.encoding).slots;
    const plansPose = slots.includes(SLOTS.eefPos[0]) && slots.includes(SLOTS.eefRot6d[0]);
    const out = new Float64Array(B * T * 7);
    for (let b = 0; b < B; b++)
      for (let k = 0; k < T; k++) {
        const off = (b * T + k) * A;
        const given = poses?.[b]?.[k];
        let pose: Pose;
        if (given) pose = 'R' in given ? given : poseOf(given);
        else if (k === 0 || !plansPose) pose = measured[b];
        else pose = { pos: raw.subarray(off - A + SLOTS.eefPos[0], off - A + SLOTS.eefPos[0] + 3), R: rot6dToMat(raw, off - A + SLOTS.eefRot6d[0]) };
        out.set(decodeAction(this.adapter, raw, off, pose), (b * T + k) * 7);
      }
    return out;
  }

  dispose(): void {
    this.text.dispose(); // the encoder, and its cached instructions unless another policy uses them
    this.encoders.vision.dispose();
    this.runner.dispose();
  }
}

/** The conventions of a folder without policy.json, completed from its config.json, then validated like a file. */
function completeExplicit(e: ExplicitConventions, dir: string): PolicyConventions {
  const { config, path } = readCheckpointConfig(findWeights(dir).dir);
  let encoders = e.encoders === 'demo' ? demoEncoderIdentity(config) : e.encoders;
  // Official T5 takes up to 1024 tokens; this model, up to its max_lang_cond_len.
  if (encoders.text.kind === 'official' && encoders.text.max_length > config.max_lang_cond_len)
    encoders = { ...encoders, text: { ...encoders.text, max_length: config.max_lang_cond_len } };
  const sizes = modelSizes(config, identityTokensPerImage(encoders.vision), path);
  const obj = {
    format: POLICY_FORMAT, version: POLICY_VERSION,
    action: { encoding: e.encoding, chunk_size: sizes.chunkSize, ctrl_freq: e.ctrlFreq ?? 20, exec_horizon: null },
    state: { use_joints: e.useJoints ?? false, slots: stateSlots({ useJoints: e.useJoints ?? false }) },
    cameras: { slots: { agentview: 0, eye_in_hand: 1 }, orientation: e.orientation, height: e.imageHeight, width: e.imageWidth, history: sizes.historySize },
    statistics: null, normalization: 'none', encoders, lora: null, origin: null,
  };
  return parsePolicyFile(obj, 'the conventions given explicitly');
}


/** Load a policy folder: checkpoint-N/, checkpoint-N/ema/, final/, a lora-merge output, or a hub folder with explicit conventions. */
export function loadPolicy(dir: string, opts: LoadPolicyOptions = {}): Policy {
  if (!existsSync(dir)) throw new PolicyError(`policy folder ${dir} does not exist`);
  // LoRA: refused rather than loaded, so every policy is one plain set of weights (the merge is exact).
  // (loadRdtCheckpoint refuses them too, with the same command; here as a PolicyError, before policy.json is read.)
  const lora = loraAdapters(dir);
  if (lora) throw new PolicyError(`${dir}: LoRA adapters (${lora.file}) sit beside the base weights; ${loraMergeHint(lora.checkpoint)}`);
  const recorded = readPolicyFile(dir);
  if (recorded?.lora) throw new PolicyError(`${join(dir, POLICY_FILE)}: field 'lora' says the weights need LoRA adapters; ${loraMergeHint(dir)}`);
  let conventions: PolicyConventions;
  if (recorded) {
    if (opts.conventions) throw new PolicyError(`${join(dir, POLICY_FILE)} records this model's conventions; do not pass conventions explicitly too (they could disagree)`);
    conventions = recorded;
  } else if (opts.conventions) {
    conventions = completeExplicit(opts.conventions, dir);
    const c = conventions;
    (opts.warn ?? ((l: string) => process.stderr.write(l + '\n')))(
      `policy: ${dir} has no ${POLICY_FILE}; using the conventions given explicitly (encoding ${c.action.encoding}, use_joints ${c.state.use_joints}, ` +
        `orientation ${c.cameras.orientation}, ${c.cameras.height}x${c.cameras.width}, ctrl_freq ${c.action.ctrl_freq}, ${c.encoders.text.kind} encoders): ` +
        'they must be the ones the model was trained with');
  } else {
    throw new PolicyError(`${dir} has no ${POLICY_FILE} (e.g. the official hub rdt-1b, or a checkpoint from before policy files): ` +
      'pass its conventions explicitly: loadPolicy(dir, { conventions: { encoding, orientation, imageHeight, imageWidth, useJoints, ctrlFreq, encoders } }), ' +
      'or on the command line predict --encoding E --orientation O --image-size HxW [--use-joints] [--ctrl-freq HZ] --encoders demo|official [--text-encoder DIR --vision-encoder DIR]');
  }
  const dirsGiven = Object.entries(opts.encoderDirs ?? {}).filter(([, v]) => v !== undefined).map(([k]) => k);
  if (dirsGiven.length && conventions.encoders.text.kind !== 'official')
    throw new PolicyError(`${dir}: encoder folders given (${dirsGiven.join(', ')}), but the policy uses '${conventions.encoders.text.kind}' encoders, which have no folders`);
  const configPath = readCheckpointConfig(findWeights(dir).dir).path;
  const { runner } = loadRdtCheckpoint(dir, { dtype: opts.dtype ?? 'float32', device: opts.device, verify: opts.verify });
  let encoders: { text: TextEncoder; vision: VisionEncoder } | null = null;
  try {
    encoders = createEncoders(conventions.encoders, { dirs: opts.encoderDirs, device: opts.device, dtype: opts.encoderDtype });
    const sizes = checkAgainstModel(conventions, runner.config, encoders, { policy: recorded ? join(dir, POLICY_FILE) : 'the conventions given explicitly', config: configPath });
    if (conventions.normalization === 'zscore') runner.setValueNormalization(valueNormalizationOf(conventions.statistics!));
    runner.eval();
    const textKey = JSON.stringify([conventions.encoders.text, opts.encoderDirs ?? {}, opts.encoderDtype ?? null, opts.device ?? 'cpu']);
    return new Policy(dir, conventions, runner, encoders, sizes, recorded !== null, textKey);
  } catch (e) {
    encoders?.text.dispose();
    encoders?.vision.dispose();
    runner.dispose();
    throw e;
  }
}
