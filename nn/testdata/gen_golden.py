"""Golden values for nn's tests, from Debian's PyTorch 1.13.1.

Run: /usr/bin/python3 nn/testdata/gen_golden.py  (writes nn/testdata/golden.safetensors)

- init.*: torch.manual_seed(0), then nn.Linear(3, 4), nn.Conv2d(2, 3, 3),
  nn.ConvTranspose2d(2, 3, 3) created in that order. mollify draws from
  libtorch's generator in the same order, so it must reproduce them exactly.
- adam.* / adamax.*: 5 steps of torch.optim.Adam / Adamax (weight decay
  0.1) on loss = sum((w - target)^2 * scale) from fixed w0.
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
