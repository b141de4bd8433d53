"""The N^-1/2 fluctuation theory (theory_notes/fluctuations.md) against many seeds of finite networks.

Run: ``.venv/bin/python benchmarks/fluctuations.py [--config ar1] [--init gaussian] [--widths 8192 16384]
[--seeds 64] [--processes 2] [--out fluctuations_out]``; ``--split`` instead tabulates the predicted split of the
variance into its sources on delay1's chain against alpha and the chain's stay probability (predictions only, a
minute).

For each width, ``--seeds`` networks of the study's configuration (its probes, task and limit; run indices
distinct per seed) are trained in ``--processes`` processes, and the report gives, next to the prediction:

- the measured constant sqrt(N) x mean sup_{t,x} |f^N_t - f_t| with its standard error, and its ratio to the
  predicted C;
- ``z``: the whitened sum of squares of G over the seeds against the prediction, in standard deviations
  (:meth:`Fluctuations.check`);
- the share of (time, probe) pairs whose predicted variance of G lies in the 95% chi-square interval of the
  variance over seeds (the issue's goal: at least 90%), and the summed variance over pairs against the predicted.

Results: OUT/fluctuations.json (or OUT/split.json) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from meanfield.architectures.diagonal import Diagonal
from meanfield.architectures.diagonal.fluctuations import _window_chain_poisson, fluctuations
from meanfield.data import Task, make_task
from meanfield.report import software_versions, write_json
from meanfield.studies.convergence import StudyConfig, simulate_run


def _config(name, init) -> StudyConfig:
    return StudyConfig.load(name, overrides={"model.init": init})


def _run(args):
    name, init, width, seed = args
    cfg = _config(name, init)
    return simulate_run(cfg.as_dict(), width, seed)


def compare(name, init, widths, seeds, processes) -> dict:
    cfg = _config(name, init)
    task = cfg.make_task()
    probes = cfg.probes_for(task)
    start = time.perf_counter()
    lim = cfg.limit_model(task)
    K_cross = lim.cross_kernel(probes)
    tr = cfg.training
    fl = fluctuations(lim, probes, np.linspace(0, tr.horizon, tr.n_records + 1), seed=cfg.sweep.seed)
    C, C_se = fl.sup_constant(seed=cfg.sweep.seed)
    predict_seconds = time.perf_counter() - start
    jobs = [(name, init, N, 1_000_000 + i * seeds + s) for i, N in enumerate(widths) for s in range(seeds)]
    start = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # no fork after OpenMP threads have started
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        runs = list(pool.map(_run, jobs, chunksize=1))
    sweep_seconds = time.perf_counter() - start
    out = dict(config=name or "default", init=init, predicted_constant=C, predicted_constant_se=C_se,
               shares=fl.shares(), settings=fl.info, predict_seconds=predict_seconds, sweep_seconds=sweep_seconds,
               widths={})
    pred = fl.std()[1:] ** 2
    for i, N in enumerate(widths):
        G = []
        for run in runs[i * seeds:(i + 1) * seeds]:
            start_values = {} if init == "symmetric" else dict(f0_cross=run["f0_probes"], f0=run["f0_grid"])
            G.append(np.sqrt(N) * (run["outputs"] - lim.flow.at(run["times"], K_cross, **start_values)))
        G = np.array(G)
        sup = np.abs(G).max(axis=(1, 2))
        check = fl.check(G)
        out["widths"][str(N)] = dict(
            measured=float(sup.mean()), se=float(sup.std(ddof=1) / np.sqrt(seeds)), ratio=float(sup.mean() / C),
            z=check["z"], directions=check["directions"], std_in_interval=check["in_interval"],
            trace_ratio=float(G[:, 1:].var(axis=0, ddof=1).sum() / pred.sum()),
            mean_over_std=float(np.mean(np.abs(G[:, 1:].mean(axis=0)) / np.sqrt(pred))))
    return out


def split(alphas, stays, targets=("x1", "1 + x1")) -> list:
    """Predicted shares of the variance and C for the default study's model (T = 2) on the sticky two-state chain of
    delay1 against alpha and the chain's stay probability (mixing: the second eigenvalue 2 stay - 1), for delay1's
    target x1 and for 1 + x1. The tanh network's kernel is odd in the window, so for x1 the SGD increment
    x_{-1} K(x, W) takes the same value on the two constant windows a sticky chain dwells in and keeps little
    memory; 1 + x1 breaks that symmetry."""
    arch = Diagonal("tanh", 1.0, 0.5, symmetric=True)
    rows = []
    for target, stay in itertools.product(targets, stays):
        chain = make_task("delay1", stay=stay).chain
        task = Task.from_expression(chain, target, noise_std=0.1)
        probes = task.chain.sample_windows(10, 16, rng=2026).values
        for alpha in alphas:
            lim = arch.limit(task, 10, alpha, order=(256, 24))
            fl = fluctuations(lim, probes, np.linspace(0, 2.0, 21))
            at_T = {s: float(np.mean(fl.std(s)[-1] ** 2)) for s in fl.covariances}
            rows.append(dict(target=target, stay=stay, mixing=task.chain.mixing, alpha=alpha,
                             constant=fl.sup_constant()[0], shares=fl.shares(), variance_at_T=at_T,
                             memory_factor=_memory_factor(lim, probes)))
    return rows


def _memory_factor(lim, probes) -> float:
    """Long-run over plain variance of the SGD increment at t = 0, h = ybar(W) K(x, W), averaged over the probes:
    the chain's memory alone (1 for independent windows), apart from how large the residual is."""
    h = lim.ybar[:, None] * lim.cross_kernel(probes).T
    pi = lim.grid.weights[:, None]
    h -= np.sum(pi * h, axis=0)
    u = _window_chain_poisson(lim.task.chain, lim.window, h)
    plain = np.sum(pi * h * h, axis=0)
    return float(np.mean((2 * np.sum(pi * h * u, axis=0) - plain) / plain))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=None, help="a shipped config name (ar1) or a TOML file; default: delay1")
    parser.add_argument("--init", default="symmetric", choices=("symmetric", "gaussian"))
    parser.add_argument("--widths", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--split", action="store_true", help="the source split against alpha and mixing instead")
    parser.add_argument("--out", default="fluctuations_out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.split:
        rows = split([1.0, 4.0, 16.0], [0.5, 0.8, 0.95])
        write_json(out / "split.json", dict(rows=rows, software=software_versions()))
        print("| target | stay | mixing | memory factor | alpha | C | kernel | chain | noise | chain variance at T |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            s = r["shares"]
            print(f"| {r['target']} | {r['stay']} | {r['mixing']:.2f} | {r['memory_factor']:.2f} | {r['alpha']:g} | "
                  f"{r['constant']:.2f} | {s['kernel']:.0%} | {s['chain']:.0%} | {s['noise']:.0%} | "
                  f"{r['variance_at_T']['chain']:.3g} |")
        return
    result = compare(args.config, args.init, args.widths, args.seeds, args.processes)
    name = f"fluctuations_{result['config']}_{args.init}.json"
    write_json(out / name, dict(**result, seeds=args.seeds, software=software_versions()))
    print(f"{result['config']} ({args.init}): predicted C = {result['predicted_constant']:.3f} +- "
          f"{result['predicted_constant_se']:.3f}; shares {result['shares']}; prediction "
          f"{result['predict_seconds']:.0f} s, sweep {result['sweep_seconds']:.0f} s")
    print("| N | sqrt(N) x mean error | ratio to C | z (directions) | pairs in interval | summed variance ratio | "
          "|mean| / std |")
    print("|---|---|---|---|---|---|---|")
    for N, w in result["widths"].items():
        print(f"| {N} | {w['measured']:.3f} +- {w['se']:.3f} | {w['ratio']:.3f} | {w['z']:+.1f} ({w['directions']}) | "
              f"{w['std_in_interval']:.0%} | {w['trace_ratio']:.2f} | {w['mean_over_std']:.2f} |")


if __name__ == "__main__":
    main()
