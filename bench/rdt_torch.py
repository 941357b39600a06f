# A PyTorch RDT (core, adaptors and runner: DDPM-noised loss, DPM-Solver++(2M) sampling), written from
# shared/docs/rdt-spec.md for the benches to compare with and time against. It loads the same hub-layout
# safetensors (official key names) as ours, strictly.
#
# As a child process (bench/torch_child.ts drives it): argv[1] is JSON
#   {weights, config (the hub config.json object), threads, device ("cpu"), dtype ("float32"|"bfloat16"),
#    masters (bf16 weights, AdamW on float32 copies), inputs (safetensors: lang_tokens, lang_mask, img_tokens, state_tokens, action_mask, ctrl_freqs, action_gt,
#            noise, loss_noise, loss_timesteps), lr}
# It prints {"ready": {...}} once loaded, then answers one JSON line per stdin line:
#   check <out> [loss]       predict_action from `noise`, the loss from loss_noise/loss_timesteps and its gradients'
#                            global norm (with `loss`), written to <out>; answers {"ok": true}
#   predict                  one predict_action (fresh noise), timed: {"ms": ...}
#   train                    one training step (loss with fresh noise and timesteps, backward, clip 1.0, AdamW), timed
#   memory                   {"peak_rss_mb": ..., "peak_gpu_mb": ...}
import json, math, sys, time, resource

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class RmsNorm(nn.Module):
    """timm 1.0.3's fallback RmsNorm (x * rsqrt(var(x, unbiased) + eps) * w) or the mean-square one (spec 1.4)."""

    def __init__(self, dim, variant):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.unbiased_var = variant == "timm103-unbiased-var"

    def forward(self, x):
        if self.unbiased_var:
            r = torch.rsqrt(torch.var(x, dim=-1, keepdim=True) + 1e-6)
        else:
            r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * r * self.weight


class Mlp(nn.Module):
    def __init__(self, d_in, d_hidden, d_out):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SelfAttention(nn.Module):
    def __init__(self, d, heads, variant):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm = RmsNorm(self.hd, variant)
        self.k_norm = RmsNorm(self.hd, variant)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.h, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        o = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class CrossAttention(nn.Module):
    def __init__(self, d, heads, variant):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.q_norm = RmsNorm(self.hd, variant)
        self.k_norm = RmsNorm(self.hd, variant)
        self.proj = nn.Linear(d, d)

    def forward(self, x, c, mask):
        b, n, d = x.shape
        l = c.shape[1]
        q = self.q(x).view(b, n, self.h, self.hd).transpose(1, 2)
        k, v = self.kv(c).view(b, l, 2, self.h, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        m = None if mask is None else mask.view(b, 1, 1, l).expand(b, 1, n, l)
        o = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v, attn_mask=m)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, d, heads, variant):
        super().__init__()
        self.norm1 = RmsNorm(d, variant)
        self.attn = SelfAttention(d, heads, variant)
        self.norm2 = RmsNorm(d, variant)
        self.cross_attn = CrossAttention(d, heads, variant)
        self.norm3 = RmsNorm(d, variant)
        self.ffn = Mlp(d, d, d)

    def forward(self, x, c, mask):
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), c, mask)
        return x + self.ffn(self.norm3(x))


class TimestepEmbedder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, t):
        # [cos, sin] of t * exp(-ln(10000) i / 128), i < 128 (spec 1.3)
        freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32, device=t.device) / 128)
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class FinalLayer(nn.Module):
    def __init__(self, d, out, variant):
        super().__init__()
        self.norm_final = RmsNorm(d, variant)
        self.ffn_final = Mlp(d, d, out)

    def forward(self, x):
        return self.ffn_final(self.norm_final(x))


