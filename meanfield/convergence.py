"""Convergence estimators: errors against the limit, fitted rates with bootstrap confidence intervals.

A power-law rate is the slope of log E|error| against log N; a geometric rate (the memory state
against the number of steps k) is exp of the slope of log E|error| against k. E|error| at each x is
estimated by the mean over seeds; the 95% interval comes from a bootstrap that resamples the seeds
independently at each x (seeded, so reproducible).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .activations import bounded_activation_code
from .rnn import window_states_kernel


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
    u = np.log(x) if scale == "log" else x
    slope, intercept = _line(u, np.log([e.mean() for e in errs]))
    rng = np.random.default_rng(seed)
    means = np.stack([e[rng.integers(0, e.size, (n_boot, e.size))].mean(axis=1) for e in errs], axis=1)
    boot = np.stack(_line(u, np.log(means)), axis=1)  # (n_boot, 2)
    lo, hi = np.quantile(boot[:, 0], [(1 - level) / 2, (1 + level) / 2])
    return RateFit(float(slope), float(intercept), float(lo), float(hi), float(level), int(n_boot), scale, boot)


def trajectory_errors(outputs, limit, weights=None):
    """Errors of a simulated trajectory against the limit on the probes.

    outputs, limit: (R + 1, P) values at the recorded times; weights (P,) probe weights (default
    uniform). Returns (sup over times and probes of |f^N - f|, L2(weights) error at each time (R + 1,)).
    """
    outputs, limit = np.asarray(outputs, dtype=float), np.asarray(limit, dtype=float)
    if outputs.shape != limit.shape or outputs.ndim != 2:
        raise ValueError(f"outputs and limit must have the same shape (R + 1, P), got {outputs.shape}, {limit.shape}")
    w = np.full(outputs.shape[1], 1.0 / outputs.shape[1]) if weights is None else np.asarray(weights, float)
    diff = outputs - limit
    return float(np.max(np.abs(diff))), np.sqrt((diff**2) @ (w / w.sum()))


def gaussian_moment_errors(outputs_per_seed, mean, cov):
    """Sample mean and variance over seeds of f^N_t against the limit's Gaussian moments.

    outputs_per_seed (S, R + 1, P); mean (R + 1, P); cov (R + 1, P, P). Returns a dict with the sup
    errors of the mean and of the variance and their Monte-Carlo standard errors (S seeds), which set
    the floor these errors cannot go below at any width.
    """
    x = np.asarray(outputs_per_seed, dtype=float)
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least two seeds for moments")
    var = np.einsum("tpp->tp", np.asarray(cov, dtype=float))
    m, v = x.mean(axis=0), x.var(axis=0, ddof=1)
    return dict(mean_error=float(np.max(np.abs(m - mean))), mean_se=float(np.max(np.sqrt(var / n))),
                var_error=float(np.max(np.abs(v - var))), var_se=float(np.max(var * np.sqrt(2 / (n - 1)))))


def memory_state_errors(chain, W, b, activation="tanh", n_steps=30, n_sequences=8, burn_in=200, seed=0):
    """|S_k - S(theta; history)| averaged over parameter nodes, for k = 1..n_steps, per sequence.

    Each sequence is a stationary path of the chain; S_k is run from S = 0 over the last k inputs and
    the reference from a burn-in of ``burn_in`` earlier inputs (error below rho^burn_in). Returns an
    array (n_sequences, n_steps): one independent error curve per sequence, for :func:`fit_rate` with
    ``scale="linear"`` (a geometric rate exp(slope) to compare with rho).
    """
    code = bounded_activation_code(activation)
    rng = np.random.default_rng(seed)
    out = np.empty((n_sequences, n_steps))
    W = np.ascontiguousarray(np.atleast_2d(W))
    for s in range(n_sequences):
        path = chain.values(chain.simulate(burn_in + n_steps, rng))[None]
        reference = window_states_kernel(np.ascontiguousarray(path), W, b, code, False)[0][0]
        windows = [np.ascontiguousarray(path[:, path.shape[1] - k:]) for k in range(1, n_steps + 1)]
        out[s] = [np.mean(np.abs(window_states_kernel(w, W, b, code, False)[0][0] - reference)) for w in windows]
    return out
