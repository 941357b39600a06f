// The RDT block and the final layer (rdt-spec.md 1.4, 1.5). Field names are the official
// state-dict names (attn.qkv, cross_attn.kv, ffn.fc1, norm1, ...), so checkpoints load unchanged.
import * as torch from '../engine/index.js';
import { nn, F, type Tensor } from '../engine/index.js';
import type { RmsNormVariant } from './config.js';
import type { ModuleOptions } from './embedders.js';

export interface BlockOptions extends ModuleOptions {
  rmsNorm: RmsNormVariant;
}

const rmsNorm = (dim: number, o: BlockOptions) => new nn.RMSNorm(dim, { eps: 1e-6, variant: o.rmsNorm, dtype: o.dtype, device: o.device });

/** timm Mlp as RDT uses it: fc1 -> GELU(tanh) -> fc2 (hidden = D: FFN ratio 1, rdt-spec.md 9.2). */
export class Mlp extends nn.Module {
  fc1: nn.Linear;
  fc2: nn.Linear;
  constructor(inFeatures: number, hiddenFeatures: number, outFeatures: number, o: ModuleOptions = {}) {
    super();
    this.fc1 = new nn.Linear(inFeatures, hiddenFeatures, o);
    this.fc2 = new nn.Linear(hiddenFeatures, outFeatures, o);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => this.fc2.forward(F.gelu(this.fc1.forward(x), { approximate: 'tanh' })));
  }
}

/** timm Attention: full (unmasked) self-attention over the 67 tokens, with per-head RmsNorm on q and k. */
export class Attention extends nn.Module {
  qkv: nn.Linear;
  q_norm: nn.RMSNorm;
  k_norm: nn.RMSNorm;
  proj: nn.Linear;
  readonly numHeads: number;
  readonly headDim: number;

  constructor(dim: number, numHeads: number, o: BlockOptions) {
    super();
    this.numHeads = numHeads;
    this.headDim = dim / numHeads;
    this.qkv = new nn.Linear(dim, dim * 3, o);
    this.q_norm = rmsNorm(this.headDim, o); // one weight (hd) shared by all heads
    this.k_norm = rmsNorm(this.headDim, o);
    this.proj = new nn.Linear(dim, dim, o);
  }

  override forward(x: Tensor): Tensor {
    return torch.scope(() => {
      const [B, N, C] = x.shape;
      // (B, N, 3D) -> (B, N, 3, H, hd) -> (3, B, H, N, hd): chunk 0 = q, 1 = k, 2 = v
      const [q, k, v] = this.qkv.forward(x).reshape([B, N, 3, this.numHeads, this.headDim]).permute([2, 0, 3, 1, 4]).unbind(0);
      const o = F.scaledDotProductAttention(this.q_norm.forward(q), this.k_norm.forward(k), v); // (B, H, N, hd), scale hd^-0.5
      return this.proj.forward(o.transpose(1, 2).reshape([B, N, C])); // (B, H, N, hd) -> (B, N, H, hd) -> (B, N, D)
    });
  }
}

/** A condition's keys and values for one cross-attention layer, after k_norm: (B, H, L, hd) each. */
export interface KeysValues {
  k: Tensor;
  v: Tensor;
}

/** RDT's CrossAttention: queries from x, keys/values from the condition c, optional key mask. */
export class CrossAttention extends nn.Module {
  q: nn.Linear;
  kv: nn.Linear;
  q_norm: nn.RMSNorm;
  k_norm: nn.RMSNorm;
  proj: nn.Linear;
  readonly numHeads: number;
  readonly headDim: number;

  constructor(dim: number, numHeads: number, o: BlockOptions) {
    super();
    this.numHeads = numHeads;
    this.headDim = dim / numHeads;
    this.q = new nn.Linear(dim, dim, o);
    this.kv = new nn.Linear(dim, dim * 2, o);
    this.q_norm = rmsNorm(this.headDim, o);
    this.k_norm = rmsNorm(this.headDim, o);
    this.proj = new nn.Linear(dim, dim, o);
  }

