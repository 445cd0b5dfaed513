#!/usr/bin/python3
"""Statistics files written by numpy 1.24 (Debian /usr/bin/python3), for
fid's LoadStats/SaveStats tests (statsfile_test.go).

Run from this directory: /usr/bin/python3 gen_stats_files.py
Values are exact binary fractions so tests can state them by formula:
a[i] = (i - 3) / 8 in C order for every array.
"""
import numpy as np


def ramp(shape, dtype="<f8"):
    n = int(np.prod(shape))
    return ((np.arange(n) - 3) / 8).reshape(shape).astype(dtype)


# pytorch-fid's layout (mu (d,), sigma (d,d) float64) with d = 8, np.savez:
# stored members.
np.savez("stats_d8.npz", mu=ramp((8,)), sigma=ramp((8, 8)))
# np.savez_compressed (pytorch-fid's --save-stats): deflated members; here
# float32, and sigma in Fortran order.
np.savez_compressed("stats_d8_f4_fortran.npz", mu=ramp((8,), "<f4"),
                    sigma=np.asfortranarray(ramp((8, 8), "<f4")))

for name in ("stats_d8.npz", "stats_d8_f4_fortran.npz"):
    with np.load(name) as f:
        assert (f["mu"] == ramp((8,))).all() and (f["sigma"] == ramp((8, 8))).all(), name
