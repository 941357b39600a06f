# The transformers side of `npm run bench:encoders`: the same hub folders and inputs, timed the same way.
# argv: JSON {t5_dir, siglip_dir, inputs (safetensors with input_ids, attention_mask, pixel_values),
#             dtype, device, threads, iters, warmup}. Prints one JSON line; {"skipped": why} without transformers.
import json, sys, time
cfg = json.loads(sys.argv[1])
try:
    import torch
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, SiglipVisionModel
except Exception as e:  # transformers is not a dependency of rdt-libero
    print(json.dumps({"skipped": f"transformers not importable ({e}); pip install transformers to compare"}))
    sys.exit(0)
torch.set_num_threads(cfg["threads"])
dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg["dtype"]]
dev = cfg["device"]
x = load_file(cfg["inputs"])


def timed(fn):
    for _ in range(cfg["warmup"]):
        fn()
    ts = []
    for _ in range(cfg["iters"]):
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


out = {}
with torch.no_grad():
    t5 = T5EncoderModel.from_pretrained(cfg["t5_dir"], dtype=dtype).to(dev).eval()
    ids, mask = x["input_ids"].to(dev), x["attention_mask"].to(dev)
    out["t5_ms"] = timed(lambda: t5(input_ids=ids, attention_mask=mask).last_hidden_state)
    del t5
    sig = SiglipVisionModel.from_pretrained(cfg["siglip_dir"], dtype=dtype).to(dev).eval()
    px = x["pixel_values"].to(dev, dtype)
    out["siglip_ms"] = timed(lambda: sig(pixel_values=px).last_hidden_state)
    out["siglip_attention"] = sig.config._attn_implementation
print(json.dumps(out))
