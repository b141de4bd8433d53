"""Grid error and cost of the limit of a continuous chain, against the number of Sobol windows M.

Run: ``.venv/bin/python benchmarks/bench_grid.py [--config ar1] [--grids 1024 2048 4096 8192] [--seeds 0 1]``
(about 5 minutes on 2 cores up to M = 4096). For each M and Sobol scramble, the limit of the study's config (its
task, model, window and quadrature order) is built on M windows, timed, and its grid error estimated as in the
study report (f_t on the probes at 21 times, whole grid against its first half: ``LimitModel.grid_error``). The
study's warning threshold is a tenth of the mean error at the largest width; ``--error`` prints that ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from expected import print_versions  # noqa: E402

from meanfield.report import software_versions, write_json  # noqa: E402
from meanfield.studies.convergence import StudyConfig  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="ar1", help="study config (file or shipped name; default ar1)")
    parser.add_argument("--grids", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--error", type=float, default=None, help="mean error at the largest width, for the ratio")
    parser.add_argument("--out", default="results/bench_grid.json")
    args = parser.parse_args(argv)
    print_versions()
    cfg = StudyConfig.load(args.config)
    task = cfg.make_task()
    probes = cfg.probes_for(task)
    times = np.linspace(0, cfg.training.horizon, 21)
    rows = []
    for M in args.grids:
        for seed in args.seeds:
            start = time.perf_counter()
            lim = cfg.architecture().limit(task, cfg.limit.window, cfg.training.alpha, order=cfg.limit.order,
                                           max_grid=M, grid_seed=seed)
            seconds = time.perf_counter() - start
            error = lim.grid_error(times, probes)
            rows.append(dict(windows=M, scramble=seed, grid_error=error, seconds=seconds))
            ratio = f", {error / args.error:.3f} of the error at the largest width" if args.error else ""
            print(f"M = {M:6d}, scramble {seed}: grid error {error:.4f}{ratio}; limit built in {seconds:.1f} s",
                  flush=True)
    write_json(Path(args.out), dict(config=cfg.as_dict(), rows=rows, versions=software_versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
