#!/usr/bin/python3
"""Time pytorch-fid's Fréchet distance (scipy.linalg.sqrtm) at d = 2048 on
the matrices fid's Go benchmark uses (golden case "d2048" of
fid/testdata/gen_golden.py: 4096 synthetic feature rows per side).

    /usr/bin/python3 bench/fid/scipy_frechet.py            # from the repo root
    go test ./fid -run '^$' -bench 'FrechetDistance2048$' -benchtime 5x

Run both on the same, otherwise idle machine; the Go number is ns/op.
"""
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fid", "testdata"))
import gen_golden  # noqa: E402


def main(repeats=5):
    name, d, a, b = next(c for c in gen_golden.SYNTHETIC if c[0] == "d2048")
    x1 = gen_golden.features(a[0], a[1], d, a[2], a[3])
    x2 = gen_golden.features(b[0], b[1], d, b[2], b[3])
    mu1, s1 = np.mean(x1, axis=0), np.cov(x1, rowvar=False)
    mu2, s2 = np.mean(x2, axis=0), np.cov(x2, rowvar=False)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fid = gen_golden.calculate_frechet_distance(mu1, s1, mu2, s2)
        times.append(time.perf_counter() - t)
    print(f"pytorch-fid formula (scipy {__import__('scipy').__version__}, numpy {np.__version__}), d={d}: "
          f"FID {fid:.10f}; {repeats} runs: min {min(times):.3f} s, median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
