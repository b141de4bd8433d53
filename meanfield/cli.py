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
    except (ValueError, FloatingPointError) as err:
        print(f"meanfield {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
