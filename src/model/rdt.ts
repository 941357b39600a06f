// The RDT core transformer (rdt-spec.md 1.2): [t, freq, state, action_0..63] tokens plus learned
// positional embeddings, `depth` blocks that cross-attend to language (even blocks, with the
// language mask) and image tokens (odd blocks, no mask), then the final layer on the last 64 tokens.
import * as torch from '../engine/index.js';
import { nn, type Tensor } from '../engine/index.js';
import type { RdtConfig } from './config.js';
import { ModelError } from './errors.js';
import { TimestepEmbedder, type ModuleOptions } from './embedders.js';
import { RDTBlock, FinalLayer, expandKeyMask, type KeysValues } from './blocks.js';
import { multimodalPosEmbed, xPosEmbedConfig } from './pos_embed.js';

/** Debug hook: called synchronously with named intermediates (the tensors die after the call). */
export type Trace = (name: string, t: Tensor) => void;

/** The conditions prepared once per sampling call: each block's keys/values and key mask. */
export interface ConditionCache {
  kv: KeysValues[];
  /** Per block: the expanded bool key mask (B, 1, N, L), or null. */
  masks: (Tensor | null)[];
}

export interface RdtInitOptions extends ModuleOptions {
  /** 'official': RDT.initialize_weights() (xavier, N(0, 0.02) embedders, zero final fc2, sin-cos tables); 'none': leave the layers' default init (for loading a checkpoint). */
  init?: 'official' | 'none';
}

export class RDT extends nn.Module {
  // Learned positional embeddings (sin-cos is only their initial value; rdt-spec.md 9.7).
  x_pos_embed: nn.Parameter; // (1, horizon + 3, D)
  lang_cond_pos_embed: nn.Parameter; // (1, max_lang_cond_len, D)
  img_cond_pos_embed: nn.Parameter; // (1, img_cond_len, D)
  t_embedder: TimestepEmbedder;
  freq_embedder: TimestepEmbedder;
  blocks: nn.ModuleList<RDTBlock>;
  final_layer: FinalLayer;

  readonly horizon: number;
  readonly hiddenSize: number;

  constructor(readonly config: RdtConfig, opts: RdtInitOptions = {}) {
    super();
    const { hidden_size: D, depth, num_heads: H } = config.rdt;
    this.horizon = config.pred_horizon;
    this.hiddenSize = D;
    const o = { dtype: opts.dtype, device: opts.device, generator: opts.generator, rmsNorm: config.rms_norm };
    const param = (shape: number[]) => new nn.Parameter(torch.zeros(shape, { dtype: opts.dtype, device: opts.device }));
    this.x_pos_embed = param([1, this.horizon + 3, D]);
    this.lang_cond_pos_embed = param([1, config.max_lang_cond_len, D]);
    this.img_cond_pos_embed = param([1, config.img_cond_len, D]);
    this.t_embedder = new TimestepEmbedder(D, o);
    this.freq_embedder = new TimestepEmbedder(D, o);
    this.blocks = new nn.ModuleList(Array.from({ length: depth }, () => new RDTBlock(D, H, o)));
    this.final_layer = new FinalLayer(D, config.action_dim, o);
    if ((opts.init ?? 'official') === 'official' && (opts.device ?? 'cpu') !== 'meta') this.initializeWeights(opts.generator);
  }

  /** The official initialize_weights() (rdt-spec.md 1.7). */
  initializeWeights(generator?: torch.Generator): void {
    torch.noGrad(() => {
      for (const m of this.modules())
        if (m instanceof nn.Linear) {
          nn.init.xavierUniform_(m.weight, 1, generator);
          if (m.bias) nn.init.zeros_(m.bias);
        }
      for (const [p, table] of this.sinCosTables()) torch.scope(() => p.copy_(torch.tensor(table, { shape: p.shape })));
      for (const e of [this.t_embedder, this.freq_embedder])
        for (const i of [0, 2]) nn.init.normal_((e.mlp.at(i) as nn.Linear).weight, 0, 0.02, generator);
      nn.init.zeros_(this.final_layer.ffn_final.fc2.weight);
      nn.init.zeros_(this.final_layer.ffn_final.fc2.bias!);
    });
  }

  /** The sin-cos initial values of the three positional embeddings (float32, row-major). */
  sinCosTables(): [nn.Parameter, Float32Array][] {
    const D = this.hiddenSize;
    return [
      [this.x_pos_embed, Float32Array.from(multimodalPosEmbed(D, xPosEmbedConfig(this.horizon), true))],
      [this.lang_cond_pos_embed, Float32Array.from(multimodalPosEmbed(D, this.config.lang_pos_embed_config, false))],
      [this.img_cond_pos_embed, Float32Array.from(multimodalPosEmbed(D, this.config.img_pos_embed_config, false))],
    ];
  }

