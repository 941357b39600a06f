// `rdt-libero predict`: predictAction on already-encoded conditions, for offline inference and for
// comparing with another implementation; with --decode, a policy folder on observations, writing LIBERO 7-D
// actions. Parses arguments and calls src/model and src/policy; no logic here.
import * as torch from '../engine/index.js';
import type { DType } from '../engine/index.js';
import { loadRdtCheckpoint } from '../model/checkpoint.js';
import { predictFromTensors, PREDICT_INPUTS } from '../model/predict.js';
import { ORIENTATIONS, type ImageOrientation } from '../data/images.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { OBSERVATION_INPUTS, policyInputsFromTensors } from '../policy/observation_file.js';
import { type ExplicitConventions, loadPolicy } from '../policy/policy.js';
import { officialEncoderIdentity } from '../encoders/factory.js';
import { UsageError } from '../util/errors.js';
import { VERIFY_LEVELS, type VerifyLevel } from '../util/checksums.js';
import { parseCommandArgs } from './args.js';

const USAGE = `usage: rdt-libero predict --checkpoint DIR --inputs IN.safetensors --out OUT.safetensors [options]

Runs the RDT sampler (DPM-Solver++(2M), 5 steps by default) on already-encoded conditions.
IN.safetensors holds:
${PREDICT_INPUTS.map((i) => `  ${i.name.padEnd(11)} ${i.shape.padEnd(34)} ${i.what}`).join('\n')}
OUT.safetensors gets \`actions\` (B, horizon, action_dim), float32.

options:
  --checkpoint DIR   hub layout: config.json + model.safetensors | pytorch_model.bin | DeepSpeed .pt | ema/
  --weights KIND     auto (default), safetensors, bin, deepspeed, ema
  --dtype D          float32 (default) or bfloat16
  --device D         cpu (default), cuda, cuda:N
  --seed N           draw the initial noise from this seed when IN has no 'noise'
  --steps N          number of solver steps (default: the config's num_inference_timesteps)
  --no-cache         recompute the condition keys/values at every step, like the official code
  --verify LEVEL     check the weights against the folder's checksums.json: quick (default: size and sampled
                     blocks), full (every byte), none

usage: rdt-libero predict --decode --checkpoint DIR --inputs OBS.safetensors --out OUT.safetensors
                          [--instruction TEXT ...] [--raw] [--seed N] [options above]

With --decode, DIR is a policy folder (checkpoint-N/, checkpoint-N/ema/, final/, a lora-merge output: config.json
+ model.safetensors + policy.json) and OBS.safetensors holds raw observations, H = the policy's history, oldest first:
${OBSERVATION_INPUTS.map((i) => `  ${i.name.padEnd(15)} ${i.shape.padEnd(24)} ${i.what}`).join('\n')}
The instructions come from --instruction (one for all rows, or one per row, repeated) or, without it, from the
file's __metadata__ "instructions" (a JSON list of B strings). The policy builds the state, masks and camera
slots exactly as in training, encodes with its recorded encoders, samples, and decodes each chunk step with
decodeAction: step 0 against the newest frame's measured pose, step k against the pose the chunk planned for
step k-1. OUT.safetensors gets \`actions\` (B, chunk, 7) float32 (LIBERO: xyz, rotation in [-1, 1], gripper
-1 open / +1 close) and, with --raw, \`raw_actions\` (B, chunk, 128).

Official encoders (T5 + SigLIP) are loaded from the folders policy.json records, on --device. When the
checkpoint moved machines, point at the same encoders' folders here; each must hash like the recorded one:
  --text-encoder DIR     the T5 v1.1 folder (google/t5-v1_1-xxl)
  --vision-encoder DIR   the SigLIP folder (google/siglip-so400m-patch14-384)
  --tokenizer DIR        the T5 tokenizer folder, when not inside the text encoder's
  --encoder-dtype D      float32 or bfloat16 (default: the dtype they were trained in)

A folder without policy.json (e.g. the official hub rdt-1b) is accepted only with its conventions given:
  --encoding E       ${Object.keys(ENCODINGS).join(', ')}
  --orientation O    ${ORIENTATIONS.join(', ')}
  --image-size HxW   resolution of the frames it was trained on
  --use-joints       the state also holds the 7 joint angles
  --ctrl-freq HZ     default 20
  --encoders E       demo, or official (with --text-encoder DIR --vision-encoder DIR [--tokenizer DIR])
`;

