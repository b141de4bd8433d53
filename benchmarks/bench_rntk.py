"""Speed of the RNTK Gram matrix: 1000 sequences of length 150, one layer, ReLU, NTK and NNGP.

Run: ``.venv/bin/python benchmarks/bench_rntk.py [--sequences 1000] [--length 150]`` (``make bench``).
In one run, each the best of ``--repeats`` (the machine may be shared): the compiled kernel on one thread and
on all threads (the symmetric Gram computes each pair once), and a vectorised NumPy implementation of the
same recursion over all pairs at once (equal lengths; the full matrix, as such an implementation naturally
computes). neural-tangents is timed only if installed (it is a JAX library, not a dependency).
Reported: seconds and pair-steps per second (pairs x aligned steps).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numba
import numpy as np
from bench_simulator import best_of
from expected import check_ratio, print_versions  # the same folder: benchmarks run as scripts

from meanfield.architectures.elman import rntk
from meanfield.report import software_versions


def numpy_rntk_relu(X, sw=1.0, su=1.0, sb=0.0, sv=1.0):
    """One-layer ReLU RNTK and NNGP, last readout, equal lengths, vectorised over all pairs (M x M)."""
    M, T, m = X.shape
    k = np.zeros((M, M))
    kd = np.zeros((M, M))
    th = np.zeros((M, M))
    kvar = np.zeros(M)
    for t in range(T):
        below = X[:, t] @ X[:, t].T / m
        var = sw * kvar + su * np.diag(below) + sb
        sig = sw * k + su * below + sb
        root = np.sqrt(np.outer(var, var))
        lam = np.clip(sig / root, -1.0, 1.0)
        theta = np.arccos(lam)
        th = sig + sw * kd * th
        k = root * (lam * (np.pi - theta) + np.sqrt(1 - lam * lam)) / (2 * np.pi)
        kd = (np.pi - theta) / (2 * np.pi)
        kvar = var / 2
    return sv * k, sv * (k + kd * th)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=1000)
    parser.add_argument("--length", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (NumPy: one fewer)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_rntk.json"))
    args = parser.parse_args(argv)
    print_versions()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.sequences, args.length, 1))
    M, T = X.shape[:2]
    pair_steps_sym = M * (M + 1) // 2 * T
    threads = numba.config.NUMBA_NUM_THREADS
    rntk(X[:4, :5], kind="both")  # compile / load
    out = {}
    numba.set_num_threads(1)
    out["numba_1t_s"] = best_of(lambda: rntk(X, kind="both"), args.repeats)
    numba.set_num_threads(threads)
    out[f"numba_{threads}t_s"] = best_of(lambda: rntk(X, kind="both"), args.repeats)
    nngp, ntk = rntk(X, kind="both")
    out["numpy_full_matrix_s"] = best_of(lambda: numpy_rntk_relu(X), max(1, args.repeats - 1))
    ref_nngp, ref_ntk = numpy_rntk_relu(X)
    gap = float(max(np.max(np.abs(nngp - ref_nngp)), np.max(np.abs(ntk - ref_ntk))) / np.max(np.abs(ntk)))
    try:
        import neural_tangents  # noqa: F401
        out["neural_tangents"] = "installed but not wired in this benchmark"
    except ImportError:
        out["neural_tangents"] = "not installed"
    rates = {k: pair_steps_sym / v for k, v in out.items() if k.startswith("numba")}
    rates["numpy_full_matrix"] = M * M * T / out["numpy_full_matrix_s"]
    report = dict(benchmark="rntk", sequences=M, length=T, layers=1, activation="relu", threads=threads,
                  seconds=out, pair_steps_per_second=rates,
                  speedup_vs_numpy=out["numpy_full_matrix_s"] / out[f"numba_{threads}t_s"],
                  max_relative_difference_vs_numpy=gap, versions=software_versions())
    for k, v in out.items():
        print(f"{k:24s} {v if isinstance(v, str) else f'{v:8.3f} s'}")
    for k, v in rates.items():
        print(f"{k:24s} {v:.3g} pair-steps/s")
    print(f"speed-up over NumPy: {report['speedup_vs_numpy']:.1f}x; max relative difference {gap:.1e}")
    check_ratio("rntk", "numpy / numba all threads", f"{M} x {T}", report["speedup_vs_numpy"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
