// The `optim` namespace.
export { AdamW, OptimError, type AdamWOptions, type ParamGroup, type ParamGroupSpec, type AdamWStateDict } from './adamw.js';
export { clipGradNorm_, gradNorms, clipGradsWithNorms } from './clip.js';
