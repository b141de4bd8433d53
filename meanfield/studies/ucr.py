"""Kernel SVMs with the RNTK on the UCR/UEA time-series datasets that ``aeon`` ships inside itself.

For each kernel the hyperparameters (the kernel's own and the SVM's C) are chosen by stratified
k-fold cross-validation on the training split only; the chosen model is refitted on the whole
training split and scored once on the official test split. Kernels:

- ``rntk``: the recurrent NTK (:func:`meanfield.architectures.elman.kernel.rntk`, ReLU, last readout), sequences
  of any lengths;
- ``nngp``: its NNGP twin;
- ``rbf``: the Gaussian kernel exp(-gamma |x - x'|^2) on the flattened sequence (equal lengths);
- ``ntk-mlp``: the NTK of a fully connected ReLU network on the flattened sequence (equal lengths),
  which is the RNTK of the length-1 sequence (x_1, ..., x_T) stacked into one input.

Needs the optional extra ``[data]`` (aeon, scikit-learn); no download happens at run time.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..architectures.elman import rntk
from ..backends import check_backend
from .framework import Config, ConfigError, Section, StudyFolder, register, run_tasks, spec, write_report

DATASETS = {
    "ArrowHead": "load_arrow_head",
    "BasicMotions": "load_basic_motions",
    "GunPoint": "load_gunpoint",
    "ItalyPowerDemand": "load_italy_power_demand",
    "JapaneseVowels": "load_japanese_vowels",
    "PickupGestureWiimoteZ": "load_pickup_gesture_wiimoteZ",
}
KERNELS = ("rntk", "nngp", "rbf", "ntk-mlp")
C_GRID = tuple(10.0**k for k in range(-2, 4))
# sigma_w around sqrt(2), ReLU's edge of chaos: Sigma(t) = sigma_w^2 Sigma(t-1)/2 + ..., so below it the
# last-state kernel forgets all but the last few steps (GunPoint, length 150: 0.69 test accuracy at
# sigma_w = 1.2, 0.96 at 1.35-1.41), as in the hyperparameter ranges of [RNTK].
RNTK_GRID = dict(sigma_w=(1.0, 1.2, 1.35, 1.41, 1.45), sigma_b=(0.0, 0.5, 1.0), layers=(1, 2))
MLP_GRID = dict(layers=(1, 2, 3), sigma_b=(0.0, 0.5))
RBF_SCALES = (0.1, 0.3, 1.0, 3.0)  # gamma = scale / (T m) (times the mean squared norm is the usual rule)


def _need_data_extra():
    try:
        import aeon  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as err:
        raise ImportError("meanfield rntk needs the optional extra [data]: pip install -e '.[data]' "
                          f"(missing: {err.name})") from None


def load_dataset(name):
    """(X_train, y_train, X_test, y_test) with each series as an array (T, channels), from aeon's files."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; shipped datasets are {sorted(DATASETS)}")
    _need_data_extra()
    import aeon.datasets

    loader = getattr(aeon.datasets, DATASETS[name])
    out = []
    for split in ("train", "test"):
        X, y = loader(split=split)
        out += [[np.asarray(x, dtype=float).T for x in X], np.asarray(y)]
    return tuple(out)


def _equal_lengths(X):
    return len({x.shape for x in X}) == 1


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


