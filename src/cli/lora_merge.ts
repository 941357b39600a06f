// `rdt-libero lora-merge --checkpoint DIR --out DIR`: fold a LoRA run's adapters into its base weights and
// save a plain hub-layout checkpoint (config.json + model.safetensors) that loads without LoRA.
// Argument parsing and file checks only; the math is src/train/lora.ts.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import * as torch from '../engine/index.js';
import { loadSafetensors } from '../engine/io/index.js';
import { LORA_ADAPTER_FILE, loadRdtCheckpoint, saveRdtCheckpoint } from '../model/checkpoint.js';
import { ModelError } from '../model/errors.js';
import { loadConfig } from '../train/config.js';
import { injectLora, isLoraKey, loraStateDict, mergeLora } from '../train/lora.js';
import { helpPointer, parseCommandArgs } from './args.js';
import { UsageError } from '../util/errors.js';
import { writeDirAtomic } from '../util/atomic.js';
import { recordChecksums } from '../util/checksums.js';
import { POLICY_FILE, readPolicyFile, writePolicyFile } from '../policy/file.js';
import { TrainError } from '../train/errors.js';

const USAGE = `usage: rdt-libero lora-merge --checkpoint DIR --out DIR [--run-config FILE] [--dtype float32|bfloat16] [--overwrite]

Loads a checkpoint written by a LoRA run (lora.enabled: true), i.e. a folder with config.json,
model.safetensors (base weights) and adapter_model.safetensors, adds adapters with the rank, alpha and
targets of the run's run_config.yaml, loads them, folds them into the base weights (W += alpha/r * B A)
and writes DIR (--out) as a plain checkpoint: config.json + model.safetensors, plus the run's policy.json
(lora: null, origin.lora_merged_from: the checkpoint), so loadPolicy and predict --decode read it.

options:
  --checkpoint DIR    a checkpoint-N folder or the run's final/ folder
  --out DIR           where the merged checkpoint goes: a new or empty folder (not the --checkpoint folder
                      nor one holding it); written to a temporary sibling and renamed into place when complete
  --overwrite         replace --out when it already holds files (only once the new folder is complete)
  --run-config FILE   the run's resolved config (default: DIR/run_config.yaml, else DIR/../run_config.yaml)
  --dtype D           dtype of the merged weights: float32 (default) or bfloat16 (as the hub files)
`;

class MergeError extends TrainError {
  override name = 'MergeError';
}

function findRunConfig(dir: string, given?: string): string {
  if (given) {
    if (!existsSync(given)) throw new MergeError(`--run-config ${given} does not exist`);
    return given;
  }
  for (const p of [join(dir, 'run_config.yaml'), join(dirname(resolve(dir)), 'run_config.yaml')]) if (existsSync(p)) return p;
  throw new MergeError(`no run_config.yaml in ${dir} or its parent: it holds the LoRA rank and alpha; pass --run-config FILE`);
}

/** `p` with symlinks resolved as far as it exists (a path that does not exist yet is compared as written). */
function realish(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  return dirname(abs) === abs ? abs : join(realish(dirname(abs)), basename(abs));
}

/** Refuse an --out that would lose data: the checkpoint itself, a folder holding it, or a folder with files (without --overwrite). */
function checkOut(dir: string, out: string, overwrite: boolean): void {
  const c = realish(dir), o = realish(out);
  if (c === o) throw new UsageError(`--out must differ from --checkpoint (${dir}): the adapters would no longer match the base weights; ${helpPointer('lora-merge')}`);
  const rel = relative(o, c);
  if (!rel.startsWith('..') && !isAbsolute(rel))
    throw new UsageError(`--out ${out} holds the --checkpoint folder ${dir}: writing it would replace the checkpoint; pick another --out`);
  if (!existsSync(out)) return;
  const what = statSync(out).isDirectory() ? readdirSync(out) : null;
  if (what !== null && what.length === 0) return;
  if (!overwrite)
    throw new UsageError(`--out ${out} already exists${what ? ` and is not empty (${what.length} entries: ${what.slice(0, 4).join(', ')}${what.length > 4 ? ', ...' : ''})` : ' (a file)'}; ` +
      'pass --overwrite to replace it, or pick a new folder');
}

