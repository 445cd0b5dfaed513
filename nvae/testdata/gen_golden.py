#!/usr/bin/python3
"""Golden values for the nvae tests, from Debian's PyTorch 1.13.

Run from the repository root:  /usr/bin/python3 nvae/testdata/gen_golden.py

Each section below transcribes one part of NVAE (Vahdat & Kautz, 2020) from
its formulas, independently of the Go code, and writes its own safetensors
file next to this script (one file per section, so that sections can be
added without touching the others' goldens). Tests read the files; they
never run Python.

Sections
  logistic  -> logistic.safetensors: the discretized mixture of logistics
               (NVAE's DiscMixLogistic, RGB with the channel autoregression
               and 1 channel), its continuous density, mean and sampling
               from given uniforms.

To add a section: write gen_<name>() returning (tensors, metadata) and add
it to SECTIONS at the bottom.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


# --- shared: the safetensors writer (the format nn.LoadTensors reads) -------
def write_safetensors(name, tensors, meta):
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
              np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8"}
    header, blobs, off = {}, [], 0
    for n in sorted(tensors):
        a = np.ascontiguousarray(tensors[n].detach().cpu().numpy())
        b = a.tobytes()
        header[n] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    print("wrote", path, off, "bytes of data")


# --- section: logistic ------------------------------------------------------
# Data x in [0,1] on the 256-level grid u/255 is scored in NVAE's space
# y = 2x - 1 in [-1,1], where a bin has half-width 1/255.
#
# Parameters, (B, P, H, W) with M components and C channels:
#   logits   channels [0, M)
#   then per channel c a block of `per` channels: means (M), log-scales (M)
#   and, for RGB only, autoregression coefficients (M), so P = M*(1+3C) = 10M
#   for RGB (NVAE's layout) and P = 3M for one channel.
# log-scales are floored at -7, coefficients pass through tanh.
# RGB means: mu_R = m_R, mu_G = m_G + c0*y_R, mu_B = m_B + c1*y_R + c2*y_G,
# with c0, c1, c2 the coefficients of channel blocks 0, 1, 2 and y the data
# as given (no clamp).
#
# Per channel and component, with z = (y - mu)*exp(-log_s) and
# sigma the logistic CDF:
#   y < -0.999:  log sigma((y - mu + 1/255)/s)           (edge bin: integral from -inf)
#   y >  0.999:  log(1 - sigma((y - mu - 1/255)/s))      (edge bin: integral to +inf)
#   otherwise:   log(sigma(z+) - sigma(z-)) if that difference > 1e-5,
#                else the density at y times the bin width 2/255
#                (log pdf(y) - log 127.5)
# log p(pixel) = logsumexp_k(log_softmax(logits)_k + sum_c log p_c,k).
# NVAE's code uses y > 0.99 for the upper edge, which also sends level 254
# (y = 0.99216) to the upper edge bin; 0.999 (PixelCNN++'s) keeps the 256
# probabilities summing to 1.
#
# Continuous density of x in [0,1] units: log pdf_logistic(y; mu, s) + log 2
# per channel (the Jacobian of y = 2x - 1), mixed the same way.
HALF_BIN = 1.0 / 255.0
LOG_SCALE_MIN = -7.0


def split_params(param, C, M):
    B, P, H, W = param.shape
    per = 3 * M if C == 3 else 2 * M
    assert P == M + C * per
    logits = param[:, :M]
    blocks = param[:, M:].reshape(B, C, per, H, W)
    means = blocks[:, :, :M]
    log_scales = torch.clamp(blocks[:, :, M:2 * M], min=LOG_SCALE_MIN)
    coeffs = torch.tanh(blocks[:, :, 2 * M:3 * M]) if C == 3 else None
    return logits, means, log_scales, coeffs


def cond_means(y, means, coeffs):
    # y (B, C, H, W) -> per component means (B, C, M, H, W)
    if coeffs is None:
        return means
    yk = y.unsqueeze(2)  # B, C, 1, H, W
    r = means[:, 0]
    g = means[:, 1] + coeffs[:, 0] * yk[:, 0]
    b = means[:, 2] + coeffs[:, 1] * yk[:, 0] + coeffs[:, 2] * yk[:, 1]
    return torch.stack([r, g, b], 1)


def logistic_log_pdf(y, mu, log_s):
    z = (y - mu) * torch.exp(-log_s)
    return z - log_s - 2 * F.softplus(z)


def disc_channel_log_probs(y, mu, log_s):
    """Log-probability of each channel under each component, (B, C, M, H, W)."""
    inv_s = torch.exp(-log_s)
    d = y - mu
    up = inv_s * (d + HALF_BIN)
    lo = inv_s * (d - HALF_BIN)
    below = F.logsigmoid(up)          # log CDF at the upper edge
    above = F.logsigmoid(-lo)         # log(1 - CDF) at the lower edge
    mass = torch.sigmoid(up) - torch.sigmoid(lo)
    approx = logistic_log_pdf(y, mu, log_s) + math.log(2 * HALF_BIN)
    middle = torch.where(mass > 1e-5, torch.log(torch.clamp(mass, min=1e-10)), approx)
    return torch.where(y < -0.999, below, torch.where(y > 0.999, above, middle))


def mix(logits, per_channel):
    return torch.logsumexp(F.log_softmax(logits, 1) + per_channel.sum(1), 1)


def disc_log_prob_pixels(param, x, C, M):
    logits, means, log_s, coeffs = split_params(param, C, M)
    y = (2 * x - 1).unsqueeze(2)  # B, C, 1, H, W
    mu = cond_means(2 * x - 1, means, coeffs)
    return mix(logits, disc_channel_log_probs(y, mu, log_s))


def cont_log_prob_pixels(param, x, C, M):
    logits, means, log_s, coeffs = split_params(param, C, M)
    y = (2 * x - 1).unsqueeze(2)
    mu = cond_means(2 * x - 1, means, coeffs)
    return mix(logits, logistic_log_pdf(y, mu, log_s) + math.log(2.0))


def autoregress(mu, coeffs):
    # mu, coeffs (B, C, H, W) in [-1,1] space -> image in [0,1], clamped as NVAE does
    if coeffs is None:
        return torch.clamp(mu, -1, 1) / 2 + 0.5
    r = torch.clamp(mu[:, 0], -1, 1)
    g = torch.clamp(mu[:, 1] + coeffs[:, 0] * r, -1, 1)
    b = torch.clamp(mu[:, 2] + coeffs[:, 1] * r + coeffs[:, 2] * g, -1, 1)
    return torch.stack([r, g, b], 1) / 2 + 0.5


def mixture_mean(param, C, M):
    logits, means, _, coeffs = split_params(param, C, M)
    w = torch.softmax(logits, 1).unsqueeze(1)  # B, 1, M, H, W
    mu = (means * w).sum(2)
    co = (coeffs * w).sum(2) if coeffs is not None else None
    return autoregress(mu, co)


def sample_given(param, C, M, t, u_gumbel, u_logistic):
    logits, means, log_s, coeffs = split_params(param, C, M)
    if t == 0:
        k = torch.argmax(logits, 1)
    else:
        k = torch.argmax(logits / t - torch.log(-torch.log(u_gumbel)), 1)
    sel = F.one_hot(k, M).permute(0, 3, 1, 2).unsqueeze(1).to(means.dtype)  # B, 1, M, H, W
    mu = (means * sel).sum(2)
    s = torch.exp((log_s * sel).sum(2))
    co = (coeffs * sel).sum(2) if coeffs is not None else None
    if t != 0:
        mu = mu + s * t * (torch.log(u_logistic) - torch.log(1 - u_logistic))
    return autoregress(mu, co)


def gen_logistic():
    g = torch.Generator().manual_seed(1413)
    out, meta = {}, {}
    B, H, W = 3, 4, 5
    cases = {"rgb": (3, 10), "gray": (1, 10), "rgb_m3": (3, 3)}
    for name, (C, M) in cases.items():
        per = 3 * M if C == 3 else 2 * M
        P = M + C * per
        param = torch.empty(B, P, H, W, dtype=torch.float64)
        param[:, :M] = 2 * torch.randn(B, M, H, W, generator=g, dtype=torch.float64)
        blocks = param[:, M:].view(B, C, per, H, W)
        blocks[:, :, :M] = 0.7 * torch.randn(B, C, M, H, W, generator=g, dtype=torch.float64)
        # log-scales from -8 (below NVAE's floor of -7) to 0.5: narrow
        # components make the 1e-5 fallback and the floor both occur.
        blocks[:, :, M:2 * M] = -8 + 8.5 * torch.rand(B, C, M, H, W, generator=g, dtype=torch.float64)
        if C == 3:
            blocks[:, :, 2 * M:] = 1.5 * torch.randn(B, C, M, H, W, generator=g, dtype=torch.float64)
        # Data: the grid, both ends forced, then off-grid and out-of-range
        # values (what Gaussian mollification produces).
        u = torch.randint(0, 256, (B, C, H, W), generator=g)
        u[0, :, 0, 0], u[0, :, 0, 1] = 0, 255
        x = u.double() / 255
        odd = torch.tensor([-0.3, 1.4, -0.0006, 1.0004, 0.50196, -2.5, 3.0, 0.002])
        flat = x.view(-1)
        pos = torch.randperm(flat.numel(), generator=g)[:3 * len(odd)]
        flat[pos] = odd.double().repeat(3)
        out[f"{name}.param"] = param
        out[f"{name}.x"] = x
        for dt, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
            p = param.to(dt).requires_grad_(True)
            xx = x.to(dt)
            lp = disc_log_prob_pixels(p, xx, C, M)
            (grad,) = torch.autograd.grad(lp.sum(), p)
            out[f"{name}.{tag}.disc"] = lp.detach()
            out[f"{name}.{tag}.disc_grad"] = grad
            lc = cont_log_prob_pixels(p, xx, C, M)
            (grad,) = torch.autograd.grad(lc.sum(), p)
            out[f"{name}.{tag}.cont"] = lc.detach()
            out[f"{name}.{tag}.cont_grad"] = grad
            out[f"{name}.{tag}.mean"] = mixture_mean(p.detach(), C, M)
        # Which branch each channel/component took, to show the golden
        # covers all of them.
        _, means, log_s, coeffs = split_params(param, C, M)
        y = 2 * x - 1
        mu = cond_means(y, means, coeffs)
        yk = y.unsqueeze(2)
        inv_s = torch.exp(-log_s)
        mass = torch.sigmoid(inv_s * (yk - mu + HALF_BIN)) - torch.sigmoid(inv_s * (yk - mu - HALF_BIN))
        middle = ((yk >= -0.999) & (yk <= 0.999)).expand_as(mass)
        branches = {
            "lower_edge": int((yk < -0.999).expand_as(mass).sum()),
            "upper_edge": int((yk > 0.999).expand_as(mass).sum()),
            "middle_log_mass": int((middle & (mass > 1e-5)).sum()),
            "middle_density": int((middle & (mass <= 1e-5)).sum()),
            "log_scale_floored": int((param[:, M:].view(B, C, per, H, W)[:, :, M:2 * M] < LOG_SCALE_MIN).sum()),
        }
        assert all(v > 0 for v in branches.values()), branches
        # Sampling from given uniforms in NVAE's range (1e-5, 1 - 1e-5).
        ug = 1e-5 + (1 - 2e-5) * torch.rand(B, M, H, W, generator=g, dtype=torch.float64)
        ul = 1e-5 + (1 - 2e-5) * torch.rand(B, C, H, W, generator=g, dtype=torch.float64)
        out[f"{name}.u_gumbel"] = ug
        out[f"{name}.u_logistic"] = ul
        temps = [1.0, 0.6, 0.0]
        for i, t in enumerate(temps):
            out[f"{name}.f64.sample{i}"] = sample_given(param, C, M, t, ug, ul)
        meta[name] = {"channels": C, "mixtures": M, "temperatures": temps, "branches": branches}
    meta["torch"] = torch.__version__
    return out, meta


SECTIONS = {
    "logistic.safetensors": gen_logistic,
}


def main():
    torch.set_num_threads(1)
    for fname, gen in SECTIONS.items():
        tensors, meta = gen()
        write_safetensors(fname, tensors, meta)


if __name__ == "__main__":
    main()
