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
in each coordinate of w the trapezoidal rule, or Gauss-Hermite) or by scrambled Sobol points. The default
rule ("auto") adapts to the input dimension d (``theory_notes/limit.md`` section 4):

- d = 1: the trapezoidal tensor rule of ``order`` = (n_w, n_b). Its error estimate is the largest entry of
  |K_n - K_{n/2}|, the change when the order is halved: the error of the lower order, hence conservative
  for the returned one, since the rule converges exponentially.
- d >= 2: a tensor rule needs n_w^d n_b nodes, so "auto" takes ``nodes`` scrambled Sobol points (a node
  budget) in SOBOL_REPLICATES independent scramblings. The kernel is their mean, and its error estimate is
  the largest entry of the 95% half-width t_{R-1} s / sqrt(R) from the spread of the R replicates: an honest
  randomised-QMC error bar, which the halving estimate of a tensor rule in d >= 2 is not (it compares two
  coarse rules, for example (48, 16) with (24, 8) nodes, whose errors differ by orders of magnitude).

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

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import special, stats
from tqdm.auto import tqdm

from ... import checks
from ...activations import get_activation, normal_rule
from ...data import GaussianAR1, MarkovChain, Task
from ...solvers.fixed_point import FixedPointResult, fixed_point
from ...solvers.ode import LinearKernelFlow
from ..settings import resolve
from .network import as_windows, window_states_kernel
from .settings import Diagonal

NODE_CHUNK = 2048  # parameter nodes per pass: bounds the memory of the feature arrays
NODE_BUDGET = 2**15  # the "auto" rule's scrambled Sobol points for d >= 2
SOBOL_REPLICATES = 8  # independent scramblings of a Sobol rule, whose spread is its error estimate


@dataclass(frozen=True)
class Nodes:
    """Parameter nodes of a quadrature rule for (w, b): W (d, n), b (n,), weights q (n,), sum q = 1.

    A Sobol rule of ``replicates`` > 1 holds that many independent scramblings, one after the other, of
    n / replicates points each."""

    W: np.ndarray
    b: np.ndarray
    q: np.ndarray
    rule: str
    order: tuple
    replicates: int = 1

    @property
    def size(self) -> int:
        return self.b.size


