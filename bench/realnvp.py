"""The multi-scale RealNVP training step of bench/realnvp/main.go in PyTorch.

Same model, loss and update as the Go program: realnvp() of
flows/testdata/gen_golden.py (the parity reference of flows.NewRealNVP:
logit preprocessing with alpha 0.05, per scale three checkerboard affine
couplings, a squeeze and three channel-wise couplings, then a split; four
checkerboard couplings at the last scale; s = exp(scale * tanh(raw)),
ResNet coupling networks with batch norm and 32 feature maps at the first
scale, twice that after each squeeze). Sizes of
configs/realnvp_cifar10.yaml: 2 scales, 4 residual blocks, 3x32x32, batch
64; loss -mean log p(x) in nats with batch statistics; Adam(1e-3); 1024
fixed uniformly dequantized random images (k+u)/256 cycled in order.
Eager steps, or with --cuda-graph the whole step captured as one CUDA graph
(bench/benchargs.py says how). Prints one JSON line.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "flows", "testdata"))
from gen_golden import realnvp  # noqa: E402

import benchargs  # noqa: E402

ap = benchargs.parser(__doc__, steps=20, batch=64, optim="Adam")
ap.add_argument("--scales", type=int, default=2)
ap.add_argument("--res-blocks", type=int, default=4)
ap.add_argument("--hidden", type=int, default=32, help="feature maps of the first scale's coupling networks")
ap.add_argument("--logit-alpha", type=float, default=0.05)
args = ap.parse_args()
dev = benchargs.setup(args)

model = realnvp((args.channels, args.size, args.size), args.scales, args.res_blocks, args.hidden, args.logit_alpha).to(dev)
model.train()
opt = benchargs.optimizer(torch.optim.Adam, model.parameters(), 1e-3, args)
data = benchargs.images(args, dev, 256, 0)
el, cpu, losses = benchargs.train(args, dev, opt, lambda x: -model.log_prob(x).mean(), data)
final = benchargs.final_loss(args, losses)
dims = args.channels * args.size * args.size
extra = {"final_nll": final}
if not args.cuda_graph:  # as in Go, whose captured loss is in logit space
    extra["final_bpd"] = final / (dims * math.log(2)) + 8
benchargs.report(args, dev, model, el, cpu, extra)
