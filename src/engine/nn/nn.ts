// The `nn` namespace: Module and Parameter, one file per layer, and init.
export { Module, Parameter, StateDictError, setTensorData, type LoadStateDictOptions } from './module.js';
export { Linear, type LinearOptions } from './linear.js';
export { LayerNorm, type LayerNormOptions } from './layer_norm.js';
export { RMSNorm, type RMSNormOptions, type RmsNormVariant } from './rms_norm.js';
export { Conv2d, type Conv2dModuleOptions } from './conv2d.js';
export { Embedding } from './embedding.js';
export { Dropout } from './dropout.js';
export { GELU, SiLU, ReLU, Identity } from './activation.js';
export { Sequential, ModuleList, type TensorModule } from './container.js';
export * as init from './init.js';
export * as functional from './functional.js';
