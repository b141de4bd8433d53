"""Kernel SVMs with the RNTK, and the archive's baselines, on the UCR/UEA datasets that ``aeon`` ships inside itself.

Every column is an aeon estimator fitted on the training split and scored once on the official test split:

- ``rntk`` and ``nngp``: :class:`meanfield.timeseries.RNTKClassifier` with our conventions (shared initial state,
  last readout), the NTK and its NNGP twin; ``rntk-authors``: the RNTK with the conventions of the RNTK_UCI code
  (independent initial states, per-step readout; ``theory_notes/rntk.md`` section 7). Their hyperparameters and C
  are chosen by stratified k-fold cross-validation on the training split over [RNTK]'s grid (the config's);
- ``rbf`` and ``ntk-mlp``: :class:`~meanfield.timeseries.FlatRBFClassifier` and
  :class:`~meanfield.timeseries.FlatNTKClassifier` on the flattened series, chosen the same way;
- ``1nn-ed`` and ``1nn-dtw``: aeon's 1-nearest-neighbour classifier with the Euclidean distance and with DTW over
  the full window, which the UCR archive publishes for every univariate dataset (:data:`PUBLISHED`): our numbers
  must equal them, which checks that the splits and the normalisation are the archive's.

Normalisation (:func:`standardise`): univariate series each to mean 0 and variance 1 (the archive's); multivariate
channels by the training split's statistics. The kernels and distances that need equal lengths get the archive's
rule for its variable-length datasets: each raw series padded with zeros at the end to the longest length, then
normalised (:func:`pad_to_equal_length`; this reproduces the published PickupGestureWiimoteZ baselines, 0.56 and
0.66, which padding after normalisation does not: 0.64 and 0.70). The recurrent kernels take the series at their
own lengths.

Needs the optional extra ``[data]`` (aeon, scikit-learn); no download happens at run time.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numba.core.errors import NumbaTypeSafetyWarning

from .. import checks
from ..backends import check_backend
from ..report import pyplot
from .framework import Config, ConfigError, Section, StudyFolder, register, run_tasks, spec, write_report

KERNELS = ("rntk", "rntk-authors", "nngp", "rbf", "ntk-mlp", "1nn-ed", "1nn-dtw")
# "rntk-authors" is the kernel of the follow-up paper's RNTK_UCI code (arXiv:2012.04859: independent initial states,
# per-step readout), not the ICLR 2021 RNTK paper's last-state kernel (theory_notes/rntk.md section 7)
COLUMNS = {"rntk": "RNTK", "rntk-authors": "RNTK (RNTK_UCI code)", "nngp": "NNGP", "rbf": "RBF", "ntk-mlp": "MLP-NTK",
           "1nn-ed": "1-NN ED", "1nn-dtw": "1-NN DTW"}
# The UCR archive's published 1-NN test error rates (DataSummary.csv of the 2018 archive, columns "ED (w=0)" and
# "DTW (w=100)", the full window), for the univariate datasets that aeon ships; accuracy = 1 - error.
PUBLISHED = {"ACSF1": (0.4600, 0.3600), "ArrowHead": (0.2000, 0.2971), "GunPoint": (0.0867, 0.0933),
             "ItalyPowerDemand": (0.0447, 0.0496), "OSULeaf": (0.4793, 0.4091),
             "PickupGestureWiimoteZ": (0.4400, 0.3400)}
# aeon 1.6 marks these shipped datasets deprecated (their loaders go in 1.7); they are read from the files.
DEPRECATED_IN_AEON = ("ACSF1", "OSULeaf")


def _need_data_extra():
    try:
        import aeon  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as err:
        raise checks.missing_extra("data", "meanfield rntk", err) from None


def _data_dir() -> Path:
    _need_data_extra()
    import aeon.datasets

    return Path(aeon.datasets.__file__).parent / "data"


@lru_cache(maxsize=1)
def shipped_datasets() -> tuple:
    """The classification datasets in aeon's own data folder: a TRAIN and a TEST .ts file with class labels (the
    equal-length "_eq" copies and the time-stamped UnitTest variant left out)."""
    names = []
    for train in sorted(_data_dir().glob("*/*_TRAIN.ts")):
        name = train.name[:-len("_TRAIN.ts")]
        if name.endswith("_eq") or name != train.parent.name or not train.with_name(f"{name}_TEST.ts").exists():
            continue
        with open(train) as f:  # the header: comments, then @ lines up to @data
            for line in f:
                words = line.lower().split()
                if words[:2] == ["@classlabel", "true"]:
                    names.append(name)
                if words[:1] == ["@data"]:
                    break
    return tuple(names)


def load_dataset(name):
    """(X_train, y_train, X_test, y_test) with each series as an array (T, channels), from aeon's files."""
    _need_data_extra()
    if name not in shipped_datasets():
        raise ValueError(f"unknown dataset {name!r}; shipped datasets are {list(shipped_datasets())}")
    from aeon.datasets import load_from_ts_file

    out = []
    for split in ("TRAIN", "TEST"):
        X, y = load_from_ts_file(str(_data_dir() / name / f"{name}_{split}.ts"))
        out += [[np.asarray(x, dtype=float).T for x in X], np.asarray(y)]
    return tuple(out)