class Core(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        r = cfg["rdt"]
        d, variant = r["hidden_size"], cfg.get("rms_norm", "timm103-unbiased-var")
        self.horizon = cfg["pred_horizon"]
        self.x_pos_embed = nn.Parameter(torch.zeros(1, self.horizon + 3, d))
        self.lang_cond_pos_embed = nn.Parameter(torch.zeros(1, cfg["max_lang_cond_len"], d))
        self.img_cond_pos_embed = nn.Parameter(torch.zeros(1, cfg["img_cond_len"], d))
        self.t_embedder = TimestepEmbedder(d)
        self.freq_embedder = TimestepEmbedder(d)
        self.blocks = nn.ModuleList([Block(d, r["num_heads"], variant) for _ in range(r["depth"])])
        self.final_layer = FinalLayer(d, cfg["action_dim"], variant)

    def forward(self, x, freq, t, lang_c, img_c, lang_mask):
        b = x.shape[0]
        t_tok = self.t_embedder(t).unsqueeze(1)
        if t_tok.shape[0] == 1:
            t_tok = t_tok.expand(b, -1, -1)
        f_tok = self.freq_embedder(freq).unsqueeze(1)
        x = torch.cat([t_tok, f_tok, x], 1) + self.x_pos_embed
        lang_c = lang_c + self.lang_cond_pos_embed[:, : lang_c.shape[1]]
        img_c = img_c + self.img_cond_pos_embed
        for i, blk in enumerate(self.blocks):  # even blocks: language (masked), odd: image (spec 1.2)
            x = blk(x, lang_c, lang_mask) if i % 2 == 0 else blk(x, img_c, None)
        return self.final_layer(x)[:, -self.horizon :]


def adaptor(spec, d_in, d_out):
    n = int(spec[3 : spec.index("x")])  # "mlp{N}x_gelu"
    layers = [nn.Linear(d_in, d_out)]
    for _ in range(n - 1):
        layers += [nn.GELU(approximate="tanh"), nn.Linear(d_out, d_out)]
    return nn.Sequential(*layers)


def schedule(T=1000):
    """squaredcos_cap_v2 betas (float64 math, stored float32) and alphas_cumprod (spec 3.1)."""
    ab = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - ab((i + 1) / T) / ab(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    return torch.cumprod(1.0 - betas, 0)


class Runner(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["rdt"]["hidden_size"]
        self.cfg = cfg
        self.model = Core(cfg)
        self.lang_adaptor = adaptor(cfg["lang_adaptor"], cfg["lang_token_dim"], d)
        self.img_adaptor = adaptor(cfg["img_adaptor"], cfg["img_token_dim"], d)
        self.state_adaptor = adaptor(cfg["state_adaptor"], 2 * cfg["state_token_dim"], d)
        # a plain float32 attribute, not a buffer: .to(bfloat16) must not round the schedule (diffusers keeps it float32)
        self.acp = schedule(cfg["noise_scheduler"]["num_train_timesteps"])

    def compute_loss(self, lang, lang_mask, img, state, action_gt, action_mask, freq, noise, t):
        abar = self.acp.to(action_gt.dtype)[t].view(-1, 1, 1)
        noisy = abar.sqrt() * action_gt + (1 - abar).sqrt() * noise
        traj = torch.cat([state, noisy], 1)
        traj = torch.cat([traj, action_mask.expand(-1, traj.shape[1], -1)], 2)
        pred = self.model(self.state_adaptor(traj), freq, t, self.lang_adaptor(lang), self.img_adaptor(img), lang_mask)
        return F.mse_loss(pred, action_gt)

    @torch.no_grad()
    def predict_action(self, lang, lang_mask, img, state, action_mask, freq, noise, steps=5):
        lang_c, img_c = self.lang_adaptor(lang), self.img_adaptor(img)
        s_tok = self.state_adaptor(torch.cat([state, action_mask], 2))
        mask = action_mask.expand(-1, noise.shape[1], -1)
        T = self.acp.shape[0]
        # timesteps: linspace(0, T-1, steps+1) rounded, reversed, last dropped; VE sigmas there, then 0 (spec 3.2)
        ts = [int(round(v)) for v in torch.linspace(0, T - 1, steps + 1, dtype=torch.float64).tolist()][::-1][:steps]
        ve = ((1 - self.acp) / self.acp) ** 0.5
        sig = [ve[t] for t in ts] + [torch.zeros((), device=ve.device)]

        def node(s):  # VE sigma -> alpha, sigma, lambda
            a = 1 / (s**2 + 1) ** 0.5
            sg = s * a
            return a, sg, torch.log(a) - torch.log(sg)

        x, m_prev = noise, None
        for k, t in enumerate(ts):
            tokens = self.state_adaptor(torch.cat([x, mask], 2))
            m = self.model(torch.cat([s_tok, tokens], 1), freq, torch.tensor([t], device=x.device), lang_c, img_c, lang_mask)
            a_t, s_t, l_t = node(sig[k + 1])
            _, s_s, l_s = node(sig[k])
            h = l_t - l_s
            xf = x.float()
            first = k == 0 or k == steps - 1  # no history yet / lower_order_final at sigma 0
            if first:
                xn = (s_t / s_s) * xf - (a_t * (torch.exp(-h) - 1)) * m
            else:
                _, _, l_p = node(sig[k - 1])
                r0 = (l_s - l_p) / h
                d1 = (1.0 / r0) * (m - m_prev)
                xn = (s_t / s_s) * xf - (a_t * (torch.exp(-h) - 1)) * m - 0.5 * (a_t * (torch.exp(-h) - 1)) * d1
            x, m_prev = xn.to(m.dtype), m
        return x * mask


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    dev = cfg.get("device", "cpu")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.get("dtype", "float32")]
    masters_on = cfg.get("masters", False)  # bf16 model, AdamW on float32 master copies (DeepSpeed's bf16 scheme, and ours)
    cuda = dev.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    with torch.device("meta"):
        runner = Runner(cfg["config"])
    runner = runner.to_empty(device=dev)
    runner.acp = schedule(cfg["config"]["noise_scheduler"]["num_train_timesteps"]).to(dev)  # built on "meta" above
    if cfg.get("weights"):
        sd = load_file(cfg["weights"], device=dev)
        missing, unexpected = runner.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise SystemExit(f"rdt_torch.py: the weights do not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    else:  # random weights of the right scale (the GPU bench: rdt-1b has no file here)
        with torch.no_grad():
            for p in runner.parameters():
                p.normal_(0, 0.02)
    runner = runner.to(dtype)
    x = {k: v.to(dev) for k, v in load_file(cfg["inputs"]).items()}
    fl = lambda t: t.to(dtype)
    lang, img, state, amask = fl(x["lang_tokens"]), fl(x["img_tokens"]), fl(x["state_tokens"]), fl(x["action_mask"])
    lmask, freq, gt = x["lang_mask"].bool(), x["ctrl_freqs"], fl(x["action_gt"])
    params = list(runner.parameters())
    masters = [p.detach().float().clone() for p in params] if masters_on else params
    opt = torch.optim.AdamW(masters, lr=cfg.get("lr", 1e-4), weight_decay=1e-2)  # torch's default implementation choice
    T = cfg["config"]["noise_scheduler"]["num_train_timesteps"]

    def loss_of(noise, t):
        return runner.compute_loss(lang, lmask, img, state, gt, amask, freq, noise, t)

    def train_step():
        runner.train()
        noise = torch.randn_like(gt)
        t = torch.randint(0, T, (gt.shape[0],), device=dev)
        loss_of(noise, t).backward()
        if masters_on:
            for m, p in zip(masters, params):
                m.grad = None if p.grad is None else p.grad.float()
                p.grad = None
        torch.nn.utils.clip_grad_norm_(masters, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if masters_on:
            with torch.no_grad():
                for m, p in zip(masters, params):
                    p.copy_(m)

    def predict():
        runner.eval()
        return runner.predict_action(lang, lmask, img, state, amask, freq, torch.randn_like(gt))

    print(json.dumps({"ready": {"torch": torch.__version__, "threads": torch.get_num_threads(), "params": sum(p.numel() for p in params)}}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "check":
            runner.eval()
            action = runner.predict_action(lang, lmask, img, state, amask, freq, fl(x["noise"]))
            out = {"action": action.float().contiguous().cpu()}
            if "loss" in cmd[2:]:
                runner.train()
                loss = loss_of(fl(x["loss_noise"]), x["loss_timesteps"])
                loss.backward()
                gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]))
                runner.zero_grad(set_to_none=True)
                out.update(loss=loss.detach().float().reshape(1).cpu(), grad_norm=gnorm.float().reshape(1).cpu())
            save_file(out, cmd[1])
            print(json.dumps({"ok": True}), flush=True)
        elif cmd[0] in ("predict", "train"):
            sync()
            t0 = time.perf_counter()
            predict() if cmd[0] == "predict" else train_step()
            sync()
            print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}), flush=True)
        elif cmd[0] == "memory":
            gpu = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
            print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mb": gpu}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {cmd[0]}"}), flush=True)


if __name__ == "__main__":
    main()
