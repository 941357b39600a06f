// The T5 v1.1 encoder (transformers' T5EncoderModel, eval mode), op for op as transformers 4.x runs it
// so that float32 and bfloat16 results match it: no embedding scaling, RMS layer norm with the mean
// square in float32, unscaled attention logits plus the bucketed relative position bias of block 0
// (shared by all blocks) plus the padding mask, float32 softmax, gated gelu_new feed-forward, final norm.
// Weight names are the hub's (shared.weight, encoder.block.N.layer.M...).
import * as torch from '../engine/index.js';
import { F, nn, type DType, type Device, type Tensor } from '../engine/index.js';
import { EncoderError } from './errors.js';
import type { T5EncoderConfig } from './t5_config.js';
import type { WeightSource } from './weight_source.js';

/** finfo(dtype).min, what transformers adds at padded keys. */
const FINFO_MIN: Partial<Record<DType, number>> = { float32: -3.4028234663852886e38, bfloat16: -3.3895313892515355e38 };

/** T5LayerNorm: w * (x * rsqrt(mean(x^2) + eps)), the mean square in float32, cast back before the weight. */
class T5LayerNorm extends nn.Module {
  weight: nn.Parameter;
  constructor(w: WeightSource, p: string, d: number, readonly eps: number) {
    super();
    this.weight = w.take(`${p}.weight`, [d]);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => {
      const variance = x.float().pow(2).mean(-1, true);
      let h = x.mul(variance.add(this.eps).rsqrt());
      if (this.weight.dtype !== 'float32') h = h.to(this.weight.dtype);
      return this.weight.mul(h);
    });
  }
}

/** A bias-free linear layer (all of T5's). */
class Proj extends nn.Module {
  weight: nn.Parameter;
  constructor(w: WeightSource, p: string, out: number, inp: number) {
    super();
    this.weight = w.take(`${p}.weight`, [out, inp]);
  }
  override forward(x: Tensor): Tensor {
    return F.linear(x, this.weight);
  }
}

/** The relative_attention_bias table: (num_buckets, heads). */
class BiasTable extends nn.Module {
  weight: nn.Parameter;
  constructor(w: WeightSource, p: string, buckets: number, heads: number) {
    super();
    this.weight = w.take(`${p}.weight`, [buckets, heads]);
  }
}

/**
 * T5's bidirectional bucket of each relative position (key - query), int64, as
 * T5Attention._relative_position_bucket computes it (log in float32, truncated).
 */
export function relativePositionBucket(rel: Tensor, numBuckets: number, maxDistance: number): Tensor {
  return torch.scope(() => {
    const nb = Math.floor(numBuckets / 2);
    const maxExact = Math.floor(nb / 2);
    const side = rel.gt(0).to('int64').mul(nb);
    const n = rel.abs();
    const large = n.float().div(maxExact).log().div(Math.log(maxDistance / maxExact)).mul(nb - maxExact)
      .to('int64').add(maxExact).clamp(null, nb - 1);
    return side.add(torch.where(n.lt(maxExact), n, large));
  });
}

class T5Attention extends nn.Module {
  q: Proj;
  k: Proj;
  v: Proj;
  o: Proj;
  relative_attention_bias: BiasTable | null;
  constructor(w: WeightSource, p: string, readonly cfg: T5EncoderConfig, hasBias: boolean) {
    super();
    const inner = cfg.numHeads * cfg.dKv;
    this.q = new Proj(w, `${p}.q`, inner, cfg.dModel);
    this.k = new Proj(w, `${p}.k`, inner, cfg.dModel);
    this.v = new Proj(w, `${p}.v`, inner, cfg.dModel);
    this.o = new Proj(w, `${p}.o`, cfg.dModel, inner);
    this.relative_attention_bias = hasBias ? new BiasTable(w, `${p}.relative_attention_bias`, cfg.numBuckets, cfg.numHeads) : null;
  }

  /** (1, heads, L, L): bias[0, h, i, j] = table[bucket(j - i), h]. */
  positionBias(length: number): Tensor {
    const table = this.relative_attention_bias!.weight;
    return torch.scope(() => {
      const pos = torch.arange(length, undefined, 1, { device: table.device });
      const rel = pos.unsqueeze(0).sub(pos.unsqueeze(1)); // (L, L): key - query
      const buckets = relativePositionBucket(rel, this.cfg.numBuckets, this.cfg.maxDistance);
      return F.embedding(buckets, table).permute([2, 0, 1]).unsqueeze(0);
    });
  }

  /** x (B, L, d_model), bias (B or 1, heads, L, L) with the mask already added. */
  override forward(x: Tensor, bias: Tensor): Tensor {
    return torch.scope(() => {
      const [b, l] = x.shape;
      const { numHeads: h, dKv } = this.cfg;
      const heads = (t: Tensor) => t.view([b, l, h, dKv]).transpose(1, 2); // (B, heads, L, d_kv)
      const q = heads(this.q.forward(x));
      const k = heads(this.k.forward(x));
      const v = heads(this.v.forward(x));
      const scores = q.matmul(k.transpose(3, 2)).add(bias); // no 1/sqrt(d_kv): T5 folds it into the init
      const attn = F.softmax(scores.float(), -1).to(scores.dtype);
      const out = attn.matmul(v).transpose(1, 2).contiguous().view([b, l, h * dKv]);
      return this.o.forward(out);
    });
  }
}

