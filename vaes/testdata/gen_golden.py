#!/usr/bin/python3
"""Golden values for the vaes parity test, from Debian's PyTorch 1.13.1.

Run from the repository root:  /usr/bin/python3 vaes/testdata/gen_golden.py
(writes vaes/testdata/golden.safetensors)

An independent PyTorch transcription of the five models on tiny Table 4
networks (width 1/128, latent 3): torch.nn modules named as in the Go store,
pythae's loss formulas (VAE, beta-VAE, IWAE, VAE-IAF), and Caterini et al.
2018's Algorithm 1 for the HVAE. For each case it stores, under "<case>.":
  w.<name>     weights and batch-norm buffers before the pass (Go loads these)
  x_u8, eps, gamma  the batch (uint8; x = u/255, or u/127.5 - 1 when signed) and the noise
  train.<term> loss terms in training mode (batch statistics)
  grad.<name>  gradient of the training loss
  buf.<name>   batch-norm running statistics after the training pass
  eval.<term>  loss terms with running statistics, same noise
Hyper-parameters of each case are in the metadata (JSON).
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def ch(n, w):
    return max(1, int(round(n * w)))


class Encoder(nn.Module):
    def __init__(self, C, S, latent, w):
        super().__init__()
        chans = [C] + [ch(n, w) for n in (128, 256, 512, 1024)]
        for i in range(4):
            setattr(self, f"conv{i}", nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1))
            setattr(self, f"bn{i}", nn.BatchNorm2d(chans[i + 1]))
        flat = chans[4] * (S // 16) ** 2
        self.mu = nn.Linear(flat, latent)
        self.logvar = nn.Linear(flat, latent)

    def forward(self, x):
        h = x
        for i in range(4):
            h = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h)))
        h = h.reshape(x.shape[0], -1)
        return self.mu(h), self.logvar(h)


# (channels before width or 0 for the image, kernel, stride, padding, output padding)
SPECS = {
    32: [(512, 4, 2, 1, 0), (256, 4, 2, 1, 1), (0, 4, 1, 2, 0)],
    64: [(512, 5, 2, 2, 1), (256, 5, 2, 2, 1), (128, 5, 2, 1, 0), (0, 4, 1, 2, 0)],
}


class Decoder(nn.Module):
    def __init__(self, C, S, latent, w, signed):
        super().__init__()
        self.ch0 = ch(1024, w)
        self.fc = nn.Linear(latent, self.ch0 * 64)
        self.n = len(SPECS[S])
        self.signed = signed
        cin = self.ch0
        for i, (n, k, s, p, op) in enumerate(SPECS[S]):
            out = ch(n, w) if n else C
            setattr(self, f"convt{i}", nn.ConvTranspose2d(cin, out, k, s, p, output_padding=op))
            if i < self.n - 1:
                setattr(self, f"bn{i}", nn.BatchNorm2d(out))
            cin = out

    def forward(self, z):
        h = self.fc(z).reshape(z.shape[0], self.ch0, 8, 8)
        for i in range(self.n):
            h = getattr(self, f"convt{i}")(h)
            if i < self.n - 1:
                h = F.relu(getattr(self, f"bn{i}")(h))
        return h

    def mean(self, a):
        return torch.tanh(a) if self.signed else torch.sigmoid(a)


class Base(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, S, L, w = cfg["channels"], cfg["size"], cfg["latent"], cfg["width"]
        self.encoder = Encoder(C, S, L, w)
        self.decoder = Decoder(C, S, L, w, cfg["range"] == "signed")

    def recon(self, z, x):
        # pythae: 0.5 * mse summed, or BCE on the sigmoid output, per example
        a = self.decoder(z)
        n = x.shape[0]
        if self.cfg["recon"] == "bce":
            return F.binary_cross_entropy(torch.sigmoid(a).reshape(n, -1), x.reshape(n, -1), reduction="none").sum(-1)
        return 0.5 * F.mse_loss(self.decoder.mean(a).reshape(n, -1), x.reshape(n, -1), reduction="none").sum(-1)


def log_q(z, mu, log_var):  # pythae's log N(z; mu, var) without the 2pi term
    return (-0.5 * (log_var + (z - mu) ** 2 / log_var.exp())).sum(-1)


def log_p(z):
    return (-0.5 * z ** 2).sum(-1)


def vae_terms(m, x, noise, beta):
    mu, log_var = m.encoder(x)
    z = mu + torch.exp(0.5 * log_var) * noise["eps"]
    recon = m.recon(z, x)
    kld = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp(), dim=-1)
    t = {"recon": recon.mean(), "kl": kld.mean()}
    if beta == 1:
        t["total"] = (recon + kld).mean()
    else:
        t["total"] = (recon + beta * kld).mean()
        t["neg_elbo"] = (recon + kld).mean()
    return t


def iwae_terms(m, x, noise, K):
    mu, log_var = m.encoder(x)
    B, L = mu.shape
    mu = mu.unsqueeze(1).repeat(1, K, 1)
    log_var = log_var.unsqueeze(1).repeat(1, K, 1)
    z = mu + torch.exp(0.5 * log_var) * noise["eps"]
    xr = x.unsqueeze(1).repeat(1, K, 1, 1, 1).reshape(B * K, *x.shape[1:])
    recon = m.recon(z.reshape(B * K, L), xr).reshape(B, K)
    kld = log_q(z, mu, log_var) - log_p(z)
    log_w = -(recon + kld)
    w_tilde = F.softmax(log_w, dim=-1).detach()
    surrogate = (-(w_tilde * log_w).sum(1)).mean()
    bound = torch.logsumexp(log_w, 1) - math.log(K)
    # the Go loss is -mean(bound); its gradient equals the surrogate's, so
    # the gradient is taken from the surrogate here.
    return {"total": -bound.mean(), "recon": recon.mean(), "kl": kld.mean(), "bound": bound.mean(), "_grad": surrogate}


class MaskedLinear(nn.Linear):
    def __init__(self, deg_in, deg_out, strict):
        super().__init__(len(deg_in), len(deg_out))
        d_in, d_out = torch.tensor(deg_in), torch.tensor(deg_out)
        m = (d_out[:, None] > d_in[None, :]) if strict else (d_out[:, None] >= d_in[None, :])
        self.register_buffer("mask", m.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    def __init__(self, D, hidden):
        super().__init__()
        deg = list(range(1, D + 1))
        prev = deg
        for l, h in enumerate(hidden):
            hd = [1 + k % (D - 1) for k in range(h)]
            setattr(self, f"hidden{l}", MaskedLinear(prev, hd, False))
            prev = hd
        self.nh = len(hidden)
        self.mu = MaskedLinear(prev, deg, True)
        self.s = MaskedLinear(prev, deg, True)

    def forward(self, x):
        h = x
        for l in range(self.nh):
            h = F.relu(getattr(self, f"hidden{l}")(h))
        return self.mu(h), self.s(h)


class VAEIAF(Base):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.flow = nn.ModuleList([MADE(cfg["latent"], [cfg["iaf_units"]] * cfg["iaf_layers"]) for _ in range(cfg["iaf_blocks"])])


def iaf_terms(m, x, noise):
    mu, log_var = m.encoder(x)
    z0 = mu + torch.exp(0.5 * log_var) * noise["eps"]
    y, logdet = z0, torch.zeros(x.shape[0])
    for b, made in enumerate(m.flow):
        if b > 0:
            y = y.flip(dims=(1,))
        mm, s = made(y)
        y = y * s.exp() + mm
        logdet = logdet + s.sum(-1)
    recon = m.recon(y, x)
    kld = log_q(z0, mu, log_var) - log_p(y) - logdet
    return {"total": (recon + kld).mean(), "recon": recon.mean(), "kl": kld.mean(), "log_det": logdet.mean()}


class HVAE(Base):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.eps_lf = nn.Parameter(torch.full((cfg["latent"],), cfg["step_size"]))


def hvae_terms(m, x, noise):
    """Caterini et al. 2018, Algorithm 1 (fixed tempering)."""
    K, beta0 = m.cfg["lf_steps"], m.cfg["beta_zero"]
    mu, log_var = m.encoder(x)
    eps0, gamma = noise["eps"], noise["gamma"]
    z = mu + torch.exp(0.5 * log_var) * eps0
    rho = gamma / math.sqrt(beta0)
    eps = m.eps_lf

    def grad_U(z):
        recon = m.recon(z, x)
        U = recon + 0.5 * (z ** 2).sum(-1)
        g, = torch.autograd.grad(U.sum(), z, create_graph=True)
        return recon, g

    def sqrt_beta(k):
        return 1 / ((1 - 1 / math.sqrt(beta0)) * k ** 2 / K ** 2 + 1 / math.sqrt(beta0))

    _, g = grad_U(z)
    z0 = z
    for k in range(1, K + 1):
        rho_half = rho - eps / 2 * g
        z = z + eps * rho_half
        recon, g = grad_U(z)
        rho_new = rho_half - eps / 2 * g
        rho = sqrt_beta(k - 1) / sqrt_beta(k) * rho_new
    log_p_bar = -recon + log_p(z) + log_p(rho)
    log_q_bar = log_q(z0, mu, log_var) + log_p(gamma)
    kl = log_q(z0, mu, log_var) - log_p(z)
    mom = log_p(gamma) - log_p(rho)
    return {"total": -(log_p_bar - log_q_bar).mean(), "recon": recon.mean(), "kl": kl.mean(), "momentum": mom.mean()}


CASES = {
    "vae32": dict(model="vae", channels=3, size=32, latent=3, width=1 / 128, recon="mse", range="unit"),
    "beta_vae32": dict(model="beta_vae", channels=1, size=32, latent=3, width=1 / 128, recon="bce", range="unit", beta=0.1),
    "iwae32": dict(model="iwae", channels=3, size=32, latent=3, width=1 / 128, recon="mse", range="signed", k=3),
    "vae_iaf32": dict(model="vae_iaf", channels=3, size=32, latent=3, width=1 / 128, recon="mse", range="unit",
                      iaf_blocks=2, iaf_layers=3, iaf_units=8),
    "hvae32": dict(model="hvae", channels=3, size=32, latent=3, width=1 / 128, recon="mse", range="unit",
                   lf_steps=2, step_size=0.05, beta_zero=0.3),
    "vae64": dict(model="vae", channels=3, size=64, latent=3, width=1 / 128, recon="mse", range="unit"),
}


def main():
    BATCH = 3

    out, meta = {}, {"torch": torch.__version__}
    torch.manual_seed(0)
    for name, cfg in CASES.items():
        m = {"vae": Base, "beta_vae": Base, "iwae": Base, "vae_iaf": VAEIAF, "hvae": HVAE}[cfg["model"]](cfg)
        with torch.no_grad():  # move off PyTorch's defaults so batch norm and the heads matter
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.weight.copy_(1 + 0.2 * torch.randn_like(mod.weight))
                    mod.bias.copy_(0.2 * torch.randn_like(mod.bias))
                    mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                    mod.running_var.copy_(1 + 0.5 * torch.rand_like(mod.running_var))
        C, S, L = cfg["channels"], cfg["size"], cfg["latent"]
        # 8-bit images, stored as bytes: x = u/255 (unit) or u/127.5 - 1 (signed)
        u8 = torch.randint(0, 256, (BATCH, C, S, S), dtype=torch.uint8)
        x = u8.float() / 127.5 - 1 if cfg["range"] == "signed" else u8.float() / 255
        noise = {"eps": torch.randn(BATCH, cfg["k"], L) if cfg["model"] == "iwae" else torch.randn(BATCH, L)}
        if cfg["model"] == "hvae":
            noise["gamma"] = torch.randn(BATCH, L)
        sd = {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
        for k, v in sd.items():
            out[f"{name}.w.{k}"] = v
        out[f"{name}.x_u8"] = u8
        for k, v in noise.items():
            out[f"{name}.{k}"] = v

        def terms():
            if cfg["model"] in ("vae", "beta_vae"):
                return vae_terms(m, x, noise, cfg.get("beta", 1))
            if cfg["model"] == "iwae":
                return iwae_terms(m, x, noise, cfg["k"])
            if cfg["model"] == "vae_iaf":
                return iaf_terms(m, x, noise)
            return hvae_terms(m, x, noise)

        m.train()
        t = terms()
        t.pop("_grad", t["total"]).backward()
        for k, v in t.items():
            out[f"{name}.train.{k}"] = v.detach()
        for k, p in m.named_parameters():
            out[f"{name}.grad.{k}"] = p.grad.detach().clone()
        for k, v in m.state_dict().items():
            if "running_" in k:
                out[f"{name}.buf.{k}"] = v.detach().clone()
        m.eval()
        t = terms()
        t.pop("_grad", None)
        for k, v in t.items():
            out[f"{name}.eval.{k}"] = v.detach()
        meta[name] = json.dumps(cfg)

    names = sorted(out)
    header, blobs, off = {}, [], 0
    for n in names:
        a = out[n].numpy()
        dt = "U8" if a.dtype == np.uint8 else "F32"
        a = np.ascontiguousarray(a, dtype=np.uint8 if dt == "U8" else np.float32)
        b = a.tobytes()
        header[n] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = meta
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    print("wrote", path, off, "bytes of data")


if __name__ == "__main__":
    main()