def _gram_candidates(kernel, X, backend="numba"):
    """(hyperparameters, full Gram over X) for every point of the kernel's grid; the RNTK, NNGP and MLP NTK
    Grams on ``backend``."""
    if kernel in ("rntk", "nngp"):
        for sw, sb, layers in itertools.product(*RNTK_GRID.values()):
            params = dict(sigma_w=sw, sigma_b=sb, layers=layers)
            yield params, rntk(X, activation="relu", kind="ntk" if kernel == "rntk" else "nngp", backend=backend,
                               **params)
    elif kernel == "ntk-mlp":
        flat = [x.reshape(1, -1) for x in X]
        for layers, sb in itertools.product(*MLP_GRID.values()):
            params = dict(layers=layers, sigma_b=sb)
            yield params, rntk(flat, activation="relu", kind="ntk", backend=backend, **params)
    elif kernel == "rbf":
        F = np.stack([x.ravel() for x in X])
        sq = np.sum(F**2, axis=1)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2 * F @ F.T, 0.0)
        for scale in RBF_SCALES:
            gamma = scale / F.shape[1]
            yield dict(gamma=gamma), np.exp(-gamma * dist)
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def evaluate_kernel(kernel, X_train, y_train, X_test, y_test, *, folds=5, seed=0, backend="numba"):
    """Cross-validated choice of hyperparameters on the training split, then test accuracy (the kernel Grams on
    ``backend``, :mod:`meanfield.backends`)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    if kernel in ("rbf", "ntk-mlp") and not _equal_lengths(X_train + X_test):
        return dict(kernel=kernel, skipped="needs sequences of equal length")
    n_train = len(X_train)
    counts = np.unique(y_train, return_counts=True)[1]
    cv = StratifiedKFold(n_splits=int(max(2, min(folds, counts.min()))), shuffle=True, random_state=seed)
    start = time.perf_counter()
    best = None
    for params, G in _gram_candidates(kernel, X_train + X_test, backend):
        G_train = G[:n_train, :n_train]
        for C in C_GRID:
            score = cross_val_score(SVC(kernel="precomputed", C=C), G_train, y_train, cv=cv).mean()
            if best is None or score > best[0] + 1e-12:
                best = (score, dict(params, C=C), G)
    score, params, G = best
    model = SVC(kernel="precomputed", C=params["C"]).fit(G[:n_train, :n_train], y_train)
    accuracy = float(np.mean(model.predict(G[n_train:, :n_train]) == y_test))
    return dict(kernel=kernel, test_accuracy=accuracy, cv_accuracy=float(score), hyperparameters=params,
                seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class RntkSection(Section, name="rntk"):
    datasets: tuple = spec(checks.choice_list, options=(*DATASETS, "all"))
    kernels: tuple = spec(checks.choice_list, options=KERNELS)
    folds: int = spec(checks.integer, minimum=2, maximum=100)
    seed: int = spec(checks.integer, minimum=0)


@dataclass(frozen=True)
class RntkConfig(Config):
    """The UCR/UEA study's settings (``meanfield/studies/rntk_default.toml``; the CLI's options override them)."""

    DEFAULT = "rntk_default.toml"
    rntk: RntkSection

    def validate(self):
        if "all" in self.rntk.datasets and len(self.rntk.datasets) > 1:
            raise ConfigError("config field 'rntk.datasets': 'all' must be the only entry")

    def dataset_names(self):
        return sorted(DATASETS) if self.rntk.datasets == ("all",) else list(self.rntk.datasets)


def evaluate_run(dataset: str, kernel: str, folds: int, seed: int, backend: str) -> dict:
    """One (dataset, kernel) evaluation, as a run of the framework (its result dict as JSON text). The backend is
    an argument, hence part of the run's key: its Grams differ from the other backend's in the last bits."""
    X_train, y_train, X_test, y_test = load_dataset(dataset)
    X_train, X_test = standardise(X_train, X_test)
    result = evaluate_kernel(kernel, X_train, y_train, X_test, y_test, folds=folds, seed=seed, backend=backend)
    lengths = sorted({x.shape[0] for x in X_train + X_test})
    info = dict(dataset=dataset, n_train=len(X_train), n_test=len(X_test), channels=X_train[0].shape[1],
                lengths=[lengths[0], lengths[-1]], classes=len(set(y_train)))
    return dict(json=json.dumps(dict(info=info, result=result)))


def _arguments(parser):
    parser.add_argument("--dataset", help="ArrowHead, BasicMotions, GunPoint, ItalyPowerDemand, JapaneseVowels, "
                                          "PickupGestureWiimoteZ, or all (default: the config's)")
    parser.add_argument("--kernel", action="append", choices=list(KERNELS),
                        help="kernel to evaluate (repeatable; default: the config's, all four)")
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
    """Evaluate the kernels on the datasets (each (dataset, kernel) saved as soon as it is done, so an
    interrupted run resumes); report.json holds one report per dataset, report.md the accuracy table. The
    kernel Grams are computed on ``backend`` ("numba" or "jax")."""
    _need_data_extra()
    backend = check_backend(backend)
    start = time.perf_counter()
    r = cfg.rntk
    with StudyFolder(out, "rntk", cfg, overwrite=overwrite) as folder:
        names = cfg.dataset_names()
        tasks = {f"{name}_{kernel}": dict(dataset=name, kernel=kernel, folds=r.folds, seed=r.seed, backend=backend)
                 for name in names for kernel in r.kernels}
        runs = run_tasks(evaluate_run, tasks, folder.runs, workers=0, progress=progress, desc="kernels")
        reports = []
        for name in names:
            parts = [json.loads(runs[f"{name}_{kernel}"]["json"]) for kernel in r.kernels]
            reports.append(dict(**parts[0]["info"], folds=r.folds, seed=r.seed, results=[p["result"] for p in parts]))
        return write_report(folder, dict(study="ucr", backend=backend, datasets=reports), accuracy_table(reports),
                            start)


def accuracy_table(reports) -> str:
    """A Markdown table (dataset x kernel test accuracy) from report dicts."""
    lines = ["| dataset | train/test | length | " + " | ".join(KERNELS) + " |",
             "|---|---|---|" + "---|" * len(KERNELS)]
    for r in reports:
        acc = {res["kernel"]: (f"{res['test_accuracy']:.3f}" if "test_accuracy" in res else "n/a")
               for res in r["results"]}
        length = str(r["lengths"][0]) if r["lengths"][0] == r["lengths"][1] else f"{r['lengths'][0]}-{r['lengths'][1]}"
        lines.append(f"| {r['dataset']} | {r['n_train']}/{r['n_test']} | {length} | "
                     + " | ".join(acc.get(k, "-") for k in KERNELS) + " |")
    return "\n".join(lines) + "\n"
