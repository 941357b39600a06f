# Writes a float32 T5 encoder-decoder `pytorch_model.bin` (T5ForConditionalGeneration's keys, random
# values) of the given width for the load-memory part of `npm run bench:encoders`.
# argv: out_dir, JSON config (T5Config fields). Prints the file size in bytes.
import json, os, sys
import torch
out, c = sys.argv[1], json.loads(sys.argv[2])
d, kv, ff, h, n, v = c["d_model"], c["d_kv"], c["d_ff"], c["num_heads"], c["num_layers"], c["vocab_size"]
g = torch.Generator().manual_seed(0)
r = lambda *s: torch.randn(*s, generator=g) * 0.02
sd = {"shared.weight": r(v, d)}
for side in ("encoder", "decoder"):
    sd[f"{side}.embed_tokens.weight"] = sd["shared.weight"]
    for i in range(n):
        p = f"{side}.block.{i}.layer"
        for a, name in [(0, "SelfAttention")] + ([(1, "EncDecAttention")] if side == "decoder" else []):
            for w in "qkv":
                sd[f"{p}.{a}.{name}.{w}.weight"] = r(h * kv, d)
            sd[f"{p}.{a}.{name}.o.weight"] = r(d, h * kv)
            sd[f"{p}.{a}.layer_norm.weight"] = torch.ones(d)
        if i == 0:
            sd[f"{p}.0.SelfAttention.relative_attention_bias.weight"] = r(c["relative_attention_num_buckets"], h)
        f = 2 if side == "decoder" else 1
        sd[f"{p}.{f}.DenseReluDense.wi_0.weight"] = r(ff, d)
        sd[f"{p}.{f}.DenseReluDense.wi_1.weight"] = r(ff, d)
        sd[f"{p}.{f}.DenseReluDense.wo.weight"] = r(d, ff)
        sd[f"{p}.{f}.layer_norm.weight"] = torch.ones(d)
    sd[f"{side}.final_layer_norm.weight"] = torch.ones(d)
sd["lm_head.weight"] = r(v, d)
os.makedirs(out, exist_ok=True)
torch.save(sd, os.path.join(out, "pytorch_model.bin"))
with open(os.path.join(out, "config.json"), "w") as fh:
    json.dump({**c, "model_type": "t5", "feed_forward_proj": "gated-gelu", "architectures": ["T5ForConditionalGeneration"]}, fh)
print(os.path.getsize(os.path.join(out, "pytorch_model.bin")))
