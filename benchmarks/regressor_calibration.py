"""Accuracy and calibration of RNTKRegressor on every regression dataset that aeon ships, against scikit-learn's GP.

Run: ``.venv/bin/python benchmarks/regressor_calibration.py [--variants default ntk ...] [--datasets NAME ...]
[--raw]`` (seconds on 2 cores; no download: the datasets are read from aeon's own data folder).

Each dataset's official train/test split, the series z-normalised (unless ``--raw``) as
:func:`meanfield.studies.ucr.standardise` does (univariate: each series to mean 0, variance 1; multivariate: each
channel by the training split's statistics). Columns: R^2 on the test split of
:class:`meanfield.timeseries.RNTKRegressor` (one row per variant of its parameters, :data:`VARIANTS`) and of
scikit-learn's GaussianProcessRegressor with a fitted ConstantKernel * RBF + WhiteKernel on the flattened series
(``normalize_y=True``, 5 restarts); ``dR2 (se)``: ours minus scikit-learn's, with the standard error of that
difference from a paired bootstrap over the test cases; the coverage of the 90% predictive intervals mean +- 1.645
std (standard deviations of y, noise included) of both; the mean predicted standard deviation over std(y_test); the
fitted amplitude a and noise variance s (in the targets' squared units), s over the training targets' variance, the
kernel setting (sigma_w, sigma_b, sigma_h) and the fit's time. Goals: R^2 ours >= R^2 scikit-learn, coverage in
[0.80, 0.98].
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from meanfield.studies.ucr import Z90, load_regression, r2, regression_datasets, sklearn_gp
from meanfield.timeseries import RNTKRegressor

VARIANTS = {"default": {}, "ntk": dict(kind="ntk"), "sigma_w=1.41": dict(sigma_w=1.41),
            "authors": dict(convention="authors")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None, help="default: every shipped regression dataset")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--raw", action="store_true", help="the series as shipped, not z-normalised")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples of the test cases for dR2's se")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| dataset | variant | n_train | n_test | length | R2 ours | R2 sklearn | dR2 (se) | coverage ours | "
          "coverage sklearn | mean std / std(y_test) ours, sklearn | amplitude | noise | noise / var(y_train) | "
          "setting | fit s |")
    print("|" + "---|" * 16)
    for name in args.datasets or regression_datasets():
        X_train, y_train, X_test, y_test = load_regression(name, args.raw)
        ref_mean, ref_std = sklearn_gp(X_train, y_train, X_test)
        boot = rng.integers(0, len(y_test), (args.bootstrap, len(y_test)))
        for variant in args.variants:
            start = time.perf_counter()
            reg = RNTKRegressor(**VARIANTS[variant]).fit([x.T for x in X_train], y_train)
            mean, std = reg.predict([x.T for x in X_test], return_std=True)
            seconds = time.perf_counter() - start
            se = np.std(r2(y_test[boot], mean[boot]) - r2(y_test[boot], ref_mean[boot]))
            setting = ", ".join(f"{v:g}" for v in reg.best_params_.values())
            ours, theirs = r2(y_test, mean), r2(y_test, ref_mean)
            print(f"| {name} | {variant} | {len(y_train)} | {len(y_test)} | {X_train[0].shape[0]} "
                  f"| {ours:.3f} | {theirs:.3f} | {ours - theirs:+.3f} ({se:.3f}) "
                  f"| {np.mean(np.abs(y_test - mean) <= Z90 * std):.3f} "
                  f"| {np.mean(np.abs(y_test - ref_mean) <= Z90 * ref_std):.3f} "
                  f"| {std.mean() / y_test.std():.2f}, {ref_std.mean() / y_test.std():.2f} | {reg.amplitude_:.3g} "
                  f"| {reg.noise_:.3g} | {reg.noise_ / y_train.var():.2f} | ({setting}) | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
