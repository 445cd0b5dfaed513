"""Command-line flags and torch set-up shared by the PyTorch step benchmarks
(bench/glow.py, bench/vae32.py): the flags of their Go twins, same names."""
import argparse

import torch


def parser(doc, steps, batch, optim):
    """An ArgumentParser with the shared flags; steps and batch are the
    script's defaults, optim names its optimizer for --foreach's help."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--foreach", action="store_true", help=optim + "(foreach=True)")
    ap.add_argument("--device", default="cpu")
    return ap


def setup(args):
    """Threads and seed as the Go side sets them; returns the device."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch.device(args.device)
