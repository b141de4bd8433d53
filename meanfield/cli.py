"""Command line: ``meanfield SUBCOMMAND ...`` (argument parsing only; the work is in meanfield.studies)."""

from __future__ import annotations

import argparse
import sys


def _demo(args):
    from .studies.demo import run_demo

    path = run_demo(args.out, task_name=args.task, alpha=args.alpha, horizon=args.horizon, seed=args.seed,
                    progress=not args.no_progress)
    print(f"report: {path}")


def _study(args):
    from .studies.convergence import StudyConfig, run_study

    cfg = StudyConfig.from_toml(args.config, quick=args.quick)  # validated before any work starts
    path = run_study(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress)
    print(f"report: {path}")


def _rntk(args):
    import json
    from pathlib import Path

    from .studies.ucr import DATASETS, KERNELS, accuracy_table, run_ucr

    kernels = args.kernel or list(KERNELS)
    names = sorted(DATASETS) if args.dataset == "all" else [args.dataset]
    if args.dataset != "all" and args.dataset not in DATASETS:
        raise ValueError(f"--dataset must be 'all' or one of {sorted(DATASETS)}, got {args.dataset!r}")
    reports = []
    for name in names:
        out = Path(args.out) / name if len(names) > 1 else Path(args.out)
        path = run_ucr(name, out, kernels, folds=args.folds)
        reports.append(json.loads(path.read_text()))
        print(f"{name}: " + ", ".join(f"{r['kernel']} {r.get('test_accuracy', 'n/a')}" for r in reports[-1]["results"]))
    table = Path(args.out) / "table.md"
    table.write_text(accuracy_table(reports))
    print(f"report: {table}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meanfield", description="Wide RNNs and their infinite-width limits.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    study = sub.add_parser("study", help="convergence study of wide RNNs against their limit (report + plots)")
    study.add_argument("--config", help="TOML config (default: the study shipped with the package)")
    study.add_argument("--quick", action="store_true", help="the config's reduced [quick] grid (under a minute)")
    study.add_argument("--out", default="results/study", help="output folder; rerun to resume (default: results/study)")
    study.add_argument("--workers", type=int, default=None,
                       help="worker processes of the local Dask cluster (default: cores; 0: no Dask)")
    study.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT")
    study.add_argument("--no-progress", action="store_true", help="hide progress bars")
    study.set_defaults(func=_study)

    rn = sub.add_parser("rntk", help="SVM with the RNTK and baselines on UCR/UEA datasets shipped with aeon")
    rn.add_argument("--dataset", required=True, help="ArrowHead, BasicMotions, GunPoint, ItalyPowerDemand, "
                                                     "JapaneseVowels, PickupGestureWiimoteZ, or all")
    rn.add_argument("--kernel", action="append", choices=["rntk", "nngp", "rbf", "ntk-mlp"],
                    help="kernel to evaluate (repeatable; default: all four)")
    rn.add_argument("--folds", type=int, default=5, help="cross-validation folds on the training split")
    rn.add_argument("--out", default="results/rntk", help="output folder (default: results/rntk)")
    rn.set_defaults(func=_rntk)

    demo = sub.add_parser("demo", help="train a few widths and plot their outputs (a quick look at the simulator)")
    demo.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    demo.add_argument("--task", default="parity2", help="named task: parity2 or ar1-sin")
    demo.add_argument("--alpha", type=float, default=5.0, help="learning-rate constant alpha (rate alpha/N)")
    demo.add_argument("--horizon", type=float, default=2.0, help="training time T (T*N steps)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FloatingPointError, ImportError) as err:
        print(f"meanfield {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
