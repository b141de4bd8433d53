"""The infinite-width limit of the diagonal RNN: memory states, limit kernel, and the kernel flow.

Equations: ``theory_notes/limit.md``.

Memory state. For frozen theta = (c, w, b) and a history x = (..., x_{-1}, x_0),
S(theta; x) = sigma(w . x_0 + b S(theta; x_{<=-1})) has a unique bounded solution because
s -> sigma(w . x_0 + b s) is a contraction with modulus |b| sup|sigma'| <= rho < 1. The derivative
states J^w, J^b obey the RTRL recursions. On a window of length L computed from S = 0 the state
differs from the infinite-history state by at most rho^L sup|sigma| (section 2).

Limit kernel and NNGP (c independent of (w, b), E c^2 = 1):

    K(x, x') = E_{w,b}[S S' + J^w . J^w' + J^b J^b'],      Sigma(x, x') = E_{w,b}[S S'],

with w ~ N(0, sigma_w^2 I_d), b ~ U[-beta, beta], computed by a tensor rule (Gauss-Legendre in b;
in each coordinate of w the trapezoidal rule by default, or Gauss-Hermite) or by scrambled Sobol
points. The error estimate is the largest entry of |K_n - K_{n/2}|, the change when the order is
halved (an estimate for the lower order, hence conservative for the returned one).

Why the trapezoidal rule in w (``theory_notes/limit.md`` section 4): the memory state is tanh
composed L times, analytic in w only in a thin strip (half-width about 0.3 for sigma_w = 1.2,
beta = 0.6), and for such integrands against a Gaussian the trapezoidal rule converges like
exp(-2 pi a / h) while Gauss-Hermite converges only like exp(-c sqrt(n)). Measured on E[(J^w)^2] for a
constant window of length 10, against 512 trapezoid nodes: trapezoid 256 nodes error 4e-9;
Gauss-Hermite 256 nodes error 6e-4, and NumPy's Gauss-Hermite weights overflow at 512.

Limit dynamics: d/dt f_t(x) = alpha E_{X~pi}[(ybar(X) - f_t(X)) K(x, X)], solved exactly on a grid of
windows by :class:`solvers.ode.LinearKernelFlow`, and at any other window by the same integral.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ... import checks
from ...activations import get_activation, normal_rule
from ...data import GaussianAR1, MarkovChain, Task
from ...solvers.fixed_point import FixedPointResult, fixed_point
from ...solvers.ode import LinearKernelFlow
from ..settings import resolve
from .network import as_windows, window_states_kernel
from .settings import Diagonal

NODE_CHUNK = 2048  # parameter nodes per pass: bounds the memory of the feature arrays


@dataclass(frozen=True)
class Nodes:
    """Parameter nodes of a quadrature rule for (w, b): W (d, n), b (n,), weights q (n,), sum q = 1."""

    W: np.ndarray
    b: np.ndarray
    q: np.ndarray
    rule: str
    order: tuple

    @property
    def size(self) -> int:
        return self.b.size


def quadrature_nodes(input_dim, sigma_w, beta, order=(256, 24), rule="trapezoid", seed=0) -> Nodes:
    """Nodes and weights for E_{w ~ N(0, sigma_w^2 I_d), b ~ U[-beta, beta]}.

    ``rule="trapezoid"`` (default) or ``"hermite"``: order = (n_w, n_b); a tensor product of n_w
    trapezoidal (equally spaced on +-8.5 sigma_w, Gaussian weights) or Gauss-Hermite nodes in each
    coordinate of w, times n_b Gauss-Legendre nodes in b. ``rule="sobol"``: order = (n,) or n: n
    scrambled Sobol points (a power of 2) mapped through the normal quantile (w) and affinely (b).
    """
    if not (isinstance(input_dim, (int, np.integer)) and input_dim >= 1):
        raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
    if not (np.isfinite(sigma_w) and sigma_w >= 0 and np.isfinite(beta) and beta >= 0):
        raise ValueError(f"sigma_w and beta must be finite and >= 0, got {sigma_w!r}, {beta!r}")
    d = int(input_dim)
    if rule in ("trapezoid", "hermite"):
        n_w, n_b = checks.integer_list(order, "order", 1, min_length=2)[:2]
        if len(order) != 2:
            raise ValueError(f"order must be two positive integers (n_w, n_b), got {order!r}")
        if n_w**d * n_b > 2**24:
            raise ValueError(f"order: {n_w}^{d} x {n_b} tensor nodes are more than 2^24; lower it, or use rule='sobol' "
                             f"for larger d")
        if rule == "hermite" and n_w > 256:
            raise ValueError("Gauss-Hermite orders above 256 overflow in NumPy; use rule='trapezoid'")
        xw, ww = normal_rule(n_w, rule)
        xb, wb = np.polynomial.legendre.leggauss(n_b)
        grids = np.meshgrid(*([xw] * d), xb, indexing="ij")
        wgrids = np.meshgrid(*([ww] * d), wb / 2, indexing="ij")
        W = sigma_w * np.stack([g.ravel() for g in grids[:d]])
        b = beta * grids[d].ravel()
        q = np.prod(np.stack([g.ravel() for g in wgrids]), axis=0)
        return Nodes(np.ascontiguousarray(W), b, q, rule, (n_w, n_b))
    if rule == "sobol":
        n = int(np.atleast_1d(order)[0])
        if n < 2 or n & (n - 1):
            raise ValueError(f"a Sobol rule needs a power-of-2 number of points, got {n}")
        u = stats.qmc.Sobol(d + 1, scramble=True, seed=seed).random(n)
        W = sigma_w * special.ndtri(u[:, :d]).T
        b = beta * (2 * u[:, d] - 1)
        return Nodes(np.ascontiguousarray(W), b, np.full(n, 1.0 / n), rule, (n,))
    raise ValueError(f"rule must be 'trapezoid', 'hermite' or 'sobol', got {rule!r}")


def _halved(nodes: Nodes, input_dim, sigma_w, beta) -> Nodes:
    if nodes.rule != "sobol":
        return quadrature_nodes(input_dim, sigma_w, beta, tuple(max(1, o // 2) for o in nodes.order), nodes.rule)
    half = nodes.size // 2  # the first half of a scrambled Sobol sequence is itself a (t, m, s)-net
    return Nodes(nodes.W[:, :half], nodes.b[:half], np.full(half, 1.0 / half), "sobol", (half,))


@dataclass
class KernelResult:
    """Limit kernels between two window sets: ``ntk`` K and ``nngp`` Sigma (None when not asked for),
    with ``error`` = max |K_n - K_{n/2}| (and ``nngp_error``) as estimates of the quadrature error."""

    ntk: np.ndarray | None
    nngp: np.ndarray | None
    error: float | None
    nngp_error: float | None
    nodes: int
    rule: str
    order: tuple


def _features(X, W, b, sqrt_q, code, want_ntk):
    """sqrt(q_n) S_n(x) (M, n) and, for the NTK, sqrt(q_n) (J^w_n(x), J^b_n(x)) stacked (M, (d + 1) n)."""
    S, JW, Jb = window_states_kernel(X, W, b, code, want_ntk)
    S *= sqrt_q
    if not want_ntk:
        return S, None
    JW *= sqrt_q
    Jb *= sqrt_q
    return S, np.concatenate([JW.reshape(X.shape[0], -1), Jb], axis=1)


def _kernels_at_nodes(X, Y, nodes: Nodes, code: int, want_ntk: bool):
    """sum_n q_n S_n(x) S_n(y) and (optionally) sum_n q_n [S S + J^w . J^w + J^b J^b].

    With features scaled by sqrt(q) the symmetric case is F @ F.T on one buffer, which NumPy hands
    to BLAS syrk (half the flops of a general product).
    """
    nngp = np.zeros((X.shape[0], Y.shape[0]))
    jac = np.zeros_like(nngp) if want_ntk else None
    same = Y is X
    for lo in range(0, nodes.size, NODE_CHUNK):
        W = np.ascontiguousarray(nodes.W[:, lo:lo + NODE_CHUNK])
        b, sqrt_q = nodes.b[lo:lo + NODE_CHUNK], np.sqrt(nodes.q[lo:lo + NODE_CHUNK])
        Sx, Jx = _features(X, W, b, sqrt_q, code, want_ntk)
        Sy, Jy = (Sx, Jx) if same else _features(Y, W, b, sqrt_q, code, want_ntk)
        nngp += Sx @ Sy.T
        if want_ntk:
            jac += Jx @ Jy.T
    if same:  # syrk fills one triangle exactly; symmetrise away the rounding of the other
        nngp = 0.5 * (nngp + nngp.T)
        jac = None if jac is None else 0.5 * (jac + jac.T)
    return (None if jac is None else nngp + jac), nngp


def limit_kernel(X, Y=None, *, order=(256, 24), rule="trapezoid", kind="both", error_estimate=True, seed=0,
                 settings: Diagonal | None = None, **hyperparameters) -> KernelResult:
    """Limit kernel K and/or NNGP Sigma between windows X (M, L, d) and Y (M', L', d) (default Y = X).

    ``kind``: "ntk", "nngp" or "both". Windows of different lengths are allowed (each is run from S = 0).
    ``settings``: a :class:`Diagonal`, or its keywords (activation, sigma_w, beta).
    """
    arch = resolve(Diagonal, settings, hyperparameters)
    if kind not in ("ntk", "nngp", "both"):
        raise ValueError(f"kind must be 'ntk', 'nngp' or 'both', got {kind!r}")
    code, sigma_w, beta = arch.act.code, arch.sigma_w, arch.beta
    X = as_windows(X, None, "X")
    Y = X if Y is None else as_windows(Y, X.shape[2], "Y")
    d = X.shape[2]
    nodes = quadrature_nodes(d, sigma_w, beta, order, rule, seed)
    ntk, nngp = _kernels_at_nodes(X, Y, nodes, code, kind != "nngp")
    err = nngp_err = None
    if error_estimate:
        ntk_lo, nngp_lo = _kernels_at_nodes(X, Y, _halved(nodes, d, sigma_w, beta), code, kind != "nngp")
        nngp_err = float(np.max(np.abs(nngp - nngp_lo)))
        err = None if ntk is None else float(np.max(np.abs(ntk - ntk_lo)))
    return KernelResult(ntk, nngp if kind != "ntk" else None, err, nngp_err if kind != "ntk" else None,
                        nodes.size, rule, nodes.order)


# ----------------------------------------------------------------------------------------------
# Long-run memory for constant and periodic inputs, by the fixed-point solver
# ----------------------------------------------------------------------------------------------

@dataclass
class PeriodicMemory:
    """Long-run memory states at the end of each period of a periodic input, for each node.

    S (n,), Jw (n, d), Jb (n,); ``state`` and ``jacobian`` are the fixed-point solver results for S
    and for (J^w, J^b) given S.
    """

    S: np.ndarray
    Jw: np.ndarray
    Jb: np.ndarray
    state: FixedPointResult
    jacobian: FixedPointResult


def periodic_memory(inputs, W, b, activation="tanh", *, method="anderson", tol=1e-13, maxiter=10_000):
    """Fixed point of one period of the memory map for the periodic input (x_1, ..., x_q) repeated.

    inputs (q, d) (a single row: a constant input); W (d, n), b (n,) the node parameters. The map
    s -> state after one period from s is a contraction with modulus (max|b| sup|sigma'|)^q, and given
    the periodic S the map for (J^w, J^b) is affine with the same modulus, so both fixed points are
    unique and come with error bounds.
    """
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float))
    W, b = np.atleast_2d(np.asarray(W, dtype=float)), np.asarray(b, dtype=float)
    if inputs.shape[1] != W.shape[0] or W.shape[1] != b.size:
        raise ValueError(f"need inputs (q, d), W (d, n), b (n,); got {inputs.shape}, {W.shape}, {b.shape}")
    act = get_activation(activation, bounded=True)
    rho = (np.max(np.abs(b)) * act.sup_derivative) ** inputs.shape[0]
    if rho >= 1:
        raise ValueError("max|b| * sup|sigma'| must be < 1 for the memory map to be a contraction")
    drive = inputs @ W  # (q, n)

    def period_S(S):
        for u in drive:
            S = act(u + b * S)
        return S

    state = fixed_point(period_S, np.zeros(b.size), method=method, tol=tol, maxiter=maxiter, rho=rho)
    S_star = state.x
    # The S trajectory along one period from S*, and sigma' along it.
    traj, S = [], S_star
    for u in drive:
        z = u + b * S
        traj.append((S, act.derivative(z)))
        S = act(z)
    n, d = b.size, W.shape[0]

    def period_J(J):
        Jw, Jb = J[:n * d].reshape(n, d), J[n * d:]
        for (S_prev, ds), x in zip(traj, inputs):
            Jw = ds[:, None] * (x[None, :] + b[:, None] * Jw)
            Jb = ds * (S_prev + b * Jb)
        return np.concatenate([Jw.ravel(), Jb])

    jac = fixed_point(period_J, np.zeros(n * (d + 1)), method=method, tol=tol, maxiter=maxiter, rho=rho)
    return PeriodicMemory(S_star, jac.x[:n * d].reshape(n, d), jac.x[n * d:], state, jac)


# ----------------------------------------------------------------------------------------------
# The limit model
# ----------------------------------------------------------------------------------------------

def limit_grid(chain, window: int, max_grid: int = 4096, seed=0, *, rule=False):
    """The windows on which the limit is solved: all m^L windows of a finite chain when there are at most
    ``max_grid``, else ``max_grid`` sampled ones; for a Gaussian AR(1) chain a scrambled Sobol grid of
    ``max_grid`` (a power of 2) windows (:meth:`GaussianAR1.qmc_windows`). With ``rule``, returns
    (WindowSet, "exact" | "sampled" | "sobol")."""
    if isinstance(chain, MarkovChain) and chain.n_states**window <= max_grid:
        grid, name = chain.windows(window), "exact"
    elif isinstance(chain, GaussianAR1):
        if max_grid < 2 or max_grid & (max_grid - 1):
            raise ValueError(f"max_grid must be a power of 2 >= 2 for the Sobol grid of a continuous chain, "
                             f"got {max_grid}")
        grid, name = chain.qmc_windows(window, max_grid, seed=seed), "sobol"
    else:
        grid, name = chain.sample_windows(window, max_grid, rng=seed), "sampled"
    return (grid, name) if rule else grid


class LimitModel:
    """The limit of training a wide diagonal RNN on ``task``: kernel flow on a grid of windows.

    Parameters
    ----------
    task : Task
    window : int
        Length L of the history windows (truncation error at most rho^L sup|sigma|).
    alpha : float
        Learning-rate constant (the network's rate is alpha / N).
    order, rule : quadrature of the kernel (see :func:`limit_kernel`).
    max_grid : int
        Use all m^L windows of a finite chain when there are at most this many, and otherwise ``max_grid``
        windows sampled from the stationary chain with ``grid_seed``. A Gaussian AR(1) chain gets a
        randomised quasi-Monte Carlo grid of ``max_grid`` windows (a power of 2; ``GaussianAR1.qmc_windows``),
        whose error :meth:`grid_error` estimates.
    settings : Diagonal, or the keywords of :class:`Diagonal` (activation, sigma_w, beta)
    """

    def __init__(self, task: Task, window=8, alpha=1.0, order=(256, 24), rule="trapezoid", max_grid=4096, grid_seed=0,
                 *, settings: Diagonal | None = None, **hyperparameters):
        self.settings = resolve(Diagonal, settings, hyperparameters)
        if not isinstance(task, Task):
            raise ValueError(f"task must be a meanfield Task (see meanfield.make_task), got {type(task).__name__}")
        self.window = checks.integer(window, "window", task.lags + 1)
        max_grid = checks.integer(max_grid, "max_grid", 1)
        checks.fits_in_memory(8.0 * max_grid * (self.window * task.input_dim + 4 * max_grid), "window",
                              f"the limit on up to {max_grid} windows of length {self.window}")
        self.task, self.alpha, self.order, self.rule = task, checks.positive(alpha, "alpha"), order, rule
        self.grid, self.grid_rule = limit_grid(task.chain, self.window, max_grid, grid_seed, rule=True)
        self.ybar = task.conditional_mean(self.grid)
        kern = self._kernel(self.grid.values, None, kind="both", error_estimate=True)
        self.K, self.nngp, self.kernel_error = kern.ntk, kern.nngp, kern.error
        self.flow = LinearKernelFlow(self.K, self.grid.weights, self.ybar, self.alpha)

    @property
    def rho(self) -> float:
        return self.settings.rho

    @property
    def truncation_bound(self) -> float:
        """rho^L sup|sigma|: bound on the state error from truncating histories to the window."""
        return self.settings.truncation_bound(self.window)

    def _kernel(self, X, Y, kind, error_estimate=False):
        return limit_kernel(X, Y, order=self.order, rule=self.rule, kind=kind, error_estimate=error_estimate,
                            settings=self.settings)

    def cross_kernel(self, probes) -> np.ndarray:
        """K(probes, grid) (P, M), for ``self.flow.at(times, K_cross)``."""
        return self._kernel(as_windows(probes, self.task.input_dim, "probes"), self.grid.values, "ntk").ntk

    def predict(self, times, probes) -> np.ndarray:
        """f_t on the probe windows for the symmetric initialisation (f_0 = 0), shape (T, P)."""
        return self.flow.at(times, self.cross_kernel(probes))

    def grid_error(self, times, probes, K_cross=None) -> float:
        """max over times and probes of |f_t computed on the whole grid - f_t on its first half|.

        0 for the exact grid of a finite chain (all m^L windows). For a Sobol grid (or a sample), the first
        half of the points is a grid of its own, so the difference estimates the error of the half grid, a
        conservative estimate of the whole grid's error (QMC errors fall at least like M^-1/2). ``K_cross``: the
        probes' :meth:`cross_kernel`, if already computed."""
        if self.grid_rule == "exact":
            return 0.0
        half = len(self.grid) // 2
        K_cross = self.cross_kernel(probes) if K_cross is None else K_cross
        w = self.grid.weights[:half]
        flow = LinearKernelFlow(self.K[:half, :half], w / w.sum(), self.ybar[:half], self.alpha)
        return float(np.max(np.abs(self.flow.at(times, K_cross) - flow.at(times, K_cross[:, :half]))))

    def fluctuations(self, probes, times, **options):
        """The predicted law of sqrt(N)(f^N_t - f_t) on the probes at equally spaced times from 0
        (:func:`~meanfield.architectures.diagonal.fluctuations.fluctuations`, ``theory_notes/fluctuations.md``)."""
        from .fluctuations import fluctuations

        return fluctuations(self, probes, times, **options)

    def predict_gaussian(self, times, probes):
        """Mean (T, P) and covariance (T, P, P) of f_t on the probes for Gaussian readout weights.

        f_0 is then the centred Gaussian field with covariance Sigma (the NNGP), and
        f_t(x) = f_0(x) + K(x, grid) N_t (ybar - f_0) is affine in f_0 (``theory_notes/limit.md`` s. 5).
        """
        P = as_windows(probes, self.task.input_dim, "probes")
        cross = self._kernel(P, self.grid.values, "both")
        C_pp = self._kernel(P, None, "nngp").nngp
        C_pg, C_gg, K_pg = cross.nngp, self.nngp, cross.ntk
        times = np.atleast_1d(np.asarray(times, dtype=float))
        mean = self.flow.at(times, K_pg)
        cov = np.empty((times.size, P.shape[0], P.shape[0]))
        for i, t in enumerate(times):
            G = self.flow.cross_operator(t, K_pg)  # f_t(x) = f_0(x) - G f_0(grid) + G ybar
            cov[i] = C_pp - C_pg @ G.T - G @ C_pg.T + G @ C_gg @ G.T
        return mean, cov
