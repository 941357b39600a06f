// A saved model folder: the hub layout (config.json + model.safetensors with the base weights, which
// Python loads as it is) plus, with LoRA, the adapters in adapter_model.safetensors (rdt-libero
// lora-merge folds them in); and its EMA twin (ema/: config.json + model.safetensors). Written for
// every checkpoint and for final/, and read back on resume, by the same functions.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../engine/io/index.js';
import { hubConfigText, type RdtConfig } from '../model/config.js';
import { loadRunnerState, saveRdtCheckpoint } from '../model/checkpoint.js';
import type { RDTRunner } from '../model/runner.js';
import { writeFileAtomic } from '../util/atomic.js';
import type { Ema } from './ema.js';
import { isLoraKey, loraStateDict } from './lora.js';

export const WEIGHTS = 'model.safetensors';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const EMA_DIR = 'ema';

/** config.json + model.safetensors (base weights only) and, with LoRA, adapter_model.safetensors. */
export function writeModelFolder(runner: RDTRunner, dir: string, lora: boolean): void {
  // checksums.json is recorded once the whole folder (adapters, ema/, the writers' files) is on disk.
  saveRdtCheckpoint(runner, dir, { filter: (k) => !isLoraKey(k), checksums: false });
  if (lora) saveSafetensors(join(dir, ADAPTER_WEIGHTS), loraStateDict(runner));
}

/** Load what writeModelFolder wrote into `runner` (strict for the base weights, unless the adapters live apart). */
export function loadModelFolder(runner: RDTRunner, dir: string, lora: boolean): void {
  const weights = join(dir, WEIGHTS);
  // With LoRA the adapters live in their own file, so the base file lacks their keys.
  loadRunnerState(runner, loadSafetensors(weights).tensors, { source: weights, strict: !lora });
  if (lora) {
    const file = join(dir, ADAPTER_WEIGHTS);
    runner.loadStateDict(loadSafetensors(file).tensors, { strict: false, castDtype: true, source: file });
  }
}

/** ema/: the float32 averaged weights under the model's state-dict names, and the config.json that describes them. */
export function writeEmaFolder(ema: Ema, config: RdtConfig, dir: string): void {
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, WEIGHTS), ema.stateDict(), { format: 'pt' });
  writeFileAtomic(join(dir, 'config.json'), hubConfigText(config));
}

/** The averaged weights of an ema/ folder (new tensors owned by the caller). */
export function readEmaWeights(dir: string): Map<string, Tensor> {
  return loadSafetensors(join(dir, WEIGHTS)).tensors;
}
