#!/usr/bin/python3
"""Golden values for nvae's objective parts, from Debian's PyTorch 1.13.1.

Run from the repository root:  /usr/bin/python3 nvae/testdata/gen_golden_objective.py
(writes nvae/testdata/golden_objective.safetensors)

Written from NVAE's formulas (Vahdat & Kautz 2020; NVlabs/NVAE utils.py,
distributions.py, model.py), not copied from its code:
  kl_coeff      max(min((step - const_step) / anneal_step, 1), min_coeff)
  alpha         kl_balancer_coeff 'square': scale i from the top gets
                (2^i)^2 / groups_i per group, divided by the minimum
  balanced KL   k = mean_b |kl| + 0.01; w = k / alpha * sum(k); w /= mean(w);
                kl = coeff * sum_g kl * w.detach()   (w = 1 once coeff >= 1)
  Normal        mu = 5 tanh(mu/5); sigma = (exp(5 tanh(ls/5)) + 0.01) * temp
  spectral      power iteration v <- normalize(u^T W), u <- normalize(W v),
                F.normalize eps 1e-3; sigma = u^T W v with gradient in W;
                BN loss = sum of max|gamma|
Tensors (float32 unless noted):
  klcoeff.in (N,5) float64 [step, total, anneal_portion, const_portion, min_coeff], klcoeff.out (N) float64
  alpha.<groups> (G) float64 for groups_per_scale joined by '_'
  bal.kl_all (B,G), bal.alpha (G); bal.<c>.kl (B), bal.<c>.w (G), bal.<c>.grad (B,G) for coeff c in COEFFS
  normal.{mu,ls,mu2,ls2,z,eps,mup,lsp,dmu,dls}; normal.t<temp>.{mu,sigma,logp,kl,sample}; normal.res.{mu,sigma}
  spec.w<i>, spec.g<i> (weights, BN scales); spec.<r>x<c>.u0/.v0 (start), .u/.v (after ITERS);
  spec.sigmas (per conv, input order), spec.spectral, spec.bn, spec.grad.w<i>, spec.grad.g<i>
"""
import json
import math

import torch

from gen_golden import write_safetensors

torch.manual_seed(0)
COEFFS = ["0.25", "1"]
ITERS = 4


def kl_coeff(step, total, anneal, const, min_coeff):
    return max(min((step - const * total) / (anneal * total), 1.0), min_coeff)


def alphas(groups):
    n = len(groups)
    out = []
    for i in range(n):
        g = groups[n - i - 1]
        out += [(2 ** i) ** 2 / g] * g
    a = torch.tensor(out, dtype=torch.float64)
    return a / a.min()


def balance(kl_all, alpha, coeff):
    if coeff < 1.0:
        k = kl_all.abs().mean(dim=0, keepdim=True) + 0.01
        w = k / alpha.unsqueeze(0) * k.sum()
        w = w / w.mean(dim=1, keepdim=True)
        w = w.detach()
    else:
        w = torch.ones(1, kl_all.shape[1])
    return coeff * (kl_all * w).sum(dim=1), w.squeeze(0)


def soft_clamp5(x):
    return 5.0 * torch.tanh(x / 5.0)


def normal(mu, ls, temp=1.0):
    sigma = torch.exp(soft_clamp5(ls)) + 1e-2
    if temp != 1.0:
        sigma = sigma * temp
    return soft_clamp5(mu), sigma


def normalize(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-3)


