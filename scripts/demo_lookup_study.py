"""Why the embedded demo's tiny RDT needs thousands of steps: the language -> image lookup, in plain PyTorch.

The demo's task ("pick up the red block" among four coloured blocks) needs a two-step lookup: the instruction's colour
word must steer a cross-attention query towards that colour's image token, whose value says where the block is.
This script trains a minimal stand-in of the tiny RDT (pre-RMSNorm blocks of self-attention, cross-attention with
qk-RMSNorm alternating language / image conditions, GELU MLP; hidden 128, depth 4, 4 heads; the unified 128-slot
action vector with 2 filled slots; fixed sin-cos condition positions) on synthetic scenes shaped like the demo's
palette tokens, and prints how often the predicted chunk ends within 0.1 (of a [-1, 1] table) of the named block
on scenes it never saw. It is independent of rdt-libero's engine, so it tells what the architecture and the
objective cost, not what our code costs.

    python3 scripts/demo_lookup_study.py --target endpoint --objective regression   # the lookup alone
    python3 scripts/demo_lookup_study.py --target path --objective diffusion        # the demo's shape of problem

--target endpoint: the chunk is the named block's position (every token); --target path: the chunk is the 16-step
approach from a state part-way along it (speed 0.1-0.15 per step), as the demo's eef_target_pose chunks are.
--objective diffusion: x0-prediction from noisy chunks, t ~ U(0, 1) (RDT's "sample" target); regression: from
pure noise. Training scenes come from a pool of 120 (30 per colour, like the demo's 120 demonstrations).
"""
import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

