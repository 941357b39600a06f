// One RDT block for the engine benchmark (shared/docs/rdt-spec.md 1.4), attribute names as the
// official checkpoint's. The model proper lives in src/model; this copy only measures the engine.
import * as torch from '../src/engine/index.js';
import { nn, F } from '../src/engine/index.js';
import type { Tensor } from '../src/engine/index.js';

export interface BlockConfig {
  hidden: number;
  heads: number;
  rmsVariant?: nn.RmsNormVariant;
  dtype?: torch.DType;
}

/** timm Attention (qkv_bias, qk_norm with RmsNorm over the head dim, fused SDPA). */
class Attention extends nn.Module {
  qkv: nn.Linear;
  q_norm: nn.RMSNorm;
  k_norm: nn.RMSNorm;
  proj: nn.Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(cfg: BlockConfig) {
    super();
    this.heads = cfg.heads;
    this.headDim = cfg.hidden / cfg.heads;
    const o = { dtype: cfg.dtype };
    this.qkv = new nn.Linear(cfg.hidden, 3 * cfg.hidden, o);
    this.q_norm = new nn.RMSNorm(this.headDim, { variant: cfg.rmsVariant, ...o });
    this.k_norm = new nn.RMSNorm(this.headDim, { variant: cfg.rmsVariant, ...o });
    this.proj = new nn.Linear(cfg.hidden, cfg.hidden, o);
  }
  override forward(x: Tensor): Tensor {
    const [B, N, C] = x.shape;
    // (B, N, 3C) -> (B, N, 3, H, hd) -> (3, B, H, N, hd)
    const [q, k, v] = this.qkv.forward(x).reshape([B, N, 3, this.heads, this.headDim]).permute([2, 0, 3, 1, 4]).unbind(0);
    const o = F.scaledDotProductAttention(this.q_norm.forward(q), this.k_norm.forward(k), v);
    // (B, H, N, hd) -> (B, N, H, hd) -> (B, N, C)
    return this.proj.forward(o.transpose(1, 2).reshape([B, N, C]));
  }
}

/** RDT CrossAttention: q from x, kv from the condition tokens, optional (B, L) key mask. */
class CrossAttention extends nn.Module {
  q: nn.Linear;
  kv: nn.Linear;
  q_norm: nn.RMSNorm;
  k_norm: nn.RMSNorm;
  proj: nn.Linear;
  readonly heads: number;
  readonly headDim: number;
  constructor(cfg: BlockConfig) {
    super();
    this.heads = cfg.heads;
    this.headDim = cfg.hidden / cfg.heads;
    const o = { dtype: cfg.dtype };
    this.q = new nn.Linear(cfg.hidden, cfg.hidden, o);
    this.kv = new nn.Linear(cfg.hidden, 2 * cfg.hidden, o);
    this.q_norm = new nn.RMSNorm(this.headDim, { variant: cfg.rmsVariant, ...o });
    this.k_norm = new nn.RMSNorm(this.headDim, { variant: cfg.rmsVariant, ...o });
    this.proj = new nn.Linear(cfg.hidden, cfg.hidden, o);
  }
  override forward(x: Tensor, c: Tensor, mask?: Tensor | null): Tensor {
    const [B, N, C] = x.shape;
    const L = c.shape[1];
    // (B, N, C) -> (B, N, H, hd) -> (B, H, N, hd)
    const q = this.q.forward(x).reshape([B, N, this.heads, this.headDim]).permute([0, 2, 1, 3]);
    // (B, L, 2C) -> (B, L, 2, H, hd) -> (2, B, H, L, hd)
    const [k, v] = this.kv.forward(c).reshape([B, L, 2, this.heads, this.headDim]).permute([2, 0, 3, 1, 4]).unbind(0);
    // (B, L) -> (B, 1, 1, L) -> (B, 1, N, L): true = attend
    const m = mask ? mask.reshape([B, 1, 1, L]).expand([-1, -1, N, -1]) : null;
    const o = F.scaledDotProductAttention(this.q_norm.forward(q), this.k_norm.forward(k), v, { attnMask: m });
    // (B, H, N, hd) -> (B, N, H, hd) -> (B, N, C)
    return this.proj.forward(o.permute([0, 2, 1, 3]).reshape([B, N, C]));
  }
}

/** timm Mlp with hidden = D (ratio 1) and GELU(tanh). */
class Mlp extends nn.Module {
  fc1: nn.Linear;
  act = new nn.GELU({ approximate: 'tanh' });
  fc2: nn.Linear;
  constructor(cfg: BlockConfig) {
    super();
    this.fc1 = new nn.Linear(cfg.hidden, cfg.hidden, { dtype: cfg.dtype });
    this.fc2 = new nn.Linear(cfg.hidden, cfg.hidden, { dtype: cfg.dtype });
  }
  override forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act.forward(this.fc1.forward(x)));
  }
}

/** Pre-norm: x + SelfAttn(norm1 x), + CrossAttn(norm2 x, c, mask), + FFN(norm3 x). */
export class RDTBlock extends nn.Module {
  norm1: nn.RMSNorm;
  attn: Attention;
  cross_attn: CrossAttention;
  norm2: nn.RMSNorm;
  ffn: Mlp;
  norm3: nn.RMSNorm;
  constructor(cfg: BlockConfig) {
    super();
    const n = () => new nn.RMSNorm(cfg.hidden, { eps: 1e-6, variant: cfg.rmsVariant, dtype: cfg.dtype });
    this.norm1 = n();
    this.attn = new Attention(cfg);
    this.cross_attn = new CrossAttention(cfg);
    this.norm2 = n();
    this.ffn = new Mlp(cfg);
    this.norm3 = n();
  }
  override forward(x: Tensor, c: Tensor, mask?: Tensor | null): Tensor {
    const h = x.add(this.attn.forward(this.norm1.forward(x)));
    const h2 = h.add(this.cross_attn.forward(this.norm2.forward(h), c, mask));
    return h2.add(this.ffn.forward(this.norm3.forward(h2)));
  }
}
