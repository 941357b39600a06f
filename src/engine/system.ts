// Process-wide engine state: seeds, threads, generators, CUDA queries, live-tensor counters.
import { N, type GenHandle } from './native.js';
import type { CpuAllocatorStats } from './native_ops.js';
export type { CpuAllocatorStats };
import { Tensor, type Device } from './tensor.js';
import { checkDevice } from './device.js';

/** torch.manual_seed: seeds libtorch's default CPU (and CUDA) generators. */
export function manualSeed(seed: number): void {
  N.manualSeed(seed);
}
export function setNumThreads(n: number): void {
  N.setNumThreads(n);
}
export function getNumThreads(): number {
  return N.getNumThreads();
}

/** torch.Generator: an explicit random stream, passed to random ops for reproducibility. */
export class Generator {
  readonly g: GenHandle;
  constructor(seed: number, device: Device = 'cpu') {
    checkDevice(device);
    this.g = N.generatorNew(seed, device);
  }
  manualSeed(seed: number): this {
    N.generatorManualSeed(this.g, seed);
    return this;
  }
  /** The full RNG state (uint8 tensor), as torch.Generator.get_state(). */
  getState(): Tensor {
    return new Tensor(N.generatorGetState(this.g));
  }
  setState(state: Tensor): void {
    N.generatorSetState(this.g, state.h);
  }
}

export const cuda = {
  isAvailable: (): boolean => N.cudaIsAvailable(),
  deviceCount: (): number => N.cudaDeviceCount(),
  synchronize: (): void => N.cudaSynchronize(),
  deviceName: (i = 0): string => N.cudaDeviceName(i),
  memoryStats: (i = 0): { allocated: number; reserved: number; peakAllocated: number } => N.cudaMemoryStats(i),
  resetPeakMemoryStats: (i = 0): void => N.cudaResetPeakMemoryStats(i),
};

/**
 * The CPU caching allocator (native/cpu_allocator.cc): large tensor blocks are mapped once and reused, so a
 * long job's RSS follows what it uses. `enabled` is false under RDT_CPU_ALLOCATOR=system.
 */
export const cpuMemory = {
  stats: (): CpuAllocatorStats => N.cpuAllocatorStats(),
  /** Unmap the cached free blocks (like torch.cuda.empty_cache), e.g. after a phase that used other sizes. */
  emptyCache: (): void => N.cpuAllocatorEmptyCache(),
  /** Restart peakInUse from what is in use now, to measure the peak of one phase (torch.cuda.reset_peak_memory_stats). */
  resetPeak: (): void => N.cpuAllocatorResetPeak(),
};

/** Live native tensor handles: created and not yet disposed. A leak shows as growth here. */
export function liveTensors(): number {
  return N.counters().live;
}
/** {live, created, gcFinalized}: gcFinalized counts tensors the GC freed because nobody disposed them. */
export function tensorCounters(): { live: number; created: number; gcFinalized: number } {
  return N.counters();
}

export const libtorch = {
  version: (): string => N.libtorchVersion(),
  parallelInfo: (): string => N.parallelInfo(),
  buildConfig: (): string => N.buildConfig(),
};
