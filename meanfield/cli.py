"""Command line: ``meanfield SUBCOMMAND ...`` (argument parsing only; the work is in meanfield.studies)."""

from __future__ import annotations

import argparse
import sys

from solvers.fixed_point import FixedPointError
from solvers.kernel_saddle import SaddlePointError


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
    from .studies.ucr import KERNELS, run_ucr_datasets

    path = run_ucr_datasets(args.dataset, args.out, args.kernel or list(KERNELS), folds=args.folds)
    print(f"report: {path}")


def _regime(args):
    from .studies.regime import load_config, run_regime

    cfg = load_config(args.config, quick=args.quick)
    path = run_regime(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress)
    print(f"report: {path}")


def _featurelearning(args):
    from .studies.featurelearning import load_config, run_featurelearning

    cfg = load_config(args.config, quick=args.quick)
    out = args.out or f"results/featurelearning-{args.task}"
    path = run_featurelearning(cfg, args.task, out, workers=args.workers, scheduler=args.scheduler,
                               progress=not args.no_progress)
    print(f"report: {path}")


def _sweep_study(sub, name, help_text, func):
    """A subcommand for a study run on the Dask task runner (config, quick grid, resume)."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--config", help="TOML config (default: the one shipped with the package)")
    p.add_argument("--quick", action="store_true", help="the config's reduced [quick] grid (tests and CI)")
    p.add_argument("--out", default=f"results/{name}", help=f"output folder; rerun to resume (default: results/{name})")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local Dask cluster (default: cores; 0: no Dask)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meanfield", description="Wide RNNs and their infinite-width limits.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    _sweep_study(sub, "study", "convergence study of wide RNNs against their limit (report + plots)", _study)
    _sweep_study(sub, "regime", "distance of finite Elman RNNs from the kernel regime (width x length, NTK vs muP)",
                 _regime)

    fl = _sweep_study(sub, "featurelearning", "Bayesian muP RNN vs DNN: saddle-point kernels against Langevin "
                      "sampling (phase transition; generalisation across time)", _featurelearning)
    fl.add_argument("--task", choices=["endpoint", "sequence"], default="endpoint",
                    help="endpoint: phase transition and theory vs sampling; sequence: supervised subset of steps")
    fl.set_defaults(out=None)

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
    demo.add_argument("--task", default="parity2", help="named task: parity2, delay1 or ar1-sin")
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
    except (ValueError, FloatingPointError, ImportError, FixedPointError, SaddlePointError) as err:
        print(f"meanfield {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
