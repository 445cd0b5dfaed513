"""Times the kernels behind the oneDNN transposed-convolution backward of
nn.ConvTranspose2d (patch 0006) on the three decoder layers of the Table 4
VAE at width 1/4, batch 64, 32x32 output, in PyTorch on the same libtorch.

For each layer: the forward, native (F.conv_transpose2d) against oneDNN
(the input gradient of a convolution); the input and the weight gradient,
native (convolution_backward, transposed) against oneDNN (conv2d(g, W) and
the weight gradient of that convolution with x as its output gradient).
Checks that each pair agrees, then prints mean ms per call.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/convt_kernels.py
"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
CB = torch.ops.aten.convolution_backward


def ms(f, n=10):
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e3


def close(a, b):
    return (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()


# (batch, in, out, input size, kernel, stride, padding, output padding)
LAYERS = [(64, 256, 128, 8, 4, 2, 1, 0), (64, 128, 64, 16, 4, 2, 1, 1), (64, 64, 3, 33, 4, 1, 2, 0)]
print("| layer | forward native | forward oneDNN | dx native | dx oneDNN | dW native | dW oneDNN |")
print("|---|---|---|---|---|---|---|")
for B, cin, cout, h, k, s, p, op in LAYERS:
    x = torch.randn(B, cin, h, h)
    w = torch.randn(cin, cout, k, k) * 0.05
    y = F.conv_transpose2d(x, w, None, s, p, op)
    g = torch.randn_like(y)
    st, pd, dl = [s, s], [p, p], [1, 1]
    fwd_native = lambda: F.conv_transpose2d(x, w, None, s, p, op)
    fwd_onednn = lambda: CB(x, torch.empty(y.shape), w, None, st, pd, dl, False, [0, 0], 1, [True, False, False])[0]
    dx_native = lambda: CB(g, x, w, None, st, pd, dl, True, [op, op], 1, [True, False, False])[0]
    dx_onednn = lambda: F.conv2d(g, w, None, s, p)
    dw_native = lambda: CB(g, x, w, None, st, pd, dl, True, [op, op], 1, [False, True, False])[1]
    dw_onednn = lambda: CB(x, g, w, None, st, pd, dl, False, [0, 0], 1, [False, True, False])[1]
    for a, b in [(fwd_onednn, fwd_native), (dx_onednn, dx_native), (dw_onednn, dw_native)]:
        assert close(a(), b()), "oneDNN and native disagree"
    t = [ms(f) for f in (fwd_native, fwd_onednn, dx_native, dx_onednn, dw_native, dw_onednn)]
    print(f"| {cin}→{cout}, {h}→{y.shape[-1]} | " + " | ".join(f"{v:.1f}" for v in t) + " |")
