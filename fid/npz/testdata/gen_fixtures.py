#!/usr/bin/python3
"""Fixtures for fid/npz tests, written by numpy 1.24 (Debian /usr/bin/python3).

Run from this directory: /usr/bin/python3 gen_fixtures.py
Values are exact binary fractions so tests can state them by formula:
a[i] = (i - 3) / 8 in C order for every array.
"""
import numpy as np


def ramp(shape, dtype="<f8"):
    n = int(np.prod(shape))
    return ((np.arange(n) - 3) / 8).reshape(shape).astype(dtype)


# pytorch-fid layout (mu (d,), sigma (d,d) float64) with d = 8.
np.savez("stats_d8.npz", mu=ramp((8,)), sigma=ramp((8, 8)))
# savez_compressed: deflated members, float32, 0-d and 3-d arrays.
np.savez_compressed("compressed.npz", f4=ramp((2, 3, 4), "<f4"), scalar=ramp(()), empty=ramp((0, 5)))
with open("v1.npy", "wb") as f:
    np.lib.format.write_array(f, ramp((3, 5)), version=(1, 0))
with open("v2.npy", "wb") as f:
    np.lib.format.write_array(f, ramp((3, 5)), version=(2, 0))
np.save("fortran.npy", np.asfortranarray(ramp((3, 5))))
np.save("int64.npy", np.arange(4, dtype="<i8"))
np.save("bigendian.npy", ramp((4,), ">f8"))
