// TimestepEmbedder (DiT/GLIDE style), used twice by the RDT core: for the diffusion timestep
// (`t_embedder`) and for the control frequency (`freq_embedder`, fed the raw Hz value, 0 when masked).
// rdt-spec.md 1.3: sinusoid of size 256 laid out [cos, sin] (cos first, unlike the positional
// tables), then Linear(256 -> D), SiLU, Linear(D -> D).
import * as torch from '../engine/index.js';
import { nn, type Tensor, type DType, type Device } from '../engine/index.js';

export interface ModuleOptions {
  dtype?: DType;
  device?: Device;
  generator?: torch.Generator;
}

export class TimestepEmbedder extends nn.Module {
  mlp: nn.Sequential;
  readonly frequencyEmbeddingSize: number;

  constructor(hiddenSize: number, opts: ModuleOptions & { frequencyEmbeddingSize?: number } = {}) {
    super();
    this.frequencyEmbeddingSize = opts.frequencyEmbeddingSize ?? 256;
    this.mlp = new nn.Sequential(
      new nn.Linear(this.frequencyEmbeddingSize, hiddenSize, opts),
      new nn.SiLU(),
      new nn.Linear(hiddenSize, hiddenSize, opts),
    );
  }

  /**
   * t (N,) (any numeric dtype, may be fractional) -> (N, dim) float32 [cos(t f), sin(t f)] with
   * f_i = exp(-ln(maxPeriod) i / half), i < half, computed in float32 in the official op order.
   */
  static timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10000): Tensor {
    return torch.scope(() => {
      const half = Math.floor(dim / 2);
      const freqs = torch.arange(0, half, 1, { dtype: 'float32', device: t.device }).mul(-Math.log(maxPeriod)).div(half).exp(); // (half,)
      const args = t.to({ dtype: 'float32' }).unsqueeze(1).mul(freqs.unsqueeze(0)); // (N, 1) * (1, half) -> (N, half)
      let emb = torch.cat([args.cos(), args.sin()], -1); // (N, 2 half)
      if (dim % 2) emb = torch.cat([emb, torch.zeros([emb.shape[0], 1], { device: t.device })], -1);
      return emb;
    });
  }

  /** t (N,) -> (N, D) in the module dtype. */
  override forward(t: Tensor): Tensor {
    return torch.scope(() => {
      const w = this.mlp.at(0) as nn.Linear;
      const tFreq = TimestepEmbedder.timestepEmbedding(t, this.frequencyEmbeddingSize).to({ dtype: w.weight.dtype });
      return this.mlp.forward(tFreq);
    });
  }
}
