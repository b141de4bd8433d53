"""Convergence estimators: fitted rates with bootstrap confidence intervals.

A rate is the slope of log E|error| against log N. E|error| at each width is estimated by the mean
over seeds; the 95% interval comes from a bootstrap that resamples the seeds independently at each
width (seeded, so reproducible).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RateFit:
    """Least-squares slope of log(mean error) on log(x), with a bootstrap interval."""

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high

    def predict(self, x):
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope

    def as_dict(self) -> dict:
        return asdict(self)


def _slope(logx, logy):
    A = np.stack([logx, np.ones_like(logx)], axis=1)
    return np.linalg.lstsq(A, logy, rcond=None)[0]


def fit_rate(x, errors_per_seed, *, n_boot=2000, level=0.95, seed=0) -> RateFit:
    """Fit error ~ C x^slope from per-seed errors.

    Parameters
    ----------
    x : array (K,)
        Positive abscissae (widths N, or step counts), at least two distinct values.
    errors_per_seed : sequence of K arrays
        The errors of the independent seeds at each x (any number >= 1 per x; >= 2 for an interval).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 2 or np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("x must be a 1-D array of at least two positive finite values")
    if np.unique(x).size < 2:
        raise ValueError("x must contain at least two distinct values")
    errs = [np.asarray(e, dtype=float).ravel() for e in errors_per_seed]
    if len(errs) != x.size:
        raise ValueError(f"errors_per_seed must have one array per x ({x.size}), got {len(errs)}")
    for e in errs:
        if e.size == 0 or np.any(~np.isfinite(e)) or np.any(e <= 0):
            raise ValueError("errors must be non-empty, finite and positive")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    logx = np.log(x)
    slope, intercept = _slope(logx, np.log([e.mean() for e in errs]))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        means = [e[rng.integers(0, e.size, e.size)].mean() for e in errs]
        boot[i] = _slope(logx, np.log(means))[0]
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return RateFit(float(slope), float(intercept), float(lo), float(hi), float(level), int(n_boot))
