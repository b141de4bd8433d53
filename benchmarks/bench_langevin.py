"""Where a Langevin step of the Bayesian muP RNN/DNN spends its time (why the sampler is NumPy).

Run: ``.venv/bin/python benchmarks/bench_langevin.py [--widths 256 512 1024]`` (``make bench``).
In one run, per width (T = 2, P = 4 sequences, linear, endpoint targets): one full sampler step, and
its parts measured alone: the forward + backward pass (BLAS products) and the normal draws of one step
(numpy's ziggurat). Reported: milliseconds, and each part as a fraction of the full step; the rest is
the update arithmetic and the Python overhead, which is what compiling the loop could remove. Also the
same normal draws from Numba's generator in a compiled loop (what a Numba sampler would use).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numba
import numpy as np
from bench_simulator import best_of  # the same folder: benchmarks run as scripts
from expected import print_versions

from meanfield.architectures.mup.network import MuPNetwork, endpoint_readout, langevin
from meanfield.report import software_versions


@numba.njit(cache=True)
def numba_normals(out):
    for i in range(out.size):
        out.flat[i] = np.random.standard_normal()  # noqa: NPY002 (Numba's own generator inside njit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="results/bench_langevin.json")
    args = parser.parse_args(argv)
    print_versions()
    rng = np.random.default_rng(0)
    P, T, d = 4, 2, 4
    X = np.zeros((P, T + 1, d))
    X[:, 0] = rng.normal(size=(P, d))
    y, R = rng.normal(size=P), endpoint_readout(T, P)
    Y = np.where(R, y[None, :], 0.0)
    rows = []
    for N in args.widths:
        net = MuPNetwork(N, d, T, seed=1)
        k = args.steps
        full = best_of(lambda: langevin(net, X, y, beta=1.0, step_size=0.01, n_steps=k, burn_in=k - 1, thin=1)) / k
        grad = best_of(lambda: [net.data_gradient(X, Y, R, 1.0) for _ in range(k)]) / k
        sizes = [p.shape for p in net.params.values()]
        noise = best_of(lambda: [[rng.standard_normal(s) for s in sizes] for _ in range(k)]) / k
        buffers = [np.empty(s) for s in sizes]
        numba_normals(buffers[0])  # compile (or load from the cache) outside the timing
        noise_numba = best_of(lambda: [[numba_normals(b) for b in buffers] for _ in range(k)]) / k
        rows.append(dict(width=N, step_ms=1e3 * full, gradient_ms=1e3 * grad, noise_ms=1e3 * noise,
                         gradient_fraction=grad / full, noise_fraction=noise / full,
                         rest_fraction=1 - (grad + noise) / full, numba_noise_ratio=noise_numba / noise))
        r = rows[-1]
        print(f"N = {N:5d}: step {r['step_ms']:.2f} ms; gradient {r['gradient_fraction']:.0%}, "
              f"normal draws {r['noise_fraction']:.0%}, update + Python {r['rest_fraction']:.0%}; "
              f"Numba's normal draws take {r['numba_noise_ratio']:.1f}x NumPy's")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(rows=rows, versions=software_versions()), indent=1))


if __name__ == "__main__":
    main()
