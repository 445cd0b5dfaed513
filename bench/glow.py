"""The small-width Glow training step of bench/glow/main.go in PyTorch eager.

Same model, loss and update as the Go program: the modules of
flows/testdata/gen_golden.py (the parity reference of flows.NewGlow:
ActNorm with data-dependent init, LU 1x1 conv, affine coupling with
sigmoid(raw+2) scale and a conv3x3-ReLU-conv1x1-ReLU-conv3x3 net whose last
conv is zero-initialised, learned split priors and top base), 3x32x32,
L=3, K=4, hidden 64, batch 16; loss -mean log p(x) in nats; Adamax(1e-3),
zero_grad(set_to_none=True); 1024 fixed dequantized random images in
[-1,1] cycled in order; loss.item() every step as in Go. Prints one JSON
line with the fields of bench/realnvp2d.py, plus the CPU time per step
(less sensitive than wall time to other load on the machine).
"""
import json, math, os, resource, sys, time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "flows", "testdata"))
from gen_golden import glow  # noqa: E402

import benchargs  # noqa: E402

ap = benchargs.parser(__doc__, steps=100, batch=16, optim="Adamax")
ap.add_argument("--levels", type=int, default=3)
ap.add_argument("--depth", type=int, default=4)
ap.add_argument("--hidden", type=int, default=64)
args = ap.parse_args()
if args.steps < 1 or args.warmup < 1:
    sys.exit("--steps and --warmup must be positive (the first warm-up step initialises ActNorm)")
dev = benchargs.setup(args)

model = glow((args.channels, args.size, args.size), args.levels, args.depth, args.hidden).to(dev)
opt = torch.optim.Adamax(model.parameters(), lr=1e-3, foreach=True if args.foreach else None)
n = 1024
shape = (n, args.channels, args.size, args.size)
data = (torch.randint(0, 256, shape, device=dev).float() + torch.rand(shape, device=dev)) / 128 - 1


def step(i):
    off = (i * args.batch) % (n - args.batch + 1)
    loss = -model.log_prob(data.narrow(0, off, args.batch)).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


for i in range(args.warmup):
    step(i)
if dev.type == "cuda":
    torch.cuda.synchronize()
losses = []
t0, c0 = time.perf_counter(), time.process_time()
for i in range(args.steps):
    losses.append(step(args.warmup + i))
if dev.type == "cuda":
    torch.cuda.synchronize()
el, cpu = time.perf_counter() - t0, time.process_time() - c0
tail = losses[-20:]
final = sum(tail) / len(tail)
if not math.isfinite(final):
    sys.exit(f"the loss is {final} after {args.warmup + args.steps} steps")
dims = args.channels * args.size * args.size
print(json.dumps({
    "impl": "pytorch" + ("-foreach" if args.foreach else ""), "steps": args.steps, "seconds": el,
    "steps_per_s": args.steps / el, "cpu_ms_per_step": 1e3 * cpu / args.steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "final_nll": final, "final_bpd": final / (dims * math.log(2)) + 7, "threads": torch.get_num_threads(),
    "torch": torch.__version__, "params": sum(p.numel() for p in model.parameters()),
}))
