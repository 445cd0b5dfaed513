"""Golden values for nn's tests, from Debian's PyTorch 1.13.1.

Run: /usr/bin/python3 nn/testdata/gen_golden.py  (writes nn/testdata/golden.safetensors)

- init.*: torch.manual_seed(0), then nn.Linear(3, 4), nn.Conv2d(2, 3, 3),
  nn.ConvTranspose2d(2, 3, 3) created in that order. mollify draws from
  libtorch's generator in the same order, so it must reproduce them exactly.
- adam.* / adamax.*: 5 steps of torch.optim.Adam / Adamax (weight decay
  0.1) on loss = sum((w - target)^2 * scale) from fixed w0.
- sched.{adam,adamax}.{nowd,wd}.{w,b}.stepK: 8 steps of torch.optim.Adam /
  Adamax on their default path (single-tensor, capturable=False: the same
  maths as the capturable one, whose bias corrections come from a step
  tensor) with betas (0.9, 0.999), eps 1e-8, weight decay 0 (nowd) or
  0.1 (wd), on two parameters,
  loss = sum((w - target)^2 * scale) + sum((b - bt)^4), the learning rate
  set before each step from sched.lr (param_groups[0]["lr"]).
- clip.*: torch.nn.utils.clip_grad_norm_ of the grads clip.g1, clip.g2 with
  max_norm 1 (clips: clip.max1.*) and 100 (leaves them: clip.max100.*).
"""
import json, os, struct

import numpy as np
import torch
import torch.nn as nn

out = {}
torch.manual_seed(0)
lin = nn.Linear(3, 4)
conv = nn.Conv2d(2, 3, 3)
convt = nn.ConvTranspose2d(2, 3, 3)
for name, m in [("linear", lin), ("conv", conv), ("convt", convt)]:
    out[f"init.{name}.weight"] = m.weight.detach().numpy()
    out[f"init.{name}.bias"] = m.bias.detach().numpy()

w0 = np.array([[0.5, -1.0, 2.0], [0.1, 0.0, -0.3]], dtype=np.float32)
target = np.array([[1.0, 1.0, -1.0], [0.0, 2.0, 0.5]], dtype=np.float32)
scale = np.array([[1.0, 10.0, 0.1], [3.0, 1.0, 100.0]], dtype=np.float32)
out["optim.w0"] = w0
out["optim.target"] = target
out["optim.scale"] = scale
for name, cls, kw in [("adam", torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
                      ("adamax", torch.optim.Adamax, dict(lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1))]:
    w = torch.tensor(w0, requires_grad=True)
    opt = cls([w], **kw)
    for i in range(5):
        opt.zero_grad()
        loss = ((w - torch.tensor(target)) ** 2 * torch.tensor(scale)).sum()
        loss.backward()
        opt.step()
        out[f"{name}.step{i+1}"] = w.detach().numpy().copy()

# Learning rate changing between steps, as a schedule writes it.
lrs = np.array([0.05, 0.02, 0.08, 0.08, 0.01, 0.03, 0.06, 0.04], dtype=np.float32)
b0 = np.array([0.3, -0.2, 1.5, 0.0], dtype=np.float32)
bt = np.array([1.0, -1.0, 0.5, 0.25], dtype=np.float32)
out["sched.lr"] = lrs
out["sched.b0"] = b0
out["sched.bt"] = bt
for name, cls in [("adam", torch.optim.Adam), ("adamax", torch.optim.Adamax)]:
    for tag, wd in (("nowd", 0), ("wd", 0.1)):
        w = torch.tensor(w0, requires_grad=True)
        b = torch.tensor(b0, requires_grad=True)
        opt = cls([w, b], lr=float(lrs[0]), betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
        for i, lr in enumerate(lrs):
            opt.param_groups[0]["lr"] = float(lr)
            opt.zero_grad()
            loss = ((w - torch.tensor(target)) ** 2 * torch.tensor(scale)).sum() + ((b - torch.tensor(bt)) ** 2).pow(2).sum()
            loss.backward()
            opt.step()
            out[f"sched.{name}.{tag}.w.step{i+1}"] = w.detach().numpy().copy()
            out[f"sched.{name}.{tag}.b.step{i+1}"] = b.detach().numpy().copy()

g1 = np.array([[0.3, -1.2, 0.05], [2.0, 0.0, -0.7]], dtype=np.float32)
g2 = np.array([0.1, 0.4, -0.25, 1.1], dtype=np.float32)
out["clip.g1"] = g1
out["clip.g2"] = g2
for max_norm in (1, 100):
    p1 = torch.zeros(2, 3, requires_grad=True)
    p2 = torch.zeros(4, requires_grad=True)
    p1.grad, p2.grad = torch.tensor(g1), torch.tensor(g2)
    norm = torch.nn.utils.clip_grad_norm_([p1, p2], max_norm)
    out[f"clip.max{max_norm}.norm"] = norm.numpy().reshape(1)
    out[f"clip.max{max_norm}.g1"] = p1.grad.numpy().copy()
    out[f"clip.max{max_norm}.g2"] = p2.grad.numpy().copy()

# A safetensors file written by hand (the format is 8 bytes of header length,
# a JSON header, then little-endian data).
names = sorted(out)
header, blobs, off = {}, [], 0
for n in names:
    a = np.ascontiguousarray(out[n], dtype=np.float32)
    b = a.tobytes()
    header[n] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
header["__metadata__"] = {"torch": torch.__version__}
hj = json.dumps(header).encode()
hj += b" " * (-len(hj) % 8)
path = os.path.join(os.path.dirname(__file__), "golden.safetensors")
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
print("wrote", path)
