// nn.Embedding: a lookup table initialised N(0, 1), the padding row zeroed.
import { Tensor, type Device } from '../tensor.js';
import { empty } from '../create.js';
import type { DType } from '../dtype.js';
import type { Generator } from '../system.js';
import { noGrad } from '../autograd.js';
import { Module, Parameter } from './module.js';
import { embedding } from './functional.js';
import { normal_ } from './init.js';

export { embedding };

export class Embedding extends Module {
  weight: Parameter;
  readonly paddingIdx: number | null;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number,
    opts: { paddingIdx?: number; dtype?: DType; device?: Device; generator?: Generator } = {}) {
    super();
    this.paddingIdx = opts.paddingIdx === undefined ? null : opts.paddingIdx < 0 ? opts.paddingIdx + numEmbeddings : opts.paddingIdx;
    this.weight = new Parameter(empty([numEmbeddings, embeddingDim], { dtype: opts.dtype, device: opts.device }));
    normal_(this.weight, 0, 1, opts.generator);
    if (this.paddingIdx !== null) {
      const row = this.paddingIdx;
      noGrad(() => {
        const r = this.weight.select(0, row);
        r.fill_(0);
        r.dispose();
      });
    }
  }
  override forward(idx: Tensor): Tensor {
    return embedding(idx, this.weight, { paddingIdx: this.paddingIdx });
  }
}