def standardise(X_train, X_test):
    """Univariate: each series to mean 0, variance 1 (the UCR convention). Multivariate: each channel
    by the mean and standard deviation over the training split, which keeps the level and scale of
    each series: per-series normalisation loses them, and with them JapaneseVowels falls from 0.97
    to 0.74 test accuracy with the RNTK."""
    if X_train[0].shape[1] == 1:
        def z(x):
            return (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)

        return [z(x) for x in X_train], [z(x) for x in X_test]
    stacked = np.concatenate(X_train)
    mean, std = stacked.mean(0), stacked.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(x - mean) / std for x in X_train], [(x - mean) / std for x in X_test]


def pad_to_equal_length(X_train, X_test):
    """The archive's rule for variable lengths: every raw series padded with zeros at the end to the longest
    length of both splits (before :func:`standardise`); equal lengths come back unchanged."""
    longest = max(x.shape[0] for x in X_train + X_test)
    return tuple([np.pad(x, ((0, longest - x.shape[0]), (0, 0))) for x in X] for X in (X_train, X_test))


def _aeon_collection(X):
    """Sequences (T, channels) as aeon's input: a 3D array (cases, channels, T) if the lengths are equal."""
    cases = [np.ascontiguousarray(x.T) for x in X]
    return np.stack(cases) if len({c.shape for c in cases}) == 1 else cases


