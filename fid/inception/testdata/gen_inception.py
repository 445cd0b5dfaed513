#!/usr/bin/python3
"""Fixtures for fid/inception's Inception-v3 parity tests (inception_test.go).

Run with Debian's /usr/bin/python3 (torch 1.13, torchvision 0.14) from this
directory:  /usr/bin/python3 gen_inception.py

pytorch-fid's network is built by ../../../cmd/fid/export_inception.py (the
script users run to export TorchScript), from torchvision's Inception3 and
pytorch-fid's FIDInceptionA/C/E_1/E_2 blocks. Its real weights are 95 MB, so
two kinds of random weights stand in for them:

  full width   Every BasicConv2d, in sorted name order, draws
                 conv.weight = randn(shape) * sqrt(2 / fan_in)
                 bn.weight   = rand(c) * 0.5 + 0.75
                 bn.bias     = randn(c) * 0.1
                 bn.running_mean = randn(c) * 0.1
                 bn.running_var  = rand(c) * 0.5 + 0.75
               from libtorch's CPU generator after manual_seed(SEED). Go
               draws the same numbers from the same libtorch, so only the
               features are stored (inception_full.npz) and the test
               rebuilds the 22M weights itself.
  reduced      The same architecture with every channel count divided by
               DIV (the RGB input excepted), same draws: small enough to
               commit as files. It is this script's SlimInception, which is
               checked against the torchvision-based network at DIV = 1
               before anything is written. Saved as a state dict in the
               legacy (_use_new_zipfile_serialization=False) and the zip
               serialization, and as TorchScript by export_inception.export.

Writes
  inception_full.npz     images (uint8 levels as float32) and the 64/192/768/2048-d features
                         of the full-width network, plus weight checksums
  inception_slim.npz     the same for the reduced network (and a larger,
                         non-square image that is downsampled)
  inception_slim_legacy.pth, inception_slim_zip.pth, inception_slim_ts.pt
"""
import importlib.util
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "export_inception", os.path.join(HERE, "..", "..", "..", "cmd", "fid", "export_inception.py"))
ei = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ei)

SEED = 20151205
DIV = 16
IMAGE_SEED = 7


# ---- reduced-width copy of pytorch-fid's Inception-v3 (same names) ----

