"""Coverage of the convergence study's rate interval, measured by reseeding a study many times.

Run: ``.venv/bin/python benchmarks/coverage.py [--reseeds 200] [--config FILE] [--out coverage_out]``
(about 10 minutes for 200 reseeds of the quick default study on 2 cores; resumable: each reseed is one run
in OUT/runs, so an interrupted run continues where it stopped).

Each reseed runs the study's sweep (every width and seed, new probes, new initialisations and new data,
all from ``sweep.seed`` = the reseed's number) and keeps the per-seed errors sup_t |f^N_t - f_t|. The
interval of :func:`meanfield.stats.fit_rate` is then computed for every reseed, and the fraction of
reseeds whose interval contains the theory's -1/2 is its coverage; a binomial 95% interval of that
fraction says how well the reseeds measured it. The percentile bootstrap over seeds (the method before
the calibration) is evaluated on the same data for comparison. Results: OUT/coverage.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from meanfield.estimators import trajectory_errors
from meanfield.report import software_versions, write_json
from meanfield.stats import fit_rate
from meanfield.studies.convergence import StudyConfig, simulate_run
from meanfield.studies.framework import run_tasks

_LIMITS = {}


def reseed_errors(config: dict, seed: int) -> dict:
    """The sweep of one reseeded study: sup errors and kernel errors, arrays (widths, seeds)."""
    cfg = StudyConfig.from_dict(config).replace(**{"sweep.seed": seed})
    task = cfg.make_task()
    key = json.dumps({k: v for k, v in cfg.as_dict().items() if k not in ("sweep", "probes", "memory")},
                     sort_keys=True)
    if key not in _LIMITS:  # the limit does not depend on the seed: one per worker process
        _LIMITS[key] = cfg.limit_model(task)
    lim = _LIMITS[key]
    probes = cfg.probes_for(task)
    K = lim.kernel(probes, kind="ntk").ntk
    sw = cfg.sweep
    sup = np.empty((len(sw.widths), sw.seeds))
    ker = np.empty_like(sup)
    limit = {}
    for i, N in enumerate(sw.widths):
        for s in range(sw.seeds):
            run = simulate_run(cfg.as_dict(), N, s)
            key = run["times"].tobytes()
            if key not in limit:
                limit[key] = lim.predict(run["times"], probes)
            sup[i, s] = trajectory_errors(run["outputs"], limit[key])[0]
            ker[i, s] = np.linalg.norm(run["ntk0"] - K) / np.linalg.norm(K)
    return dict(sup=sup, kernel=ker)


def percentile_bootstrap(x, errs, n_boot=2000, seed=0, level=0.95):
    """The interval the study used before the calibration: percentile bootstrap of the seeds at each x."""
    u = np.log(x)
    rng = np.random.default_rng(seed)
    means = np.stack([e[rng.integers(0, e.size, (n_boot, e.size))].mean(axis=1) for e in errs], axis=1)
    uc = u - u.mean()
    slopes = (np.log(means) - np.log(means).mean(axis=1, keepdims=True)) @ uc / (uc @ uc)
    return np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2])


def binomial_interval(hits, n, level=0.95):
    """Clopper-Pearson interval of a proportion."""
    a = 1 - level
    lo = stats.beta.ppf(a / 2, hits, n - hits + 1) if hits > 0 else 0.0
    hi = stats.beta.ppf(1 - a / 2, hits + 1, n - hits) if hits < n else 1.0
    return float(lo), float(hi)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reseeds", type=int, default=200)
    parser.add_argument("--config", default=None, help="study TOML (default: the shipped one, --quick)")
    parser.add_argument("--full", action="store_true", help="the full grid of the config instead of [quick]")
    parser.add_argument("--out", default="coverage_out")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--start", type=int, default=0, help="first reseed number (to split reseeds over processes)")
    parser.add_argument("--finished-only", action="store_true",
                        help="evaluate only the reseeds already in OUT/runs (e.g. of a run that was stopped)")
    args = parser.parse_args(argv)
    cfg = StudyConfig.load(args.config, quick=not args.full)
    start = time.perf_counter()
    tasks = {f"reseed{r:04d}": dict(config=cfg.as_dict(), seed=10_000 + r)
             for r in range(args.start, args.start + args.reseeds)}
    if args.finished_only:
        tasks = {name: kw for name, kw in tasks.items() if (Path(args.out) / "runs" / f"{name}.npz").exists()}
        args.reseeds = len(tasks)
    runs = run_tasks(reseed_errors, tasks, Path(args.out) / "runs", workers=args.workers, desc="reseeds")
    widths = np.array(cfg.sweep.widths, dtype=float)
    table = {}
    for quantity in ("sup", "kernel"):
        rows = {}
        for drop in range(0, len(widths) - 2):
            x = widths[drop:]
            covered = {"t (calibrated)": [], "percentile bootstrap": []}
            slopes = []
            for r, run in enumerate(runs.values()):
                errs = list(run[quantity][drop:])
                fit = fit_rate(x, errs)
                slopes.append(fit.slope)
                covered["t (calibrated)"].append(fit.covers(-0.5))
                lo, hi = percentile_bootstrap(x, errs, seed=r)
                covered["percentile bootstrap"].append(lo <= -0.5 <= hi)
            rows[f"widths {int(x[0])}..{int(x[-1])}"] = {
                "mean slope": float(np.mean(slopes)), "sd of slope": float(np.std(slopes, ddof=1)),
                **{m: dict(coverage=float(np.mean(c)), interval=binomial_interval(int(np.sum(c)), len(c)))
                   for m, c in covered.items()}}
        table[quantity] = rows
    result = dict(config=cfg.as_dict(), reseeds=args.reseeds, coverage=table, versions=software_versions(),
                  seconds=time.perf_counter() - start)
    write_json(Path(args.out) / "coverage.json", result)
    for quantity, rows in table.items():
        print(f"\n{quantity} error, nominal 95%, {args.reseeds} reseeds (Clopper-Pearson 95% interval of the coverage)")
        for name, row in rows.items():
            cells = ", ".join(f"{m} {v['coverage']:.3f} [{v['interval'][0]:.3f}, {v['interval'][1]:.3f}]"
                              for m, v in row.items() if isinstance(v, dict))
            print(f"  {name}: mean slope {row['mean slope']:.3f} (sd {row['sd of slope']:.3f}); {cells}")
    print(f"\n{result['seconds']:.0f} s; results in {Path(args.out) / 'coverage.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
