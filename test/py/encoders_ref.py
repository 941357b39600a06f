"""The T5 v1.1 encoder and the SigLIP vision tower in plain PyTorch, written from the computation that
test/fixtures/encoders/README.md documents for transformers 4.57.6 (sections 2 and 3), with no transformers
import. The tests run it beside our engine to get bf16 references made on *this* machine by the installed
torch: bf16 GEMMs round differently on CPUs with and without native bf16 dot products (oneDNN picks the
kernel by CPU feature), so bf16 numbers recorded on another machine are not a portable reference. Its float32
outputs are checked against the transformers fixtures (1e-5), which shows it is the same function.

  python3 encoders_ref.py t5     MODEL_DIR DTYPE THREADS IO.safetensors OUT.safetensors
  python3 encoders_ref.py siglip MODEL_DIR DTYPE THREADS IO.safetensors OUT.safetensors

t5 reads every `G.input_ids` / `G.attention_mask` group of IO and writes `G.last_hidden_state` and
`G.block_out.K`; siglip reads `pixel_values` and writes `embeddings`, `last_hidden_state` (eager attention)
and `sdpa.last_hidden_state`. DTYPE is float32 or bfloat16: the whole model is cast to it, as
`model.to(dtype)` does. Every size comes from config.json.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def load(model_dir, dtype):
    w = load_file(f"{model_dir}/model.safetensors")
    return {k: v.to(dtype) for k, v in w.items()}, json.load(open(f"{model_dir}/config.json"))


# ---- T5 v1.1 encoder (README section 2) ----

def t5_rms_norm(x, w, eps):
    # mean square in float32, multiply in float32, cast to the weight's dtype, then scale by the weight
    var = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
    h = x * torch.rsqrt(var + eps)
    if w.dtype in (torch.float16, torch.bfloat16):
        h = h.to(w.dtype)
    return w * h


def t5_bucket(rel, num_buckets, max_distance):
    # bidirectional buckets: half for keys after the query, log-spaced beyond num_buckets / 4
    nb = num_buckets // 2
    out = (rel > 0).to(torch.long) * nb
    n = rel.abs()
    me = nb // 2
    large = me + (torch.log(n.float() / me) / math.log(max_distance / me) * (nb - me)).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, nb - 1))
    return out + torch.where(n < me, n, large)


def gelu_new(x):
    # operation by operation: in bf16 each step rounds
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def t5_forward(w, c, ids, mask):
    dt = w["shared.weight"].dtype
    H, dkv, eps = c["num_heads"], c["d_kv"], c["layer_norm_epsilon"]
    x = w["shared.weight"][ids]
    B, L = ids.shape
    pos = torch.arange(L)
    bucket = t5_bucket(pos[None, :] - pos[:, None], c["relative_attention_num_buckets"], c["relative_attention_max_distance"])
    bias = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][bucket].permute(2, 0, 1)[None]
    m = mask[:, None, None, :].to(dt)
    bias = bias + (1.0 - m) * torch.finfo(dt).min
    blocks = []
    for i in range(c["num_layers"]):
        p = f"encoder.block.{i}.layer."
        h = t5_rms_norm(x, w[p + "0.layer_norm.weight"], eps)
        q, k, v = (F.linear(h, w[p + f"0.SelfAttention.{n}.weight"]).view(B, L, H, dkv).transpose(1, 2) for n in "qkv")
        scores = q @ k.transpose(3, 2)  # no 1/sqrt(d_kv)
        scores += bias
        a = F.softmax(scores.float(), dim=-1).type_as(scores)
        x = x + F.linear((a @ v).transpose(1, 2).reshape(B, L, H * dkv), w[p + "0.SelfAttention.o.weight"])
        h = t5_rms_norm(x, w[p + "1.layer_norm.weight"], eps)
        g = gelu_new(F.linear(h, w[p + "1.DenseReluDense.wi_0.weight"])) * F.linear(h, w[p + "1.DenseReluDense.wi_1.weight"])
        x = x + F.linear(g, w[p + "1.DenseReluDense.wo.weight"])
        blocks.append(x)
    return t5_rms_norm(x, w["encoder.final_layer_norm.weight"], eps), blocks


# ---- SigLIP vision tower (README section 3) ----

def siglip_forward(w, c, pixels, attention):
    dt = w["vision_model.embeddings.patch_embedding.weight"].dtype
    D, H, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    hd = D // H
    e = F.conv2d(pixels.to(dt), w["vision_model.embeddings.patch_embedding.weight"], w["vision_model.embeddings.patch_embedding.bias"],
                 stride=c["patch_size"])
    x = e.flatten(2).transpose(1, 2) + w["vision_model.embeddings.position_embedding.weight"]
    emb = x
    N, P, _ = x.shape
    ln = lambda t, n: F.layer_norm(t, (D,), w[n + ".weight"], w[n + ".bias"], eps)
    lin = lambda t, n: F.linear(t, w[n + ".weight"], w[n + ".bias"])  # bias added before the one rounding
    for i in range(c["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        h = ln(x, p + "layer_norm1")
        q, k, v = (lin(h, p + f"self_attn.{n}_proj").view(N, P, H, hd).transpose(1, 2) for n in "qkv")
        if attention == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, scale=hd ** -0.5)
        else:
            a = F.softmax((q @ k.transpose(-1, -2)) * hd ** -0.5, dim=-1, dtype=torch.float32).to(q.dtype)
            o = a @ v
        x = x + lin(o.transpose(1, 2).reshape(N, P, D), p + "self_attn.out_proj")
        h = F.gelu(lin(ln(x, p + "layer_norm2"), p + "mlp.fc1"), approximate="tanh")
        x = x + lin(h, p + "mlp.fc2")
    return emb, ln(x, "vision_model.post_layernorm")


def main():
    which, model_dir, dtype, threads, io_path, out_path = sys.argv[1:7]
    torch.set_num_threads(int(threads))
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    w, c = load(model_dir, dt)
    if which == "siglip" and "vision_config" in c:
        c = c["vision_config"]
    io = load_file(io_path)
    out = {}
    with torch.no_grad():
        if which == "t5":
            for g in sorted({k.split(".")[0] for k in io if k.endswith(".input_ids")}):
                ids = io[f"{g}.input_ids"]
                mask = io.get(f"{g}.attention_mask", torch.ones_like(ids))
                last, blocks = t5_forward(w, c, ids, mask)
                out[f"{g}.last_hidden_state"] = last
                for i, b in enumerate(blocks):
                    out[f"{g}.block_out.{i}"] = b
        else:
            emb, last = siglip_forward(w, c, io["pixel_values"], "eager")
            out["embeddings"], out["last_hidden_state"] = emb, last
            out["sdpa.last_hidden_state"] = siglip_forward(w, c, io["pixel_values"], "sdpa")[1]
    save_file({k: v.contiguous() for k, v in out.items()}, out_path)


if __name__ == "__main__":
    main()
