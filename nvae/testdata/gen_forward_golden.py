#!/usr/bin/python3
"""Golden values for a whole NVAE forward pass, from Debian's PyTorch 1.13.1.

Run from the repository root:  /usr/bin/python3 nvae/testdata/gen_forward_golden.py
(writes nvae/testdata/golden_forward.safetensors)

A small NVAE (model.py AutoEncoder with res_mbconv cells, res_dist and
NVAE's PairedCellAR flows), assembled in PyTorch from the cell modules of
gen_golden_cells.py (checked bit-identical against NVlabs/NVAE's), the
discretized mixture of logistics of gen_golden.py and the KL warm-up and
balancing of gen_golden_objective.py, with the forward pass written from
NVAE's formulas:
  s = stem(2x - 1); pre-process cells; encoder tower (cells, and an
  EncCombiner's input saved after every group but the last); ftr =
  ELU(enc0(ELU(s))); group 0: q = Normal(enc_sampler[0](ftr)),
  p = Normal(0, 0); decoder from prior_ftr0, at every DecCombiner after the
  first: p = Normal(dec_sampler[i-1](ELU(s))), q = Normal(mu_p + mu_q,
  logsig_p + logsig_q) with (mu_q, logsig_q) = enc_sampler[i](x1 +
  conv(s)) of the saved encoder feature; z0 = mu + sigma*eps with the
  stored eps; z = flows(z0) (CellAR pairs: z - mu(z), log-det 0); KL per
  group summed over (C, H, W): log q(z0) - log p(z) with flows, the
  analytic KL without; then post-process cells and the head ELU-conv3x3;
  recon = -log p(x|z) of the discretized logistic mixture.
Normal: mu = 5 tanh(mu/5), sigma = exp(5 tanh(ls/5)) + 0.01.
ARConv2d masks are NVAE's create_conv_mask (neural_ar_operations.py),
written here from its definition.

Module names are the Go model's store names (and NVAE's state-dict
names). The Go model also has buffers with no counterpart here: its step
count (step), the KL balancer's alphas (kl_balancer.*) and the spectral
regulariser's power-iteration vectors (spectral.*); the test keeps its own.

For each case, under "<case>.":
  w.<name>         weights and batch-norm statistics (perturbed off the
                   init so that every one matters; ARConv masks included)
  x                the batch, 8-bit levels k/255
  eps.<g>          the posterior noise of group g (decoder order)
  train.kl         (B, G) each group's KL per example, batch statistics
  train.recon      (B,) -log p(x|z)
  train.logq, train.logp   (B,) summed over groups
  train.total      mean(recon + coeff * balanced KL), lambda = 0
  train.coeff      the KL coefficient at the case's step
  buf.<name>       running statistics after the training pass
  eval.kl, eval.recon      the same pass with those running statistics
Everything is computed in float64 from float32 values; the tensors stored
are float64 (outputs) and float32 (weights, inputs, noise).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden import disc_log_prob_pixels, write_safetensors  # noqa: E402
from gen_golden_cells import Cell, DecCombiner, EncCombiner, WNConv  # noqa: E402
from gen_golden_objective import alphas, balance, kl_coeff  # noqa: E402


# --- NVAE's autoregressive flow cells ---------------------------------------
def channel_mask(c_in, g_in, c_out, zero_diag):
    if g_in == 1:
        mask = np.ones([c_out, c_in], dtype=np.float32)
        if c_out >= c_in:
            r = c_out // c_in
            for i in range(c_in):
                mask[i * r:(i + 1) * r, i + 1:] = 0
                if zero_diag:
                    mask[i * r:(i + 1) * r, i:i + 1] = 0
        else:
            r = c_in // c_out
            for i in range(c_out):
                mask[i:i + 1, (i + 1) * r:] = 0
                if zero_diag:
                    mask[i:i + 1, i * r:(i + 1) * r] = 0
        return mask
    mask = np.ones([c_out, 1], dtype=np.float32)
    return 0 * mask if zero_diag else mask


def conv_mask(k, c_in, g_in, c_out, zero_diag, mirror):
    m = (k - 1) // 2
    mask = np.ones([c_out, c_in // g_in, k, k], dtype=np.float32)
    mask[:, :, m:, :] = 0
    mask[:, :, m, :m] = 1
    mask[:, :, m, m] = channel_mask(c_in, g_in, c_out, zero_diag)
    if mirror:
        mask = np.copy(mask[:, :, ::-1, ::-1])
    return torch.from_numpy(mask)


class ARConv(nn.Conv2d):
    def __init__(self, cin, cout, k, groups=1, bias=False, zero_diag=False, mirror=False, init_coeff=1.0):
        super().__init__(cin, cout, k, 1, (k - 1) // 2, groups=groups, bias=bias)
        self.register_buffer("mask", conv_mask(k, cin, groups, cout, zero_diag, mirror))
        with torch.no_grad():
            w = self.weight * self.mask
            n = torch.sqrt((w * w).sum((1, 2, 3), keepdim=True))
        self.log_weight_norm = nn.Parameter(torch.log(n + 1e-2) + math.log(init_coeff))

    def forward(self, x):
        w = self.weight * self.mask
        n = torch.sqrt((w * w).sum((1, 2, 3), keepdim=True))
        w = torch.exp(self.log_weight_norm) * w / (n + 1e-5)
        return F.conv2d(x, w, self.bias, 1, self.padding, 1, self.groups)


class ARInvertedResidual(nn.Module):
    def __init__(self, lat, mirror):
        super().__init__()
        hid = 6 * lat
        self.convz = nn.Sequential(ARConv(lat, hid, 3, zero_diag=True, mirror=mirror), nn.ELU(),
                                   ARConv(hid, hid, 5, groups=hid, mirror=mirror), nn.ELU())

    def forward(self, z):
        return self.convz(z)


class ELUConv(nn.Module):
    def __init__(self, lat, mirror):
        super().__init__()
        self.conv_0 = ARConv(6 * lat, lat, 1, bias=True, mirror=mirror, init_coeff=0.1)

    def forward(self, x):
        return self.conv_0(F.elu(x))


class CellAR(nn.Module):
    def __init__(self, lat, mirror):
        super().__init__()
        self.conv = ARInvertedResidual(lat, mirror)
        self.mu = ELUConv(lat, mirror)

    def forward(self, z):
        return z - self.mu(self.conv(z))


class PairedCellAR(nn.Module):
    def __init__(self, lat):
        super().__init__()
        self.cell1 = CellAR(lat, False)
        self.cell2 = CellAR(lat, True)

    def forward(self, z):
        return self.cell2(self.cell1(z))


# --- NVAE's distributions -----------------------------------------------------
def soft_clamp5(x):
    return 5.0 * torch.tanh(x / 5.0)


class Normal:
    def __init__(self, mu, ls):
        self.mu = soft_clamp5(mu)
        self.sigma = torch.exp(soft_clamp5(ls)) + 1e-2

    def log_p(self, z):
        u = (z - self.mu) / self.sigma
        return -0.5 * u * u - 0.5 * math.log(2 * math.pi) - torch.log(self.sigma)

    def kl(self, p):
        t1 = (self.mu - p.mu) / p.sigma
        t2 = self.sigma / p.sigma
        return 0.5 * (t1 * t1 + t2 * t2) - 0.5 - torch.log(t2)


# --- the model ----------------------------------------------------------------
def mix_params(channels, mixtures):
    return mixtures * (10 if channels == 3 else 3)


class NVAE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, C, lat = cfg["channels"], cfg["image_channels"], cfg["latents"]
        scales, groups, cells = cfg["scales"], cfg["groups"], cfg["cells_per_group"]
        se = cfg["use_se"]
        self.cfg = cfg
        self.stem = WNConv(C, ch, 3, padding=1, bias=True)
        mult = 1
        self.pre_process = nn.ModuleList()
        for _ in range(cfg["pre_blocks"]):
            for i in range(cfg["pre_cells"]):
                t = "down_pre" if i == cfg["pre_cells"] - 1 else "normal_pre"
                self.pre_process.append(Cell(t, ch * mult, se))
                if t == "down_pre":
                    mult *= 2
        self.enc_tower = nn.ModuleList()
        for s in range(scales):
            for g in range(groups):
                for _ in range(cells):
                    self.enc_tower.append(Cell("normal_enc", ch * mult, se))
                if not (s == scales - 1 and g == groups - 1):
                    self.enc_tower.append(EncCombiner(ch * mult, ch * mult))
            if s < scales - 1:
                self.enc_tower.append(Cell("down_enc", ch * mult, se))
                mult *= 2
        self.enc0 = nn.Sequential(nn.ELU(), WNConv(ch * mult, ch * mult, 1, bias=True), nn.ELU())
        self.enc_sampler, self.dec_sampler, self.nf_cells = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        sm = mult
        for s in range(scales):
            for g in range(groups):
                self.enc_sampler.append(WNConv(ch * sm, 2 * lat, 3, padding=1, bias=True))
                for _ in range(cfg["flows"]):
                    self.nf_cells.append(PairedCellAR(lat))
                if not (s == 0 and g == 0):
                    self.dec_sampler.append(nn.Sequential(nn.ELU(), WNConv(ch * sm, 2 * lat, 1, bias=True)))
            sm //= 2
        down = cfg["pre_blocks"] + scales - 1
        h = cfg["size"] >> down
        self.prior_ftr0 = nn.Parameter(torch.rand(ch * mult, h, h))
        self.dec_tower = nn.ModuleList()
        for s in range(scales):
            for g in range(groups):
                if not (s == 0 and g == 0):
                    for _ in range(cells):
                        self.dec_tower.append(Cell("normal_dec", ch * mult, se))
                self.dec_tower.append(DecCombiner(ch * mult, lat))
            if s < scales - 1:
                self.dec_tower.append(Cell("up_dec", ch * mult, se))
                mult //= 2
        self.post_process = nn.ModuleList()
        for _ in range(cfg["post_blocks"]):
            for i in range(cfg["post_cells"]):
                t = "up_post" if i == 0 else "normal_post"
                self.post_process.append(Cell(t, ch * mult, se))
                if t == "up_post":
                    mult //= 2
        self.image_conditional = nn.Sequential(
            nn.ELU(), WNConv(ch * mult, mix_params(C, cfg["mixtures"]), 3, padding=1, bias=True))

    def flow(self, g, z):
        n = self.cfg["flows"]
        for f in self.nf_cells[g * n:(g + 1) * n]:
            z = f(z)
        return z

    def forward(self, x, eps):
        """Per-group KL (B, G), log q and log p (B,), the decoder output."""
        flows = self.cfg["flows"] > 0
        s = self.stem(2 * x - 1)
        for c in self.pre_process:
            s = c(s)[0]
        feats, combs = [], []
        for c in self.enc_tower:
            if isinstance(c, EncCombiner):
                feats.append(s)
                combs.append(c)
            else:
                s = c(s)[0]
        feats.reverse()
        combs.reverse()
        ftr = self.enc0(s)
        kls, logq, logp = [], 0, 0

        def add(q, p, z0, z):
            nonlocal logq, logp
            lq, lp = q.log_p(z0), p.log_p(z)
            kl = lq - lp if flows else q.kl(p)
            kls.append(kl.sum((1, 2, 3)))
            logq = logq + lq.sum((1, 2, 3))
            logp = logp + lp.sum((1, 2, 3))

        mu, ls = torch.chunk(self.enc_sampler[0](ftr), 2, 1)
        q = Normal(mu, ls)
        z0 = q.mu + q.sigma * eps[0]
        z = self.flow(0, z0)
        add(q, Normal(torch.zeros_like(mu), torch.zeros_like(mu)), z0, z)
        s = self.prior_ftr0.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
        idx = 0
        for c in self.dec_tower:
            if not isinstance(c, DecCombiner):
                s = c(s)[0]
                continue
            if idx > 0:
                mu_p, ls_p = torch.chunk(self.dec_sampler[idx - 1](s), 2, 1)
                f = combs[idx - 1](feats[idx - 1], s)[0]
                mu_q, ls_q = torch.chunk(self.enc_sampler[idx](f), 2, 1)
                q = Normal(mu_p + mu_q, ls_p + ls_q)
                z0 = q.mu + q.sigma * eps[idx]
                z = self.flow(idx, z0)
                add(q, Normal(mu_p, ls_p), z0, z)
            s = c(s, z)[0]
            idx += 1
        for c in self.post_process:
            s = c(s)[0]
        return torch.stack(kls, 1), logq, logp, self.image_conditional(s)


def state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}


B = 4
CASES = {
    # 2 scales (down_enc, up_dec, balancing across scales), flows, 1 channel.
    "gray_flows": dict(image_channels=1, size=8, channels=4, scales=2, groups=2, latents=3, cells_per_group=1,
                       pre_blocks=1, pre_cells=1, post_blocks=1, post_cells=1, flows=1, mixtures=2, use_se=True,
                       step=12, total_steps=100, kl_anneal_portion=0.3, kl_const_portion=1e-4, kl_const_coeff=1e-4),
    # 1 scale of 3 groups, 2 cells per group, analytic KL, RGB autoregression.
    "rgb": dict(image_channels=3, size=8, channels=4, scales=1, groups=3, latents=3, cells_per_group=2,
                pre_blocks=1, pre_cells=2, post_blocks=1, post_cells=2, flows=0, mixtures=3, use_se=True,
                step=1000, total_steps=10000, kl_anneal_portion=0.3, kl_const_portion=1e-4, kl_const_coeff=1e-4),
}


def perturb(m, g):
    """Move every parameter and statistic off its init (seeded by g)."""
    with torch.no_grad():
        for k, p in m.named_parameters():
            if k.endswith("log_weight_norm") or k.endswith(".bias"):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1 and "se." not in k:  # batch-norm scales
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(1 + 0.5 * torch.rand(mod.running_var.shape, generator=g))


def main():
    torch.set_num_threads(1)
    out, meta = {}, {"torch": torch.__version__}
    for i, (name, cfg) in enumerate(CASES.items()):
        cfg = dict(cfg, seed=200 + i, batch=B)
        torch.manual_seed(cfg["seed"])
        g = torch.Generator().manual_seed(cfg["seed"])
        m = NVAE(cfg)
        perturb(m, g)
        for k, v in state(m).items():
            out[f"{name}.w.{k}"] = v
        C, S = cfg["image_channels"], cfg["size"]
        x = torch.randint(0, 256, (B, C, S, S), generator=g).float() / 255
        out[f"{name}.x"] = x
        eps = []
        with torch.no_grad():
            h = S >> (cfg["pre_blocks"] + cfg["scales"] - 1)
            for s in range(cfg["scales"]):
                for _ in range(cfg["groups"]):
                    e = torch.randn(B, cfg["latents"], h, h, generator=g)
                    out[f"{name}.eps.{len(eps)}"] = e
                    eps.append(e.double())
                h *= 2
        m = m.double()
        x64 = x.double()

        def run():
            kl, lq, lp, param = m(x64, eps)
            recon = -disc_log_prob_pixels(param, x64, C, cfg["mixtures"]).sum((1, 2))
            return kl, lq, lp, recon

        m.train()
        with torch.no_grad():
            kl, lq, lp, recon = run()
        coeff = kl_coeff(cfg["step"], cfg["total_steps"], cfg["kl_anneal_portion"], cfg["kl_const_portion"],
                         cfg["kl_const_coeff"])
        assert coeff < 1, "pick a step inside the warm-up, so balancing is on"
        bal, _ = balance(kl, alphas([cfg["groups"]] * cfg["scales"]), coeff)
        out[f"{name}.train.kl"] = kl
        out[f"{name}.train.recon"] = recon
        out[f"{name}.train.logq"] = lq
        out[f"{name}.train.logp"] = lp
        out[f"{name}.train.coeff"] = torch.tensor(coeff, dtype=torch.float64)
        out[f"{name}.train.total"] = (recon + bal).mean()
        for k, v in state(m).items():
            if "running_" in k:
                out[f"{name}.buf.{k}"] = v
        m.eval()
        with torch.no_grad():
            kl, _, _, recon = run()
        out[f"{name}.eval.kl"] = kl
        out[f"{name}.eval.recon"] = recon
        meta[name] = json.dumps(cfg)
        print(name, "KL per group (batch mean):", out[f"{name}.train.kl"].mean(0).tolist(),
              "recon:", out[f"{name}.train.recon"].mean().item())
    write_safetensors("golden_forward.safetensors", out, meta)


if __name__ == "__main__":
    main()
