"""Command line: ``meanfield SUBCOMMAND ...``, one subcommand per study registered in meanfield.studies.

Bad input (config, options, output folder) ends with one line naming it and exit status 2, before work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from importlib import resources
from pathlib import Path

from . import __version__
from .architectures.mup.theory import SaddlePointError
from .backends import BACKENDS, check_backend
from .checks import available_memory
from .solvers.fixed_point import FixedPointError
from .studies.framework import DamagedRunWarning, DiagnosisWarning, check_scheduler, discover


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _scheduler(text):
    try:
        return check_scheduler(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class _NoOptions(argparse.Namespace):
    """Parsed options with every option left out (None): what a study's default output folder is without them."""

    def __getattr__(self, name):
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meanfield", description="Wide RNNs and their infinite-width limits.")
    parser.add_argument("--version", action="version", version=f"meanfield {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    configs = sub.add_parser("configs", help="list the shipped configs, or print one as a commented template",
                             description="With no NAME, list the shipped configs; with NAME, print that config, "
                                         "a commented TOML template for --config.")
    configs.add_argument("name", nargs="?", metavar="NAME", help="a config listed by 'meanfield configs'")
    for study in discover().values():
        p = sub.add_parser(study.name, help=study.help, description=study.help)
        shipped = f" or a shipped one: {', '.join(study.config.SHIPPED)}" if study.config.SHIPPED else ""
        p.add_argument("--config", help=f"TOML config file{shipped} (default: the one shipped with the package); "
                                        f"missing tables and keys take the shipped values")
        p.add_argument("--quick", action="store_true",
                       help="apply the [quick] tables of the config, or the shipped ones if it has none (tests, CI)")
        if study.arguments is not None:
            study.arguments(p)
        default_out = study.default_out(_NoOptions()) if study.default_out else f"results/{study.name}"
        p.add_argument("--out", default=None, help=f"output folder; rerun the same command to resume "
                                                   f"(default: {default_out})")
        p.add_argument("--overwrite", action="store_true",
                       help="discard the runs of another configuration found in the output folder")
        if study.parallel:
            p.add_argument("--workers", type=_non_negative_int, default=None,
                           help="worker processes of the local Dask cluster (default: cores; 0: no Dask)")
            p.add_argument("--scheduler", type=_scheduler,
                           help="address of an existing Dask scheduler, tcp://HOST:PORT")
        if study.backends:
            p.add_argument("--backend", choices=BACKENDS, default="numba",
                           help="compute backend of the hot paths (jax: pip install -e '.[jax]'; default: numba)")
        p.add_argument("--allow-long", action="store_true",
                       help="run a request estimated at more than a day (refused otherwise, before any work)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.set_defaults(study=study)
    return parser


def _run(args):
    study = args.study
    kwargs = dict(progress=not args.no_progress, overwrite=args.overwrite)
    if study.parallel:
        kwargs.update(workers=args.workers, scheduler=args.scheduler)
    if study.backends:
        kwargs.update(backend=check_backend(args.backend))
    overrides = study.overrides(args) if study.overrides else None
    config = study.config.load(args.config, quick=args.quick, overrides=overrides)
    config.check_size(available_memory())
    config.check_time(args.allow_long)
    out = args.out or (study.default_out(args) if study.default_out else f"results/{study.name}")
    return study.run(config, out, **kwargs)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    return f"meanfield: warning: {message}\n"


def shipped_configs() -> dict:
    """{name: (study, file in meanfield/studies)}: each study's default config under the study's name, and the
    further configs it ships under STUDY-NAME (``--config NAME`` of that study)."""
    out = {}
    for study in discover().values():
        out[study.name] = (study.name, study.config.DEFAULT)
        out.update({f"{study.name}-{name}": (study.name, file) for name, file in study.config.SHIPPED.items()})
    return out


def _configs(name) -> int:
    shipped = shipped_configs()
    if name is None:
        for key, (study, file) in shipped.items():
            option = "" if key == study else f" --config {key.partition('-')[2]}"
            print(f"{key:24s} meanfield {study}{option}  ({file})")
        return 0
    if name not in shipped:
        print(f"meanfield configs: error: NAME must be one of {', '.join(shipped)}, got {name!r}", file=sys.stderr)
        return 2
    print(resources.files("meanfield.studies").joinpath(shipped[name][1]).read_text(), end="")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "configs":
        return _configs(args.name)
    with warnings.catch_warnings():
        warnings.simplefilter("always", DamagedRunWarning)
        warnings.simplefilter("ignore", DiagnosisWarning)  # the summary below says them
        previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
        try:
            path = _run(args)
        except (ValueError, FloatingPointError, ImportError, FixedPointError, SaddlePointError) as err:
            print(f"meanfield {args.command}: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # a full disk or a folder made read-only during the run
            print(f"meanfield {args.command}: error: {err.strerror or err}: {err.filename or ''}", file=sys.stderr)
            return 2
        finally:
            warnings.formatwarning = previous
    summary = None
    with contextlib.suppress(OSError, ValueError, AttributeError):  # what the study found, in a few lines
        summary = json.loads(Path(path).with_name("report.json").read_text()).get("summary")
    if summary:
        print(summary)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