def make_estimator(kernel, grid, folds, seed, backend="numba"):
    """The aeon estimator of a column of the table, with the config's grid (dict of sigma_w, sigma_b, sigma_h, C,
    rbf_scales, mlp_layers, mlp_sigma_b)."""
    _need_data_extra()
    from ..timeseries import FlatNTKClassifier, FlatRBFClassifier, RNTKClassifier

    search = dict(C=grid["C"], folds=folds, random_state=seed)
    if kernel in ("rntk", "rntk-authors", "nngp"):
        # the RNTK_UCI code's column keeps its own readout and reading direction; the others search them
        readout = tuple(grid.get("readout", ("last",)))
        chosen = {} if kernel == "rntk-authors" else dict(readout=None if readout == ("last",) else readout,
                                                          direction=grid.get("direction", ("forward",)))
        return RNTKClassifier(kind="nngp" if kernel == "nngp" else "ntk",
                              convention="authors" if kernel == "rntk-authors" else "ours", sigma_w=grid["sigma_w"],
                              sigma_b=grid["sigma_b"], sigma_h=grid["sigma_h"], backend=backend, **chosen, **search)
    if kernel == "rbf":
        return FlatRBFClassifier(scales=grid["rbf_scales"], **search)
    if kernel == "ntk-mlp":
        return FlatNTKClassifier(layers=grid["mlp_layers"], sigma_b=grid["mlp_sigma_b"], backend=backend, **search)
    if kernel in ("1nn-ed", "1nn-dtw"):
        from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

        return KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="euclidean" if kernel == "1nn-ed" else "dtw")
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def evaluate_kernel(kernel, X_train, y_train, X_test, y_test, *, grid, folds=10, seed=0, backend="numba"):
    """Fit the column's estimator on the (normalised) training split and score it on the test split."""
    start = time.perf_counter()
    estimator = make_estimator(kernel, grid, folds, seed, backend)
    with warnings.catch_warnings():  # aeon's distances, compiled on first use, warn about an index cast
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        estimator.fit(_aeon_collection(X_train), y_train)
        accuracy = float(np.mean(estimator.predict(_aeon_collection(X_test)) == y_test))
    result = dict(kernel=kernel, test_accuracy=accuracy, seconds=time.perf_counter() - start)
    if hasattr(estimator, "best_params_"):
        result.update(cv_accuracy=estimator.cv_score_, hyperparameters=estimator.best_params_,
                      candidates=estimator.n_candidates_, exploded_settings=estimator.n_exploded_)
    return result


def _dataset_list(values, name):
    """Shipped dataset names, or "all" (checked against aeon's data folder only when the rntk study is loaded)."""
    return checks.choice_list(values, name, (*shipped_datasets(), "all"))


@dataclass(frozen=True)
class RntkSection(Section, name="rntk"):
    datasets: tuple = spec(_dataset_list)
    kernels: tuple = spec(checks.choice_list, options=KERNELS)
    folds: int = spec(checks.integer, minimum=2, maximum=100)
    seed: int = spec(checks.integer, minimum=0)
    regression: bool = spec(checks.boolean, default=True)


@dataclass(frozen=True)
class GridSection(Section, name="grid"):
    """The hyperparameters searched by cross-validation (the defaults are [RNTK]'s)."""

    sigma_w: tuple = spec(checks.real_list, minimum=0.0)
    sigma_b: tuple = spec(checks.real_list, minimum=0.0)
    sigma_h: tuple = spec(checks.real_list, minimum=0.0)
    C: tuple = spec(checks.real_list, minimum=0.0, exclusive_minimum=True)
    rbf_scales: tuple = spec(checks.real_list, minimum=0.0, exclusive_minimum=True)
    mlp_layers: tuple = spec(checks.integer_list, minimum=1)
    mlp_sigma_b: tuple = spec(checks.real_list, minimum=0.0)
    readout: tuple = spec(checks.choice_list, options=("last", "mean", "per_step"), default=("last",))
    direction: tuple = spec(checks.choice_list, options=("forward", "backward", "both"), default=("forward",))


@dataclass(frozen=True)
class RntkConfig(Config):
    """The UCR/UEA study's settings (``meanfield/studies/rntk_default.toml``; the CLI's options override them)."""

    DEFAULT = "rntk_default.toml"
    rntk: RntkSection
    grid: GridSection

    def validate(self):
        if "all" in self.rntk.datasets and len(self.rntk.datasets) > 1:
            raise ConfigError("config field 'rntk.datasets': 'all' must be the only entry")

    def dataset_names(self):
        return list(shipped_datasets()) if self.rntk.datasets == ("all",) else list(self.rntk.datasets)


