// nn.Dropout: active in training mode only.
import type { Tensor } from '../tensor.js';
import type { Generator } from '../system.js';
import { EngineError } from '../tensor.js';
import { Module } from './module.js';
import { dropout } from './functional.js';

export { dropout };

export class Dropout extends Module {
  constructor(readonly p = 0.5, readonly generator?: Generator) {
    super();
    if (p < 0 || p > 1) throw new EngineError(`Dropout: p must be in [0, 1], got ${p}`);
  }
  override forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
}
