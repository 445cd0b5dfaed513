#!/usr/bin/python3
"""Golden values for the nvae cell parity test, from Debian's PyTorch 1.13.1.

Run from the repository root:  /usr/bin/python3 nvae/testdata/gen_golden_cells.py
(writes nvae/testdata/golden_cells.safetensors)

A PyTorch transcription, from the formulas, of NVAE's residual cells in its
res_mbconv architecture (NVlabs/NVAE neural_operations.py and model.py),
with NVAE's module names so that the state-dict names are NVAE's:
  - Conv2D: w_o = exp(log_weight_norm_o) * v_o / (||v_o|| + 1e-5), with
    log_weight_norm initialised to log(||v_o|| + 1e-2); optional bias;
    weight norm off in the inverted residuals.
  - batch norm with momentum 0.05 and eps 1e-5 (torch.nn.BatchNorm2d);
    swish x*sigmoid(x); SE x*sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2) with
    max(C//16, 4) hidden units.
  - cells: skip(x) + 0.1*f(x). pre/enc: two BN-swish-conv3x3 (stride 2 in
    the first for down, FactorizedReduce skip). dec/post: BN, 1x1 conv to
    ex*C (ex 6 dec, 3 post), BN, swish, depthwise 5x5, BN, swish, 1x1
    conv, BN; up cells upsample (nearest) first, their skip is bilinear x2
    (align_corners=True) then a 1x1 weight-normalised conv. SE at the end.
  - combiners: enc x1 + conv1x1(x2); dec conv1x1(cat[s, z]).
For each case it stores, under "<case>.":
  init.<name>   the state after torch.manual_seed(seed) and construction
                (the Go cell built after nn.Seed(seed) must equal it)
  w.<name>      the weights and batch-norm buffers the pass uses (perturbed
                off the init so that every parameter matters)
  x (x1, x2 / s, z for combiners), r   input and the cotangent: loss = sum(out*r)
  train.out, train.branch   output and f(x) with batch statistics
  grad.<name>, grad_x        gradients of the training loss
  buf.<name>    running statistics after the training pass
  eval.out, eval.branch      with the updated running statistics
Each case's settings are in the metadata (JSON).

Cross-checked once (not part of the test, NVAE's code is not in this tree)
against NVlabs/NVAE's own model.Cell, EncCombinerCell and DecCombinerCell
on the CPU, their sync batch norms replaced by F.batch_norm: the same
state-dict names (NVAE adds num_batches_tracked, and weight_normalized as
an alias of weight in convs without weight norm) and shapes, the same
initial weights for the same seed, and bit-identical outputs and running
statistics.
"""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

from gen_golden import write_safetensors

BN_MOMENTUM, BN_EPS = 0.05, 1e-5


def swish(x):
    return x * torch.sigmoid(x)


def bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class WNConv(nn.Conv2d):
    def __init__(self, cin, cout, k, stride=1, padding=0, groups=1, bias=False, wn=True):
        super().__init__(cin, cout, k, stride, padding, groups=groups, bias=bias)
        self.wn = wn
        if wn:
            with torch.no_grad():
                n = torch.sqrt((self.weight * self.weight).sum((1, 2, 3), keepdim=True))
            self.log_weight_norm = nn.Parameter(torch.log(n + 1e-2))

    def forward(self, x):
        w = self.weight
        if self.wn:
            n = torch.sqrt((w * w).sum((1, 2, 3), keepdim=True))
            w = torch.exp(self.log_weight_norm) * w / (n + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, 1, self.groups)


class BNWrap(nn.Module):  # NVAE's SyncBatchNorm wrapper adds ".bn"
    def __init__(self, c):
        super().__init__()
        self.bn = bn(c)

    def forward(self, x):
        return self.bn(x)


