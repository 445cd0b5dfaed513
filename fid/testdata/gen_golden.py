#!/usr/bin/python3
"""Golden values for fid's statistics and Fréchet distance tests.

Run with Debian's /usr/bin/python3 (numpy 1.24, scipy 1.10) from this
directory:  /usr/bin/python3 gen_golden.py

Writes
  frechet_golden.json  synthetic cases: features from a counter-based
                       splitmix64 generator that fid's tests reimplement
                       bit-exactly (so d = 2048 needs no stored matrices);
                       checksums of np.mean/np.cov and pytorch-fid's FID.
  frechet_np.npz       small SPD pairs from numpy's RNG (stored, float64) and
                       edge cases; their expected values are in the JSON.
"""
import json

import numpy as np
from scipy import linalg


def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0 src/pytorch_fid/fid_score.py, verbatim but for the
    print and the asserts."""
    mu1 = np.atleast_1d(mu1)
    mu2 = np.atleast_1d(mu2)
    sigma1 = np.atleast_2d(sigma1)
    sigma2 = np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError('Imaginary component {}'.format(m))
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return (diff.dot(diff) + np.trace(sigma1)
            + np.trace(sigma2) - 2 * tr_covmean)


def details(mu1, sigma1, mu2, sigma2):
    """The FID, or the error pytorch-fid raises, plus sqrtm diagnostics."""
    out = {}
    try:
        out["fid"] = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    except ValueError as e:
        out["error"] = str(e)
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    out["sqrtm_finite"] = bool(np.isfinite(covmean).all())
    out["sqrtm_complex"] = bool(np.iscomplexobj(covmean))
    if out["sqrtm_finite"] and out["sqrtm_complex"]:
        out["max_imag_diag"] = float(np.max(np.abs(np.diagonal(covmean).imag)))
    return out


def splitmix_uniform(seed, start, count):
    """u_i in [0,1) for i = start..start+count-1 of stream seed:
    z = splitmix64 finaliser of seed + (i+1)·0x9E3779B97F4A7C15, u = (z>>11)·2⁻⁵³."""
    i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def features(seed, n, d, decay, shift):
    """n×d rows: x_ij = 2^−⌊j·decay/d⌋·(u_ij + 0.5·u_i,(j+1)%d) + shift with
    u = 2·uniform − 1: a well-conditioned linear map of iid noise (the
    covariance has full rank when n > d). Only the two additions round, so Go
    reproduces it bit for bit."""
    u = splitmix_uniform(seed, 0, n * d).reshape(n, d) * 2 - 1
    s = 2.0 ** -np.floor(np.arange(d) * decay / d)
    return s * (u + 0.5 * np.roll(u, -1, axis=1)) + shift


def sample_positions(d, count=16):
    return [((k * 7919) % d, (k * 104729 + 3) % d) for k in range(count)]


def checks(x):
    mu = np.mean(x, axis=0)
    sigma = np.cov(x, rowvar=False)
    d = len(mu)
    return mu, sigma, {
        "mu_sum": float(mu.sum()),
        "mu_head": [float(v) for v in mu[:4]],
        "sigma_trace": float(np.trace(sigma)),
        "sigma_sum": float(sigma.sum()),
        "sigma_frob": float(np.linalg.norm(sigma)),
        "sigma_max_abs": float(np.abs(sigma).max()),
        "sigma_samples": [float(sigma[i, j]) for i, j in sample_positions(d)],
    }


SYNTHETIC = [
    # name, d, (seed, n, decay, shift) for each set
    ("d8", 8, (1, 100, 3, 0.0), (2, 100, 0, 0.25)),
    ("d32", 32, (3, 300, 4, 0.0), (4, 200, 1, 0.1)),
    ("d128", 128, (5, 1000, 6, 0.0), (6, 700, 2, 0.25)),
    ("d512", 512, (7, 1500, 8, 0.0), (8, 2000, 1, 0.25)),
    ("d2048", 2048, (9, 4096, 6, 0.0), (10, 4096, 3, 0.25)),
    # fewer samples than dimensions: Σ1 has rank 499
    ("d2048_rank499", 2048, (11, 500, 6, 0.0), (12, 4096, 3, 0.25)),
    # both rank-deficient (ranks 499 and 699)
    ("d2048_ranks499_699", 2048, (13, 500, 4, 0.0), (14, 700, 6, 0.25)),
]


def main():
    golden = {"synthetic": [], "numpy": []}
    for name, d, a, b in SYNTHETIC:
        x1 = features(a[0], a[1], d, a[2], a[3])
        x2 = features(b[0], b[1], d, b[2], b[3])
        mu1, s1, c1 = checks(x1)
        mu2, s2, c2 = checks(x2)
        case = {
            "name": name, "d": d,
            "a": {"seed": a[0], "n": a[1], "decay": a[2], "shift": a[3], "checks": c1},
            "b": {"seed": b[0], "n": b[1], "decay": b[2], "shift": b[3], "checks": c2},
        }
        case.update(details(mu1, s1, mu2, s2))
        golden["synthetic"].append(case)
        print(name, {k: v for k, v in case.items() if k not in ("a", "b")})

    rng = np.random.default_rng(20240607)
    arrays = {}

    def spd(d, k, spread):
        a = rng.standard_normal((d, k)) * np.exp(spread * rng.standard_normal(d))[:, None]
        return a @ a.T / k

    for name, d, k1, k2, spread in [
        ("np8", 8, 20, 30, 0.0),
        ("np32", 32, 64, 40, 1.0),
        ("np64_ill", 64, 200, 200, 3.0),  # variances over ~6 decades
        ("np64_rank10", 64, 10, 12, 0.5),  # complex sqrtm, imag below 1e-3
    ]:
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.5
        s1, s2 = spd(d, k1, spread), spd(d, k2, spread)
        for key, v in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
            arrays[name + "_" + key] = v
        case = {"name": name, "d": d}
        case.update(details(mu1, s1, mu2, s2))
        golden["numpy"].append(case)
        print(name, case)

    # Σ1·Σ2 nilpotent: sqrtm fails (NaN), pytorch-fid adds 1e-6·I and then
    # raises "Imaginary component". Σ2 is not positive semidefinite.
    s1 = np.array([[1.0, 0.0], [0.0, 0.0]])
    s2 = np.array([[0.0, 1.0], [1.0, 0.0]])
    for key, v in (("mu1", np.zeros(2)), ("sigma1", s1), ("mu2", np.zeros(2)), ("sigma2", s2)):
        arrays["nilpotent_" + key] = v
    case = {"name": "nilpotent", "d": 2}
    case.update(details(np.zeros(2), s1, np.zeros(2), s2))
    golden["numpy"].append(case)
    print("nilpotent", case)

    np.savez("frechet_np.npz", **arrays)
    with open("frechet_golden.json", "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
