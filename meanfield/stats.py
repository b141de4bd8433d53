"""Statistics shared by every study: rate fits and their intervals, autocorrelation, burn-in.

A power-law rate is the slope of log E|error| against log x; a geometric rate (the memory state against
the number of steps k) is exp of the slope of log E|error| against k. E|error| at each x is estimated by
the mean over seeds, and the slope by least squares on the logs of these means.

The interval of the slope is studentised (``docs/design.md``, "Intervals that mean what they say"): the
slope is a linear combination sum_k c_k log m_k of the log-means, each with the delta-method variance
s_k^2 / (n_k m_k^2) from its n_k seeds, so its standard error is sqrt(sum_k c_k^2 s_k^2 / (n_k m_k^2)), and
the interval is slope +- t_nu se with Welch-Satterthwaite degrees of freedom nu. The percentile bootstrap
over seeds that it replaces under-covered with 6-8 seeds per width (it ignores that the spread itself is
estimated); the coverage of both, measured by reseeding the quick study 200 times, is in docs/design.md
(``benchmarks/coverage.py``). Markov-chain averages get their standard errors from the integrated
autocorrelation time (Sokal's automatic window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from . import checks


@dataclass(frozen=True)
class RateFit:
    """Least-squares slope of log(mean error) on log(x) (``scale="log"``) or on x (``"linear"``), with its
    studentised interval at ``level`` (``dof`` degrees of freedom; ``se`` the standard error of the slope).

    ``cov`` is the delta-method covariance of (slope, intercept), for confidence bands in plots.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    level: float
    se: float
    dof: float
    scale: str = "log"
    cov: tuple = ((0.0, 0.0), (0.0, 0.0))

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high

    def _u(self, x):
        x = np.asarray(x, dtype=float)
        return np.log(x) if self.scale == "log" else x

    def predict(self, x):
        return np.exp(self.intercept + self.slope * self._u(x))

    def band(self, x):
        """Pointwise (low, high) interval of the fitted curve at ``x`` (same level and degrees of freedom)."""
        u = self._u(x)
        (vs, c), (_, vi) = self.cov
        half = stats.t.ppf((1 + self.level) / 2, self.dof) * np.sqrt(np.maximum(vs * u * u + 2 * c * u + vi, 0))
        centre = self.intercept + self.slope * u
        return np.exp(centre - half), np.exp(centre + half)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["cov"] = [list(row) for row in self.cov]
        return out


def fit_rate(x, errors_per_seed, *, scale="log", level=0.95) -> RateFit:
    """Fit error ~ C x^slope (``scale="log"``) or error ~ C exp(slope x) (``"linear"``) from per-seed errors.

    Parameters
    ----------
    x : array (K,)
        Positive abscissae (widths N, or step counts), at least two distinct values.
    errors_per_seed : sequence of K arrays
        The errors of the independent seeds at each x (at least two per x, for their spread).

    Examples
    --------
    >>> import numpy as np
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
        if e.size < 2 or np.any(~np.isfinite(e)) or np.any(e <= 0):
            raise ValueError("errors_per_seed must hold at least two finite, positive errors at each x")
    level = checks.real(level, "level", 0, 1)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    u = np.log(x) if scale == "log" else x
    uc = u - u.mean()
    c = uc / (uc @ uc)  # slope = c . log m
    means = np.array([e.mean() for e in errs])
    slope = float(c @ np.log(means))
    intercept = float(np.log(means).mean() - slope * u.mean())
    n = np.array([e.size for e in errs])
    v = np.array([e.var(ddof=1) for e in errs]) / (n * means**2)  # delta-method variance of log m_k
    a = 1.0 / x.size - c * u.mean()  # intercept = a . log m
    cov = ((float(c * c @ v), float(c * a @ v)), (float(c * a @ v), float(a * a @ v)))
    terms = c * c * v
    se = float(np.sqrt(terms.sum()))
    dof = float(terms.sum() ** 2 / np.sum(terms**2 / (n - 1))) if se > 0 else float("inf")
    half = float(stats.t.ppf((1 + level) / 2, dof)) * se
    return RateFit(slope, intercept, slope - half, slope + half, float(level), se, dof, scale, cov)


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
