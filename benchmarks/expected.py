"""The documented speed ratios of the kernels against their same-run baselines, and the two lines every
benchmark prints: the software versions it ran with, and a WARNING when a ratio falls below half its
documented value (a regression to look into; not a test, nothing fails).

A ratio is baseline time / kernel time (above 1: the kernel is faster), each cited from docs/performance.md.
"""

from __future__ import annotations

from meanfield.report import software_versions

EXPECTED = {
    # "Benchmarks" table: single-thread C loop / Numba on one thread, ns per unit-step (1 / 0.89, ...)
    ("simulator", "c / numba-1t", "N=1024"): 1 / 0.89,
    ("simulator", "c / numba-1t", "N=16384"): 1 / 0.90,
    ("simulator", "c / numba-1t", "N=65536"): 1 / 1.26,
    # "The limit": NumPy states / Numba states on one thread (12.9 ns / 3.4 ns, "3.8 x slower")
    ("limit", "numpy / numba-1t states", "4096 windows x 10"): 3.8,
    # "The RNTK": vectorised NumPy recursion / Numba on all threads (2), 1000 x 150 ("11-14x": the low end)
    ("rntk", "numpy / numba all threads", "1000 x 150"): 11.0,
}


def print_versions():
    versions = software_versions()
    print("versions: " + ", ".join(f"{k} {versions[k]}" for k in ("meanfield", "python", "numpy", "numba", "scipy")),
          flush=True)


def check_ratio(benchmark, ratio_name, case, measured) -> bool:
    """Print a WARNING line if ``measured`` is below half the documented ratio of (benchmark, ratio_name, case);
    cases without a documented ratio (other sizes) are not checked. True unless warned."""
    documented = EXPECTED.get((benchmark, ratio_name, case))
    if documented is None or measured >= documented / 2:
        return True
    print(f"WARNING: {benchmark} {case}: {ratio_name} = {measured:.2f}, below half the documented {documented:.2f} "
          f"(docs/performance.md); a regression, or a busy machine: rerun before concluding", flush=True)
    return False
