"""Timing harness of ``benchmarks/bench_gpu.py`` and its case modules (``gpu_*.py``).

A case times one hot path on the JAX backend (on whatever device JAX sees) and, in the same run, the
Numba/NumPy path on all CPU cores, and returns a row: {"work", "jax_s", "cpu_s", "unit", "per_unit_jax",
"per_unit_cpu", "ratio", "goal", "max_difference"}.
"""

from __future__ import annotations

import time


def block(value):
    """Wait for JAX's asynchronous work (arrays, tuples and dicts of arrays); return the value."""
    import jax

    return jax.block_until_ready(value)


def best_of(fn, repeats=3, warmup=1):
    """The smallest wall time of ``repeats`` calls of ``fn()`` (after ``warmup`` calls), and the last value."""
    value = None
    for _ in range(warmup):
        value = block(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = block(fn())
        best = min(best, time.perf_counter() - t0)
    return best, value


def row(work, jax_s, cpu_s, *, units=None, unit="call", goal=None, max_difference=None, **extra):
    """One result row; per-unit times in ns when ``units`` (the number of work units) is given."""
    out = dict(work=work, jax_s=jax_s, cpu_s=cpu_s, ratio=None if cpu_s is None else cpu_s / jax_s, unit=unit,
               goal=goal, max_difference=max_difference, **extra)
    if units:
        out["per_unit_jax_ns"] = 1e9 * jax_s / units
        out["per_unit_cpu_ns"] = None if cpu_s is None else 1e9 * cpu_s / units
    return out
