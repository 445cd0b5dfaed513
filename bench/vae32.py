"""The Table 4 VAE training step of bench/vae32/main.go in PyTorch.

Same network and loss as vaes.NewVAE (the Encoder and Decoder are imported
from vaes/testdata/gen_golden.py, the parity reference): four Conv(k4, s2, p1)
-> BatchNorm -> ReLU with 128w..1024w channels, linear heads for mu and
log sigma^2; decoder Linear to 1024w x 8 x 8, ConvT(k4,s2,p1) and
ConvT(k4,s2,p1,op1) each with BatchNorm -> ReLU, then ConvT(k4,s1,p2) to C
channels. Loss: mean over the batch of 0.5*sum((sigmoid(a) - x)^2) plus the
closed-form KL, one z per example. Width 1/4, batch 64 by default
(configs/vae_cifar10.yaml: --width 1 --batch 128); Adam(3e-4); 1024 fixed
dequantized random images cycled in order. Eager steps, or with
--cuda-graph the whole step captured as one CUDA graph (bench/benchargs.py
says how). Prints one JSON line.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vaes", "testdata"))
from gen_golden import Decoder, Encoder  # noqa: E402

import benchargs  # noqa: E402

ap = benchargs.parser(__doc__, steps=60, batch=64, optim="Adam")
ap.add_argument("--latent", type=int, default=256)
ap.add_argument("--width", type=float, default=0.25)
args = ap.parse_args()
dev = benchargs.setup(args)


class VAE(nn.Module):
    def __init__(self, C, S, latent, w):
        super().__init__()
        self.encoder = Encoder(C, S, latent, w)
        self.decoder = Decoder(C, S, latent, w, signed=False)

    def loss(self, x):
        mu, log_var = self.encoder(x)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        a = self.decoder(z)
        recon = (0.5 * (torch.sigmoid(a) - x).square()).sum((1, 2, 3))
        kl = -0.5 * (1 + log_var - mu.square() - log_var.exp()).sum(-1)
        # the terms Go's Loss reports alongside the total
        _ = recon.mean(), kl.mean()
        return (recon + kl).mean()


model = VAE(args.channels, args.size, args.latent, args.width).to(dev)
opt = benchargs.optimizer(torch.optim.Adam, model.parameters(), 3e-4, args)
data = benchargs.images(args, dev, 256, 0)
el, cpu, losses = benchargs.train(args, dev, opt, model.loss, data)
benchargs.report(args, dev, model, el, cpu, {"final_loss": benchargs.final_loss(args, losses)})
