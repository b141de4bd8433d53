"""The convergence study's time estimate per phase against the measured time, on one core.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/estimates.py [CONFIG[:quick] ...]`` (about 3 minutes
for the defaults: the shipped study, quick and full; the README's 3-state chain in R^2; the AR(1) study, quick
and full). For each config it computes the limit (the grid's kernel, the probes' cross kernels) and the
fluctuation prediction as the study does, and prints the estimate of ``StudyConfig.estimated_phases``, the
measured seconds and their ratio. The sweep's estimate is checked by ``benchmarks/bench_simulator.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from meanfield.architectures.diagonal.fluctuations import fluctuations
from meanfield.studies.convergence import FLUCTUATION_PATH, StudyConfig

README_CHAIN = """
[task]
target = "sin(x0_0) * x1_1 + 0.5 * x2_0"
noise_std = 0.1
[task.chain]
kind = "finite"
transition = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
states = [[-1.0, 0.5], [0.0, 1.0], [1.0, -0.5]]
[limit]
window = 7
"""


def measure(cfg: StudyConfig) -> dict:
    task = cfg.make_task()
    probes = cfg.probes_for(task)
    start = time.perf_counter()
    lim = cfg.limit_model(task)
    lim.cross_kernel(probes)
    lim.kernel(probes, kind="ntk")
    tr = cfg.training
    lim.quadrature_error(np.linspace(0, tr.horizon, tr.n_records + 1), probes)
    middle = time.perf_counter()
    fluctuations(lim, probes, np.linspace(0, tr.horizon, tr.n_records + 1), path_windows=FLUCTUATION_PATH,
                 seed=cfg.sweep.seed)
    return dict(limit=middle - start, fluctuations=time.perf_counter() - middle)


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or [":quick", "", "readme", "ar1:quick", "ar1"]
    readme = Path("estimates_readme_chain.toml")
    readme.write_text(README_CHAIN)
    print("| config | phase | estimated (s) | measured (s) | ratio |\n|---|---|---|---|---|")
    try:
        for name in names:
            config, _, quick = name.partition(":")
            path = str(readme) if config == "readme" else (config or None)
            cfg = StudyConfig.load(path, quick=quick == "quick")
            estimated = cfg.estimated_phases()
            for phase, seconds in measure(cfg).items():
                print(f"| {name or 'default'} | {phase} | {estimated[phase]:.1f} | {seconds:.1f} | "
                      f"{estimated[phase] / seconds:.2f} |", flush=True)
    finally:
        readme.unlink()


if __name__ == "__main__":
    main()
