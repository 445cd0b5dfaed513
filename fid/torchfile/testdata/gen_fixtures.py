#!/usr/bin/python3
"""Fixtures for fid/torchfile, written by Debian's torch 1.13 (/usr/bin/python3).

Run from this directory: /usr/bin/python3 gen_fixtures.py

Every tensor holds exact binary fractions given by formula, so the Go test
checks values exactly without storing them twice:
  base = (arange(n) - 5) / 4 reshaped, then viewed as described below.
"""
import collections
import pickle
import sys

import torch


def ramp(n, dtype):
    return ((torch.arange(n, dtype=torch.float64) - 5) / 4).to(dtype)


def state_dict():
    sd = collections.OrderedDict()
    sd["conv.weight"] = ramp(2 * 3 * 2 * 2, torch.float32).reshape(2, 3, 2, 2)
    sd["bn.running_var"] = ramp(3, torch.float64)
    sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["half"] = ramp(6, torch.float16)
    sd["bf16"] = ramp(4, torch.bfloat16)
    sd["int32"] = torch.arange(-2, 3, dtype=torch.int32)
    sd["uint8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["mask"] = torch.tensor([True, False, True])
    base = ramp(4 * 5, torch.float32).reshape(4, 5)
    sd["view.t"] = base.t()  # shape (5, 4), strides (1, 5): not contiguous
    sd["view.rows"] = base[1:3]  # storage offset 5, shares base's storage
    sd["view.cols"] = base[:, 1::2]  # strides (5, 2), offset 1
    sd["view.base"] = base
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(ramp(3, torch.float32))
    sd._metadata = collections.OrderedDict(conv=dict(version=1))
    return sd


def legacy_with_view(path):
    """A legacy file whose storage is a view (view_metadata not None), as
    PyTorch < 0.4 wrote them; torch 1.13 never emits one, so build it with
    torch.serialization's own constants and check torch.load agrees.
    Root storage: ramp(10); view: elements 2..6 of it; tensor "v": view
    elements 1..3, i.e. ramp(3), ramp(4), ramp(5)."""
    root = ramp(10, torch.float32).storage()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.storage.TypedStorage):
                return ("storage", torch.FloatStorage, "root", "cpu", 10, ("view", 2, 5))
            return None

    class Rebuild:  # pickles as _rebuild_tensor_v2(view, 1, (3,), (1,), False, OrderedDict())
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (root, 1, (3,), (1,), False, collections.OrderedDict()))

    ser = torch.serialization
    sys_info = dict(protocol_version=ser.PROTOCOL_VERSION, little_endian=True,
                    type_sizes=dict(short=ser.SHORT_SIZE, int=ser.INT_SIZE, long=ser.LONG_SIZE))
    with open(path, "wb") as f:
        pickle.dump(ser.MAGIC_NUMBER, f, protocol=2)
        pickle.dump(ser.PROTOCOL_VERSION, f, protocol=2)
        pickle.dump(sys_info, f, protocol=2)
        Pickler(f, protocol=2).dump(collections.OrderedDict(v=Rebuild()))
        pickle.dump(["root"], f, protocol=2)
        f.write((10).to_bytes(8, "little"))
        f.write(ramp(10, torch.float32).numpy().tobytes())
    got = torch.load(path)["v"]
    assert got.tolist() == ramp(10, torch.float32)[3:6].tolist(), got


def main():
    sd = state_dict()
    torch.save(sd, "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(sd, "zip.pt")
    # A training checkpoint: nested dicts and non-tensor leaves.
    torch.save({"model": {"w": ramp(2, torch.float32)}, "epoch": 3, "name": "x"}, "checkpoint.pt")
    # A whole module instead of a state dict.
    torch.save(torch.nn.Identity(), "module_legacy.pt", _use_new_zipfile_serialization=False)
    legacy_with_view("legacy_view.pt")


if __name__ == "__main__":
    main()
