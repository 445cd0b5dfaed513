"""The 2D RealNVP training step of bench/realnvp2d/main.go in PyTorch eager.

Same model, data and optimizer: 5 affine couplings with 1->64->64->2 ReLU
MLPs (last layer zero-initialised), a standard normal base, batch 256,
Adam(5e-4), zero_grad(set_to_none=True). Prints one JSON line.
"""
import argparse, json, math, resource, time

import torch
import torch.nn as nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--warmup", type=int, default=300)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=256)
ap.add_argument("--foreach", action="store_true", help="Adam(foreach=True)")
ap.add_argument("--device", default="cpu")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
dev = torch.device(args.device)


class Coupling(nn.Module):
    def __init__(self, cond):
        super().__init__()
        self.cond = cond
        self.net = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        nn.init.zeros_(self.net[4].weight)
        nn.init.zeros_(self.net[4].bias)

    def forward(self, x):
        xa = x.narrow(1, self.cond, 1)
        xb = x.narrow(1, 1 - self.cond, 1)
        out = self.net(xa)
        t, s = out.narrow(1, 0, 1), out.narrow(1, 1, 1)
        zb = (xb - t) * torch.exp(-s)
        z = torch.cat([xa, zb], 1) if self.cond == 0 else torch.cat([zb, xa], 1)
        return z, -s.squeeze(1)


class RealNVP2D(nn.Module):
    def __init__(self):
        super().__init__()
        self.couplings = nn.ModuleList([Coupling(i % 2) for i in range(5)])

    def log_prob(self, x):
        logdet = None
        for c in self.couplings:
            x, ld = c(x)
            logdet = ld if logdet is None else logdet + ld
        logp = -0.5 * x.square().reshape(x.shape[0], -1).sum(1) - math.log(2 * math.pi)
        return logp + logdet


model = RealNVP2D().to(dev)
opt = torch.optim.Adam(model.parameters(), lr=5e-4, foreach=True if args.foreach else None)
n = 10000
sign = torch.randint(0, 2, (n, 1), device=dev).float() * 4 - 2
data = torch.randn(n, 2, device=dev) * (2 / 3) + torch.cat([torch.zeros_like(sign), sign], 1)


def step(i):
    off = (i * args.batch) % (n - args.batch)
    x = data.narrow(0, off, args.batch)
    loss = -model.log_prob(x).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


for i in range(args.warmup):
    step(i)
if dev.type == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
for i in range(args.steps):
    step(args.warmup + i)
if dev.type == "cuda":
    torch.cuda.synchronize()
el = time.perf_counter() - t0
with torch.no_grad():
    final = -model.log_prob(data).mean().item()
print(json.dumps({
    "impl": "pytorch" + ("-foreach" if args.foreach else ""), "steps": args.steps, "seconds": el,
    "steps_per_s": args.steps / el, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "final_nll": final, "threads": torch.get_num_threads(), "torch": torch.__version__,
}))