class T5LayerSelfAttention extends nn.Module {
  SelfAttention: T5Attention;
  layer_norm: T5LayerNorm;
  constructor(w: WeightSource, p: string, cfg: T5EncoderConfig, hasBias: boolean) {
    super();
    this.SelfAttention = new T5Attention(w, `${p}.SelfAttention`, cfg, hasBias);
    this.layer_norm = new T5LayerNorm(w, `${p}.layer_norm`, cfg.dModel, cfg.eps);
  }
  override forward(x: Tensor, bias: Tensor): Tensor {
    return torch.scope(() => x.add(this.SelfAttention.forward(this.layer_norm.forward(x), bias)));
  }
}

/** gelu_new operation by operation, as transformers' NewGELUActivation (each step rounds in bf16). */
export function geluNew(x: Tensor): Tensor {
  return torch.scope(() => {
    const inner = x.add(x.pow(3).mul(0.044715)).mul(Math.sqrt(2 / Math.PI));
    return x.mul(0.5).mul(inner.tanh().add(1));
  });
}

class T5DenseActDense extends nn.Module {
  wi_0: Proj | null = null;
  wi_1: Proj | null = null;
  wi: Proj | null = null;
  wo: Proj;
  constructor(w: WeightSource, p: string, readonly cfg: T5EncoderConfig) {
    super();
    if (cfg.gated) {
      this.wi_0 = new Proj(w, `${p}.wi_0`, cfg.dFf, cfg.dModel);
      this.wi_1 = new Proj(w, `${p}.wi_1`, cfg.dFf, cfg.dModel);
    } else this.wi = new Proj(w, `${p}.wi`, cfg.dFf, cfg.dModel);
    this.wo = new Proj(w, `${p}.wo`, cfg.dModel, cfg.dFf);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => {
      const act = (t: Tensor) => (this.cfg.act === 'gelu_new' ? geluNew(t) : t.relu());
      const h = this.cfg.gated ? act(this.wi_0!.forward(x)).mul(this.wi_1!.forward(x)) : act(this.wi!.forward(x));
      return this.wo.forward(h);
    });
  }
}

class T5LayerFF extends nn.Module {
  DenseReluDense: T5DenseActDense;
  layer_norm: T5LayerNorm;
  constructor(w: WeightSource, p: string, cfg: T5EncoderConfig) {
    super();
    this.DenseReluDense = new T5DenseActDense(w, `${p}.DenseReluDense`, cfg);
    this.layer_norm = new T5LayerNorm(w, `${p}.layer_norm`, cfg.dModel, cfg.eps);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => x.add(this.DenseReluDense.forward(this.layer_norm.forward(x))));
  }
}

class T5Block extends nn.Module {
  layer: nn.ModuleList;
  constructor(w: WeightSource, p: string, cfg: T5EncoderConfig, first: boolean) {
    super();
    this.layer = new nn.ModuleList([new T5LayerSelfAttention(w, `${p}.layer.0`, cfg, first), new T5LayerFF(w, `${p}.layer.1`, cfg)]);
  }
  get attention(): T5LayerSelfAttention {
    return this.layer.at(0) as T5LayerSelfAttention;
  }
  override forward(x: Tensor, bias: Tensor): Tensor {
    return torch.scope(() => (this.layer.at(1) as T5LayerFF).forward(this.attention.forward(x, bias)));
  }
}

class T5Stack extends nn.Module {
  block: nn.ModuleList<T5Block>;
  final_layer_norm: T5LayerNorm;
  constructor(w: WeightSource, cfg: T5EncoderConfig) {
    super();
    this.block = new nn.ModuleList(Array.from({ length: cfg.numLayers }, (_, i) => new T5Block(w, `encoder.block.${i}`, cfg, i === 0)));
    this.final_layer_norm = new T5LayerNorm(w, 'encoder.final_layer_norm', cfg.dModel, cfg.eps);
  }
}

export interface T5Outputs {
  lastHiddenState: Tensor;
  /** With `intermediates`: the token embeddings, block 0's position bias (no mask) and each block's output. */
  embeds?: Tensor;
  positionBias?: Tensor;
  blockOutputs?: Tensor[];
}

/** T5EncoderModel: `shared` (the token embedding) and `encoder` (the stack). */
export class T5EncoderModel extends nn.Module {
  shared: nn.Parameter;
  encoder: T5Stack;
  constructor(w: WeightSource, readonly config: T5EncoderConfig, readonly dtype: DType, readonly device: Device) {
    super();
    this.shared = w.take('shared.weight', [config.vocabSize, config.dModel]);
    this.encoder = new T5Stack(w, config);
    this.eval();
  }

  /** last_hidden_state (B, L, d_model) in the model dtype for input ids (B, L) and an optional 0/1 mask (B, L). */
  override forward(inputIds: Tensor, attentionMask?: Tensor | null, opts: { intermediates?: boolean } = {}): T5Outputs {
    return torch.noGrad(() => torch.scope(() => {
      const [b, l] = inputIds.shape;
      const blocks = this.encoder.block;
      let x = F.embedding(inputIds, this.shared);
      const embeds = x;
      const positionBias = (blocks.at(0) as T5Block).attention.SelfAttention.positionBias(l);
      let bias = positionBias;
      if (attentionMask) {
        const min = FINFO_MIN[this.dtype];
        if (min === undefined) throw new EncoderError(`T5 runs in float32 or bfloat16, not ${this.dtype}`);
        const m = attentionMask.to({ dtype: this.dtype, device: this.device }).neg().add(1).mul(min).view([b, 1, 1, l]);
        bias = positionBias.add(m);
      }
      const blockOutputs: Tensor[] = [];
      for (let i = 0; i < blocks.length; i++) {
        x = (blocks.at(i) as T5Block).forward(x, bias);
        blockOutputs.push(x);
      }
      const lastHiddenState = this.encoder.final_layer_norm.forward(x);
      return opts.intermediates ? { lastHiddenState, embeds, positionBias, blockOutputs } : { lastHiddenState };
    }));
  }
}
