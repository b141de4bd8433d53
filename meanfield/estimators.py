"""Convergence estimators of the diagonal RNN: errors of simulations against the limit.

The fitted rates of these errors (:func:`meanfield.stats.fit_rate`) are what the convergence study reports.
"""

from __future__ import annotations

import numpy as np

from .activations import get_activation
from .architectures.diagonal.network import window_states_kernel


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
    code = get_activation(activation, bounded=True).code
    rng = np.random.default_rng(seed)
    out = np.empty((n_sequences, n_steps))
    W = np.ascontiguousarray(np.atleast_2d(W))
    for s in range(n_sequences):
        path = chain.values(chain.simulate(burn_in + n_steps, rng))[None]
        reference = window_states_kernel(np.ascontiguousarray(path), W, b, code, False)[0][0]
        windows = [np.ascontiguousarray(path[:, path.shape[1] - k:]) for k in range(1, n_steps + 1)]
        out[s] = [np.mean(np.abs(window_states_kernel(w, W, b, code, False)[0][0] - reference)) for w in windows]
    return out
