"""Bayesian RNNs and DNNs in muP, sampled by Langevin dynamics ([BFHP], models.md section 6).

Network of width N on sequences x^mu = (x_1, ..., x_T) in R^d (mu = 1..P), with pre-activations

    h_1 = U x_1,   h_t = W_t phi(h_{t-1}) + U x_t  (t = 2..T),   f(x) = (1/N) v . phi(h_T)   (muP readout)

where the RNN shares one W_t = W over time and the DNN of the same depth draws an independent W_t per
step. Prior: U ~ N(0, g_u^2/d), W ~ N(0, g^2/N), v ~ N(0, g_v^2), entries independent. Posterior:

    p(theta) ~ exp(-beta/2 sum_mu (y_mu - f(x^mu))^2 - sum_groups |theta_group|^2 / (2 var_group)).

Sampler: Langevin dynamics preconditioned by the prior variances, theta <- theta - eta M grad E +
sqrt(2 eta M) xi with E the negative log posterior and M = diag(prior variances). For any constant
M its stationary law is the posterior (up to O(eta) discretisation); M makes one step size fit groups
whose scales differ by sqrt(N). Order parameters: C_{t,t'}^{mu,nu} = (1/N) sum_i phi(h^mu_{i,t}) phi(h^nu_{i,t'}).

The theory (saddle-point equations for C) is not implemented yet; this module provides the sampler
and its diagnostics. BLAS-bound: each step is a few (P, N) x (N, N) products, so NumPy runs at the
speed a Numba loop calling the same BLAS would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import derivative_numpy, sigma_numpy

ACTIVATIONS = ("linear", "tanh", "erf")


def _phi(name, z):
    return z if name == "linear" else sigma_numpy(name, z)


def _dphi(name, z):
    return np.ones_like(z) if name == "linear" else derivative_numpy(name, z)


class MuPNetwork:
    """An RNN (``shared=True``) or DNN (``shared=False``) of width N and T steps in muP.

    Parameters live in ``params``: U (N, d), W (T-1, N, N) for the DNN or (1, N, N) for the RNN, v (N,).
    """

    def __init__(self, width, input_dim, steps, *, shared=True, activation="linear", g=1.0, g_u=1.0, g_v=1.0,
                 seed=None):
        for name, value in (("width", width), ("input_dim", input_dim), ("steps", steps)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        for name, value in (("g", g), ("g_u", g_u), ("g_v", g_v)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        self.N, self.d, self.T = int(width), int(input_dim), int(steps)
        self.shared, self.activation = bool(shared), activation
        self.prior_var = dict(U=g_u**2 / input_dim, W=g**2 / width, v=g_v**2)
        rng = np.random.default_rng(seed)
        n_w = 1 if shared else max(self.T - 1, 1)
        self.params = dict(U=rng.normal(0, math.sqrt(self.prior_var["U"]), (self.N, self.d)),
                           W=rng.normal(0, math.sqrt(self.prior_var["W"]), (n_w, self.N, self.N)),
                           v=rng.normal(0, math.sqrt(self.prior_var["v"]), self.N))

    def _W(self, t):
        return self.params["W"][0 if self.shared else t - 1]

    def forward(self, X):
        """Pre-activations h (T, P, N) and outputs f (P,) for inputs X (P, T, d)."""
        X = np.asarray(X, dtype=float)
        U = self.params["U"]
        h = np.empty((self.T, X.shape[0], self.N))
        h[0] = X[:, 0] @ U.T
        for t in range(1, self.T):
            h[t] = _phi(self.activation, h[t - 1]) @ self._W(t).T + X[:, t] @ U.T
        return h, _phi(self.activation, h[-1]) @ self.params["v"] / self.N

    def __call__(self, X):
        return self.forward(X)[1]

    def energy_gradient(self, X, y, beta):
        """Gradient of E = beta/2 sum (y - f)^2 + prior terms, by backpropagation through the T steps."""
        h, f = self.forward(X)
        U, v = self.params["U"], self.params["v"]
        r = beta * (f - y)  # dE/df
        grads = {"U": U / self.prior_var["U"], "W": self.params["W"] / self.prior_var["W"],
                 "v": v / self.prior_var["v"] + _phi(self.activation, h[-1]).T @ r / self.N}
        delta = _dphi(self.activation, h[-1]) * (r[:, None] * v[None, :] / self.N)  # dE/dh_T
        for t in range(self.T - 1, -1, -1):
            grads["U"] = grads["U"] + delta.T @ X[:, t]
            if t == 0:
                break
            prev = _phi(self.activation, h[t - 1])
            k = 0 if self.shared else t - 1
            grads["W"][k] = grads["W"][k] + delta.T @ prev
            delta = _dphi(self.activation, h[t - 1]) * (delta @ self._W(t))
        return grads

    def kernels(self, X, h=None):
        """C_{t,t'}^{mu,nu} = (1/N) phi(h^mu_t) . phi(h^nu_t'), shape (T, P, T, P) (h: from forward)."""
        a = _phi(self.activation, self.forward(X)[0] if h is None else h)  # (T, P, N)
        return np.einsum("apn,bqn->apbq", a, a) / self.N


@dataclass
class LangevinSamples:
    """Recorded samples: outputs f (S, P) and kernels C (S, T, P, T, P), after ``burn_in`` steps."""

    outputs: np.ndarray
    kernels: np.ndarray
    energy: np.ndarray
    step_size: float
    thin: int

    def kernel_estimate(self):
        """Mean kernel and its standard error from the integrated autocorrelation of each entry."""
        flat = self.kernels.reshape(self.kernels.shape[0], -1)
        tau = np.array([integrated_autocorrelation(flat[:, j]) for j in range(flat.shape[1])])
        se = flat.std(axis=0, ddof=1) * np.sqrt(tau / flat.shape[0])
        return flat.mean(axis=0).reshape(self.kernels.shape[1:]), se.reshape(self.kernels.shape[1:])


def integrated_autocorrelation(x, c=5.0):
    """Integrated autocorrelation time with Sokal's automatic window (smallest W >= c tau(W))."""
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


def langevin(net: MuPNetwork, X, y, *, beta, step_size, n_steps, burn_in, thin=10, seed=None) -> LangevinSamples:
    """Sample the posterior of ``net``'s parameters (preconditioned Langevin; ``net`` is updated in place)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 3 or X.shape[1:] != (net.T, net.d) or y.shape != (X.shape[0],):
        raise ValueError(f"need X (P, {net.T}, {net.d}) and y (P,), got {X.shape} and {y.shape}")
    if not (step_size > 0 and beta >= 0 and n_steps > burn_in >= 0 and thin >= 1):
        raise ValueError("need step_size > 0, beta >= 0, n_steps > burn_in >= 0 and thin >= 1")
    rng = np.random.default_rng(seed)
    outs, kers, energies = [], [], []
    for step in range(n_steps):
        grads = net.energy_gradient(X, y, beta)
        for key, value in net.params.items():
            m = net.prior_var[key]
            value -= step_size * m * grads[key]
            value += math.sqrt(2 * step_size * m) * rng.standard_normal(value.shape)
        if not np.all(np.isfinite(net.params["v"])):
            raise FloatingPointError(f"Langevin diverged at step {step}; use a smaller step_size")
        if step >= burn_in and (step - burn_in) % thin == 0:
            h, f = net.forward(X)
            outs.append(f)
            kers.append(net.kernels(X, h))
            energies.append(0.5 * beta * float(np.sum((y - f) ** 2)))
    return LangevinSamples(np.array(outs), np.array(kers), np.array(energies), step_size, thin)