  #checkInputs(x: Tensor, freq: Tensor, t: Tensor): void {
    const [B, T, D] = x.shape;
    if (x.ndim !== 3 || T !== this.horizon + 1 || D !== this.hiddenSize)
      throw new ModelError(`RDT: x must be (B, ${this.horizon + 1}, ${this.hiddenSize}) (state token + ${this.horizon} action tokens), got [${x.shape}]`);
    if (freq.ndim !== 1 || freq.shape[0] !== B) throw new ModelError(`RDT: ctrl_freq must be (${B},), got [${freq.shape}]`);
    if (t.ndim !== 1 || (t.shape[0] !== B && t.shape[0] !== 1)) throw new ModelError(`RDT: t must be (${B},) or (1,), got [${t.shape}]`);
  }

  /** [t_emb; freq_emb; x] + x_pos_embed: (B, horizon + 3, D), the input of block 0. */
  embedTokens(x: Tensor, freq: Tensor, t: Tensor, trace?: Trace): Tensor {
    return torch.scope(() => {
      this.#checkInputs(x, freq, t);
      const B = x.shape[0];
      const tEmb = this.t_embedder.forward(t); // (B, D) or (1, D)
      const fEmb = this.freq_embedder.forward(freq); // (B, D)
      trace?.('t_emb', tEmb);
      trace?.('freq_emb', fEmb);
      const tTok = tEmb.unsqueeze(1).expand([B, 1, this.hiddenSize]); // (B or 1, D) -> (B, 1, D); a t of batch 1 is broadcast
      const tokens = torch.cat([tTok, fEmb.unsqueeze(1), x], 1).add(this.x_pos_embed); // (B, horizon + 3, D)
      trace?.('tokens_in', tokens);
      return tokens;
    });
  }

  /** lang_c + lang_cond_pos_embed[:, :L] and img_c + img_cond_pos_embed. */
  addConditionPositions(langC: Tensor, imgC: Tensor): { lang: Tensor; img: Tensor } {
    return torch.scope(() => {
      const L = langC.shape[1];
      if (langC.ndim !== 3 || L > this.config.max_lang_cond_len || langC.shape[2] !== this.hiddenSize)
        throw new ModelError(`RDT: adapted language tokens must be (B, L <= ${this.config.max_lang_cond_len}, ${this.hiddenSize}), got [${langC.shape}]`);
      if (imgC.ndim !== 3 || imgC.shape[1] !== this.config.img_cond_len || imgC.shape[2] !== this.hiddenSize)
        throw new ModelError(`RDT: adapted image tokens must be (B, ${this.config.img_cond_len}, ${this.hiddenSize}), got [${imgC.shape}]`);
      return {
        lang: langC.add(this.lang_cond_pos_embed.slice(1, 0, L)), // (B, L, D) + (1, L, D)
        img: imgC.add(this.img_cond_pos_embed), // (B, L_img, D) + (1, L_img, D)
      };
    });
  }

  /** Final layer on all tokens, keeping the last `horizon`: (B, horizon, action_dim). */
  head(h: Tensor, trace?: Trace): Tensor {
    return torch.scope(() => {
      const out = this.final_layer.forward(h); // (B, horizon + 3, out)
      trace?.('final_layer_out', out);
      return out.slice(1, -this.horizon);
    });
  }

  /**
   * The official forward. x (B, horizon + 1, D): state token + action tokens after the state adaptor;
   * freq (B,); t (B,) or (1,); langC (B, L, D), imgC (B, img_cond_len, D): adapted conditions;
   * langMask (B, L) (true / nonzero = real token) or null.
   */
  override forward(x: Tensor, freq: Tensor, t: Tensor, langC: Tensor, imgC: Tensor, langMask: Tensor | null = null, trace?: Trace): Tensor {
    return torch.scope(() => {
      let h = this.embedTokens(x, freq, t, trace);
      const c = this.addConditionPositions(langC, imgC);
      trace?.('lang_c_pos', c.lang);
      trace?.('img_c_pos', c.img);
      const langM = langMask ? expandKeyMask(langMask, h.shape[1]) : null;
      // even blocks cross-attend to the language tokens (masked), odd blocks to the image tokens
      for (const [i, block] of [...this.blocks].entries()) {
        h = i % 2 === 0 ? block.forward(h, c.lang, langM) : block.forward(h, c.img, null);
        trace?.(`block_out.${i}`, h);
      }
      return this.head(h, trace);
    });
  }

  /**
   * Beyond the official code: the language and image conditions do not change across the
   * denoising steps, so each block's cross-attention keys/values are computed once here and
   * reused by forwardCached (same outputs, far fewer FLOPs). The cache's tensors are kept; free
   * them with disposeConditionCache.
   */
  prepareConditions(langC: Tensor, imgC: Tensor, langMask: Tensor | null): ConditionCache {
    return torch.scope(() => {
      const c = this.addConditionPositions(langC, imgC);
      const langM = langMask ? expandKeyMask(langMask, this.horizon + 3) : null;
      // Made contiguous once: attention over strided (permuted) keys/values is ~1.5x slower on CPU.
      // (one scope per block, so only the contiguous copies outlive it: peak memory ~ the cache itself)
      const kv = this.blocks.map((block, i) => torch.scope(() => {
        const { k, v } = block.cross_attn.keysValues(i % 2 === 0 ? c.lang : c.img);
        return { k: k.contiguous(), v: v.contiguous() };
      }));
      const masks = this.blocks.map((_, i) => (i % 2 === 0 ? langM : null));
      for (const e of kv) [e.k, e.v].forEach((t) => t.keep());
      langM?.keep();
      return { kv, masks };
    });
  }

  forwardCached(x: Tensor, freq: Tensor, t: Tensor, cache: ConditionCache, trace?: Trace): Tensor {
    return torch.scope(() => {
      let h = this.embedTokens(x, freq, t, trace);
      for (const [i, block] of [...this.blocks].entries()) {
        h = block.forward(h, cache.kv[i], cache.masks[i]);
        trace?.(`block_out.${i}`, h);
      }
      return this.head(h, trace);
    });
  }
}

export function disposeConditionCache(cache: ConditionCache): void {
  for (const e of cache.kv) {
    e.k.dispose();
    e.v.dispose();
  }
  for (const m of new Set(cache.masks)) m?.dispose();
}
