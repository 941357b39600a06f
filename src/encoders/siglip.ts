// The SigLIP vision tower (transformers' SiglipVisionModel, eval mode) up to last_hidden_state, the
// post-LayerNorm patch features RDT uses; the attention-pooling head is not built (RDT ignores it).
// Every linear layer with a bias is one linear call (bias added before the single rounding), which
// keeps bf16 results identical to PyTorch's. Attention is 'eager' (transformers' eager path, matmul,
// scale, float32 softmax: bit-exact) by default, or libtorch's fused 'sdpa' (faster, same math,
// different rounding). Weight names are the hub's (vision_model.*).
import * as torch from '../engine/index.js';
import { F, nn, type DType, type Device, type Tensor } from '../engine/index.js';
import { EncoderError } from './errors.js';
import type { SiglipVisionConfig } from './siglip_config.js';
import type { WeightSource } from './weight_source.js';

export type SiglipAttention = 'eager' | 'sdpa';

class Lin extends nn.Module {
  weight: nn.Parameter;
  bias: nn.Parameter;
  constructor(w: WeightSource, p: string, out: number, inp: number) {
    super();
    this.weight = w.take(`${p}.weight`, [out, inp]);
    this.bias = w.take(`${p}.bias`, [out]);
  }
  override forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

class Norm extends nn.Module {
  weight: nn.Parameter;
  bias: nn.Parameter;
  constructor(w: WeightSource, p: string, d: number, readonly eps: number) {
    super();
    this.weight = w.take(`${p}.weight`, [d]);
    this.bias = w.take(`${p}.bias`, [d]);
  }
  override forward(x: Tensor): Tensor {
    return F.layerNorm(x, [x.shape[x.ndim - 1]], this.weight, this.bias, this.eps);
  }
}

class Table extends nn.Module {
  weight: nn.Parameter;
  constructor(w: WeightSource, p: string, shape: number[]) {
    super();
    this.weight = w.take(`${p}.weight`, shape);
  }
}

class Conv extends nn.Module {
  weight: nn.Parameter;
  bias: nn.Parameter;
  constructor(w: WeightSource, p: string, cfg: SiglipVisionConfig) {
    super();
    this.weight = w.take(`${p}.weight`, [cfg.hiddenSize, cfg.numChannels, cfg.patchSize, cfg.patchSize]);
    this.bias = w.take(`${p}.bias`, [cfg.hiddenSize]);
  }
}

class SiglipVisionEmbeddings extends nn.Module {
  patch_embedding: Conv;
  position_embedding: Table;
  constructor(w: WeightSource, p: string, readonly cfg: SiglipVisionConfig) {
    super();
    const grid = cfg.gridSize;
    this.patch_embedding = new Conv(w, `${p}.patch_embedding`, cfg);
    this.position_embedding = new Table(w, `${p}.position_embedding`, [grid * grid, cfg.hiddenSize]);
  }
  /** pixel values (N, C, S, S) -> patch embeddings before and after adding the position embeddings (N, P, D). */
  override forward(pixels: Tensor): { patchEmbeds: Tensor; embeddings: Tensor } {
    return torch.scope(() => {
      const { weight, bias } = this.patch_embedding;
      const conv = F.conv2d(pixels.to(weight.dtype), weight, bias, { stride: this.cfg.patchSize });
      const patchEmbeds = conv.flatten(2).transpose(1, 2); // (N, D, g, g) -> (N, g*g, D), row-major over the grid
      return { patchEmbeds, embeddings: patchEmbeds.add(this.position_embedding.weight) };
    });
  }
}

class SiglipAttentionLayer extends nn.Module {
  k_proj: Lin;
  v_proj: Lin;
  q_proj: Lin;
  out_proj: Lin;
  constructor(w: WeightSource, p: string, readonly cfg: SiglipVisionConfig, readonly impl: SiglipAttention) {
    super();
    const d = cfg.hiddenSize;
    this.k_proj = new Lin(w, `${p}.k_proj`, d, d);
    this.v_proj = new Lin(w, `${p}.v_proj`, d, d);
    this.q_proj = new Lin(w, `${p}.q_proj`, d, d);
    this.out_proj = new Lin(w, `${p}.out_proj`, d, d);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => {
      const [n, l, d] = x.shape;
      const h = this.cfg.numHeads;
      const hd = d / h;
      const heads = (t: Tensor) => t.view([n, l, h, hd]).transpose(1, 2); // (N, heads, L, hd)
      const q = heads(this.q_proj.forward(x));
      const k = heads(this.k_proj.forward(x));
      const v = heads(this.v_proj.forward(x));
      let out: Tensor;
      if (this.impl === 'sdpa') out = F.scaledDotProductAttention(q, k, v, { scale: hd ** -0.5 });
      else {
        const scores = q.matmul(k.transpose(2, 3)).mul(hd ** -0.5);
        out = F.softmax(scores, -1, { dtype: 'float32' }).to(q.dtype).matmul(v);
      }
      return this.out_proj.forward(out.transpose(1, 2).contiguous().reshape([n, l, d]));
    });
  }
}