export async function loraMerge(args: string[]): Promise<number> {
  const parsed = parseCommandArgs({
    command: 'lora-merge', usage: USAGE, required: ['checkpoint', 'out'],
    options: {
      checkpoint: { type: 'string' }, out: { type: 'string' }, 'run-config': { type: 'string' },
      dtype: { type: 'string', default: 'float32' }, overwrite: { type: 'boolean' },
    },
  }, args);
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.dtype !== 'float32' && values.dtype !== 'bfloat16')
    throw new UsageError(`--dtype must be float32 or bfloat16, got '${values.dtype}'; ${helpPointer('lora-merge')}`);
  const dir = values.checkpoint!;
  const out = values.out!;
  checkOut(dir, out, values.overwrite);
  if (!existsSync(dir)) throw new MergeError(`checkpoint folder ${dir} does not exist`);
  const adapterFile = join(dir, LORA_ADAPTER_FILE);
  if (!existsSync(adapterFile))
    throw new MergeError(`${dir} has no adapter_model.safetensors (files: ${readdirSync(dir).join(', ')}); is it from a run with lora.enabled: true?`);
  const runConfig = findRunConfig(dir, values['run-config']);
  const { lora } = loadConfig({ file: runConfig });
  // The base weights alone: the adapters are added below (loadRdtCheckpoint refuses a LoRA folder by default).
  const { runner, weightsFile } = loadRdtCheckpoint(dir, { dtype: 'float32', weights: 'safetensors', adapters: 'ignore' });
  try {
    const adapted = injectLora(runner.model, { rank: lora.rank, alpha: lora.alpha, targets: lora.targets });
    const { tensors } = loadSafetensors(adapterFile);
    try {
      const own = loraStateDict(runner);
      const missing = [...own.keys()].filter((k) => !tensors.has(k));
      const unexpected = [...tensors.keys()].filter((k) => !own.has(k));
      if (missing.length || unexpected.length)
        throw new ModelError(`${adapterFile} does not match the adapters of ${runConfig} (rank ${lora.rank}, targets ${lora.targets.join(', ')}): ` +
          `${missing.length} adapter keys missing from the file${missing.length ? ` (e.g. ${missing[0]})` : ''}, ` +
          `${unexpected.length} unexpected${unexpected.length ? ` (e.g. ${unexpected[0]})` : ''}`);
      const res = runner.loadStateDict(tensors, { strict: false, castDtype: true, source: adapterFile });
      if (res.missingKeys.some(isLoraKey)) throw new ModelError(`${adapterFile}: adapter keys missing: ${res.missingKeys.filter(isLoraKey).slice(0, 3).join(', ')}`);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
    const merged = mergeLora(runner);
    if (merged !== adapted.length) throw new ModelError(`merged ${merged} adapters, expected ${adapted.length}`);
    // The merged weights keep the run's data conventions; they no longer need adapters.
    const policy = readPolicyFile(dir);
    // Written whole into a temporary sibling, then renamed over --out: a failed or killed merge leaves --out as it was.
    writeDirAtomic(out, (tmp) => {
      saveRdtCheckpoint(runner, tmp, { dtype: values.dtype as torch.DType, checksums: false });
      if (policy) {
        const { format: _f, version: _v, ...conventions } = policy;
        writePolicyFile(tmp, { ...conventions, lora: null, origin: { ...(policy.origin ?? { run: '', step: 0, ema: false, base_model: '' }), lora_merged_from: resolve(dir) } });
      }
      recordChecksums(tmp);
    });
    if (!policy) process.stdout.write(`lora-merge: ${dir} has no ${POLICY_FILE} (written since policy files exist); loading ${out} will need its conventions given explicitly\n`);
    process.stdout.write(`lora-merge: folded ${merged} adapters (rank ${lora.rank}, alpha ${lora.alpha}) from ${adapterFile} into ${weightsFile}\n` +
      `  wrote ${join(out, 'config.json')}, ${join(out, 'model.safetensors')}${policy ? ` and ${join(out, POLICY_FILE)}` : ''} (${values.dtype}, ${runner.numParameters()} parameters); ` +
      `load it like any checkpoint (rdt-libero predict --checkpoint ${out}, or pretrained_model_name_or_path: ${out})\n`);
    return 0;
  } finally {
    runner.dispose();
  }
}
