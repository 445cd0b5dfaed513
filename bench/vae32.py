"""The Table 4 VAE training step of bench/vae32/main.go in PyTorch eager.

Same network and loss as vaes.NewVAE (the Encoder and Decoder are imported
from vaes/testdata/gen_golden.py, the parity reference): four Conv(k4, s2, p1)
-> BatchNorm -> ReLU with 128w..1024w channels, linear heads for mu and
log sigma^2; decoder Linear to 1024w x 8 x 8, ConvT(k4,s2,p1) and
ConvT(k4,s2,p1,op1) each with BatchNorm -> ReLU, then ConvT(k4,s1,p2) to C
channels. Loss: mean over the batch of 0.5*sum((sigmoid(a) - x)^2) plus the
closed-form KL, one z per example. Adam(3e-4), zero_grad(set_to_none=True),
1024 fixed dequantized random images cycled in order, loss.item() every
step as in Go. Prints one JSON line.
"""
import json, os, resource, sys, time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vaes", "testdata"))
from gen_golden import Decoder, Encoder  # noqa: E402

import benchargs  # noqa: E402

ap = benchargs.parser(__doc__, steps=60, batch=64, optim="Adam")
ap.add_argument("--latent", type=int, default=256)
ap.add_argument("--width", type=float, default=0.25)
ap.add_argument("--profile", type=int, default=0, help="after warm-up, print torch.profiler's op table for this many steps to stderr")
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
opt = torch.optim.Adam(model.parameters(), lr=3e-4, foreach=True if args.foreach else None)
n = 1024
shape = (n, args.channels, args.size, args.size)
data = (torch.randint(0, 256, shape, device=dev).float() + torch.rand(shape, device=dev)) / 256
losses = []


def step(i):
    off = (i * args.batch) % (n - args.batch + 1)
    loss = model.loss(data.narrow(0, off, args.batch))
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(loss.item())


for i in range(args.warmup):
    step(i)
if args.profile:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.profile):
            step(args.warmup + i)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), file=sys.stderr)
losses.clear()
if dev.type == "cuda":
    torch.cuda.synchronize()
t0, c0 = time.perf_counter(), time.process_time()
for i in range(args.steps):
    step(args.warmup + i)
if dev.type == "cuda":
    torch.cuda.synchronize()
el, cpu = time.perf_counter() - t0, time.process_time() - c0
tail = losses[-20:]
print(json.dumps({
    "impl": "pytorch" + ("-foreach" if args.foreach else ""), "steps": args.steps, "seconds": el,
    "steps_per_s": args.steps / el, "cpu_ms_per_step": 1e3 * cpu / args.steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "final_loss": sum(tail) / len(tail), "threads": torch.get_num_threads(), "torch": torch.__version__,
    "params": sum(p.numel() for p in model.parameters()),
}))
