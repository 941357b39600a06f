// bf16 training with float32 master weights. The model computes in bf16; the optimizer updates
// float32 copies (and keeps its moments in float32); the bf16 weights are refreshed from the masters
// after each step. This is what DeepSpeed's bf16 optimizer does for the official trainer.
import * as torch from '../engine/index.js';
import { nn } from '../engine/index.js';

export class MasterWeights {
  readonly masters: nn.Parameter[];
  constructor(readonly params: nn.Parameter[]) {
    this.masters = params.map((p) => torch.noGrad(() => new nn.Parameter(p.to({ dtype: 'float32', copy: true }))));
  }

  /** Move the bf16 gradients onto the masters (as float32). Returns false if a parameter has no grad. */
  gradsToMasters(): void {
    torch.scope(() => {
      this.params.forEach((p, i) => {
        const g = p.grad;
        this.masters[i].grad = g ? g.to('float32') : null;
      });
    });
  }

  /** After optimizer.step() on the masters: write them back into the model's bf16 weights. */
  mastersToParams(): void {
    torch.noGrad(() => this.params.forEach((p, i) => p.copy_(this.masters[i])));
  }

  dispose(): void {
    for (const m of this.masters) m.dispose();
  }
}
