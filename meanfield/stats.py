"""Statistics shared by every study: rate fits, bootstrap intervals, autocorrelation, burn-in.

A power-law rate is the slope of log E|error| against log x; a geometric rate (the memory state against
the number of steps k) is exp of the slope of log E|error| against k. E|error| at each x is estimated by
the mean over seeds; the 95% interval comes from a bootstrap that resamples the seeds independently at
each x (seeded, so reproducible). Markov-chain averages get their standard errors from the integrated
autocorrelation time (Sokal's automatic window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from . import checks


@dataclass(frozen=True)
class RateFit:
    """Least-squares slope of log(mean error) on log(x) (``scale="log"``) or on x (``"linear"``).

    ``boot`` holds the bootstrap (slope, intercept) pairs, for confidence bands in plots.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    n_boot: int
    scale: str = "log"
    boot: np.ndarray = field(default=None, repr=False, compare=False)

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high

    def _curve(self, x, slope, intercept):
        x = np.asarray(x, dtype=float)
        return np.exp(intercept + slope * (np.log(x) if self.scale == "log" else x))

    def predict(self, x):
        return self._curve(x, self.slope, self.intercept)

    def band(self, x):
        """Pointwise (low, high) bootstrap band of the fitted curve at ``x``."""
        curves = np.array([self._curve(x, s, i) for s, i in self.boot])
        return tuple(np.quantile(curves, [(1 - self.level) / 2, (1 + self.level) / 2], axis=0))

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("boot")
        return out


def _line(u, logy):
    """Least-squares (slope, intercept) of logy (..., K) on u (K,), for a batch of rows."""
    uc = u - u.mean()
    slope = (logy - logy.mean(axis=-1, keepdims=True)) @ uc / (uc @ uc)
    return slope, logy.mean(axis=-1) - slope * u.mean()


def fit_rate(x, errors_per_seed, *, scale="log", n_boot=2000, level=0.95, seed=0) -> RateFit:
    """Fit error ~ C x^slope (``scale="log"``) or error ~ C exp(slope x) (``"linear"``) from per-seed errors.

    Parameters
    ----------
    x : array (K,)
        Positive abscissae (widths N, or step counts), at least two distinct values.
    errors_per_seed : sequence of K arrays
        The errors of the independent seeds at each x (any number >= 1 per x; >= 2 for an interval).

    Examples
    --------
    >>> import numpy as np

from . import checks
    >>> fit = fit_rate([100, 400, 1600], [[1.0, 1.1], [0.5, 0.55], [0.25, 0.275]])
    >>> round(fit.slope, 3)
    -0.5
    """
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
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
    n_boot = checks.integer(n_boot, "n_boot", 1)
    u = np.log(x) if scale == "log" else x
    slope, intercept = _line(u, np.log([e.mean() for e in errs]))
    rng = np.random.default_rng(seed)
    means = np.stack([e[rng.integers(0, e.size, (n_boot, e.size))].mean(axis=1) for e in errs], axis=1)
    boot = np.stack(_line(u, np.log(means)), axis=1)  # (n_boot, 2)
    lo, hi = np.quantile(boot[:, 0], [(1 - level) / 2, (1 + level) / 2])
    return RateFit(float(slope), float(intercept), float(lo), float(hi), float(level), int(n_boot), scale, boot)


def mean_interval(values, level=0.95, n_boot=2000, seed=0):
    """Mean of independent values and the percentile bootstrap interval of the mean: (mean, low, high)."""
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(values.mean()), float(lo), float(hi)


def integrated_autocorrelation(x, c=5.0):
    """Integrated autocorrelation time with Sokal's automatic window (smallest W >= c tau(W)).

    Examples
    --------
    >>> import numpy as np

from . import checks
    >>> x = np.random.default_rng(0).standard_normal(20000)
    >>> abs(integrated_autocorrelation(x) - 1.0) < 0.1
    True
    """
    x = np.asarray(x, dtype=float) - np.mean(x)
    n = x.size
    if n < 4 or np.allclose(x, 0):
        return 1.0
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    tau = 1.0
    for w in range(1, n):
        tau = 1.0 + 2.0 * np.sum(acf[1:w + 1])
        if w >= c * tau:
            break
    return float(max(tau, 1.0))


def chain_mean_se(x):
    """Standard error of the mean of a stationary Markov-chain series along axis 0: std sqrt(tau / n),
    with one integrated autocorrelation time tau per series (x of shape (n,) or (n, ...))."""
    x = np.asarray(x, dtype=float)
    flat = x.reshape(x.shape[0], -1)
    tau = np.array([integrated_autocorrelation(flat[:, j]) for j in range(flat.shape[1])])
    se = flat.std(axis=0, ddof=1) * np.sqrt(tau / flat.shape[0])
    return se.reshape(x.shape[1:]) if x.ndim > 1 else float(se[0])


def geweke_z(x, first=0.1, last=0.5):
    """Burn-in diagnostic: (mean of the first 10% - mean of the last 50%) / its standard error, the standard
    errors from integrated autocorrelation times. |z| of a few or more says the chain was still drifting."""
    x = np.asarray(x, dtype=float)
    a, b = x[: max(int(first * x.size), 4)], x[-max(int(last * x.size), 4):]
    var = sum(np.var(part, ddof=1) * integrated_autocorrelation(part) / part.size for part in (a, b))
    return float((a.mean() - b.mean()) / np.sqrt(var)) if var > 0 else 0.0
