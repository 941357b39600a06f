// LoRA: low-rank adapters on chosen nn.Linear layers. y = W x + b + (alpha/r) * B (A x).
// The adapters become fields `lora_A` (r, in) and `lora_B` (out, r) of the adapted Linear, so the base
// weights keep their official names (`model.blocks.3.attn.qkv.weight`) and pretrained checkpoints load
// unchanged; adapter keys are `...qkv.lora_A` / `...qkv.lora_B`. B starts at zero, so an adapted model
// starts exactly where the base model is.
import * as torch from '../engine/index.js';
import { nn, type Tensor } from '../engine/index.js';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Module-name suffixes to adapt, e.g. 'attn.qkv', 'ffn.fc1'. */
  targets: string[];
  generator?: torch.Generator;
}

type LoraLinear = nn.Linear & { lora_A: nn.Parameter; lora_B: nn.Parameter; loraScale: number };

function isLora(m: nn.Module): m is LoraLinear {
  return m instanceof nn.Linear && (m as unknown as Partial<LoraLinear>).lora_A instanceof nn.Parameter;
}

/** Add adapters to every Linear whose name ends with a target; returns the adapted names. */
export function injectLora(model: nn.Module, o: LoraOptions): string[] {
  const adapted: string[] = [];
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof nn.Linear) || !o.targets.some((t) => name === t || name.endsWith(`.${t}`))) continue;
    const l = m as LoraLinear;
    const dev = l.weight.device;
    const A = torch.scope(() => torch.empty([o.rank, l.inFeatures], { device: dev }));
    nn.init.kaimingUniform_(A, Math.sqrt(5), o.generator); // PEFT's default for A
    l.lora_A = new nn.Parameter(A);
    l.lora_B = new nn.Parameter(torch.zeros([l.outFeatures, o.rank], { device: dev }));
    l.loraScale = o.alpha / o.rank;
    l.forward = function (this: LoraLinear, x: Tensor): Tensor {
      return torch.scope(() => {
        const base = nn.Linear.prototype.forward.call(this, x);
        const low = x.to(this.lora_A.dtype).matmul(this.lora_A.t()).matmul(this.lora_B.t()).mul(this.loraScale);
        return base.add(low.to(base.dtype));
      });
    };
    adapted.push(name);
  }
  if (!adapted.length) throw new Error(`LoRA: no Linear layer matches the targets ${o.targets.join(', ')}`);
  return adapted;
}

/** Freeze everything except the adapters (and, optionally, modules whose names start with `alsoTrain`). */
export function markOnlyLoraTrainable(model: nn.Module, alsoTrain: string[] = []): void {
  for (const [name, p] of model.namedParameters())
    p.requiresGrad_(isLoraKey(name) || alsoTrain.some((pre) => name.startsWith(pre)));
}

export function isLoraKey(name: string): boolean {
  return name.endsWith('.lora_A') || name.endsWith('.lora_B');
}

/** Only the adapter weights, for saving separately (adapter_model.safetensors). */
export function loraStateDict(model: nn.Module): Map<string, Tensor> {
  return new Map(model.namedParameters().filter(([n]) => isLoraKey(n)));
}

/** Fold each adapter into its base weight (W += scale * B A) and remove it: a plain model again. */
export function mergeLora(model: nn.Module): number {
  let n = 0;
  torch.noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (!isLora(m)) continue;
      torch.scope(() => {
        const delta = m.lora_B.to('float32').matmul(m.lora_A.to('float32')).mul(m.loraScale);
        m.weight.copy_(m.weight.to('float32').add(delta));
      });
      m.lora_A.dispose();
      m.lora_B.dispose();
      const rec = m as unknown as Record<string, unknown>;
      delete rec.lora_A;
      delete rec.lora_B;
      delete rec.loraScale;
      delete rec.forward; // back to nn.Linear.prototype.forward
      n++;
    }
  });
  return n;
}
