#!/usr/bin/python3
"""Writes golden.json for the mollification tests.

Run from the repository root:  /usr/bin/python3 mollification/testdata/gen_golden.py

The schedules transcribe Algorithm 3 (appendix C) of Tran et al. 2023,
"One-Line-of-Code Data Mollification Improves Optimization of
Likelihood-based Generative Models", plus the clip of the sigmoid schedule
to [clip_min, 1] done in the authors' code (data-mollification,
image/experiment.py). The blur transcribes Algorithm 2 (appendix B), with
its `u` typo read as `x`, applied to the last two axes of NCHW arrays. The
Gaussian case uses torch's generator so that the Go code, linked against
the same libtorch (1.13), can reproduce the noise bit for bit.
"""
import json
import math
import os

import numpy as np
import torch
from scipy.fftpack import dct, idct


# --- Algorithm 3 -----------------------------------------------------------
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_schedule(t, T, tau=0.7, start=0, end=3, clip_min=1e-9):
    v_start = sigmoid(start / tau)
    v_end = sigmoid(end / tau)
    out = (v_end - sigmoid((t / T * (end - start) + start) / tau)) / (v_end - v_start)
    return np.clip(out, clip_min, 1.0)  # the authors' code clips; the appendix omits it


def linear_schedule(t, T):
    return 1 - t / T


def cosine_schedule(t, T, ns=0.0002, ds=0.00025):
    return np.cos(((t / T + ns) / (1 + ds)) * np.pi / 2) ** 2


# --- Algorithm 2, for a (..., H, W) array ----------------------------------
def blurring_mollify(x, t):
    H, W = x.shape[-2], x.shape[-1]
    fh = np.pi * np.linspace(0, H - 1, H) / H
    fw = np.pi * np.linspace(0, W - 1, W) / W
    frequencies_squared = fh[:, None] ** 2 + fw[None, :] ** 2
    x_proj = dct(x, axis=-2, norm='ortho')
    x_proj = dct(x_proj, axis=-1, norm='ortho')
    x_proj = np.exp(-frequencies_squared * t) * x_proj
    x_mollified = idct(x_proj, axis=-2, norm='ortho')
    x_mollified = idct(x_mollified, axis=-1, norm='ortho')
    return x_mollified


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def main():
    out = {}

    # Schedules on a grid of t/T, including the reference points.
    T = 1000
    steps = [0, 1, 10, 100, 250, 333, 500, 750, 900, 999, 1000]
    cases = []
    for tau in (0.7, 0.2, 0.9):
        cases.append({"name": "sigmoid", "params": {"tau": tau, "start": 0, "end": 3, "clip_min": 1e-9},
                      "sigma2": flat([sigmoid_schedule(s, T, tau=tau) for s in steps])})
    cases.append({"name": "sigmoid", "params": {"tau": 0.5, "start": -3, "end": 3, "clip_min": 1e-5},
                  "sigma2": flat([sigmoid_schedule(s, T, tau=0.5, start=-3, end=3, clip_min=1e-5) for s in steps])})
    cases.append({"name": "cosine", "params": {"ns": 0.0002, "ds": 0.00025},
                  "sigma2": flat([cosine_schedule(s, T) for s in steps])})
    cases.append({"name": "cosine", "params": {"ns": 0.008, "ds": 0.008},
                  "sigma2": flat([cosine_schedule(s, T, ns=0.008, ds=0.008) for s in steps])})
    cases.append({"name": "linear", "params": {},
                  "sigma2": flat([linear_schedule(s, T) for s in steps])})
    out["schedules"] = {"T": T, "steps": steps, "cases": cases}

    # DCT-II / IDCT (ortho) of a batch, over the last two axes.
    rng = np.random.default_rng(20230601)
    blur = []
    for shape, times in (((2, 3, 8, 8), [0.0, 0.125, 1.0, 32.0]),
                         ((1, 2, 6, 10), [0.5, 4.0])):
        x = rng.standard_normal(shape)
        d = dct(dct(x, axis=-2, norm='ortho'), axis=-1, norm='ortho')
        i = idct(idct(x, axis=-2, norm='ortho'), axis=-1, norm='ortho')
        blur.append({"shape": list(shape), "x": flat(x), "dct2": flat(d), "idct2": flat(i),
                     "times": times, "blurred": [flat(blurring_mollify(x, t)) for t in times]})
    out["blur"] = blur

    # Gaussian mollification with torch's CPU generator:
    # x~ = sqrt(1 - s2) * x + sqrt(s2) * randn_like(x), as in the authors' code.
    gauss = []
    for seed, s2, shape in ((7, 0.188, (256, 2)), (11, 0.9, (2, 3, 4, 4))):
        torch.manual_seed(0)
        x = torch.randn(shape, dtype=torch.float32)
        torch.manual_seed(seed)
        y = math.sqrt(1 - s2) * x + math.sqrt(s2) * torch.randn_like(x)
        assert y.dtype == torch.float32
        gauss.append({"seed": seed, "sigma2": s2, "shape": list(shape),
                      "x": flat(x.numpy()), "y": flat(y.numpy())})
    out["gaussian"] = gauss

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