def main():
    out = {}
    cases = [
        # step, total, anneal portion, const portion, min coeff
        (0, 1000, 0.3, 1e-4, 1e-4),
        (1, 1000, 0.3, 1e-4, 1e-4),
        (150, 1000, 0.3, 1e-4, 1e-4),
        (299, 1000, 0.3, 1e-4, 1e-4),
        (300, 1000, 0.3, 1e-4, 1e-4),
        (301, 1000, 0.3, 1e-4, 1e-4),
        (999, 1000, 0.3, 1e-4, 1e-4),
        (50, 1000, 0.3, 0.1, 1e-4),
        (100, 1000, 0.3, 0.1, 1e-4),
        (250, 1000, 0.3, 0.1, 1e-4),
        (400, 1000, 0.3, 0.1, 1e-4),
        (10, 1000, 0.5, 0.0, 0.05),
        (12345, 75000, 0.3, 1e-4, 1e-4),
        (22507, 75000, 0.3, 1e-4, 1e-4),
        (22508, 75000, 0.3, 1e-4, 1e-4),
    ]
    out["klcoeff.in"] = torch.tensor(cases, dtype=torch.float64)
    out["klcoeff.out"] = torch.tensor([kl_coeff(*c) for c in cases], dtype=torch.float64)

    for groups in ([30], [5, 3, 2], [8, 4, 2, 1], [1, 1]):
        out["alpha." + "_".join(map(str, groups))] = alphas(groups)

    alpha = alphas([5, 3, 2]).float()
    kl_all = torch.randn(6, 10) * 3.0
    kl_all[:, 3] *= 20.0  # one group carries most KL
    out["bal.kl_all"], out["bal.alpha"] = kl_all.clone(), alpha
    for c in COEFFS:
        x = kl_all.clone().requires_grad_(True)
        kl, w = balance(x, alpha, float(c))
        kl.sum().backward()
        out[f"bal.{c}.kl"], out[f"bal.{c}.w"], out[f"bal.{c}.grad"] = kl.detach(), w, x.grad

    shape = (4, 8)
    for name in ("mu", "ls", "mu2", "ls2", "mup", "lsp", "dmu", "dls"):
        out["normal." + name] = torch.randn(shape) * 4.0
    out["normal.z"] = torch.randn(shape) * 2.0
    out["normal.eps"] = torch.randn(shape)
    g = lambda n: out["normal." + n]
    for temp in ("1", "0.6"):
        t = float(temp)
        mu, sigma = normal(g("mu"), g("ls"), t)
        mu2, sigma2 = normal(g("mu2"), g("ls2"))
        z = g("z")
        logp = -0.5 * ((z - mu) / sigma) ** 2 - 0.5 * math.log(2 * math.pi) - torch.log(sigma)
        t1, t2 = (mu - mu2) / sigma2, sigma / sigma2
        kl = 0.5 * (t1 * t1 + t2 * t2) - 0.5 - torch.log(t2)
        p = f"normal.t{temp}."
        out[p + "mu"], out[p + "sigma"], out[p + "logp"], out[p + "kl"] = mu, sigma, logp, kl
        out[p + "sample"] = g("eps") * sigma + mu
    out["normal.res.mu"], out["normal.res.sigma"] = normal(g("mup") + g("dmu"), g("lsp") + g("dls"))

    ws = [torch.randn(6, 4, 3, 3) * 0.2, torch.randn(8, 6, 1, 1), torch.randn(6, 4, 3, 3) * 0.1,
          torch.randn(5, 1, 5, 5) * 0.3, torch.zeros(8, 6, 1, 1),
          torch.randn(5, 1, 5, 5) * 1e-5]  # norms below F.normalize's eps
    gs = [torch.randn(6), torch.randn(8) * 2, torch.randn(6)]
    for i, w in enumerate(ws):
        out[f"spec.w{i}"] = w.clone()
        w.requires_grad_(True)
    for i, gm in enumerate(gs):
        out[f"spec.g{i}"] = gm.clone()
        gm.requires_grad_(True)
    groups = {}
    for i, w in enumerate(ws):
        groups.setdefault((w.shape[0], w[0].numel()), []).append(i)
    sigmas = [None] * len(ws)
    spectral = 0.0
    for (r, c), idx in groups.items():
        mats = torch.stack([ws[i].reshape(r, c) for i in idx])
        u = normalize(torch.randn(len(idx), r))
        v = normalize(torch.randn(len(idx), c))
        p = f"spec.{r}x{c}."
        out[p + "u0"], out[p + "v0"] = u.clone(), v.clone()
        with torch.no_grad():
            for _ in range(ITERS):
                v = normalize(torch.bmm(u.unsqueeze(1), mats).squeeze(1))
                u = normalize(torch.bmm(mats, v.unsqueeze(2)).squeeze(2))
        out[p + "u"], out[p + "v"] = u.clone(), v.clone()
        s = torch.bmm(u.unsqueeze(1), torch.bmm(mats, v.unsqueeze(2))).reshape(-1)
        for j, i in enumerate(idx):
            sigmas[i] = s[j]
        spectral = spectral + s.sum()
    bn = sum(gm.abs().max() for gm in gs)
    (spectral + bn).backward()
    out["spec.sigmas"] = torch.stack(sigmas).detach()
    out["spec.spectral"], out["spec.bn"] = spectral.detach(), bn.detach()
    for i, w in enumerate(ws):
        out[f"spec.grad.w{i}"] = w.grad
    for i, gm in enumerate(gs):
        out[f"spec.grad.g{i}"] = gm.grad

    meta = {"torch": torch.__version__, "iters": str(ITERS), "coeffs": json.dumps(COEFFS),
            "weights": str(len(ws)), "bns": str(len(gs))}
    write_safetensors("golden_objective.safetensors",
                      {n: t.detach() if t.dtype == torch.float64 else t.detach().to(torch.float32) for n, t in out.items()}, meta)


if __name__ == "__main__":
    main()