D, HEADS, DEPTH, SLOTS, COLOURS, BLOCKS, TOKEN_DIM, ID_DIM, LANG_DIM, VIEWS = 128, 4, 4, 128, 9, 4, 24, 20, 32, 6


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.kv, self.o = nn.Linear(D, D), nn.Linear(D, 2 * D), nn.Linear(D, D)
        self.qn, self.kn = RMSNorm(D // HEADS), RMSNorm(D // HEADS)

    def forward(self, x, c):
        B, N, _ = x.shape
        q = self.qn(self.q(x).view(B, N, HEADS, -1)).transpose(1, 2)
        k, v = self.kv(c).view(B, c.shape[1], 2, HEADS, -1).permute(2, 0, 3, 1, 4)
        return self.o(F.scaled_dot_product_attention(q, self.kn(k), v).transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2, self.n3 = RMSNorm(D), RMSNorm(D), RMSNorm(D)
        self.self_attn, self.cross_attn = Attention(), Attention()
        self.ffn = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(approximate="tanh"), nn.Linear(4 * D, D))

    def forward(self, x, c):
        h = self.n1(x)
        x = x + self.self_attn(h, h)
        x = x + self.cross_attn(self.n2(x), c)
        return x + self.ffn(self.n3(x))


def mlp(i, o):
    return nn.Sequential(nn.Linear(i, D), nn.GELU(approximate="tanh"), nn.Linear(D, o))


def sincos(n):
    p = torch.arange(n)[:, None].float()
    f = torch.exp(-math.log(10000) * torch.arange(0, D, 2).float() / D)
    return torch.cat([torch.sin(p * f), torch.cos(p * f)], 1)


class Policy(nn.Module):
    def __init__(self, tokens):
        super().__init__()
        self.lang_adaptor, self.img_adaptor, self.action_adaptor = mlp(LANG_DIM, D), mlp(TOKEN_DIM, D), mlp(2 * SLOTS, D)
        self.x_pos = nn.Parameter(torch.randn(tokens, D) * 0.02)
        self.lang_pos, self.img_pos = nn.Parameter(sincos(16)), nn.Parameter(sincos(VIEWS * COLOURS))
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.head = nn.Sequential(RMSNorm(D), mlp(D, SLOTS))

    def forward(self, x, lang, img):
        x = self.action_adaptor(x) + self.x_pos
        conds = (self.lang_adaptor(lang) + self.lang_pos[: lang.shape[1]], self.img_adaptor(img) + self.img_pos)
        for i, b in enumerate(self.blocks):
            x = b(x, conds[i % 2])  # even blocks read the language, odd ones the images, as RDT alternates them
        return self.head(x)


class Scenes:
    """Four blocks at random places of a [-1, 1] table; image tokens: per view and palette colour a fixed identity,
    then presence and centroid (the demo palette encoder's layout and scales); the instruction names one block."""

    def __init__(self, gen):
        self.identity = torch.randn(COLOURS, ID_DIM, generator=gen)
        self.vocab = torch.randn(16, LANG_DIM, generator=gen)
        self.pos = torch.randn(16, LANG_DIM, generator=gen) * 0.1
        self.pool = torch.rand(120, BLOCKS, 2, generator=gen) * 2 - 1
        self.pool_goal = torch.arange(120) % BLOCKS

    def batch(self, n, gen, train):
        if train:
            i = torch.randint(0, 120, (n,), generator=gen)
            blocks, goal = self.pool[i], self.pool_goal[i]
        else:
            blocks, goal = torch.rand(n, BLOCKS, 2, generator=gen) * 2 - 1, torch.randint(0, BLOCKS, (n,), generator=gen)
        img = torch.zeros(n, VIEWS, COLOURS, TOKEN_DIM)
        img[..., :ID_DIM] = self.identity
        for v in range(VIEWS):  # view 0 exact, the others (history, wrist) a little off
            seen = blocks + 0.05 * torch.randn(blocks.shape, generator=gen) * (v > 0)
            img[:, v, 2:2 + BLOCKS, ID_DIM] = 0.33
            img[:, v, 2:2 + BLOCKS, ID_DIM + 1:ID_DIM + 3] = 3 * seen
        words = torch.tensor([1, 2, 3, 0, 4]).repeat(n, 1)  # "pick up the <colour> block"
        words[:, 3] = 8 + goal
        lang = self.vocab[words] + self.pos[:5]
        return lang, img.view(n, VIEWS * COLOURS, TOKEN_DIM), blocks[torch.arange(n), goal]


def chunk(target, start, frac, horizon, speed):
    """(n, horizon, 2) approach from part-way (frac) between start and target, at `speed` per step."""
    state = start + (target - start) * frac
    d = target - state
    k = torch.arange(1, horizon + 1).float()[None, :, None]
    return state, state[:, None] + d[:, None] * torch.clamp(k * speed[:, None] / d.norm(dim=-1, keepdim=True).clamp(min=1e-6)[:, None], max=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=["endpoint", "path"], default="path")
    ap.add_argument("--objective", choices=["regression", "diffusion"], default="diffusion")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    scenes, H, B = Scenes(gen), 16, 16
    net = Policy(H + 1)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 40))

    def inputs(n, train):
        lang, img, target = scenes.batch(n, gen, train)
        start = torch.rand(n, 2, generator=gen) * 0.6 - 0.3
        frac = torch.rand(n, 1, generator=gen) if (train and a.target == "path") else torch.zeros(n, 1)
        speed = 0.1 + 0.05 * torch.rand(n, 1, generator=gen) if a.target == "path" else torch.full((n, 1), 1e9)
        state, path = chunk(target, start, frac, H, speed)
        x0 = torch.zeros(n, H + 1, SLOTS)  # token 0: the state; then the chunk (2 of 128 slots filled)
        x0[:, 0, :2], x0[:, 1:, :2] = state, path
        mask = torch.zeros(n, H + 1, SLOTS)
        mask[..., :2] = 1
        return lang, img, x0, mask

    for step in range(a.steps + 1):
        if step % 100 == 0:
            with torch.no_grad():
                lang, img, x0, mask = inputs(512, False)
                x = torch.randn(x0.shape, generator=gen)
                x[:, 0] = x0[:, 0]
                end = net(torch.cat([x, mask], -1), lang, img)[:, -1, :2]
                err = (end - x0[:, -1, :2]).norm(dim=-1)
                print(f"step {step}: held-out scenes ending within 0.1 of the named block {(err < 0.1).float().mean():.2f}, median error {err.median():.3f}", flush=True)
        lang, img, x0, mask = inputs(B, True)
        t = torch.rand(B, 1, 1, generator=gen) if a.objective == "diffusion" else torch.ones(B, 1, 1)
        noisy = torch.sqrt(1 - t) * x0 + torch.sqrt(t) * torch.randn(x0.shape, generator=gen)
        noisy[:, 0] = x0[:, 0]  # the state token is given, not noised
        loss = F.mse_loss(net(torch.cat([noisy, mask], -1), lang, img)[:, 1:], x0[:, 1:])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        warmup.step()


if __name__ == "__main__":
    main()
