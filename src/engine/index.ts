// The engine's public face: `import * as torch from '../engine/index.js'`.
export { Tensor, EngineError, type Device } from './tensor.js';
export { type DType, DTYPE_BYTES, isFloating, f32ToBf16Bits, bf16BitsToF32 } from './dtype.js';
export { scope, keep, scopeDepth } from './scope.js';
export * from './create.js';
export { noGrad, enableGrad, noGradGuard, isGradEnabled, grad } from './autograd.js';
export * from './system.js';
export { checkDevice, cudaUnavailableReason } from './device.js';
export * from './ops/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './io/index.js';
