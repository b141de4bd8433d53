"""Bayesian RNNs and DNNs in muP, sampled by Langevin dynamics ([BFHP], ``theory_notes/feature_learning.md`` 1).

Network of width N and depth T on sequences x^mu = (x_0, ..., x_T) in R^d (mu = 1..P):

    h_0 = U x_0,   h_t = W_t phi(h_{t-1}) + U x_t  (t = 1..T),   f_t(x) = (1/N) v . phi(h_t)   (muP readout)

where the RNN shares one W_t = W over the T steps and the DNN of the same depth draws an independent
W_t per step (so T = 2 is the chain h_2 = W phi(W phi(U x_0)) + ...). Prior: U ~ N(0, g_u^2/d),
W ~ N(0, g^2/N), v ~ N(0, g_v^2), entries independent. Posterior, over the supervised entries R of
(t, mu) with targets y:

    p(theta) ~ exp(-(N beta)/2 sum_R (y_t^mu - f_t(x^mu))^2 - sum_groups |theta_group|^2 / (2 var_group)).

``beta`` is the signal strength per unit: the inverse temperature N beta makes the data term O(N), as
large as the prior's, which is the mean-field (muP) scaling in which the kernels move as N -> infinity
(:mod:`meanfield.architectures.mup.theory` solves that limit). Sampler: Langevin dynamics preconditioned by the prior
variances M, in the Leimkuhler-Matthews discretisation (the noise of a step is the mean of two
consecutive draws):

    theta_{k+1} = theta_k - eta M grad E(theta_k) + sqrt(eta M / 2) (xi_k + xi_{k+1}),   E = -log posterior.

Its stationary averages are accurate to O(eta^2) (Euler-Maruyama's to O(eta)), at the cost of one
gradient and one draw per step like Euler, and for the Gaussian prior alone they are exact at any
eta < 2 (the ARMA(1, 1) recursion has variance 2 b^2 / (1 - a) = M with a = 1 - eta, b^2 = eta M / 2).
Measured on a tanh posterior at N = 256: Euler with the prior integrated exactly had a bias of 0.0037
in C_00 at eta = 0.05 (0.0006 at eta = 0.0125), above the 1/N corrections that the tests resolve.
Order parameters: C_{t,t'}^{mu,nu} = (1/N) sum_i phi(h^mu_{i,t}) phi(h^nu_{i,t'}).

The sampler is NumPy: each step is a few (P, N) x (N, N) products and N^2 (RNN) or T N^2 (DNN) normal
draws, so the work is in BLAS and in the generator. ``benchmarks/bench_langevin.py``: at N >= 512 the
update arithmetic and the Python overhead are 2-4% of a step (all a compiled loop could remove), and
Numba's normal generator is 1.7x slower than NumPy's on the draws, which take about 60%. On a GPU,
``backend="jax"`` runs the same sampler as one compiled loop (:mod:`meanfield.jax_backend.mup`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ... import checks
from ...backends import check_backend_and_dtype
from ...stats import chain_mean_se, geweke_z
from ..settings import resolve
from .settings import MuP


def endpoint_readout(steps, patterns):
    """The readout mask (T + 1, P) of endpoint supervision: only f_T is fitted."""
    mask = np.zeros((steps + 1, patterns), dtype=bool)
    mask[-1] = True
    return mask


class MuPNetwork:
    """An RNN (``shared=True``) or DNN (``shared=False``) of width N and depth T in muP.

    Parameters live in ``params``: U (N, d), W (1, N, N) for the RNN or (T, N, N) for the DNN, v (N,).
    """

    def __init__(self, width, input_dim, depth, *, seed=None, settings: MuP | None = None, **hyperparameters):
        self.settings = s = resolve(MuP, settings, hyperparameters)
        self.N, self.d, self.T = (checks.integer(v, name, 1) for name, v in (
            ("width", width), ("input_dim", input_dim), ("depth", depth)))
        self.prior_var = dict(U=s.g_u**2 / self.d, W=s.g**2 / self.N, v=s.g_v**2)
        checks.fits_in_memory(48.0 * (1 if s.shared else self.T) * self.N**2, "width",
                              f"a network of width {self.N} (and its Langevin state)")
        rng = np.random.default_rng(checks.seed(seed))
        n_w = 1 if s.shared else self.T
        self.params = dict(U=rng.normal(0, math.sqrt(self.prior_var["U"]), (self.N, self.d)),
                           W=rng.normal(0, math.sqrt(self.prior_var["W"]), (n_w, self.N, self.N)),
                           v=rng.normal(0, math.sqrt(self.prior_var["v"]), self.N))

    shared = property(lambda self: self.settings.shared)
    activation = property(lambda self: self.settings.activation)
    _act = property(lambda self: self.settings.act)

    def _W(self, t):
        return self.params["W"][0 if self.shared else t - 1]

    def check_inputs(self, X):
        X = np.asarray(X, dtype=float)
        if X.ndim != 3 or X.shape[1:] != (self.T + 1, self.d) or not np.all(np.isfinite(X)):
            raise ValueError(f"X must be a finite array (P, T + 1, d) = (P, {self.T + 1}, {self.d}), got {X.shape}")
        return X

    def forward(self, X):
        """Pre-activations h (T + 1, P, N) and outputs f (T + 1, P) for inputs X (P, T + 1, d)."""
        X = self.check_inputs(X)
        inputs = np.einsum("ptd,nd->tpn", X, self.params["U"])
        h = np.empty_like(inputs)
        h[0] = inputs[0]
        for t in range(1, self.T + 1):
            h[t] = self._act(h[t - 1]) @ self._W(t).T + inputs[t]
        return h, self._act(h) @ self.params["v"] / self.N

    def __call__(self, X):
        return self.forward(X)[1]

    def data_gradient(self, X, y, readout, beta):
        """Gradient of Phi = (N beta)/2 sum_R (y - f)^2 in every parameter, by backpropagation through time.

        y and readout are (T + 1, P); returns (gradients, Phi, h, f) so that a caller can reuse the pass."""
        h, f = self.forward(X)
        X = np.asarray(X, dtype=float)
        v = self.params["v"]
        r = np.where(readout, self.N * beta * (f - y), 0.0)  # dPhi/df_t, (T + 1, P)
        a = self._act(h)
        grads = {"U": np.zeros_like(self.params["U"]), "W": np.zeros_like(self.params["W"]),
                 "v": np.einsum("tp,tpn->n", r, a) / self.N}
        carry = np.zeros_like(h[0])  # dPhi/dh_{t+1} W_{t+1}
        for t in range(self.T, -1, -1):
            delta = self._act.derivative(h[t]) * (carry + r[t][:, None] * v[None, :] / self.N)  # dPhi/dh_t
            grads["U"] += delta.T @ X[:, t]
            if t > 0:
                grads["W"][0 if self.shared else t - 1] += delta.T @ a[t - 1]
                carry = delta @ self._W(t)
        data_term = 0.5 * self.N * beta * float(np.sum(np.where(readout, (y - f) ** 2, 0.0)))
        return grads, data_term, h, f

    def kernels(self, X, h=None):
        """C_{t,t'}^{mu,nu} = (1/N) phi(h^mu_t) . phi(h^nu_t'), shape (T + 1, P, T + 1, P) (h: from forward)."""
        a = self._act(self.forward(X)[0] if h is None else h)
        return np.einsum("apn,bqn->apbq", a, a) / self.N


@dataclass
class LangevinSamples:
    """Recorded samples: outputs f (S, T + 1, P), kernels C (S, T + 1, P, T + 1, P), data term Phi (S,)."""

    outputs: np.ndarray
    kernels: np.ndarray
    energy: np.ndarray
    step_size: float
    thin: int

    def kernel_estimate(self):
        """Mean kernel and its standard error from the integrated autocorrelation of each entry."""
        return self.kernels.mean(axis=0), chain_mean_se(self.kernels)

    def burn_in_z(self):
        """Largest |Geweke z| over the data term and the kernel entries (see :func:`geweke_z`)."""
        flat = self.kernels.reshape(self.kernels.shape[0], -1)
        return max(abs(geweke_z(self.energy)), *(abs(geweke_z(flat[:, j])) for j in range(flat.shape[1])))


def _targets(net, X, y, readout):
    """Targets and readout mask as (T + 1, P) arrays; y of shape (P,) means endpoint supervision."""
    P = X.shape[0]
    y = np.asarray(y, dtype=float)
    if y.shape == (P,) and readout is None:
        readout = endpoint_readout(net.T, P)
        y = np.where(readout, y[None, :], 0.0)
    readout = np.asarray(readout, dtype=bool)
    if y.shape != (net.T + 1, P) or readout.shape != y.shape:
        raise ValueError(f"y must be (P,) for endpoint supervision or (T + 1, P) = {(net.T + 1, P)} with a readout "
                         f"mask of that shape, got y {y.shape}")
    if not readout.any() or not np.all(np.isfinite(y[readout])):
        raise ValueError("readout must select at least one entry and y must be finite there")
    return np.where(readout, y, 0.0), readout


def langevin_update(params, grads, xi, new, step_size, prior_var):
    """One sampler step in place: theta <- (1 - eta) theta - eta M grad Phi + sqrt(eta M / 2) (xi + new).

    (1 - eta) theta is the prior's drift, M grad(|theta|^2 / 2M) = theta; xi and new are the standard normal
    draws of this step and the next (the Leimkuhler-Matthews noise)."""
    for key, value in params.items():
        value *= 1.0 - step_size
        value -= step_size * prior_var[key] * grads[key]
        value += math.sqrt(step_size * prior_var[key] / 2) * (xi[key] + new[key])


def langevin(net: MuPNetwork, X, y, readout=None, *, beta, step_size, n_steps, burn_in, thin=10, seed=None,
             progress=False, backend="numba", dtype="float64") -> LangevinSamples:
    """Sample the posterior of ``net``'s parameters (``net`` is updated in place; see the module docstring).

    y: targets (P,) for endpoint supervision, or (T + 1, P) with the boolean ``readout`` mask of supervised
    entries. beta: signal strength per unit (the inverse temperature is N beta). Records the state every
    ``thin`` steps after ``burn_in``.

    backend: "numba" (this NumPy sampler, the reference) or "jax" (:mod:`meanfield.jax_backend.mup`: the
    same initial parameters, data and update rule, one compiled loop per recording interval, its own random
    stream from ``seed``); dtype: "float64", or "float32" on the JAX backend only.
    """
    backend, dtype = check_backend_and_dtype(backend, dtype)
    X = net.check_inputs(X)
    y, readout = _targets(net, X, y, readout)
    step_size = checks.positive(step_size, "step_size")
    beta = checks.real(beta, "beta", 0)
    n_steps, burn_in, thin = (checks.integer(v, name, 0) for name, v in (
        ("n_steps", n_steps), ("burn_in", burn_in), ("thin", thin)))
    if not (n_steps > burn_in >= 0 and thin >= 1):
        raise ValueError(f"need n_steps > burn_in >= 0 and thin >= 1, got {n_steps}, {burn_in}, {thin}")
    if backend == "jax":
        from ...jax_backend.mup import langevin as jax_langevin

        outs, kers, energies = jax_langevin(net, X, y, readout, beta=beta, step_size=step_size, n_steps=n_steps,
                                            burn_in=burn_in, thin=thin, seed=seed, progress=progress, dtype=dtype)
        return LangevinSamples(outs, kers, energies, step_size, thin)
    rng = np.random.default_rng(seed)
    xi = {key: rng.standard_normal(value.shape) for key, value in net.params.items()}
    outs, kers, energies = [], [], []
    for step in tqdm(range(n_steps), desc="Langevin", disable=not progress, leave=False):
        grads, data_term, h, f = net.data_gradient(X, y, readout, beta)
        if not math.isfinite(data_term):
            raise FloatingPointError(f"Langevin diverged at step {step}; use a smaller step_size")
        if step >= burn_in and (step - burn_in) % thin == 0:
            outs.append(f)
            kers.append(net.kernels(X, h))
            energies.append(data_term)
        new = {key: rng.standard_normal(value.shape) for key, value in net.params.items()}
        langevin_update(net.params, grads, xi, new, step_size, net.prior_var)
        xi = new
    return LangevinSamples(np.array(outs), np.array(kers), np.array(energies), step_size, thin)
