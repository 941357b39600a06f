# The transformers side of `npm run bench:encoders`: the same hub folders and inputs, timed call by call so
# the bench can interleave the two engines round by round (a busy machine then slows both alike).
# argv: JSON {t5_dir, siglip_dir, inputs (safetensors with input_ids, attention_mask, pixel_values), dtype, device, threads}.
# Prints {"ready": {...}} once both models are loaded, then for each stdin line "t5" or "siglip" runs that
# model once and prints {"ms": ...}. Prints {"skipped": why} and exits when transformers is not installed.
import json, sys, time
cfg = json.loads(sys.argv[1])
try:
    import torch
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, SiglipVisionModel
except Exception as e:  # transformers is not a dependency of rdt-libero
    print(json.dumps({"skipped": f"transformers not importable ({e}); pip install transformers to compare"}), flush=True)
    sys.exit(0)
torch.set_num_threads(cfg["threads"])
dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg["dtype"]]
dev = cfg["device"]
x = load_file(cfg["inputs"])

with torch.no_grad():
    t5 = T5EncoderModel.from_pretrained(cfg["t5_dir"], dtype=dtype).to(dev).eval()
    sig = SiglipVisionModel.from_pretrained(cfg["siglip_dir"], dtype=dtype).to(dev).eval()
    ids, mask = x["input_ids"].to(dev), x["attention_mask"].to(dev)
    px = x["pixel_values"].to(dev, dtype)
    run = {
        "t5": lambda: t5(input_ids=ids, attention_mask=mask).last_hidden_state,
        "siglip": lambda: sig(pixel_values=px).last_hidden_state,
    }
    print(json.dumps({"ready": {"siglip_attention": sig.config._attn_implementation, "torch": torch.__version__}}), flush=True)
    for line in sys.stdin:
        which = line.strip()
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run[which]()
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}), flush=True)
