// `rdt-libero predict`: predictAction on already-encoded conditions, for offline inference and for
// comparing with another implementation. Parses arguments and calls src/model; no logic here.
import * as torch from '../engine/index.js';
import type { DType } from '../engine/index.js';
import { loadRdtCheckpoint } from '../model/checkpoint.js';
import { predictFromTensors, PREDICT_INPUTS } from '../model/predict.js';
import { UsageError } from '../util/errors.js';
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
`;

export async function predict(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    command: 'predict', usage: USAGE, required: ['checkpoint', 'inputs', 'out'],
    options: {
      checkpoint: { type: 'string' }, inputs: { type: 'string' }, out: { type: 'string' },
      weights: { type: 'string', default: 'auto' }, dtype: { type: 'string', default: 'float32' },
      device: { type: 'string', default: 'cpu' }, seed: { type: 'string' }, steps: { type: 'string' },
      'no-cache': { type: 'boolean' },
    },
  }, args);
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.dtype !== 'float32' && values.dtype !== 'bfloat16') throw new UsageError(`--dtype must be float32 or bfloat16, got '${values.dtype}'`);
  const kinds = ['auto', 'safetensors', 'bin', 'deepspeed', 'ema'];
  if (!kinds.includes(values.weights!)) throw new UsageError(`--weights must be one of ${kinds.join(', ')}, got '${values.weights}'`);
  const weights = values.weights as 'auto';
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
    return Number(v);
  };
  const seed = int('seed', values.seed);
  const steps = int('steps', values.steps);
  const t0 = performance.now();
  const { runner, weightsFile } = loadRdtCheckpoint(values.checkpoint!, { dtype: values.dtype as DType, device: values.device, weights });
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
