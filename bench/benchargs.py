"""Command-line flags, torch set-up and the timed training loop shared by
the PyTorch step benchmarks (bench/glow.py, bench/vae32.py,
bench/realnvp.py): the flags of their Go twins, same names, and one JSON
line with the fields of their Go twins.

Eager steps: loss = loss_of(batch); loss.backward(); opt.step();
opt.zero_grad(set_to_none=True); loss.item() (Go reads the loss every
step too).

--cuda-graph: the whole step as one CUDA graph, the way PyTorch's CUDA
graphs documentation ("whole-network capture") shows: the optimizer built
with capturable=True; EAGER_WARMUP eager steps on a side stream (cuDNN,
cuBLAS and the caching allocator get their first calls; data-dependent
initialisation happens there), zero_grad(set_to_none=True), then
torch.cuda.graph(g) around the forward, backward and opt.step() on a
static input; each later step copies its batch into the static input,
replays g and reads the static loss (one host read per step, as the Go
trainer's captured step). The capture itself runs no kernels, so the
first replay is the first step after the eager ones; the untimed steps
(--warmup) count the eager ones and the replays before the timed ones.
"""
import argparse
import json
import math
import resource
import sys
import time

import torch

# Eager steps before the capture, as the Go trainer (train.captureWarmup).
EAGER_WARMUP = 3
# How many images the fixed data set holds, cycled in order, as in Go
# (steploop.imageSetSize).
IMAGES = 1024
# How many of the last timed losses the final loss averages.
TAIL = 20


def parser(doc, steps, batch, optim):
    """An ArgumentParser with the shared flags; steps and batch are the
    script's defaults, optim names its optimizer for the help."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=steps, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (with --cuda-graph at least %d: %d eager steps, then replays)" % (EAGER_WARMUP + 1, EAGER_WARMUP))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--channels", type=int, default=3, help="image channels")
    ap.add_argument("--size", type=int, default=32, help="image size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--foreach", action="store_true", help=optim + "(foreach=True)")
    ap.add_argument("--cuda-graph", action="store_true", help="capture the whole step (forward, backward, " + optim + "(capturable=True)) as one CUDA graph and time its replays")
    ap.add_argument("--profile", type=int, default=0, help="after warm-up, print torch.profiler's op table for this many eager steps to stderr")
    ap.add_argument("--device", default="cpu")
    return ap


def setup(args, min_warmup=0):
    """Threads and seed as the Go side sets them; checks the flags (at least
    min_warmup untimed steps) and returns the device."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if args.cuda_graph:
        if dev.type != "cuda":
            sys.exit("--cuda-graph needs --device cuda (CUDA graphs capture GPU kernels), got --device %s" % args.device)
        if not torch.cuda.is_available():
            sys.exit("--cuda-graph: this torch (%s) sees no CUDA device" % torch.__version__)
        if args.profile:
            sys.exit("--profile profiles eager steps; leave out --cuda-graph")
        if args.warmup < EAGER_WARMUP + 1:
            sys.exit("--cuda-graph needs --warmup at least %d (%d eager steps, then the capture and its first replay), got %d" % (EAGER_WARMUP + 1, EAGER_WARMUP, args.warmup))
    if args.steps < 1 or args.warmup < min_warmup:
        why = " (the first warm-up step initialises data-dependent layers such as ActNorm)" if min_warmup > 0 else ""
        sys.exit("--steps must be positive and --warmup at least %d%s, got %d and %d" % (min_warmup, why, args.steps, args.warmup))
    if args.batch < 1 or args.batch > IMAGES:
        sys.exit("--batch must be in 1..%d, got %d" % (IMAGES, args.batch))
    return dev


def images(args, dev, scale, shift):
    """The fixed set of IMAGES dequantized 8-bit images (k+u)/scale - shift."""
    shape = (IMAGES, args.channels, args.size, args.size)
    return (torch.randint(0, 256, shape, device=dev).float() + torch.rand(shape, device=dev)) / scale - shift


def optimizer(cls, params, lr, args):
    """cls(params, lr), with foreach=True under --foreach and
    capturable=True under --cuda-graph."""
    kw = {"lr": lr, "foreach": True if args.foreach else None}
    if args.cuda_graph:
        kw["capturable"] = True
    try:
        return cls(params, **kw)
    except TypeError as e:
        sys.exit("torch %s: %s(capturable=True) is not there (%s); --cuda-graph needs a torch whose %s has it" % (torch.__version__, cls.__name__, e, cls.__name__))


def train(args, dev, opt, loss_of, data, ready=None):
    """Trains args.warmup untimed then args.steps timed steps of loss_of
    (a scalar loss of a batch) on the batches of data, cycled in order, as
    eager steps or, under --cuda-graph, replays of one captured step.
    ready(), when given, runs after the first step. Returns the wall and
    CPU seconds of the timed steps and their losses."""
    n = data.shape[0]

    def batch(i):
        return data.narrow(0, (i * args.batch) % (n - args.batch + 1), args.batch)

    def eager(x):
        loss = loss_of(x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    def first(i, x):
        loss = eager(x)
        if i == 0 and ready is not None:
            ready()
        return loss

    if not args.cuda_graph:
        def step(i):
            return first(i, batch(i))

        for i in range(args.warmup):
            step(i)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for i in range(args.profile):
                    step(args.warmup + i)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), file=sys.stderr)
    else:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(EAGER_WARMUP):
                first(i, batch(i))
        torch.cuda.current_stream().wait_stream(side)
        static_x = batch(0).clone()
        g = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            static_loss = loss_of(static_x)
            static_loss.backward()
            opt.step()

        def step(i):
            static_x.copy_(batch(i))
            g.replay()
            return static_loss.item()

        for i in range(EAGER_WARMUP, args.warmup):
            step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(args.steps):
        losses.append(step(args.warmup + i))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0, time.process_time() - c0, losses


def final_loss(args, losses):
    """The mean of the last TAIL timed losses; exits when it is not finite."""
    tail = losses[-TAIL:]
    final = sum(tail) / len(tail)
    if not math.isfinite(final):
        sys.exit("the loss is %s after %d steps" % (final, args.warmup + args.steps))
    return final


def report(args, dev, model, seconds, cpu, extra):
    """Prints the JSON line: impl (pytorch, -foreach, -graph), steps/s, CPU
    ms per step, peak RSS, on CUDA the caching allocator's peaks since the
    start (MiB: warm-up and capture included), and extra."""
    impl = "pytorch" + ("-foreach" if args.foreach else "") + ("-graph" if args.cuda_graph else "")
    out = {
        "impl": impl, "steps": args.steps, "seconds": seconds, "steps_per_s": args.steps / seconds,
        "cpu_ms_per_step": 1e3 * cpu / args.steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "params": sum(p.numel() for p in model.parameters()),
    }
    if dev.type == "cuda":
        out["peak_alloc_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
        out["peak_reserved_mb"] = torch.cuda.max_memory_reserved(dev) / 2**20
    out.update(extra)
    print(json.dumps(out))