def quadrature_nodes(input_dim, sigma_w, beta, order=(256, 24), rule="trapezoid", seed=0, replicates=1) -> Nodes:
    """Nodes and weights for E_{w ~ N(0, sigma_w^2 I_d), b ~ U[-beta, beta]}.

    ``rule="trapezoid"`` (default) or ``"hermite"``: order = (n_w, n_b); a tensor product of n_w
    trapezoidal (equally spaced on +-8.5 sigma_w, Gaussian weights) or Gauss-Hermite nodes in each
    coordinate of w, times n_b Gauss-Legendre nodes in b. ``rule="sobol"``: order = (n,) or n: n
    scrambled Sobol points (a power of 2) mapped through the normal quantile (w) and affinely (b), in
    ``replicates`` independent scramblings of n / replicates points each (seeded from ``seed``).
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
        n = checks.integer(int(np.atleast_1d(order)[0]), "order", 2)
        replicates = checks.integer(replicates, "replicates", 1)
        block = n // replicates
        if n % replicates or block < 2 or block & (block - 1):
            raise ValueError(f"order: a Sobol rule of {replicates} scramblings needs {replicates} x a power of 2 "
                             f"(at least 2) points, got {n}")
        if replicates == 1:
            u = stats.qmc.Sobol(d + 1, scramble=True, seed=seed).random(n)
        else:
            u = np.concatenate([stats.qmc.Sobol(d + 1, scramble=True, seed=np.random.default_rng(s)).random(block)
                                for s in np.random.SeedSequence(seed).spawn(replicates)])
        W = sigma_w * special.ndtri(u[:, :d]).T
        b = beta * (2 * u[:, d] - 1)
        return Nodes(np.ascontiguousarray(W), b, np.full(n, 1.0 / n), rule, (n,), replicates)
    raise ValueError(f"rule must be 'auto', 'trapezoid', 'hermite' or 'sobol', got {rule!r}")


def quadrature(input_dim, sigma_w, beta, order=(256, 24), rule="auto", nodes=NODE_BUDGET, seed=0) -> Nodes:
    """The nodes of the limit kernel's rule: ``rule="auto"`` is the trapezoidal tensor rule of ``order`` for
    d = 1 and the Sobol rule for d >= 2. A tensor rule ("trapezoid", "hermite") has ``order`` = (n_w, n_b); the
    Sobol rule has ``nodes`` points in SOBOL_REPLICATES scramblings (their spread is its error estimate)."""
    if rule == "auto":
        rule = "trapezoid" if input_dim == 1 else "sobol"
    if rule != "sobol":
        return quadrature_nodes(input_dim, sigma_w, beta, order, rule, seed)
    nodes = checks.integer(nodes, "nodes", 2 * SOBOL_REPLICATES)
    if nodes & (nodes - 1):  # SOBOL_REPLICATES (a power of 2) scramblings of a power of 2 points each
        raise ValueError(f"nodes must be a power of 2 (at least {2 * SOBOL_REPLICATES}: {SOBOL_REPLICATES} scramblings "
                         f"of a power of 2 points each), got {nodes}")
    return quadrature_nodes(input_dim, sigma_w, beta, (nodes,), rule, seed, SOBOL_REPLICATES)


# Measured on one core (OpenBLAS, 2187-4096 windows, 6144-32768 nodes; benchmarks/estimates.py checks them):
SECONDS_PER_GRAM_TERM = 2.4e-11  # a node's feature products in the Gram matrix: per node, feature, window pair
SECONDS_PER_STATE_STEP = 7e-10  # a node's memory states along a window: per node, feature, window, step
SECONDS_PER_CROSS_STEP = 1.8e-9  # the same in the cross kernel of the probes (the grid's features recomputed)


def kernel_seconds(nodes: int, input_dim: int, windows: int, length: int, probes: int = 0) -> float:
    """The estimated time on one core of the limit kernel on a grid of ``windows`` windows of ``length`` by a rule
    of ``nodes`` nodes (the error estimate's extra nodes included), and of its cross kernel with ``probes``."""
    features = nodes * (input_dim + 2)
    grid = features * windows * (windows * SECONDS_PER_GRAM_TERM + length * SECONDS_PER_STATE_STEP)
    return grid + (features * (windows + probes) * length * SECONDS_PER_CROSS_STEP if probes else 0.0)


def _halved(nodes: Nodes, input_dim, sigma_w, beta) -> Nodes:
    return quadrature_nodes(input_dim, sigma_w, beta, tuple(max(1, o // 2) for o in nodes.order), nodes.rule)


@dataclass
class KernelResult:
    """Limit kernels between two window sets: ``ntk`` K and ``nngp`` Sigma (None when not asked for), with
    ``error`` (and ``nngp_error``) the estimate of the quadrature error named by ``error_method``: "halving",
    max |K_n - K_{n/2}| for a tensor rule, or "replicates", the largest 95% half-width of a Sobol rule's mean
    over its independent scramblings."""

    ntk: np.ndarray | None
    nngp: np.ndarray | None
    error: float | None
    nngp_error: float | None
    nodes: int
    rule: str
    order: tuple
    error_method: str | None = None
    half: np.ndarray | None = None  # a replicated rule's NTK from its first half of the scramblings


def _features(X, W, b, sqrt_q, code, want_ntk):
    """sqrt(q_n) S_n(x) (M, n) and, for the NTK, sqrt(q_n) (J^w_n(x), J^b_n(x)) stacked (M, (d + 1) n)."""
    S, JW, Jb = window_states_kernel(X, W, b, code, want_ntk)
    S *= sqrt_q
    if not want_ntk:
        return S, None
    JW *= sqrt_q
    Jb *= sqrt_q
    return S, np.concatenate([JW.reshape(X.shape[0], -1), Jb], axis=1)


def _kernels_at_nodes(X, Y, nodes: Nodes, code: int, want_ntk: bool, lo=0, hi=None, bar=None):
    """sum_n q_n S_n(x) S_n(y) and (optionally) sum_n q_n [S S + J^w . J^w + J^b J^b] over nodes lo..hi.

    With features scaled by sqrt(q) the symmetric case is F @ F.T on one buffer, which NumPy hands
    to BLAS syrk (half the flops of a general product).
    """
    hi = nodes.size if hi is None else hi
    nngp = np.zeros((X.shape[0], Y.shape[0]))
    jac = np.zeros_like(nngp) if want_ntk else None
    same = Y is X
    for start in range(lo, hi, NODE_CHUNK):
        stop = min(hi, start + NODE_CHUNK)
        W = np.ascontiguousarray(nodes.W[:, start:stop])
        b, sqrt_q = nodes.b[start:stop], np.sqrt(nodes.q[start:stop])
        Sx, Jx = _features(X, W, b, sqrt_q, code, want_ntk)
        Sy, Jy = (Sx, Jx) if same else _features(Y, W, b, sqrt_q, code, want_ntk)
        nngp += Sx @ Sy.T
        if want_ntk:
            jac += Jx @ Jy.T
        if bar is not None:
            bar.update(stop - start)
    if same:  # syrk fills one triangle exactly; symmetrise away the rounding of the other
        nngp = 0.5 * (nngp + nngp.T)
        jac = None if jac is None else 0.5 * (jac + jac.T)
    return (None if jac is None else nngp + jac), nngp


def _replicated(X, Y, nodes: Nodes, code: int, want_ntk: bool, bar):
    """The kernels of a replicated Sobol rule: the mean over its scramblings, and the largest 95% half-width
    t_{R-1} s / sqrt(R) of that mean (Welford's update over the replicates)."""
    R, block = nodes.replicates, nodes.size // nodes.replicates
    means, squares, half = [None, None], [None, None], None
    for r in range(R):
        if r == R // 2 and means[0] is not None:  # the mean of the first half of the scramblings: a rule of its own
            half = means[0].copy()
        one = _kernels_at_nodes(X, Y, nodes, code, want_ntk, r * block, (r + 1) * block, bar)
        for k, G in enumerate(one):
            if G is None:
                continue
            G = G * R  # the replicate's own mean (each node weighs 1 / n = 1 / (R block))
            if means[k] is None:
                means[k], squares[k] = G, np.zeros_like(G)
                continue
            delta = G - means[k]
            means[k] += delta / (r + 1)
            squares[k] += delta * (G - means[k])
    t = stats.t.ppf(0.975, R - 1)
    errors = [None if m is None else float(t * np.sqrt(np.max(sq) / (R - 1) / R)) for m, sq in zip(means, squares)]
    return means, errors, half


def kernel_at_nodes(X, Y, nodes: Nodes, code: int, kind="both", error_estimate=True, settings: Diagonal | None = None,
                    progress=False, desc="limit kernel") -> KernelResult:
    """The limit kernels between windows X and Y (Y = X: pass the same array) by the rule ``nodes``, with the
    rule's error estimate (see :class:`KernelResult`) when ``error_estimate``; ``settings`` (sigma_w, beta) rebuild
    a tensor rule's halved order. ``progress``: a bar over the nodes."""
    want_ntk = kind != "nngp"
    sobol = nodes.rule == "sobol"
    if sobol and error_estimate and nodes.replicates < 2:
        raise ValueError("nodes: a Sobol rule's error estimate is the spread of its scramblings: it needs replicates "
                         ">= 2 (quadrature() gives SOBOL_REPLICATES)")
    halved = None if sobol or not error_estimate else _halved(nodes, X.shape[2], settings.sigma_w, settings.beta)
    total = nodes.size + (0 if halved is None else halved.size)
    with tqdm(total=total, desc=desc, unit="node", unit_scale=True, disable=not progress, leave=False) as bar:
        if sobol and nodes.replicates > 1:
            (ntk, nngp), (err, nngp_err), half = _replicated(X, Y, nodes, code, want_ntk, bar)
            method = "replicates" if error_estimate else None
            err, nngp_err = (err, nngp_err) if error_estimate else (None, None)
        else:
            ntk, nngp = _kernels_at_nodes(X, Y, nodes, code, want_ntk, bar=bar)
            err = nngp_err = method = half = None
            if halved is not None:
                ntk_lo, nngp_lo = _kernels_at_nodes(X, Y, halved, code, want_ntk, bar=bar)
                nngp_err = float(np.max(np.abs(nngp - nngp_lo)))
                err = None if ntk is None else float(np.max(np.abs(ntk - ntk_lo)))
                method = "halving"
    return KernelResult(ntk, nngp if kind != "ntk" else None, err, nngp_err if kind != "ntk" else None,
                        nodes.size, nodes.rule, nodes.order, method, half)


def limit_kernel(X, Y=None, *, order=(256, 24), rule="auto", nodes=NODE_BUDGET, kind="both", error_estimate=True,
                 seed=0, progress=False, settings: Diagonal | None = None, **hyperparameters) -> KernelResult:
    """Limit kernel K and/or NNGP Sigma between windows X (M, L, d) and Y (M', L', d) (default Y = X).

    ``kind``: "ntk", "nngp" or "both". Windows of different lengths are allowed (each is run from S = 0).
    ``rule``: "auto" (the trapezoidal rule of ``order`` for d = 1, ``nodes`` Sobol points in
    SOBOL_REPLICATES scramblings for d >= 2), "trapezoid", "hermite" (``order`` = (n_w, n_b)) or "sobol"
    (``nodes`` points). ``progress``: a bar over the nodes.
    ``settings``: a :class:`Diagonal`, or its keywords (activation, sigma_w, beta).
    """
    arch = resolve(Diagonal, settings, hyperparameters)
    if kind not in ("ntk", "nngp", "both"):
        raise ValueError(f"kind must be 'ntk', 'nngp' or 'both', got {kind!r}")
    X = as_windows(X, None, "X")
    Y = X if Y is None else as_windows(Y, X.shape[2], "Y")
    rule_nodes = quadrature(X.shape[2], arch.sigma_w, arch.beta, order, rule, nodes, seed)
    return kernel_at_nodes(X, Y, rule_nodes, arch.act.code, kind, error_estimate, arch, progress)


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
    order, rule, nodes : quadrature of the kernel (see :func:`limit_kernel`): by default the trapezoidal rule
        of ``order`` for scalar inputs and ``nodes`` scrambled Sobol points for d >= 2.
    max_grid : int
        Use all m^L windows of a finite chain when there are at most this many, and otherwise ``max_grid``
        windows sampled from the stationary chain with ``grid_seed``. A Gaussian AR(1) chain gets a
        randomised quasi-Monte Carlo grid of ``max_grid`` windows (a power of 2; ``GaussianAR1.qmc_windows``),
        whose error :meth:`grid_error` estimates.
    progress : bool
        A bar over the quadrature nodes while the grid's kernel is computed.
    kernel : KernelResult, optional
        The grid's kernel (``K``, ``nngp``, ``kernel_error``) if already computed, for example by a study
        that saved it; it must have the grid's shape.
    settings : Diagonal, or the keywords of :class:`Diagonal` (activation, sigma_w, beta)
    """

    def __init__(self, task: Task, window=8, alpha=1.0, order=(256, 24), rule="auto", max_grid=4096, grid_seed=0,
                 *, nodes=NODE_BUDGET, progress=False, kernel: KernelResult | None = None,
                 settings: Diagonal | None = None, **hyperparameters):
        self.settings = resolve(Diagonal, settings, hyperparameters)
        if not isinstance(task, Task):
            raise ValueError(f"task must be a meanfield Task (see meanfield.make_task), got {type(task).__name__}")
        self.window = checks.integer(window, "window", task.lags + 1)
        max_grid = checks.integer(max_grid, "max_grid", 1)
        checks.fits_in_memory(8.0 * max_grid * (self.window * task.input_dim + 4 * max_grid), "window",
                              f"the limit on up to {max_grid} windows of length {self.window}")
        self.task, self.alpha = task, checks.positive(alpha, "alpha")
        self.quadrature = quadrature(task.input_dim, self.settings.sigma_w, self.settings.beta, order, rule, nodes)
        self.grid, self.grid_rule = limit_grid(task.chain, self.window, max_grid, grid_seed, rule=True)
        self.ybar = task.conditional_mean(self.grid)
        if kernel is None:
            kernel = self._kernel(self.grid.values, None, kind="both", error_estimate=True, progress=progress)
        elif kernel.ntk is None or kernel.nngp is None or kernel.ntk.shape != (len(self.grid),) * 2:
            raise ValueError(f"kernel: needs the NTK and NNGP on the {len(self.grid)} grid windows")
        self.grid_kernel = kernel  # K, nngp and the quadrature error, as computed (or given)
        self.K, self.nngp, self.kernel_error = kernel.ntk, kernel.nngp, kernel.error
        self.flow = LinearKernelFlow(self.K, self.grid.weights, self.ybar, self.alpha)

    @property
    def rho(self) -> float:
        return self.settings.rho

    @property
    def truncation_bound(self) -> float:
        """rho^L sup|sigma|: bound on the state error from truncating histories to the window."""
        return self.settings.truncation_bound(self.window)

    def _kernel(self, X, Y, kind, error_estimate=False, progress=False):
        return kernel_at_nodes(X, X if Y is None else Y, self.quadrature, self.settings.act.code, kind,
                               error_estimate, self.settings, progress)

    def kernel(self, X, Y=None, kind="both", error_estimate=False) -> KernelResult:
        """The limit kernel between windows X and Y (default Y = X) by this limit's quadrature rule."""
        X = as_windows(X, self.task.input_dim, "X")
        Y = X if Y is None else as_windows(Y, self.task.input_dim, "Y")
        return self._kernel(X, Y, kind, error_estimate)

    def cross_kernel(self, probes, known: KernelResult | None = None) -> np.ndarray:
        """K(probes, grid) (P, M), for ``self.flow.at(times, K_cross)``; remembered for the last probes asked
        for (``known``: its KernelResult, computed before, for example by a study that saved it)."""
        return self._cross_result(probes, known).ntk

    def _cross_result(self, probes, known=None) -> KernelResult:
        probes = as_windows(probes, self.task.input_dim, "probes")
        digest = hashlib.sha256(np.ascontiguousarray(probes).tobytes()).hexdigest() + str(probes.shape)
        if known is not None:
            if known.ntk.shape != (probes.shape[0], len(self.grid)):
                raise ValueError(f"known: K(probes, grid) has shape {(probes.shape[0], len(self.grid))}, "
                                 f"got {known.ntk.shape}")
            self._cross = (digest, known)
        if getattr(self, "_cross", (None,))[0] != digest:
            self._cross = (digest, self._kernel(probes, self.grid.values, "ntk"))
        return self._cross[1]

    def quadrature_error(self, times, probes) -> float | None:
        """max over times and probes of |f_t - f^half_t|, with f^half the limit whose kernels (on the grid and the
        probes) come from the first half of a replicated Sobol rule's scramblings: the quadrature's error carried
        to the outputs, estimated for the half rule and so conservative for the whole one (as
        :meth:`grid_error` does for the grid). None for a tensor rule, whose kernel error is tiny for d = 1."""
        cross = self._cross_result(probes)
        if self.grid_kernel.half is None or cross.half is None:
            return None
        half = LinearKernelFlow(self.grid_kernel.half, self.grid.weights, self.ybar, self.alpha)
        return float(np.max(np.abs(self.flow.at(times, cross.ntk) - half.at(times, cross.half))))

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