def evaluate_run(dataset: str, kernel: str, grid: dict, folds: int, seed: int, backend: str) -> dict:
    """One (dataset, kernel) evaluation, as a run of the framework (its result dict as JSON text). The grid and the
    backend are arguments, hence part of the run's key (the backends' Grams differ in the last bits)."""
    X_train, y_train, X_test, y_test = load_dataset(dataset)
    lengths = sorted({x.shape[0] for x in X_train + X_test})
    if kernel in ("rbf", "ntk-mlp", "1nn-ed", "1nn-dtw"):
        X_train, X_test = pad_to_equal_length(X_train, X_test)
    X_train, X_test = standardise(X_train, X_test)
    result = evaluate_kernel(kernel, X_train, y_train, X_test, y_test, grid=grid, folds=folds, seed=seed,
                             backend=backend)
    info = dict(dataset=dataset, n_train=len(X_train), n_test=len(X_test), channels=X_train[0].shape[1],
                lengths=[lengths[0], lengths[-1]], classes=len(set(y_train)))
    return dict(json=json.dumps(dict(info=info, result=result)))


def _arguments(parser):
    parser.add_argument("--dataset", help="a dataset that aeon ships (ACSF1, ArrowHead, BasicMotions, GunPoint, ...), "
                                          "or all (default: the config's)")
    parser.add_argument("--kernel", action="append", choices=list(KERNELS),
                        help="column to evaluate (repeatable; default: the config's, all seven)")
    parser.add_argument("--folds", type=int, help="cross-validation folds on the training split (>= 2)")


def _overrides(args):
    out = {}
    if args.dataset is not None:
        out["rntk.datasets"] = [args.dataset]
    if args.kernel:
        out["rntk.kernels"] = args.kernel
    if args.folds is not None:
        out["rntk.folds"] = args.folds
    return out


@register("rntk", "SVM with the RNTK and baselines on UCR/UEA datasets shipped with aeon", config=RntkConfig,
          arguments=_arguments, overrides=_overrides, backends=True)
def run_ucr(cfg: RntkConfig, out, *, progress=True, overwrite=False, backend="numba") -> Path:
    """Evaluate the columns on the datasets (each (dataset, kernel) saved as soon as it is done, so an
    interrupted run resumes); report.json holds one report per dataset, report.md the accuracy table. The
    kernel Grams are computed on ``backend`` ("numba" or "jax")."""
    _need_data_extra()
    backend = check_backend(backend)
    start = time.perf_counter()
    r = cfg.rntk
    grid = {name: list(value) for name, value in vars(cfg.grid).items()}
    with StudyFolder(out, "rntk", cfg, overwrite=overwrite) as folder:
        names = cfg.dataset_names()
        tasks = {f"{name}_{kernel}": dict(dataset=name, kernel=kernel, grid=grid, folds=r.folds, seed=r.seed,
                                          backend=backend)
                 for name in names for kernel in r.kernels}
        runs = run_tasks(evaluate_run, tasks, folder.runs, workers=0, progress=progress, desc="kernels")
        reports = []
        for name in names:
            parts = [json.loads(runs[f"{name}_{kernel}"]["json"]) for kernel in r.kernels]
            published = PUBLISHED.get(name)
            results = [p["result"] for p in parts]
            chosen = next((res["hyperparameters"] for res in results if res["kernel"] == "rntk"), None)
            reports.append(dict(**parts[0]["info"], folds=r.folds, seed=r.seed,
                                published_accuracy=None if published is None else
                                dict(zip(("1nn-ed", "1nn-dtw"), (round(1 - e, 4) for e in published))),
                                deprecated_in_aeon=name in DEPRECATED_IN_AEON, results=results,
                                time_weights=None if chosen is None else time_weight_report(name, chosen)))
        _time_weight_figure(folder.path / "time_weights.png", reports)
        summary = goals(reports)
        regression = [regression_report(name) for name in regression_datasets()] if r.regression else []
        title = (f"# RNTK classification of time series: {len(reports)} dataset{'s' * (len(reports) != 1)} that "
                 "aeon ships\n\nTest accuracy of each kernel's classifier (hyperparameters by cross-validation on the "
                 "training split) beside the UCR archive's published 1-NN accuracies.\n\n")
        return write_report(folder, dict(study="ucr", backend=backend, grid=grid, datasets=reports, goals=summary,
                                         regression=regression),
                            title + accuracy_table(reports) + "\n" + goals_text(summary) + memory_text(reports)
                            + regression_table(regression), start)


