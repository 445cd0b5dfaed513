#!/usr/bin/python3
"""Golden values for flows' image models, from a PyTorch reference of the
same architecture (Debian's python3-torch 1.13).

    /usr/bin/python3 flows/testdata/gen_golden.py

writes, next to this script:
  params.json          trainable parameter counts of the paper's Glow (with
                       the per-channel prior, and with "_conditional" the
                       conditional one) and RealNVP configurations;
  glow_tiny.safetensors (per-channel prior), glow_tiny_conditional.safetensors,
  glow_cb_tiny.safetensors (N(0, I) priors), realnvp_tiny.safetensors:
                       the weights of a small model (every parameter
                       perturbed, so nothing is zero), an input batch "x"
                       and log p(x) per example in nats ("logprob"; for
                       RealNVP "logprob_train" with batch statistics and
                       "logprob_eval" with running statistics);
  actnorm.safetensors  a batch and the ActNorm parameters its
                       data-dependent init gives.

The modules mirror flows/*.go, parameter names included (a state dict
loads into the Go model unchanged). Tests read these files; they never run
Python.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
LOG2PI = math.log(2 * math.pi)


def sum_per_sample(t):
    return t.reshape(t.shape[0], -1).sum(1)


def squeeze(x):
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


class Squeeze(nn.Module):
    def forward(self, x):
        return squeeze(x), x.new_zeros(x.shape[0])


def checkerboard(h, w, parity, like):
    i = torch.arange(h, device=like.device).view(h, 1)
    j = torch.arange(w, device=like.device).view(1, w)
    m = ((i + j) % 2 == parity).to(like.dtype)
    return m.view(1, 1, h, w)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.register_buffer("initialised", torch.zeros(1))

    def forward(self, x):
        if self.initialised.item() == 0:
            with torch.no_grad():
                self.bias.data.copy_(x.mean(dim=(0, 2, 3), keepdim=True))
                self.logs.data.copy_(torch.log(x.std(dim=(0, 2, 3), keepdim=True) + 1e-6))
                self.initialised.fill_(1)
        z = (x - self.bias) * torch.exp(-self.logs)
        ld = -self.logs.sum() * x.shape[2] * x.shape[3]
        return z, ld.expand(x.shape[0])


class InvConv1x1(nn.Module):
    def __init__(self, c):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))
        p, l, u = torch.linalg.lu(q)
        s = torch.diag(u)
        self.lower = nn.Parameter(l.float())
        self.upper = nn.Parameter(torch.triu(u, 1).float())
        self.log_s = nn.Parameter(s.abs().log().float())
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", s.sign().float())

    def weight(self):
        c = self.lower.shape[0]
        lower = torch.tril(self.lower, -1) + torch.eye(c, device=self.lower.device)
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x):
        c = self.lower.shape[0]
        z = F.conv2d(x, self.weight().view(c, c, 1, 1))
        ld = self.log_s.sum() * x.shape[2] * x.shape[3]
        return z, ld.expand(x.shape[0])


def glow_net(cin, hidden, cout):
    net = nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                        nn.Conv2d(hidden, cout, 3, padding=1))
    nn.init.zeros_(net[4].weight)
    nn.init.zeros_(net[4].bias)
    return net


class ResBlock(nn.Module):
    def __init__(self, mid):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)

    def forward(self, h):
        t = self.conv1(F.relu(self.bn1(h)))
        t = self.conv2(F.relu(self.bn2(t)))
        return h + t


class ResNet(nn.Module):
    def __init__(self, cin, mid, cout, blocks):
        super().__init__()
        self.in_conv = nn.Conv2d(cin, mid, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(mid) for _ in range(blocks)])
        self.out_bn = nn.BatchNorm2d(mid)
        self.out_conv = nn.Conv2d(mid, cout, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def forward(self, x):
        h = self.in_conv(x)
        for b in self.blocks:
            h = b(h)
        return self.out_conv(F.relu(self.out_bn(h)))


class AffineCoupling(nn.Module):
    """z_t = (x_t - shift)·s; shift = out[:, 0::2], raw = out[:, 1::2]."""

    def __init__(self, c, partition, parity, scale, net_builder):
        super().__init__()
        self.c, self.partition, self.parity, self.scale_kind = c, partition, parity % 2, scale
        cin, cout = c, c
        if partition == "channel":
            first = (c + 1) // 2
            cin, cout = (first, c - first) if self.parity == 0 else (c - first, first)
        self.net = net_builder(cin, 2 * cout)
        if scale == "exp":
            self.scale = nn.Parameter(torch.ones(1, cout, 1, 1))

    def params(self, cond):
        out = self.net(cond)
        shift, raw = out[:, 0::2], out[:, 1::2]
        if self.scale_kind == "sigmoid":
            logs = F.logsigmoid(raw + 2).clamp(min=math.log(1e-4))
        else:
            logs = torch.tanh(raw) * self.scale
        return shift, logs

    def forward(self, x):
        if self.partition == "checkerboard":
            mask = checkerboard(x.shape[2], x.shape[3], self.parity, x)
            shift, logs = self.params(x * mask)
            logs = logs * (1 - mask)
            zt = (x - shift) * logs.exp() * (1 - mask)
            return x * mask + zt, sum_per_sample(logs)
        first = (self.c + 1) // 2
        lo, hi = x[:, :first], x[:, first:]
        cond, trans = (lo, hi) if self.parity == 0 else (hi, lo)
        shift, logs = self.params(cond)
        zt = (trans - shift) * logs.exp()
        z = torch.cat([cond, zt], 1) if self.parity == 0 else torch.cat([zt, cond], 1)
        return z, sum_per_sample(logs)


class GlowStep(nn.Module):
    def __init__(self, c, hidden, partition, parity, scale):
        super().__init__()
        self.actnorm = ActNorm(c)
        self.invconv = InvConv1x1(c)
        self.coupling = AffineCoupling(c, partition, parity, scale, lambda i, o: glow_net(i, hidden, o))

    def forward(self, x):
        h, a = self.actnorm(x)
        h, b = self.invconv(h)
        h, c = self.coupling(h)
        return h, a + b + c


def gaussian_log_prob(z, mean, logs):
    return sum_per_sample(-0.5 * ((z - mean) * torch.exp(-logs)) ** 2 - logs - 0.5 * LOG2PI)


class Split(nn.Module):
    """prior: "conditional" (a zero-initialised 3x3 conv of the kept half
    gives z2's mean and log-scale), "per_channel" (z2 has its own GlowBase)
    or None (N(0, I))."""

    def __init__(self, c, prior, hw=None):
        super().__init__()
        self.kept, self.out = (c + 1) // 2, c // 2
        self.prior = self.base = None
        if prior == "conditional":
            self.prior = nn.Conv2d(self.kept, 2 * self.out, 3, padding=1)
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)
        elif prior == "per_channel":
            self.base = GaussianBase((self.out,) + hw, per_channel=True)

    def forward(self, z):
        z1, z2 = z[:, :self.kept], z[:, self.kept:]
        if self.prior is not None:
            h = self.prior(z1)
            return z1, z2, gaussian_log_prob(z2, h[:, 0::2], h[:, 1::2])
        if self.base is not None:
            return z1, z2, self.base(z2)
        return z1, z2, gaussian_log_prob(z2, torch.zeros(()), torch.zeros(()))


class GaussianBase(nn.Module):
    """normflows' GlowBase parametrisation; per_channel: parameters (1,C,1,1)
    as in normflows' GlowBase, otherwise (1,C,H,W)."""

    def __init__(self, shape, per_channel):
        super().__init__()
        pshape = (1, shape[0], 1, 1) if per_channel else (1,) + tuple(shape)
        for n in ["loc", "loc_logs", "log_scale", "log_scale_logs"]:
            setattr(self, n, nn.Parameter(torch.zeros(*pshape)))

    def forward(self, z):
        mean = self.loc * torch.exp(3 * self.loc_logs)
        logs = self.log_scale * torch.exp(3 * self.log_scale_logs)
        return gaussian_log_prob(z, mean, logs)


class StdNormal(nn.Module):
    def forward(self, z):
        return gaussian_log_prob(z, torch.zeros(()), torch.zeros(()))


class Logit(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(p) - torch.log(1 - p)
        return z, sum_per_sample(math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log(1 - p))


class Level(nn.Module):
    def __init__(self, layers, split):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if split is not None:
            self.split = split


class MultiScale(nn.Module):
    def __init__(self, pre, levels, top):
        super().__init__()
        self.pre = pre
        self.levels = nn.ModuleList(levels)
        self.top = top

    def log_prob(self, x):
        h = x
        ld = x.new_zeros(x.shape[0])
        lp = x.new_zeros(x.shape[0])
        if self.pre is not None:
            h, l = self.pre(h)
            ld = ld + l
        for level in self.levels:
            for layer in level.layers:
                h, l = layer(h)
                ld = ld + l
            if hasattr(level, "split"):
                h, _, l = level.split(h)
                lp = lp + l
        return lp + self.top(h) + ld


def glow(shape, levels, depth, hidden, partition="channel", scale="sigmoid", prior="per_channel"):
    """prior: "per_channel" (the authors' normflows Glow: a GlowBase for each
    factored-out half and for the top), "conditional" (conv prior of each
    split, per-element top) or None (every latent N(0, I))."""
    c, h, w = shape
    lv = []
    for l in range(levels):
        c, h, w = 4 * c, h // 2, w // 2
        layers = [Squeeze()]
        for k in range(depth):
            parity = k % 2 if partition == "checkerboard" else 0
            layers.append(GlowStep(c, hidden, partition, parity, scale))
        split = None
        if l < levels - 1:
            split = Split(c, prior, (h, w))
            c = split.kept
        lv.append(Level(layers, split))
    top = StdNormal() if prior is None else GaussianBase((c, h, w), per_channel=prior == "per_channel")
    return MultiScale(None, lv, top)


def realnvp(shape, scales, res_blocks, channels, alpha):
    c, h, w = shape
    mid = channels
    lv = []
    for s in range(scales):
        last = s == scales - 1
        layers = []
        for i in range(4 if last else 3):
            layers.append(AffineCoupling(c, "checkerboard", i % 2, "exp", lambda a, b, m=mid: ResNet(a, m, b, res_blocks)))
        split = None
        if not last:
            layers.append(Squeeze())
            c, h, w = 4 * c, h // 2, w // 2
            for i in range(3):
                layers.append(AffineCoupling(c, "channel", i % 2, "exp", lambda a, b, m=2 * mid: ResNet(a, m, b, res_blocks)))
            split = Split(c, None)
            c = split.kept
            mid *= 2
        lv.append(Level(layers, split))
    return MultiScale(Logit(alpha) if alpha > 0 else None, lv, StdNormal())


def count(m):
    return sum(p.numel() for p in m.parameters())


def save_safetensors(path, tensors):
    """The safetensors layout, without the safetensors package."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dt = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def state(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def perturb(model, scale):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))


def main():
    torch.manual_seed(0)
    counts = {
        "glow_cifar10": count(glow((3, 32, 32), 3, 20, 512)),
        "glow_celeba": count(glow((3, 64, 64), 3, 20, 512)),
        "glow_mnist_small": count(glow((1, 28, 28), 2, 8, 128)),
        "glow_cifar10_conditional": count(glow((3, 32, 32), 3, 20, 512, prior="conditional")),
        "glow_celeba_conditional": count(glow((3, 64, 64), 3, 20, 512, prior="conditional")),
        "realnvp_cifar10": count(realnvp((3, 32, 32), 2, 4, 32, 0.05)),
        "realnvp_celeba": count(realnvp((3, 64, 64), 2, 2, 32, 0.05)),
    }
    with open(os.path.join(HERE, "params.json"), "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
        f.write("\n")

    # ActNorm data-dependent init on a batch with non-trivial statistics.
    torch.manual_seed(1)
    x = torch.randn(8, 4, 3, 3) * torch.tensor([0.5, 2.0, 1.0, 3.0]).view(1, 4, 1, 1) + torch.tensor([1.0, -2.0, 0.0, 5.0]).view(1, 4, 1, 1)
    a = ActNorm(4)
    z, _ = a(x)
    save_safetensors(os.path.join(HERE, "actnorm.safetensors"), {"x": x, "bias": a.bias, "logs": a.logs, "z": z})

    # Tiny Glows: init ActNorm on x, perturb every parameter, log p(x).
    for name, kw in [("glow_tiny", {}), ("glow_tiny_conditional", {"prior": "conditional"}),
                     ("glow_cb_tiny", {"partition": "checkerboard", "scale": "exp", "prior": None})]:
        torch.manual_seed(2)
        m = glow((3, 8, 8), 2, 2, 8, **kw)
        x = torch.randn(4, 3, 8, 8) * 0.7 + 0.1
        m.log_prob(x)
        perturb(m, 0.05)
        with torch.no_grad():
            lp = m.log_prob(x)
        t = {"model." + k: v for k, v in state(m).items()}
        t.update({"x": x, "logprob": lp})
        save_safetensors(os.path.join(HERE, name + ".safetensors"), t)

    # Tiny RealNVP on data in (0,1), running statistics perturbed too.
    torch.manual_seed(3)
    m = realnvp((3, 8, 8), 2, 1, 4, 0.05)
    perturb(m, 0.05)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                mod.running_var.copy_(0.5 + torch.rand_like(mod.running_var))
    x = torch.rand(4, 3, 8, 8)
    t = {"model." + k: v.clone() for k, v in state(m).items()}
    with torch.no_grad():
        m.eval()
        lp_eval = m.log_prob(x)
        m.train()
        lp_train = m.log_prob(x)
    t.update({"x": x, "logprob_eval": lp_eval, "logprob_train": lp_train})
    save_safetensors(os.path.join(HERE, "realnvp_tiny.safetensors"), t)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
