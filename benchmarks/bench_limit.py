"""Speed of the limit: memory states on quadrature nodes, the kernel build, and the exact flow.

Run: ``.venv/bin/python benchmarks/bench_limit.py [--windows 4096] [--length 10] [--order 64 64]``
(``make bench``). One run measures, on the same machine:

- states: S, J^w, J^b for every (node, window) pair over the window's steps, in ns per
  node x window x step: Numba with 1 and with all threads, and the vectorised NumPy reference;
- the simulator's C loop (benchmarks/c/diag_rnn_step.c, one activation and a few multiply-adds per
  unit-step, compiled now): the arithmetic the state recursion shares, as the machine's practical rate;
- the kernel build K (states + BLAS products; with and without the order-halving error estimate),
  the same build with NumPy states, and the exact flow at 100 times (eigendecomposition included).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_simulator import best_of, compile_c  # noqa: E402
from expected import check_ratio, print_versions  # noqa: E402

from meanfield.architectures.diagonal.limit import _kernels_at_nodes, limit_kernel, quadrature_nodes  # noqa: E402
from meanfield.architectures.diagonal.network import window_states_kernel  # noqa: E402
from meanfield.data import make_task  # noqa: E402
from meanfield.reference import window_states_reference  # noqa: E402
from meanfield.report import software_versions  # noqa: E402
from meanfield.solvers.ode import LinearKernelFlow  # noqa: E402


def numpy_kernel(X, nodes, chunk=512):
    """The same build with the NumPy reference states (chunks of nodes to bound memory)."""
    M = X.shape[0]
    K = np.zeros((M, M))
    for lo in range(0, nodes.size, chunk):
        sl = slice(lo, lo + chunk)
        S, Jw, Jb = window_states_reference(X, nodes.W[:, sl].T, nodes.b[sl])
        r = np.sqrt(nodes.q[sl])
        F = np.concatenate([S * r, (Jw * r[:, None]).reshape(M, -1), Jb * r], axis=1)
        K += F @ F.T
    return K


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=4096)
    parser.add_argument("--length", type=int, default=10)
    parser.add_argument("--order", type=int, nargs=2, default=[64, 64])
    parser.add_argument("--out", type=Path, default=Path("results/bench_limit.json"))
    args = parser.parse_args(argv)
    print_versions()
    task = make_task("parity2")
    grid = task.chain.sample_windows(args.length, args.windows, rng=0)
    X = grid.values
    nodes = quadrature_nodes(1, 1.0, 0.5, tuple(args.order))
    units = nodes.size * X.shape[0] * X.shape[1]
    threads = numba.config.NUMBA_NUM_THREADS
    out = {}

    window_states_kernel(X[:2], nodes.W, nodes.b, 0, True)  # compile / load
    numba.set_num_threads(1)
    out["states_numba_1t_s"] = best_of(lambda: window_states_kernel(X, nodes.W, nodes.b, 0, True))
    numba.set_num_threads(threads)
    out[f"states_numba_{threads}t_s"] = best_of(lambda: window_states_kernel(X, nodes.W, nodes.b, 0, True))
    sub = slice(0, max(1, X.shape[0] // 8))
    out["states_numpy_s"] = 8 * best_of(lambda: window_states_reference(X[sub], nodes.W.T, nodes.b), repeats=1)

    with tempfile.TemporaryDirectory() as tmp:
        so, _ = compile_c(Path(tmp))
        N, steps = nodes.size, max(64, 2**24 // nodes.size)
        xs, ys = np.ones(steps), np.zeros(steps)
        arrays = [np.ones(N), nodes.W[0].copy(), nodes.b.copy(), np.zeros(N), np.zeros(N), np.zeros(N)]
        dbl = ctypes.POINTER(ctypes.c_double)
        ptrs = [a.ctypes.data_as(dbl) for a in arrays]
        c_time = best_of(lambda: so.train_c(N, steps, xs.ctypes.data_as(dbl), ys.ctypes.data_as(dbl), 0.0,
                                            1 / math.sqrt(N), *ptrs))
    ns = {k.replace("_s", ""): v / units * 1e9 for k, v in out.items()}
    ns["c_loop_unit_step"] = c_time / (N * steps) * 1e9

    t0 = time.perf_counter()
    K, _ = _kernels_at_nodes(X, X, nodes, 0, True)
    out["kernel_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    limit_kernel(X, sigma_w=1.0, beta=0.5, order=tuple(args.order), error_estimate=True)
    out["kernel_build_with_error_estimate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    K_np = numpy_kernel(X, nodes)
    out["kernel_build_numpy_s"] = time.perf_counter() - t0
    kernel_gap = float(np.max(np.abs(K - K_np)))

    ybar = task.conditional_mean(grid)
    t0 = time.perf_counter()
    flow = LinearKernelFlow(K, grid.weights, ybar, 5.0)
    flow.on_grid(np.linspace(0, 2, 100))
    out["flow_100_times_s"] = time.perf_counter() - t0

    report = dict(benchmark="limit", windows=X.shape[0], length=X.shape[1], order=args.order, nodes=nodes.size,
                  numba_threads=threads, seconds=out, ns_per_node_window_step=ns,
                  ratio_states_1t_to_c_loop=ns["states_numba_1t"] / ns["c_loop_unit_step"],
                  ratio_numpy_to_numba_1t=ns["states_numpy"] / ns["states_numba_1t"],
                  max_abs_difference_numba_vs_numpy_kernel=kernel_gap, versions=software_versions())
    for k, v in out.items():
        print(f"{k:40s} {v:8.3f} s")
    for k, v in ns.items():
        print(f"{k:40s} {v:8.3f} ns per node x window x step" if k != "c_loop_unit_step" else
              f"{k:40s} {v:8.3f} ns per unit-step (simulator C loop)")
    print(f"states (1 thread) / C loop rate: {report['ratio_states_1t_to_c_loop']:.2f}x;"
          f" NumPy / Numba (1 thread): {report['ratio_numpy_to_numba_1t']:.1f}x; |K - K_numpy| = {kernel_gap:.2g}")
    check_ratio("limit", "numpy / numba-1t states", f"{X.shape[0]} windows x {X.shape[1]}",
                report["ratio_numpy_to_numba_1t"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