class SiglipMLP extends nn.Module {
  fc1: Lin;
  fc2: Lin;
  constructor(w: WeightSource, p: string, cfg: SiglipVisionConfig) {
    super();
    this.fc1 = new Lin(w, `${p}.fc1`, cfg.intermediateSize, cfg.hiddenSize);
    this.fc2 = new Lin(w, `${p}.fc2`, cfg.hiddenSize, cfg.intermediateSize);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => this.fc2.forward(F.gelu(this.fc1.forward(x), { approximate: 'tanh' })));
  }
}

class SiglipEncoderLayer extends nn.Module {
  layer_norm1: Norm;
  self_attn: SiglipAttentionLayer;
  layer_norm2: Norm;
  mlp: SiglipMLP;
  constructor(w: WeightSource, p: string, cfg: SiglipVisionConfig, impl: SiglipAttention) {
    super();
    this.layer_norm1 = new Norm(w, `${p}.layer_norm1`, cfg.hiddenSize, cfg.eps);
    this.self_attn = new SiglipAttentionLayer(w, `${p}.self_attn`, cfg, impl);
    this.layer_norm2 = new Norm(w, `${p}.layer_norm2`, cfg.hiddenSize, cfg.eps);
    this.mlp = new SiglipMLP(w, `${p}.mlp`, cfg);
  }
  override forward(x: Tensor): Tensor {
    return torch.scope(() => {
      const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x)));
      return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
    });
  }
}

class SiglipEncoder extends nn.Module {
  layers: nn.ModuleList<SiglipEncoderLayer>;
  constructor(w: WeightSource, p: string, cfg: SiglipVisionConfig, impl: SiglipAttention) {
    super();
    this.layers = new nn.ModuleList(Array.from({ length: cfg.numLayers }, (_, i) => new SiglipEncoderLayer(w, `${p}.layers.${i}`, cfg, impl)));
  }
}

class SiglipVisionTransformer extends nn.Module {
  embeddings: SiglipVisionEmbeddings;
  encoder: SiglipEncoder;
  post_layernorm: Norm;
  constructor(w: WeightSource, cfg: SiglipVisionConfig, impl: SiglipAttention) {
    super();
    this.embeddings = new SiglipVisionEmbeddings(w, 'vision_model.embeddings', cfg);
    this.encoder = new SiglipEncoder(w, 'vision_model.encoder', cfg, impl);
    this.post_layernorm = new Norm(w, 'vision_model.post_layernorm', cfg.hiddenSize, cfg.eps);
  }
}

export interface SiglipOutputs {
  /** (N, P, D) after post_layernorm, in the model dtype: RDT's image tokens. */
  lastHiddenState: Tensor;
  patchEmbeds?: Tensor;
  embeddings?: Tensor;
  layerOutputs?: Tensor[];
}

/** SiglipVisionModel without its pooling head. */
export class SiglipVisionModel extends nn.Module {
  vision_model: SiglipVisionTransformer;
  readonly numPatches: number;
  constructor(w: WeightSource, readonly config: SiglipVisionConfig, readonly dtype: DType, readonly device: Device,
    readonly attention: SiglipAttention = 'eager') {
    super();
    this.vision_model = new SiglipVisionTransformer(w, config, attention);
    this.numPatches = config.gridSize ** 2;
    this.eval();
  }

  /** pixel values (N, C, S, S) float (preprocessed, see image_preprocess.ts) -> features (N, P, D). */
  override forward(pixelValues: Tensor, opts: { intermediates?: boolean } = {}): SiglipOutputs {
    const { imageSize: s, numChannels: c } = this.config;
    const sh = pixelValues.shape;
    if (sh.length !== 4 || sh[1] !== c || sh[2] !== s || sh[3] !== s)
      throw new EncoderError(`SigLIP expects pixel values (N, ${c}, ${s}, ${s}), got [${sh}]; preprocess images with preprocessImages()`);
    return torch.noGrad(() => torch.scope(() => {
      const vm = this.vision_model;
      const { patchEmbeds, embeddings } = vm.embeddings.forward(pixelValues.to({ device: this.device }));
      let x = embeddings;
      const layerOutputs: Tensor[] = [];
      for (const layer of vm.encoder.layers) {
        x = layer.forward(x);
        layerOutputs.push(x);
      }
      const lastHiddenState = vm.post_layernorm.forward(x);
      return opts.intermediates ? { lastHiddenState, patchEmbeds, embeddings, layerOutputs } : { lastHiddenState };
    }));
  }
}
