// Checkpoint IO: safetensors and PyTorch zip checkpoints.
export { CheckpointError } from './errors.js';
export {
  loadSafetensors, saveSafetensors, readSafetensorsHeader, SAFETENSORS_DTYPES,
  type SafetensorsHeader, type SafetensorsTensorInfo, type LoadSafetensorsOptions, type SaveSafetensorsOptions,
} from './safetensors.js';
export { loadTorchCheckpoint, stateDictFrom } from './torch_checkpoint.js';
export { pickleAttributes } from './pickle.js';