class Nearest2x(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Bilinear2x(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class BNSwishConv(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.up = stride == -1
        self.bn_act = bn(cin)
        self.conv_0 = WNConv(cin, cout, 3, stride=max(stride, 1), padding=1, bias=True)

    def forward(self, x):
        h = swish(self.bn_act(x))
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv_0(h)


class ConvBNSwish(nn.Module):
    def __init__(self, cin, cout, k, groups=1):
        super().__init__()
        self.conv = nn.Sequential(WNConv(cin, cout, k, padding=(k - 1) // 2, groups=groups, wn=False), bn(cout))

    def forward(self, x):
        return swish(self.conv(x))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, ex, up):
        super().__init__()
        hid = cin * ex
        layers = [Nearest2x()] if up else []
        layers += [BNWrap(cin), ConvBNSwish(cin, hid, 1), ConvBNSwish(hid, hid, 5, groups=hid),
                   WNConv(hid, cout, 1, wn=False), BNWrap(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return self.conv(x)


class FactorizedReduce(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        q = cout // 4
        for i, n in enumerate([q, q, q, cout - 3 * q]):
            setattr(self, f"conv_{i + 1}", WNConv(cin, n, 1, stride=2, bias=True))

    def forward(self, x):
        a = swish(x)
        return torch.cat([self.conv_1(a), self.conv_2(a[:, :, 1:, 1:]), self.conv_3(a[:, :, :, 1:]),
                          self.conv_4(a[:, :, 1:, :])], dim=1)


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = max(c // 16, 4)
        self.se = nn.Sequential(nn.Linear(c, h), nn.ReLU(), nn.Linear(h, c), nn.Sigmoid())

    def forward(self, x):
        return x * self.se(x.mean((2, 3)))[:, :, None, None]


class Cell(nn.Module):
    def __init__(self, cell_type, cin, use_se):
        super().__init__()
        stride = 2 if cell_type.startswith("down") else -1 if cell_type.startswith("up") else 1
        cout = {1: cin, 2: 2 * cin, -1: cin // 2}[stride]
        if stride == 2:
            self.skip = FactorizedReduce(cin, cout)
        elif stride == -1:
            self.skip = nn.Sequential(Bilinear2x(), WNConv(cin, cout, 1))
        else:
            self.skip = nn.Identity()
        if cell_type.endswith(("_pre", "_enc")):
            self._ops = nn.ModuleList([BNSwishConv(cin, cout, stride), BNSwishConv(cout, cout, 1)])
        else:
            ex = 3 if cell_type.endswith("_post") else 6
            self._ops = nn.ModuleList([InvertedResidual(cin, cout, ex, stride == -1)])
        self.se = SE(cout) if use_se else None

    def branch(self, x):
        for op in self._ops:
            x = op(x)
        return self.se(x) if self.se is not None else x

    def forward(self, x):
        f = self.branch(x)
        return self.skip(x) + 0.1 * f, f


class EncCombiner(nn.Module):
    def __init__(self, enc, dec):
        super().__init__()
        self.conv = WNConv(dec, enc, 1, bias=True)

    def forward(self, x1, x2):
        return x1 + self.conv(x2), None


class DecCombiner(nn.Module):
    def __init__(self, c, z):
        super().__init__()
        self.conv = WNConv(c + z, c, 1, bias=True)

    def forward(self, s, z):
        return self.conv(torch.cat([s, z], 1)), None


N, S = 3, 6
CASES = {
    "normal_pre": dict(kind="cell", type="normal_pre", channels=4, use_se=True),
    "down_pre": dict(kind="cell", type="down_pre", channels=2, use_se=True),
    "normal_enc": dict(kind="cell", type="normal_enc", channels=4, use_se=True),
    "normal_enc_nose": dict(kind="cell", type="normal_enc", channels=4, use_se=False),
    "down_enc": dict(kind="cell", type="down_enc", channels=3, use_se=True),
    "normal_dec": dict(kind="cell", type="normal_dec", channels=4, use_se=True),
    "up_dec": dict(kind="cell", type="up_dec", channels=6, use_se=True),
    "normal_post": dict(kind="cell", type="normal_post", channels=4, use_se=True),
    "up_post": dict(kind="cell", type="up_post", channels=4, use_se=True),
    "enc_combiner": dict(kind="enc_combiner", enc=8, dec=6),
    "dec_combiner": dict(kind="dec_combiner", channels=8, latents=3),
}


def build(cfg):
    if cfg["kind"] == "cell":
        return Cell(cfg["type"], cfg["channels"], cfg["use_se"])
    if cfg["kind"] == "enc_combiner":
        return EncCombiner(cfg["enc"], cfg["dec"])
    return DecCombiner(cfg["channels"], cfg["latents"])


def inputs(cfg):
    if cfg["kind"] == "cell":
        return {"x": torch.randn(N, cfg["channels"], S, S)}
    if cfg["kind"] == "enc_combiner":
        return {"x1": torch.randn(N, cfg["enc"], S, S), "x2": torch.randn(N, cfg["dec"], S, S)}
    return {"s": torch.randn(N, cfg["channels"], S, S), "z": torch.randn(N, cfg["latents"], S, S)}


def state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}


def main():
    out, meta = {}, {"torch": torch.__version__}
    for i, (name, cfg) in enumerate(CASES.items()):
        cfg = dict(cfg, seed=100 + i, batch=N, size=S)
        torch.manual_seed(cfg["seed"])
        m = build(cfg)
        for k, v in state(m).items():
            out[f"{name}.init.{k}"] = v
        with torch.no_grad():  # off the init, so that every parameter and buffer matters
            for k, p in m.named_parameters():
                if k.endswith("log_weight_norm") or k.endswith(".bias"):
                    p.add_(0.3 * torch.randn_like(p))
                elif p.dim() == 1:  # batch-norm scales
                    p.copy_(1 + 0.2 * torch.randn_like(p))
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.copy_(0.1 * torch.randn_like(mod.running_mean))
                    mod.running_var.copy_(1 + 0.5 * torch.rand_like(mod.running_var))
        for k, v in state(m).items():
            out[f"{name}.w.{k}"] = v
        xs = inputs(cfg)
        for k, v in xs.items():
            out[f"{name}.{k}"] = v
        first = next(iter(xs))
        xs[first].requires_grad_(True)

        m.train()
        y, f = m(*xs.values())
        r = torch.randn_like(y)
        out[f"{name}.r"] = r
        (y * r).sum().backward()
        out[f"{name}.train.out"] = y.detach()
        if f is not None:
            out[f"{name}.train.branch"] = f.detach()
        out[f"{name}.grad_x"] = xs[first].grad.detach()
        for k, p in m.named_parameters():
            out[f"{name}.grad.{k}"] = p.grad.detach().clone()
        for k, v in state(m).items():
            if "running_" in k:
                out[f"{name}.buf.{k}"] = v
        m.eval()
        with torch.no_grad():
            y, f = m(*xs.values())
        out[f"{name}.eval.out"] = y
        if f is not None:
            out[f"{name}.eval.branch"] = f
        meta[name] = json.dumps(cfg)

    write_safetensors("golden_cells.safetensors", {n: t.detach().to(torch.float32) for n, t in out.items()}, meta)


if __name__ == "__main__":
    main()
