#!/usr/bin/python3
"""Export pytorch-fid's Inception-v3 as a TorchScript module for `fid -inception`.

    python3 cmd/fid/export_inception.py pt_inception-2015-12-05-6726825d.pth inception.pt
    go run ./cmd/fid -inception inception.pt PATH1 PATH2

Needs torch and torchvision (not pytorch-fid: its network is rebuilt here,
as pytorch_fid/inception.py builds it). The exported module takes images in
[0, 1], shape (N, 3, H, W), and does pytorch-fid's preprocessing itself
(bilinear resize to 299x299 without align_corners or antialias, then 2x-1).
It returns (N, 3072): the features of pytorch-fid's four blocks (64, 192,
768 and 2048 channels), each adaptive-average-pooled to 1x1, concatenated.

The weights file is pytorch-fid's GitHub release "fid_weights":
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

fid/inception/testdata/gen_inception.py imports this file, so the committed test
module is exported by the same code.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/"
                   "fid_weights/pt_inception-2015-12-05-6726825d.pth")
BLOCK_DIMS = (64, 192, 768, 2048)


# pytorch-fid's patched blocks (pytorch_fid/inception.py, v0.3.0): the
# TensorFlow graph's average pools exclude the padding, and Mixed_7c pools
# with a max pool.
class FIDInceptionA(torchvision.models.inception.InceptionA):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(torchvision.models.inception.InceptionC):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = self.branch7x7dbl_1(x)
        b = self.branch7x7dbl_2(b)
        b = self.branch7x7dbl_3(b)
        b = self.branch7x7dbl_4(b)
        branch7x7dbl = self.branch7x7dbl_5(b)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class FIDInceptionE_1(torchvision.models.inception.InceptionE):
    def pool(self, x):
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        branch_pool = self.branch_pool(self.pool(x))
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionE_2(FIDInceptionE_1):
    # pytorch-fid's last block max-pools where E_1 average-pools.
    def pool(self, x):
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


def fid_inception_v3():
    """pytorch-fid's fid_inception_v3() without loading weights."""
    net = torchvision.models.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class FIDFeatures(nn.Module):
    """pytorch-fid's InceptionV3(output_blocks=[0, 1, 2, 3]) plus the
    adaptive average pooling of fid_score.get_activations, concatenated."""

    def __init__(self, net):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3,
                          nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                          net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e),
            nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))),
        ])

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1))
        return torch.cat(outs, 1)


def export(net, path):
    """Traces FIDFeatures(net) in eval mode and saves it to path."""
    model = FIDFeatures(net).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.rand(2, 3, 299, 299))
    traced.save(path)
    return model


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} pt_inception-2015-12-05-6726825d.pth OUT.pt\n(weights: {FID_WEIGHTS_URL})")
    net = fid_inception_v3()
    net.load_state_dict(torch.load(argv[1], map_location="cpu"))
    export(net, argv[2])
    print(f"wrote {argv[2]}: images in [0, 1] (N, 3, H, W) -> (N, 3072) features")


if __name__ == "__main__":
    main(sys.argv)
