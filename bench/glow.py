"""The Glow training step of bench/glow/main.go in PyTorch.

Same model, loss and update as the Go program: the modules of
flows/testdata/gen_golden.py (the parity reference of flows.NewGlow:
ActNorm with data-dependent init, LU 1x1 conv, affine coupling with
sigmoid(raw+2) scale and a conv3x3-ReLU-conv1x1-ReLU-conv3x3 net whose last
conv is zero-initialised, learned split priors and top base), 3x32x32,
L=3, K=4, hidden 64, batch 16 by default (the paper's: --levels 3 --depth
20 --hidden 512 --batch 64); loss -mean log p(x) in nats; Adamax(1e-3);
1024 fixed dequantized random images in [-1,1] cycled in order. Eager
steps, or with --cuda-graph the whole step captured as one CUDA graph
(bench/benchargs.py says how). Prints one JSON line with the fields of the
Go program.

After the first step, each ActNorm's "initialised" flag moves to the host:
the reference reads it with .item() on every call, a device read per layer
per step that Go makes only until it is set and that a CUDA graph cannot
capture. The numbers are the same.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "flows", "testdata"))
from gen_golden import ActNorm, glow  # noqa: E402

import benchargs  # noqa: E402

ap = benchargs.parser(__doc__, steps=100, batch=16, optim="Adamax")
ap.add_argument("--levels", type=int, default=3)
ap.add_argument("--depth", type=int, default=4)
ap.add_argument("--hidden", type=int, default=64)
args = ap.parse_args()
dev = benchargs.setup(args, min_warmup=1)

model = glow((args.channels, args.size, args.size), args.levels, args.depth, args.hidden).to(dev)
opt = benchargs.optimizer(torch.optim.Adamax, model.parameters(), 1e-3, args)
data = benchargs.images(args, dev, 128, 1)


def flags_to_host():
    for m in model.modules():
        if isinstance(m, ActNorm):
            if m.initialised.item() != 1:
                sys.exit("an ActNorm did not initialise on the first batch")
            m.initialised = m.initialised.cpu()


el, cpu, losses = benchargs.train(args, dev, opt, lambda x: -model.log_prob(x).mean(), data, ready=flags_to_host)
final = benchargs.final_loss(args, losses)
dims = args.channels * args.size * args.size
benchargs.report(args, dev, model, el, cpu, {"final_nll": final, "final_bpd": final / (dims * math.log(2)) + 7})