class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def avg3(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class A(nn.Module):
    def __init__(self, d, cin, pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48 // d, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48 // d, 64 // d, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64 // d, 96 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96 // d, 96 // d, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, kernel_size=1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(avg3(x))], 1)


class B(nn.Module):
    def __init__(self, d, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384 // d, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64 // d, 96 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96 // d, 96 // d, kernel_size=3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class C(nn.Module):
    def __init__(self, d, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192 // d, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192 // d, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192 // d, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192 // d, kernel_size=1)

    def forward(self, x):
        b = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b = m(b)
        return torch.cat([self.branch1x1(x), self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                          b, self.branch_pool(avg3(x))], 1)


class D(nn.Module):
    def __init__(self, d, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192 // d, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192 // d, 320 // d, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192 // d, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192 // d, 192 // d, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192 // d, 192 // d, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192 // d, 192 // d, kernel_size=3, stride=2)

    def forward(self, x):
        b = self.branch7x7x3_1(x)
        for m in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = m(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b,
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class E(nn.Module):
    def __init__(self, d, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320 // d, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384 // d, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384 // d, 384 // d, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384 // d, 384 // d, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448 // d, 384 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384 // d, 384 // d, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384 // d, 384 // d, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192 // d, kernel_size=1)

    def forward(self, x):
        b = self.branch3x3_1(x)
        dd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else avg3(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b), self.branch3x3_2b(b),
                          self.branch3x3dbl_3a(dd), self.branch3x3dbl_3b(dd), self.branch_pool(p)], 1)


class SlimInception(nn.Module):
    """pytorch-fid's Inception-v3 with channel counts divided by d; the
    state dict has the same names as torchvision's Inception3."""

    def __init__(self, d):
        super().__init__()
        c = lambda n: n // d  # noqa: E731
        self.Conv2d_1a_3x3 = BasicConv2d(3, c(32), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(c(32), c(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(c(32), c(64), kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(c(64), c(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(c(80), c(192), kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = A(d, c(192), c(32))
        self.Mixed_5c = A(d, c(256), c(64))
        self.Mixed_5d = A(d, c(288), c(64))
        self.Mixed_6a = B(d, c(288))
        self.Mixed_6b = C(d, c(768), c(128))
        self.Mixed_6c = C(d, c(768), c(160))
        self.Mixed_6d = C(d, c(768), c(160))
        self.Mixed_6e = C(d, c(768), c(192))
        self.Mixed_7a = D(d, c(768))
        self.Mixed_7b = E(d, c(1280), False)
        self.Mixed_7c = E(d, c(2048), True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c(2048), 1008 // 8)  # unused by FID; keeps the state dict realistic


def randomize(net, seed):
    """Draws every BasicConv2d's parameters and statistics (see the module
    doc); Go's test does the same draws in the same order."""
    convs = {n: m for n, m in net.named_modules() if hasattr(m, "conv") and hasattr(m, "bn")}
    torch.manual_seed(seed)
    with torch.no_grad():
        for name in sorted(convs):
            m = convs[name]
            w = m.conv.weight
            fan_in = w.shape[1] * w.shape[2] * w.shape[3]
            c = w.shape[0]
            m.conv.weight.copy_(torch.randn(w.shape) * math.sqrt(2.0 / fan_in))
            m.bn.weight.copy_(torch.rand(c) * 0.5 + 0.75)
            m.bn.bias.copy_(torch.randn(c) * 0.1)
            m.bn.running_mean.copy_(torch.randn(c) * 0.1)
            m.bn.running_var.copy_(torch.rand(c) * 0.5 + 0.75)
            m.bn.num_batches_tracked.fill_(1000)
    return sorted(convs)


def checksums(net, names):
    """Sum of each drawn tensor in float64, to tell an RNG mismatch from a
    network mismatch."""
    sd = net.state_dict()
    out = []
    for n in names:
        for p in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            out.append(sd[n + "." + p].double().sum().item())
    return np.array(out)


def images():
    g = torch.Generator().manual_seed(IMAGE_SEED)
    small = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    # Smooth, non-square and larger than 299: downsampled without antialias.
    yy, xx = torch.meshgrid(torch.arange(311.0), torch.arange(320.0), indexing="ij")
    big = torch.stack([128 + 120 * torch.sin(xx / (7 + 3 * k) + yy / (11 + k)) for k in range(3)])
    big = (big + torch.randint(-5, 6, big.shape, generator=g)).clamp(0, 255).to(torch.uint8)[None]
    return small, big


def u8f(u8):
    """uint8 levels stored as float32 (as the tests read them)."""
    return u8.numpy().astype("<f4")


def features(model, u8):
    """What pytorch-fid computes for images loaded by ToTensor (k/255)."""
    with torch.no_grad():
        return model(u8.float().div(255)).numpy()


def main():
    torch.set_num_threads(1)
    small, big = images()

    # Full width: pytorch-fid's network from torchvision, random weights.
    full = ei.fid_inception_v3().eval()
    names = randomize(full, SEED)
    ref = ei.FIDFeatures(full).eval()
    feats = features(ref, small)

    # The reduced copy at DIV = 1 is the same network.
    slim1 = SlimInception(1).eval()
    res = slim1.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}, strict=False)
    assert not res.unexpected_keys and all(k.startswith("fc.") for k in res.missing_keys), res
    got = features(ei.FIDFeatures(slim1).eval(), small)
    err = np.abs(got - feats).max()
    assert err < 1e-5, f"SlimInception(1) differs from pytorch-fid's network by {err}"
    print(f"SlimInception(1) vs torchvision-based network: max |diff| {err:.2e}")

    np.savez_compressed(os.path.join(HERE, "inception_full.npz"), images=u8f(small), features=feats,
                        checksums=checksums(full, names), seed=np.array(float(SEED)))

    slim = SlimInception(DIV).eval()
    names = randomize(slim, SEED)
    with torch.no_grad():
        slim.fc.weight.normal_()
        slim.fc.bias.zero_()
    sd = slim.state_dict()
    torch.save(sd, os.path.join(HERE, "inception_slim_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(sd, os.path.join(HERE, "inception_slim_zip.pth"))
    model = ei.export(slim, os.path.join(HERE, "inception_slim_ts.pt"))
    ts = torch.jit.load(os.path.join(HERE, "inception_slim_ts.pt"))
    for u8 in (small, big):
        a, b = features(model, u8), features(ts, u8)
        assert np.abs(a - b).max() < 1e-5, "TorchScript export differs"
    np.savez_compressed(os.path.join(HERE, "inception_slim.npz"), images=u8f(small), features=features(model, small),
                        big=u8f(big), big_features=features(model, big), checksums=checksums(slim, names),
                        div=np.array(float(DIV)))
    print(f"full features: {feats.shape}, |mean| {np.abs(feats).mean():.3f}; reduced (÷{DIV}): "
          f"{sum(p.numel() for p in slim.parameters())} parameters")


if __name__ == "__main__":
    main()
