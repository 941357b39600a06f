# The PyTorch side of `npm run bench:engine`: the same RDT block as bench/rdt_block.ts, written the
# way the official code and timm 1.0.3 write it, timed on command so the two sides can interleave.
# Protocol (stdin, one command a line; one JSON line answers each):
#   check          -> max |ours - torch| of the forward output, and the state-dict key check
#   fwd N          -> N forward times (ms, no_grad)
#   step N         -> N forward+backward+AdamW-step times (ms)
#   quit           -> peak RSS (bytes), then exit
import json, sys, time, resource
import torch
import torch.nn as nn
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
D, H = cfg['hidden'], cfg['heads']
hd = D // H


class RmsNorm(nn.Module):  # timm 1.0.3 RmsNorm without apex: var-based (see rdt-spec 1.4)
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        v = torch.var(x, dim=(-1,), keepdim=True)
        x = x * torch.rsqrt(v + self.eps)
        return x * self.weight


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D)
        self.q_norm = RmsNorm(hd)
        self.k_norm = RmsNorm(hd)
        self.proj = nn.Linear(D, D)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D, D)
        self.kv = nn.Linear(D, 2 * D)
        self.q_norm = RmsNorm(hd)
        self.k_norm = RmsNorm(hd)
        self.proj = nn.Linear(D, D)

    def forward(self, x, c, mask=None):
        B, N, C = x.shape
        _, L, _ = c.shape
        q = self.q(x).reshape(B, N, H, hd).permute(0, 2, 1, 3)
        kv = self.kv(c).reshape(B, L, 2, H, hd).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if mask is not None:
            mask = mask.reshape(B, 1, 1, L).expand(-1, -1, N, -1)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(x.permute(0, 2, 1, 3).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(D, D)
        self.act = nn.GELU(approximate='tanh')
        self.fc2 = nn.Linear(D, D)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RDTBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = RmsNorm(D)
        self.attn = Attention()
        self.cross_attn = CrossAttention()
        self.norm2 = RmsNorm(D)
        self.ffn = Mlp()
        self.norm3 = RmsNorm(D)

    def forward(self, x, c, mask=None):
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm2(x), c, mask)
        return x + self.ffn(self.norm3(x))


def load(name, shape, dtype=torch.float32):
    with open(f"{cfg['dir']}/{name}.bin", 'rb') as f:
        return torch.frombuffer(bytearray(f.read()), dtype=dtype).reshape(shape).clone()


block = RDTBlock()
manifest = json.load(open(f"{cfg['dir']}/manifest.json"))
keys_ok = list(block.state_dict().keys()) == [k for k, _ in manifest['weights']]
block.load_state_dict({k: load('w_' + k, s) for k, s in manifest['weights']})
x = load('x', manifest['x'])
c = load('c', manifest['c']).requires_grad_(True)
mask = load('mask', manifest['mask'], torch.bool)
target = load('target', manifest['x'])
opt = torch.optim.AdamW(block.parameters(), lr=1e-4, weight_decay=0.01)


def fwd():
    with torch.no_grad():
        block(x, c, mask)


def step():
    loss = F.mse_loss(block(x, c, mask), target)
    loss.backward()
    opt.step()
    opt.zero_grad()


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == 'check':
        with torch.no_grad():
            o = block(x, c, mask)
        ours = load('ours_out', manifest['x'])
        print(json.dumps({'maxAbsDiff': (o - ours).abs().max().item(), 'keysMatch': keys_ok}), flush=True)
    elif cmd[0] == 'fwd':
        print(json.dumps({'ms': timed(fwd, int(cmd[1]))}), flush=True)
    elif cmd[0] == 'step':
        print(json.dumps({'ms': timed(step, int(cmd[1]))}), flush=True)
    elif cmd[0] == 'quit':
        print(json.dumps({'peakRss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}), flush=True)
        break