export async function predict(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    command: 'predict', usage: USAGE, required: ['checkpoint', 'inputs', 'out'],
    options: {
      checkpoint: { type: 'string' }, inputs: { type: 'string' }, out: { type: 'string' },
      weights: { type: 'string', default: 'auto' }, dtype: { type: 'string', default: 'float32' },
      device: { type: 'string', default: 'cpu' }, seed: { type: 'string' }, steps: { type: 'string' },
      'no-cache': { type: 'boolean' }, decode: { type: 'boolean' }, raw: { type: 'boolean' },
      instruction: { type: 'string', multiple: true }, encoding: { type: 'string' }, orientation: { type: 'string' },
      'image-size': { type: 'string' }, 'use-joints': { type: 'boolean' }, 'ctrl-freq': { type: 'string' },
      encoders: { type: 'string' }, 'text-encoder': { type: 'string' }, 'vision-encoder': { type: 'string' },
      tokenizer: { type: 'string' }, 'encoder-dtype': { type: 'string' }, verify: { type: 'string', default: 'quick' },
    },
  }, args);
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.dtype !== 'float32' && values.dtype !== 'bfloat16') throw new UsageError(`--dtype must be float32 or bfloat16, got '${values.dtype}'`);
  const kinds = ['auto', 'safetensors', 'bin', 'deepspeed', 'ema'];
  if (!kinds.includes(values.weights!)) throw new UsageError(`--weights must be one of ${kinds.join(', ')}, got '${values.weights}'`);
  const weights = values.weights as 'auto';
  if (!VERIFY_LEVELS.includes(values.verify as VerifyLevel)) throw new UsageError(`--verify must be one of ${VERIFY_LEVELS.join(', ')}, got '${values.verify}'`);
  const verify = values.verify as VerifyLevel;
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
    return Number(v);
  };
  const seed = int('seed', values.seed);
  const steps = int('steps', values.steps);
  const encoderFlags = ['text-encoder', 'vision-encoder', 'tokenizer', 'encoder-dtype'].filter((k) => values[k as keyof typeof values] !== undefined);
  if (encoderFlags.length && !values.decode) throw new UsageError(`--${encoderFlags[0]} applies only with --decode (a policy folder); without it the conditions are already encoded`);
  if (values['encoder-dtype'] !== undefined && values['encoder-dtype'] !== 'float32' && values['encoder-dtype'] !== 'bfloat16')
    throw new UsageError(`--encoder-dtype must be float32 or bfloat16, got '${values['encoder-dtype']}'`);
  if (values.decode) {
    if (values.weights !== 'auto') throw new UsageError('--weights does not apply with --decode: pass the folder of the weights (checkpoint-N/ or checkpoint-N/ema/)');
    return predictDecoded(values, seed, steps, verify);
  }
  const t0 = performance.now();
  const { runner, weightsFile } = loadRdtCheckpoint(values.checkpoint!, { dtype: values.dtype as DType, device: values.device, weights, verify });
  const t1 = performance.now();
  const { tensors } = torch.loadSafetensors(values.inputs!);
  const actions = predictFromTensors(runner, tensors, {
    source: values.inputs!,
    cacheConditions: !values['no-cache'],
    generator: seed !== undefined ? new torch.Generator(seed) : undefined,
    numInferenceSteps: steps,
  });
  torch.scope(() => torch.saveSafetensors(values.out!, { actions: actions.to({ dtype: 'float32', device: 'cpu' }) }));
  const t2 = performance.now();
  process.stderr.write(`predict: ${weightsFile} (${values.dtype}, ${values.device}); loaded in ${((t1 - t0) / 1000).toFixed(2)} s, ` +
    `sampled [${actions.shape}] in ${((t2 - t1) / 1000).toFixed(2)} s -> ${values.out}\n`);
  return 0;
}

type DecodeFlags = {
  checkpoint?: string; inputs?: string; out?: string; dtype?: string; device?: string; 'no-cache'?: boolean; raw?: boolean;
  instruction?: string[]; encoding?: string; orientation?: string; 'image-size'?: string; 'use-joints'?: boolean; 'ctrl-freq'?: string; encoders?: string;
  'text-encoder'?: string; 'vision-encoder'?: string; tokenizer?: string; 'encoder-dtype'?: string;
};

