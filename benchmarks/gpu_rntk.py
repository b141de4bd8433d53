"""GPU benchmark cases of the RNTK/NNGP Gram (``rntk(..., backend="jax")``) against the Numba kernel.

``cases(args)`` returns rows of :func:`gpu_common.row`: kind "both", ReLU, one layer, last readout, one input
channel, on JAX's default device, each the whole ``rntk`` call (packing, transfers and the result on the host):

- 1000 x 150 and 10^4 x 150 (sequences x steps), float64 and float32; goals of issue 13 on an H100:
  1000 x 150 in <= 10 ms (float64), 10^4 x 150 in <= 1 s;
- lengths uniform in 50..150 for 1000 and 10^4 sequences (float64), with their time as a ratio to the
  equal-length time (goal <= 2).

The Numba kernel runs in the same process on all CPU cores. It is measured where its estimate (from the
1000-sequence time, scaled by the number of pairs) is under ``--cpu-limit`` (default 30 s); otherwise its time is that
estimate, marked ``cpu_extrapolated``, and the difference is measured on the first ``CHECK_ROWS`` sequences
(a corner of the same Gram). ``max_difference`` is the largest relative difference of the JAX Grams (NNGP
and NTK) from Numba's: max |a - b| / max |b|.

Standalone: ``python benchmarks/gpu_rntk.py [--small]`` (``--small``: 100 and 400 sequences of at most 30
steps, a smoke test on the CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_common import best_of, row  # noqa: E402

from meanfield.architectures.elman import rntk  # noqa: E402

CPU_LIMIT_S = 30.0
CHECK_ROWS = 1000
SETTINGS = dict(kind="both", activation="relu", layers=1, readout="last")


def _sequences(n, t_max, lengths, seed=0):
    rng = np.random.default_rng(seed)
    if lengths == "equal":
        return rng.normal(size=(n, t_max, 1))
    return [rng.normal(size=(int(T), 1)) for T in rng.integers(t_max // 3, t_max + 1, size=n)]


def _difference(got, want):
    return max(float(np.max(np.abs(np.asarray(g, dtype=float) - w)) / np.max(np.abs(w))) for g, w in zip(got, want))


def say(*parts):
    print("gpu_rntk:", *parts, flush=True)


def cases(args) -> list[dict]:
    small = getattr(args, "small", False)
    t_max = 30 if small else 150
    sizes = (100, 400) if small else (1000, 10_000)
    rows, cpu_rate, equal_time = [], None, {}
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    rntk(np.zeros((2, 3, 1)), **SETTINGS)  # compile / load the Numba kernel
    for lengths in ("equal", "uniform"):
        for n in sizes:
            for dtype in ("float64", "float32") if lengths == "equal" else ("float64",):
                X = _sequences(n, t_max, lengths)
                work = (f"RNTK+NNGP Gram {n} x {t_max}" if lengths == "equal" else
                        f"RNTK+NNGP Gram {n} x {t_max // 3}..{t_max}") + f" {dtype}"
                say(work, "(JAX: compiling, then best of 3)")
                jax_s, got = best_of(lambda: rntk(X, backend="jax", dtype=dtype, **SETTINGS))
                pairs = n * (n + 1) / 2
                estimate = None if cpu_rate is None else pairs / cpu_rate
                extra = {}
                if estimate is None or estimate < getattr(args, "cpu_limit", CPU_LIMIT_S):
                    say(work, f"Numba on {numba.get_num_threads()} threads")
                    t0 = time.perf_counter()
                    want = rntk(X, **SETTINGS)
                    cpu_s = time.perf_counter() - t0
                    if lengths == "equal" and cpu_rate is None:
                        cpu_rate = pairs / cpu_s
                    difference = _difference(got, want)
                else:
                    cpu_s = estimate
                    extra["cpu_extrapolated"] = f"from the {sizes[0]}-sequence rate x pairs; difference on {CHECK_ROWS}"
                    k = min(n, CHECK_ROWS)
                    difference = _difference([g[:k, :k] for g in got], rntk(X[:k], **SETTINGS))
                if lengths == "equal" and dtype == "float64":
                    equal_time[n] = jax_s
                    goal = "<= 10 ms on an H100" if n == 1000 else ("<= 1 s on an H100" if n == 10_000 else None)
                elif lengths == "uniform":
                    extra["ratio_to_equal_lengths"] = jax_s / equal_time[n]
                    goal = "ratio_to_equal_lengths <= 2"
                else:
                    goal = None
                rows.append(row(work, jax_s, cpu_s, units=pairs * t_max, unit="pair-step", goal=goal,
                                max_difference=difference, **extra))
                cpu_note = " (extrapolated)" if "cpu_extrapolated" in extra else ""
                ratio_note = (f", {extra['ratio_to_equal_lengths']:.2f}x the equal-length time"
                              if "ratio_to_equal_lengths" in extra else "")
                say(f"{work}: JAX {jax_s:.4g} s, Numba {cpu_s:.4g} s{cpu_note}, max relative difference "
                    f"{difference:.2e}{ratio_note}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes: a smoke test on the CPU")
    parser.add_argument("--cpu-limit", type=float, default=CPU_LIMIT_S,
                        help="measure the Numba kernel where its estimate is below this many seconds (default: "
                             f"{CPU_LIMIT_S:g}); extrapolate above")
    args = parser.parse_args(argv)
    import jax

    print(f"gpu_rntk: JAX {jax.__version__} on {jax.devices()[0]}", flush=True)
    for r in cases(args):
        print(r)


if __name__ == "__main__":
    main()