# ---------------------------------------------------------------------------------------------------------
# Regression: RNTKRegressor against scikit-learn's Gaussian process on the regression datasets aeon ships
# ---------------------------------------------------------------------------------------------------------

Z90 = 1.6448536269514722  # the normal quantile of a central 90% interval


def regression_datasets() -> list:
    """The datasets in aeon's data folder with a TRAIN and a TEST .ts file whose header says @targetlabel true."""
    names = []
    for train in sorted(_data_dir().glob("*/*_TRAIN.ts")):
        name = train.name[:-len("_TRAIN.ts")]
        header = train.read_text(errors="replace").lower().split("@data")[0]
        if name == train.parent.name and train.with_name(f"{name}_TEST.ts").exists() and "@targetlabel true" in header:
            names.append(name)
    return names


def load_regression(name, raw=False):
    """(X_train, y_train, X_test, y_test), each series an array (T, channels), z-normalised unless ``raw``."""
    from aeon.datasets import load_from_ts_file

    out = []
    for split in ("TRAIN", "TEST"):
        X, y = load_from_ts_file(str(_data_dir() / name / f"{name}_{split}.ts"))
        out += [[np.asarray(x, dtype=float).T for x in X], np.asarray(y, dtype=float)]
    X_train, y_train, X_test, y_test = out
    if not raw:
        X_train, X_test = standardise(X_train, X_test)
    return X_train, y_train, X_test, y_test


def r2(y, mean):
    """The coefficient of determination 1 - SS_res / SS_tot along the last axis."""
    return 1 - np.sum((y - mean) ** 2, -1) / np.sum((y - y.mean(-1, keepdims=True)) ** 2, -1)