/** The explicit-convention flags, or undefined when none is given (the folder's policy.json is then required). */
function explicitConventions(v: DecodeFlags): ExplicitConventions | undefined {
  const given = ['encoding', 'orientation', 'image-size', 'ctrl-freq', 'encoders'].filter((k) => v[k as keyof DecodeFlags] !== undefined);
  if (!given.length && !v['use-joints']) return undefined;
  for (const k of ['encoding', 'orientation', 'image-size', 'encoders'] as const)
    if (v[k] === undefined) throw new UsageError(`--${k} is needed too when conventions are given by hand (${given.map((g) => `--${g}`).join(', ')} given)`);
  const size = /^(\d+)x(\d+)$/.exec(v['image-size']!);
  if (!size) throw new UsageError(`--image-size must be HxW (e.g. 128x128), got '${v['image-size']}'`);
  if (v.encoders !== 'demo' && v.encoders !== 'official') throw new UsageError(`--encoders must be demo or official, got '${v.encoders}'`);
  if (v.encoders === 'demo' && (v['text-encoder'] || v['vision-encoder'] || v.tokenizer || v['encoder-dtype']))
    throw new UsageError('--text-encoder, --vision-encoder, --tokenizer and --encoder-dtype are for official encoders; the demo encoders read no folders');
  if (v.encoders === 'official' && (!v['text-encoder'] || !v['vision-encoder']))
    throw new UsageError('--encoders official needs --text-encoder DIR and --vision-encoder DIR (the T5 and SigLIP folders the model was trained with)');
  if (!ORIENTATIONS.includes(v.orientation as ImageOrientation)) throw new UsageError(`--orientation must be one of ${ORIENTATIONS.join(', ')}, got '${v.orientation}'`);
  const freq = v['ctrl-freq'] === undefined ? 20 : Number(v['ctrl-freq']);
  if (!(freq > 0)) throw new UsageError(`--ctrl-freq must be a positive number, got '${v['ctrl-freq']}'`);
  return {
    encoding: v.encoding!, orientation: v.orientation as ImageOrientation, imageHeight: Number(size[1]), imageWidth: Number(size[2]),
    useJoints: v['use-joints'], ctrlFreq: freq,
    encoders: v.encoders === 'demo' ? 'demo' : officialEncoderIdentity({ text: v['text-encoder']!, vision: v['vision-encoder']!, tokenizer: v.tokenizer },
      { dtype: (v['encoder-dtype'] ?? 'float32') as 'float32' }),
  };
}

/** --decode: a policy folder on raw observations -> LIBERO 7-D actions. */
function predictDecoded(v: DecodeFlags, seed: number | undefined, steps: number | undefined, verify: VerifyLevel): number {
  const t0 = performance.now();
  const conventions = explicitConventions(v);
  // With explicit conventions the folders are already in the identity; with policy.json they override the recorded paths.
  const encoderDirs = conventions ? undefined : { text: v['text-encoder'], vision: v['vision-encoder'], tokenizer: v.tokenizer };
  const policy = loadPolicy(v.checkpoint!, {
    conventions, dtype: v.dtype as DType, device: v.device, encoderDirs, encoderDtype: v['encoder-dtype'] as 'float32' | undefined, verify,
  });
  try {
    const t1 = performance.now();
    const { tensors, metadata } = torch.loadSafetensors(v.inputs!);
    let instructions = v.instruction ?? [];
    if (!instructions.length) {
      const meta = metadata.instructions;
      if (meta === undefined) throw new UsageError(`no instruction: pass --instruction TEXT or put "instructions" (a JSON list) in the __metadata__ of ${v.inputs}`);
      try {
        instructions = JSON.parse(meta) as string[];
      } catch {
        instructions = [];
      }
      if (!Array.isArray(instructions) || !instructions.every((x) => typeof x === 'string'))
        throw new UsageError(`${v.inputs}: __metadata__ "instructions" must be a JSON list of strings`);
    }
    const inputs = policyInputsFromTensors(tensors, instructions, v.inputs!);
    const out = policy.predict(inputs, { generator: seed !== undefined ? new torch.Generator(seed) : undefined, steps, raw: v.raw });
    const B = out.batch;
    const T = out.chunk;
    torch.scope(() => {
      const saved: Record<string, torch.Tensor> = { actions: torch.tensor(Float32Array.from(out.actions), { shape: [B, T, 7] }) };
      if (out.raw) saved.raw_actions = torch.tensor(Float32Array.from(out.raw), { shape: [B, T, 128] });
      torch.saveSafetensors(v.out!, saved);
    });
    for (const t of tensors.values()) t.dispose();
    const t2 = performance.now();
    process.stderr.write(`predict --decode: ${v.checkpoint} (${policy.recorded ? 'policy.json' : 'explicit conventions'}: ${policy.adapter.encoding}, ` +
      `${policy.adapter.orientation}); loaded in ${((t1 - t0) / 1000).toFixed(2)} s, ${B} x ${T} actions in ${((t2 - t1) / 1000).toFixed(2)} s -> ${v.out}\n`);
    return 0;
  } finally {
    policy.dispose();
  }
}
