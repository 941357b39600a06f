// Devices are checked here, in TS, before libtorch sees them: libtorch's own answer to `cuda` on a CPU build
// is a 56-line dispatcher listing; ours is one line saying which device and what to do.
import { N } from './native.js';
import { EngineError } from './errors.js';

export type Device = string; // 'cpu' | 'cuda' | `cuda:${number}` | 'meta'

/** Why CUDA cannot be used in this process, or null when it can (one line, with what to do). */
export function cudaUnavailableReason(): string | null {
  if (N.cudaIsAvailable() && N.cudaDeviceCount() > 0) return null;
  const built = /USE_CUDA=(\w+)/.exec(N.buildConfig())?.[1];
  if (built !== '1' && built !== 'ON')
    return 'libtorch is a CPU build: install a CUDA build of torch (pip install torch from a CUDA wheel index) and rebuild the addon with `npm run build:native`';
  if (N.cudaIsAvailable())
    return 'the addon was built without CUDA support although libtorch has it: rebuild it with `npm run build:native`';
  return 'libtorch has CUDA but no CUDA device is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)';
}

// Devices already found usable: the check costs one Set lookup after the first use of each.
const usable = new Set<Device>(['cpu', 'meta']);

/** Throw an EngineError naming `device` and what to do unless this process can place tensors on it. */
export function checkDevice(device: Device): void {
  if (usable.has(device)) return;
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new EngineError(`unknown device '${device}' (use 'cpu', 'cuda' or 'cuda:N')`);
  const reason = cudaUnavailableReason();
  if (reason) throw new EngineError(`device '${device}' is not available: ${reason}; or run on the CPU (device cpu)`);
  const index = m[1] === undefined ? 0 : Number(m[1]);
  const count = N.cudaDeviceCount();
  if (index >= count) throw new EngineError(`device '${device}' does not exist: ${count} CUDA device(s) are visible (cuda:0${count > 1 ? `..cuda:${count - 1}` : ''})`);
  usable.add(device);
}