def sklearn_gp(X_train, y_train, X_test):
    """scikit-learn's GaussianProcessRegressor, ConstantKernel * RBF + WhiteKernel fitted by the marginal
    likelihood (5 restarts) on the flattened series: predictive mean and standard deviation (noise included)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    A, B = (np.stack([x.ravel() for x in X]) for X in (X_train, X_test))
    kernel = ConstantKernel() * RBF(length_scale=np.sqrt(A.shape[1])) + WhiteKernel()
    with warnings.catch_warnings():  # parameters at their bounds
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=5, random_state=0).fit(A, y_train)
    return gp.predict(B, return_std=True)


def regression_report(name, raw=False, **params) -> dict:
    """RNTKRegressor(**params) against :func:`sklearn_gp` on one dataset's official split: test R^2, the coverage of
    the 90% predictive intervals, the mean predicted standard deviation over std(y_test), and the fitted setting."""
    from ..timeseries import RNTKRegressor

    X_train, y_train, X_test, y_test = load_regression(name, raw)
    ref_mean, ref_std = sklearn_gp(X_train, y_train, X_test)
    start = time.perf_counter()
    reg = RNTKRegressor(**params).fit([x.T for x in X_train], y_train)
    mean, std = reg.predict([x.T for x in X_test], return_std=True)
    return dict(dataset=name, train=len(y_train), test=len(y_test), length=X_train[0].shape[0],
                r2=float(r2(y_test, mean)), r2_sklearn=float(r2(y_test, ref_mean)),
                coverage90=float(np.mean(np.abs(y_test - mean) <= Z90 * std)),
                coverage90_sklearn=float(np.mean(np.abs(y_test - ref_mean) <= Z90 * ref_std)),
                std_ratio=float(std.mean() / y_test.std()), std_ratio_sklearn=float(ref_std.mean() / y_test.std()),
                setting={k: float(v) for k, v in reg.best_params_.items()}, amplitude=float(reg.amplitude_),
                noise=float(reg.noise_), noise_share=float(reg.noise_ / y_train.var()),
                seconds=time.perf_counter() - start)


def regression_table(rows) -> str:
    if not rows:
        return ""
    lines = ["\n## Regression: RNTKRegressor against scikit-learn's Gaussian process\n",
             "Every regression dataset that aeon ships, official split, z-normalised series. Ours: the NNGP Gaussian "
             "process with normalize_y, amplitude and noise by the marginal likelihood; scikit-learn's: a fitted "
             "ConstantKernel * RBF + WhiteKernel on the flattened series. Goals: R^2 at least scikit-learn's, "
             "90% intervals covering 80-98% of the test targets. A noise share near 1 means the series explain "
             "little of the target, and both models predict close to its mean.\n",
             "| dataset | train/test | length | R^2 | R^2 scikit-learn | 90% coverage | coverage scikit-learn | "
             "mean std / std(y) | noise share |", "|---" * 9 + "|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['train']}/{r['test']} | {r['length']} | {r['r2']:.3f} | "
                     f"{r['r2_sklearn']:.3f} | {r['coverage90']:.3f} | {r['coverage90_sklearn']:.3f} | "
                     f"{r['std_ratio']:.2f} | {r['noise_share']:.2f} |")
    return "\n".join(lines) + "\n"


def time_weight_profile(X, pairs=16, seed=0, **settings) -> np.ndarray:
    """The mean over ``pairs`` random pairs of distinct sequences of X of their normalised time weights
    (:func:`meanfield.architectures.elman.kernel.time_weights`, each pair's weights divided by their sum), aligned
    at the end; a step that a pair does not share has weight 0. Oldest step first."""
    from ..architectures.elman.kernel import time_weights

    rng = np.random.default_rng(seed)
    profiles = []
    for _ in range(pairs):
        i, j = rng.choice(len(X), size=2, replace=False)
        w = np.abs(time_weights(X[i], X[j], activation="relu", **settings))
        profiles.append(w / w.sum())
    n = max(len(w) for w in profiles)
    return np.mean([np.pad(w, (n - len(w), 0)) for w in profiles], axis=0)


def memory_steps(profile, share=0.9) -> int:
    """The number of last steps that hold ``share`` of a normalised weight profile."""
    return int(np.searchsorted(np.cumsum(profile[::-1]), share) + 1)


def time_weight_report(dataset, hyperparameters) -> dict:
    """How the chosen RNTK weights the time steps of a dataset's training series, against the edge of chaos
    sigma_w = sqrt 2: the mean normalised weight profile and the steps that hold 90% of the weight."""
    X_train, _, X_test, _ = load_dataset(dataset)
    X_train, _ = standardise(X_train, X_test)
    chosen = {k: hyperparameters[k] for k in ("sigma_w", "sigma_b", "sigma_h")}
    out = {}
    for label, settings in (("chosen", chosen), ("edge", dict(chosen, sigma_w=float(np.sqrt(2.0))))):
        profile = time_weight_profile(X_train, **settings)
        out[label] = dict(settings=settings, profile=profile.tolist(), memory_steps_90=memory_steps(profile),
                          length=len(profile))
    return out


def _time_weight_figure(path, reports):
    plt = pyplot()
    shown = [r for r in reports if r.get("time_weights")]
    if not shown:
        return
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, r in zip(axes.flat, shown):
        for label, style in (("chosen", "C0-"), ("edge", "k:")):
            v = r["time_weights"][label]
            back = np.arange(v["length"])[::-1]  # steps before the end
            ax.plot(back, v["profile"], style, label=f"sigma_w = {v['settings']['sigma_w']:.3g} ({label}); "
                                                     f"90% in last {v['memory_steps_90']}")
        ax.set(yscale="log", xlabel="steps before the end", ylabel="normalised weight",
               title=f"{r['dataset']} (length {r['lengths'][1]})")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("RNTK time weights (NNGP, last readout)\nmean over 16 pairs of training series", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def goals(reports) -> dict:
    """The issue's goals, measured: each RNTK column against the published 1-NN ED on each univariate dataset, and
    the mean accuracy of each column over the datasets where every column ran."""
    acc = [{res["kernel"]: res["test_accuracy"] for res in r["results"]} for r in reports]
    versus_ed = [dict(dataset=r["dataset"], kernel=k, accuracy=a[k], published_ed=r["published_accuracy"]["1nn-ed"],
                      margin=a[k] - r["published_accuracy"]["1nn-ed"])
                 for r, a in zip(reports, acc) if r["published_accuracy"] for k in ("rntk", "rntk-authors") if k in a]
    columns = sorted(set.intersection(*(set(a) for a in acc))) if acc else []
    means = {k: float(np.mean([a[k] for a in acc])) for k in columns}
    return dict(rntk_versus_published_ed=versus_ed, mean_accuracy=means, datasets=len(reports))


def goals_text(summary) -> str:
    lines = []
    for v in summary["rntk_versus_published_ed"]:
        verdict = "met" if v["margin"] >= -1e-12 else "missed"
        lines.append(f"- {v['dataset']}: {COLUMNS[v['kernel']]} {v['accuracy']:.3f} against the archive's 1-NN ED "
                     f"{v['published_ed']:.3f} ({v['margin']:+.3f}, {verdict})")
    if summary["mean_accuracy"]:
        means = ", ".join(f"{COLUMNS[k]} {v:.3f}" for k, v in sorted(summary["mean_accuracy"].items(),
                                                                      key=lambda kv: -kv[1]))
        lines.append(f"- mean test accuracy over the {summary['datasets']} datasets: {means}")
    return "\n".join(lines) + "\n" if lines else ""


def _lengths(report) -> str:
    low, high = report["lengths"]
    return str(low) if low == high else f"{low}-{high}"


def memory_text(reports) -> str:
    """Where the chosen RNTK puts its weight in time (figure time_weights.png)."""
    lines = [f"- {r['dataset']} (length {_lengths(r)}): 90% of the weight in the last "
             f"{r['time_weights']['chosen']['memory_steps_90']} steps at the chosen sigma_w = "
             f"{r['time_weights']['chosen']['settings']['sigma_w']:.3g}, "
             f"{r['time_weights']['edge']['memory_steps_90']} at sqrt 2" for r in reports if r.get("time_weights")]
    return ("\nHow the RNTK weights time (time_weights.png):\n\n" + "\n".join(lines) + "\n") if lines else ""


def accuracy_table(reports) -> str:
    """A Markdown table (dataset x column test accuracy, with the archive's published 1-NN figures) from reports."""
    kernels = [k for k in KERNELS if any(res["kernel"] == k for r in reports for res in r["results"])]
    chose = "rntk" in kernels
    head = ["dataset", "train/test", "length", "published 1-NN ED", "published 1-NN DTW",
            *(COLUMNS[k] for k in kernels), *(["RNTK's readout, direction"] if chose else [])]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in reports:
        acc = {res["kernel"]: f"{res['test_accuracy']:.3f}" for res in r["results"]}
        pub = r.get("published_accuracy") or {}
        length = _lengths(r)
        name = r["dataset"] + (" (deprecated in aeon)" if r.get("deprecated_in_aeon") else "")
        if r["channels"] > 1:
            name += f" ({r['channels']} channels)"
        cells = [name, f"{r['n_train']}/{r['n_test']}", length,
                 *(f"{pub[k]:.3f}" if k in pub else "-" for k in ("1nn-ed", "1nn-dtw")),
                 *(acc.get(k, "-") for k in kernels)]
        if chose:
            best = next((res["hyperparameters"] for res in r["results"] if res["kernel"] == "rntk"), {})
            cells.append(f"{best.get('readout', 'last')}, {best.get('direction', 'forward')}" if best else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
