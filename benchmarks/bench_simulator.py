"""Speed of the online-SGD step loop of ``train_online`` (ns per unit-step), with baselines.

Run: ``.venv/bin/python benchmarks/bench_simulator.py [--widths 1024 16384 65536] [--out FILE]``
(``make bench``). All timings come from this one run on this machine:

- numba-1t: ``train_online`` with one Numba thread; numba-Kt: units split over K threads;
- numpy: the reference per-step loop of the same arithmetic (meanfield.reference.train_reference);
- torch: the same per-step loop in PyTorch (one thread), only if torch is installed;
- c: ``benchmarks/c/diag_rnn_step.c`` compiled now with ``cc -O3 -march=native -ffast-math``: the
  machine's practical limit for this arithmetic on one core.

Ratios are time / time of the single-threaded C loop (below 1 is faster than C).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from expected import check_ratio, print_versions  # the same folder: benchmarks run as scripts

from meanfield import DiagonalRNN, make_task, train_online
from meanfield.reference import train_reference
from meanfield.report import software_versions

HERE = Path(__file__).resolve().parent
UNIT_STEPS = 2**25  # work per timing of the fast implementations


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def compile_c(build_dir: Path):
    lib = build_dir / "libdiagrnn.so"
    cmd = ["cc", "-O3", "-march=native", "-ffast-math", "-shared", "-fPIC", "-o", str(lib),
           str(HERE / "c" / "diag_rnn_step.c"), "-lm", "-lmvec"]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        cmd.remove("-lmvec")  # no libmvec: gcc falls back to scalar tanh
        subprocess.run(cmd, check=True, capture_output=True)
    so = ctypes.CDLL(str(lib))
    dbl = ctypes.POINTER(ctypes.c_double)
    so.train_c.restype = ctypes.c_double
    so.train_c.argtypes = [ctypes.c_long, ctypes.c_long, dbl, dbl, ctypes.c_double, ctypes.c_double] + [dbl] * 6
    return so, " ".join(cmd)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 16384, 65536])
    parser.add_argument("--out", type=Path, default=Path("results/bench_simulator.json"))
    args = parser.parse_args(argv)
    print_versions()

    task = make_task("parity2")
    probes = task.chain.windows(1)
    alpha = 1.0
    threads = numba.config.NUMBA_NUM_THREADS
    with tempfile.TemporaryDirectory() as tmp:
        so, c_cmd = compile_c(Path(tmp))
        rows = []
        for N in args.widths:
            steps = max(64, UNIT_STEPS // N)
            model = DiagonalRNN(N, seed=0)
            X, Y = task.stream(0).next(steps)
            ns = {}

            def run_numba(threaded):
                train_online(model, task, steps / N, alpha, probes, n_records=1, seed=0, progress=False,
                             threaded=threaded)

            numba.set_num_threads(1)
            run_numba(False)  # compile / load from cache
            ns["numba-1t"] = best_of(lambda: run_numba(False))
            numba.set_num_threads(threads)
            run_numba(True)
            ns[f"numba-{threads}t"] = best_of(lambda: run_numba(True))

            arrays = [model.c.copy(), model.w[:, 0].copy(), model.b.copy(), np.zeros(N), np.zeros(N), np.zeros(N)]
            ptr = [a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in arrays]
            xs, ys = np.ascontiguousarray(X[:, 0]), np.ascontiguousarray(Y)
            ns["c"] = best_of(lambda: so.train_c(N, steps, xs.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                                                 ys.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                                                 alpha * N**-1.5, 1 / math.sqrt(N), *ptr))

            slow_steps = max(16, steps // 16)
            t = best_of(lambda: train_reference(model.c, model.w, model.b, X[:slow_steps], Y[:slow_steps], alpha),
                        repeats=2)
            ns["numpy"] = t * steps / slow_steps
            torch_time = time_torch(model, X[:slow_steps], Y[:slow_steps], alpha)
            if torch_time is not None:
                ns["torch"] = torch_time * steps / slow_steps

            per = {k: v / (N * steps) * 1e9 for k, v in ns.items()}
            rows.append(dict(n_units=N, steps=steps, ns_per_unit_step=per,
                             ratio_to_c={k: v / per["c"] for k, v in per.items()}))
            print(f"N = {N:6d}: " + "  ".join(f"{k} {v:6.2f} ns ({v / per['c']:.2f}x C)" for k, v in per.items()),
                  flush=True)
            check_ratio("simulator", "c / numba-1t", f"N={N}", per["c"] / per["numba-1t"])
    report = dict(benchmark="simulator", unit="ns per unit-step", c_command=c_cmd, numba_threads=threads,
                  machine=dict(platform=platform.platform(), processor=platform.processor(),
                               cpu_count=os.cpu_count(), python=sys.version.split()[0],
                               numba=numba.__version__, numpy=np.__version__),
                  rows=rows, versions=software_versions())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def time_torch(model, X, Y, alpha):
    """The reference step loop in PyTorch on one thread; None if torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    c, w, b = (torch.tensor(a) for a in (model.c, model.w[:, 0], model.b))
    N = c.numel()
    x, y = torch.tensor(X[:, 0]), torch.tensor(Y)
    lr, inv = alpha * N**-1.5, 1 / math.sqrt(N)

    def run():
        nonlocal c, w, b
        S, Jw, Jb = torch.zeros(N, dtype=torch.float64), torch.zeros(N, dtype=torch.float64), torch.zeros(
            N, dtype=torch.float64)
        for k in range(len(y)):
            s = torch.tanh(w * x[k] + b * S)
            ds = 1 - s * s
            Jw = ds * (x[k] + b * Jw)
            Jb = ds * (S + b * Jb)
            S = s
            e = float(y[k] - torch.dot(c, S) * inv)
            g = lr * e * c
            c = c + lr * e * S
            w = w + g * Jw
            b = b + g * Jb

    with torch.no_grad():
        return best_of(run, repeats=2)


if __name__ == "__main__":
    main()