  /** c (B, L, D) -> normalised keys and values. Depends only on c, so it can be computed once per sampling call. */
  keysValues(c: Tensor): KeysValues {
    return torch.scope(() => {
      const [B, L] = c.shape;
      // (B, L, 2D) -> (B, L, 2, H, hd) -> (2, B, H, L, hd): first D features = K, last D = V
      const [k, v] = this.kv.forward(c).reshape([B, L, 2, this.numHeads, this.headDim]).permute([2, 0, 3, 1, 4]).unbind(0);
      return { k: this.k_norm.forward(k), v };
    });
  }

  /**
   * Attend from x (B, N, D) to precomputed keys/values. `mask` is a bool (B, 1, N, L) key mask
   * (true = attend; see expandKeyMask), or null for none (the image tokens).
   */
  attend(x: Tensor, kv: KeysValues, mask: Tensor | null): Tensor {
    return torch.scope(() => {
      const [B, N, C] = x.shape;
      const q = this.q.forward(x).reshape([B, N, this.numHeads, this.headDim]).permute([0, 2, 1, 3]); // (B, N, D) -> (B, H, N, hd)
      const o = F.scaledDotProductAttention(this.q_norm.forward(q), kv.k, kv.v, mask ? { attnMask: mask } : {}); // (B, H, N, hd)
      return this.proj.forward(o.permute([0, 2, 1, 3]).reshape([B, N, C])); // (B, H, N, hd) -> (B, N, H, hd) -> (B, N, D)
    });
  }

  /** The official forward: keys and values recomputed from c on every call. */
  override forward(x: Tensor, c: Tensor, mask: Tensor | null): Tensor {
    return torch.scope(() => this.attend(x, this.keysValues(c), mask));
  }
}

/** (B, L) key mask (nonzero / true = real token) -> bool (B, 1, N, L), as the official CrossAttention reshapes it. */
export function expandKeyMask(mask: Tensor, numQueries: number): Tensor {
  return torch.scope(() => {
    const [B, L] = mask.shape;
    const m = mask.dtype === 'bool' ? mask : mask.ne(0);
    return m.reshape([B, 1, 1, L]).expand([B, 1, numQueries, L]); // (B, L) -> (B, 1, 1, L) -> (B, 1, N, L)
  });
}

/** Pre-norm block, three residual sub-layers, no adaLN: self-attention, cross-attention, FFN. */
export class RDTBlock extends nn.Module {
  norm1: nn.RMSNorm;
  attn: Attention;
  cross_attn: CrossAttention;
  norm2: nn.RMSNorm;
  ffn: Mlp;
  norm3: nn.RMSNorm;

  constructor(hiddenSize: number, numHeads: number, o: BlockOptions) {
    super();
    this.norm1 = rmsNorm(hiddenSize, o);
    this.attn = new Attention(hiddenSize, numHeads, o);
    this.cross_attn = new CrossAttention(hiddenSize, numHeads, o);
    this.norm2 = rmsNorm(hiddenSize, o);
    this.ffn = new Mlp(hiddenSize, hiddenSize, hiddenSize, o);
    this.norm3 = rmsNorm(hiddenSize, o);
  }

  /** x (B, N, D); the condition as raw tokens c (official) or as cached keys/values. */
  override forward(x: Tensor, c: Tensor | KeysValues, mask: Tensor | null): Tensor {
    return torch.scope(() => {
      const kv = c instanceof torch.Tensor ? this.cross_attn.keysValues(c) : c;
      let h = this.attn.forward(this.norm1.forward(x)).add(x);
      h = this.cross_attn.attend(this.norm2.forward(h), kv, mask).add(h);
      return this.ffn.forward(this.norm3.forward(h)).add(h);
    });
  }
}

/** norm_final (RmsNorm) then ffn_final: fc1 (D -> D), GELU(tanh), fc2 (D -> out). */
export class FinalLayer extends nn.Module {
  norm_final: nn.RMSNorm;
  ffn_final: Mlp;
  constructor(hiddenSize: number, outChannels: number, o: BlockOptions) {
    super();
    this.norm_final = rmsNorm(hiddenSize, o);
    this.ffn_final = new Mlp(hiddenSize, hiddenSize, outChannels, o);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => this.ffn_final.forward(this.norm_final.forward(x)));
  }
}
