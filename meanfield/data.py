"""Data sequences: ergodic Markov chains, Gaussian AR(1) inputs, and regression tasks on them.

Notation (``theory_notes/model.md`` section 1): a finite chain on the
states xi_1..xi_m in R^d with transition matrix P, irreducible and aperiodic, stationary law pi
(pi P = pi); or the continuous chain X_{k+1} = A X_k + chol(Q) eps_k with spectral radius of A below 1.
A *history window* of length L is (x_{-L+1}, ..., x_0), stored oldest first as an array (L, d); under
stationarity its probability is pi(x_{-L+1}) prod_j P(x_j, x_{j+1}).

Targets: Y_k = g(X_{k-p}, ..., X_k) + noise_k with i.i.d. centred noise, so the regression function on
a window is ybar(x) = g(last p + 1 inputs of x).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import njit
from scipy import linalg, special, stats
from scipy.sparse.csgraph import breadth_first_order, connected_components

from . import checks

MAX_WINDOWS = 2**20


@dataclass(frozen=True)
class WindowSet:
    """History windows with their weights.

    Attributes
    ----------
    values : ndarray (M, L, d)
        The windows, oldest input first; ``values[:, -1]`` is the current input x_0.
    weights : ndarray (M,)
        Stationary probabilities (all windows of a finite chain) or 1/M (sampled windows); sum to 1.
    indices : ndarray (M, L) of int, or None
        State indices for a finite chain.
    """

    values: np.ndarray
    weights: np.ndarray
    indices: np.ndarray | None = None

    @property
    def length(self) -> int:
        return self.values.shape[1]

    def __len__(self) -> int:
        return self.values.shape[0]


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _numbers(value, name: str, shape=None) -> np.ndarray:
    """:func:`checks.finite_array`, booleans refused (NumPy would read them as 1 and 0)."""
    try:
        items = np.asarray(value, dtype=object).ravel()
    except ValueError:  # ragged: finite_array says so
        items = ()
    if any(isinstance(v, (bool, np.bool_)) for v in items):
        raise ValueError(f"{name} must hold numbers, not booleans")
    return checks.finite_array(value, name, shape=shape)


def window_values(windows, name: str = "windows") -> np.ndarray:
    """The values of a WindowSet or of an array (M, L, d) of windows, as floats; ragged windows refused."""
    values = windows.values if isinstance(windows, WindowSet) else windows
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array (M, L, d) of numbers: equal-length windows of inputs of d "
                         "numbers each") from None


def _path_fits(n_steps: int, width: int):
    """Refuse, naming n_steps, a path whose draws and values (16 bytes a step and component) exceed the memory;
    paths below 256 MiB, which sample_windows draws by the thousand, skip reading the memory available."""
    if n_steps * width > 2**24:
        checks.fits_in_memory(16.0 * n_steps * width, "n_steps", f"a path of {n_steps} steps")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def gth_stationary(P: np.ndarray) -> np.ndarray:
    """Stationary law of an irreducible stochastic matrix by Grassmann-Taksar-Heyman elimination.

    GTH uses only additions of non-negative numbers (no subtractions), so it keeps full relative
    accuracy even for nearly decomposable chains where ``eig`` loses digits.
    """
    A = np.array(P, dtype=float)
    m = A.shape[0]
    for k in range(m - 1):
        scale = A[k, k + 1:].sum()
        A[k + 1:, k] /= scale
        A[k + 1:, k + 1:] += np.outer(A[k + 1:, k], A[k, k + 1:])
    x = np.zeros(m)
    x[-1] = 1.0
    for k in range(m - 2, -1, -1):
        x[k] = x[k + 1:] @ A[k + 1:, k]
    return x / x.sum()


@njit(cache=True)
def _simulate_indices(cumulative, start, uniforms):
    """Inverse-CDF simulation of a finite chain: path[0] = start, path[k+1] ~ P(path[k], .)."""
    n = uniforms.size + 1
    path = np.empty(n, dtype=np.int64)
    path[0] = start
    m = cumulative.shape[1]
    for k in range(n - 1):
        row = cumulative[path[k]]
        j = np.searchsorted(row, uniforms[k], side="right")
        path[k + 1] = min(j, m - 1)
    return path


@njit(cache=True)
def _simulate_ar1(A, chol_Q, start, noise):
    n = noise.shape[0] + 1
    d = start.size
    path = np.empty((n, d))
    path[0] = start
    for k in range(n - 1):
        path[k + 1] = A @ path[k] + chol_Q @ noise[k]
    return path


class MarkovChain:
    """Finite ergodic Markov chain with states in R^d.

    Parameters
    ----------
    P : array (m, m)
        Transition matrix: non-negative entries, rows summing to 1; irreducible and aperiodic.
    states : array (m, d) or (m,)
        The state values xi_1..xi_m (a 1-D array means d = 1).
    """

    def __init__(self, P, states):
        P = _numbers(P, "P")
        if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] == 0:
            raise ValueError(f"P must be a non-empty square matrix, got shape {P.shape}")
        if np.any(P < 0):
            raise ValueError("P must have non-negative entries")
        row_sums = P.sum(axis=1)
        if not np.allclose(row_sums, 1.0, rtol=0, atol=1e-10):
            bad = int(np.argmax(np.abs(row_sums - 1)))
            raise ValueError(f"P must be stochastic: row {bad} sums to {float(row_sums[bad])!r}, not 1")
        states = given_states = _numbers(states, "states")
        if states.ndim == 1:
            states = states[:, None]
        if states.ndim != 2 or states.shape[0] != P.shape[0]:
            raise ValueError(f"states must have shape (m, d) with m = {P.shape[0]}, got {states.shape}")
        n_components, _ = connected_components(P > 0, directed=True, connection="strong")
        if n_components != 1:
            raise ValueError(f"P must be irreducible: its graph has {n_components} communicating classes")
        period = self._period(P)
        if period != 1:
            raise ValueError(f"P must be aperiodic: the chain has period {period}")
        self.P = P / row_sums[:, None]
        self.states = states
        self.given = (P, given_states)  # as given, for chain_spec
        self._cumulative = np.cumsum(self.P, axis=1)
        self._stationary = None

    @staticmethod
    def _period(P: np.ndarray) -> int:
        """Period of an irreducible chain: gcd over edges (u, v) of level(u) + 1 - level(v)."""
        order, predecessors = breadth_first_order(P > 0, 0, directed=True)
        level = np.zeros(P.shape[0], dtype=int)
        for node in order[1:]:
            level[node] = level[predecessors[node]] + 1
        u, v = np.nonzero(P > 0)
        return int(np.gcd.reduce(np.abs(level[u] + 1 - level[v])))

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    def __repr__(self) -> str:
        return f"MarkovChain({self.n_states} states in R^{self.input_dim}, mixing {self.mixing:.3g})"

    @property
    def input_dim(self) -> int:
        return self.states.shape[1]

    @property
    def stationary(self) -> np.ndarray:
        """Stationary law pi (GTH elimination, computed once)."""
        if self._stationary is None:
            self._stationary = gth_stationary(self.P)
        return self._stationary

    @property
    def mixing(self) -> float:
        """Second-largest eigenvalue modulus of P (geometric rate of convergence to pi)."""
        moduli = np.sort(np.abs(linalg.eigvals(self.P)))[::-1]
        return float(moduli[1]) if moduli.size > 1 else 0.0

    def sample_initial(self, rng=None) -> int:
        """A state index drawn from the stationary law."""
        u = _rng(rng).random()
        return int(min(np.searchsorted(np.cumsum(self.stationary), u, side="right"), self.n_states - 1))

    def simulate(self, n_steps: int, rng=None, start: int | None = None) -> np.ndarray:
        """State indices X_0..X_{n_steps-1}; X_0 = ``start`` (a state index) or drawn from pi."""
        n_steps = _positive_int(n_steps, "n_steps")
        _path_fits(n_steps, 1)
        rng = _rng(rng)
        start = self.sample_initial(rng) if start is None else checks.integer(start, "start", 0, self.n_states - 1)
        return _simulate_indices(self._cumulative, start, rng.random(n_steps - 1))

    def values(self, path: np.ndarray) -> np.ndarray:
        """State values (..., d) of state indices."""
        return self.states[path]

    def windows(self, length: int, max_windows: int = MAX_WINDOWS) -> WindowSet:
        """All m^L windows of length L with their stationary probabilities (lexicographic order)."""
        length = _positive_int(length, "length")
        count = self.n_states**length
        if count > max_windows:
            raise ValueError(
                f"{self.n_states}^{length} = {count} windows exceed max_windows = {max_windows}; "
                "use sample_windows(length, M, rng) instead")
        idx = np.indices((self.n_states,) * length).reshape(length, -1).T
        weights = self.stationary[idx[:, 0]].copy()
        for j in range(length - 1):
            weights *= self.P[idx[:, j], idx[:, j + 1]]
        return WindowSet(self.values(idx), weights, idx)

    def sample_windows(self, length: int, n_windows: int, rng=None) -> WindowSet:
        """``n_windows`` independent windows from the stationary chain, each with weight 1/M."""
        length = _positive_int(length, "length")
        n_windows = _positive_int(n_windows, "n_windows")
        rng = _rng(rng)
        idx = np.empty((n_windows, length), dtype=np.int64)
        for i in range(n_windows):
            idx[i] = self.simulate(length, rng)
        return WindowSet(self.values(idx), np.full(n_windows, 1.0 / n_windows), idx)


class GaussianAR1:
    """Continuous chain X_{k+1} = A X_k + chol(Q) eps_k, eps_k ~ N(0, I_d), spectral radius of A < 1.

    The stationary law is N(0, Sigma) with A Sigma A^T - Sigma + Q = 0 (discrete Lyapunov equation).
    """

    def __init__(self, A, Q):
        A = np.atleast_2d(_numbers(A, "A"))
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {A.shape}")
        Q = np.atleast_2d(_numbers(Q, "Q"))
        if Q.shape != A.shape:
            raise ValueError(f"Q must have the shape of A {A.shape}, got {Q.shape}")
        radius = float(np.max(np.abs(linalg.eigvals(A))))
        if radius >= 1:
            raise ValueError(f"A must have spectral radius < 1 for a stationary chain, got {radius:.4g}")
        if not np.allclose(Q, Q.T):
            raise ValueError("Q must be symmetric")
        try:
            self._chol_Q = np.linalg.cholesky(Q)
        except np.linalg.LinAlgError:
            raise ValueError("Q must be positive definite") from None
        self.A, self.Q = A, Q
        self.stationary_cov = linalg.solve_discrete_lyapunov(A, Q)
        self._chol_cov = np.linalg.cholesky(self.stationary_cov)
        self.mixing = radius

    def __repr__(self) -> str:
        radius = float(np.max(np.abs(linalg.eigvals(self.A))))
        return f"GaussianAR1(R^{self.input_dim}, spectral radius of A {radius:.3g})"

    @property
    def input_dim(self) -> int:
        return self.A.shape[0]

    def sample_initial(self, rng=None) -> np.ndarray:
        return self._chol_cov @ _rng(rng).standard_normal(self.input_dim)

    def simulate(self, n_steps: int, rng=None, start=None) -> np.ndarray:
        """Values X_0..X_{n_steps-1}, shape (n_steps, d); X_0 = ``start`` (d,) or drawn from N(0, Sigma)."""
        n_steps = _positive_int(n_steps, "n_steps")
        _path_fits(n_steps, self.input_dim)
        rng = _rng(rng)
        start = self.sample_initial(rng) if start is None else _numbers(start, "start", shape=(self.input_dim,))
        noise = rng.standard_normal((n_steps - 1, self.input_dim))
        return _simulate_ar1(self.A, self._chol_Q, start, noise)

    def values(self, path: np.ndarray) -> np.ndarray:
        return path

    def sample_windows(self, length: int, n_windows: int, rng=None) -> WindowSet:
        length = _positive_int(length, "length")
        n_windows = _positive_int(n_windows, "n_windows")
        rng = _rng(rng)
        values = np.stack([self.simulate(length, rng) for _ in range(n_windows)])
        return WindowSet(values, np.full(n_windows, 1.0 / n_windows))

    def windows(self, length: int, max_windows: int = MAX_WINDOWS) -> WindowSet:
        raise ValueError("a continuous chain has no finite window set; use qmc_windows(length, M, seed) or "
                         "sample_windows(length, M, rng)")

    def window_covariance(self, length: int) -> np.ndarray:
        """Covariance (L d, L d) of a stationary window (x_{-L+1}, ..., x_0) flattened oldest first:
        Cov(x_i, x_j) = A^(i-j) Sigma for i >= j."""
        length = _positive_int(length, "length")
        d = self.input_dim
        lagged = [self.stationary_cov]
        for _ in range(length - 1):
            lagged.append(self.A @ lagged[-1])  # Cov(x_{j+k}, x_j) = A^k Sigma
        C = np.empty((length * d, length * d))
        for i in range(length):
            for j in range(length):
                block = lagged[i - j] if i >= j else lagged[j - i].T
                C[i * d:(i + 1) * d, j * d:(j + 1) * d] = block
        return C

    def qmc_windows(self, length: int, n_windows: int, seed=0) -> WindowSet:
        """``n_windows`` (a power of 2) windows by randomised quasi-Monte Carlo in the Gaussian window law.

        Scrambled Sobol points u in [0, 1)^(L d) become z = Phi^-1(u) and the windows L z, with L the
        Cholesky factor of the window covariance taken with the inputs ordered most recent first. So the
        first Sobol coordinates, the best equidistributed, carry x_0, then x_{-1} given x_0, and so on back
        in time, which is the order in which the limit depends on the inputs (geometrically less on older
        ones: ``theory_notes/limit.md`` section 8). Each window has weight 1/M, and the first M/2 points are
        themselves a scrambled net, so the limit on them estimates the grid's error (``LimitModel``).
        """
        length = _positive_int(length, "length")
        n_windows = _positive_int(n_windows, "n_windows")
        if n_windows & (n_windows - 1):
            raise ValueError(f"n_windows must be a power of 2 for a Sobol grid, got {n_windows}")
        d = self.input_dim
        recent_first = np.arange(length)[::-1]
        order = (recent_first[:, None] * d + np.arange(d)).ravel()
        C = self.window_covariance(length)[np.ix_(order, order)]
        root = np.linalg.cholesky(C)
        u = stats.qmc.Sobol(length * d, scramble=True, seed=seed).random(n_windows)
        z = special.ndtri(u) @ root.T  # rows: (x_0, x_{-1}, ...) flattened
        values = z.reshape(n_windows, length, d)[:, ::-1]
        return WindowSet(np.ascontiguousarray(values), np.full(n_windows, 1.0 / n_windows))


CHAIN_KINDS = {"finite": ("transition", "states"), "gaussian-ar1": ("A", "Q")}
_CHAIN_ARGUMENTS = {"P": "transition", "states": "states", "A": "A", "Q": "Q"}  # constructor argument -> key


def chain_from_spec(spec, field: str = "chain") -> MarkovChain | GaussianAR1:
    """A chain from data: ``{"kind": "finite", "transition": P, "states": xi}`` or ``{"kind": "gaussian-ar1",
    "A": A, "Q": Q}`` (a config's ``[task.chain]`` table). Errors name the key, as ``FIELD.KEY must ...``."""
    if not isinstance(spec, dict):
        raise ValueError(f"{field} must be a table with a 'kind' and its matrices, got {spec!r}")
    kind = spec.get("kind")
    if kind not in CHAIN_KINDS:
        raise ValueError(f"{field}.kind must be one of {sorted(CHAIN_KINDS)}, got {kind!r}")
    known = ("kind", *CHAIN_KINDS[kind])
    for key in spec:
        if key not in known:
            raise ValueError(f"{field}.{key} is not a key of a {kind} chain (known: {', '.join(known)})")
    for key in CHAIN_KINDS[kind]:
        if key not in spec:
            raise ValueError(f"{field}.{key} is missing (a {kind} chain needs {' and '.join(CHAIN_KINDS[kind])})")
    try:
        if kind == "finite":
            return MarkovChain(spec["transition"], spec["states"])
        return GaussianAR1(spec["A"], spec["Q"])
    except ValueError as err:  # "P must ...": name the key
        argument, _, rest = str(err).partition(" ")
        raise ValueError(f"{field}.{_CHAIN_ARGUMENTS.get(argument, argument)} {rest}") from None


def chain_spec(chain) -> dict:
    """The data of a chain, as :func:`chain_from_spec` reads it."""
    if isinstance(chain, MarkovChain):
        return dict(kind="finite", transition=chain.given[0].tolist(), states=chain.given[1].tolist())
    return dict(kind="gaussian-ar1", A=chain.A.tolist(), Q=chain.Q.tolist())


def _check_windows(chain, length: int, count: int = 4096) -> np.ndarray:
    """Windows on which to check that a target is finite: all of them for a small finite chain, otherwise
    ``count`` stationary ones (a Sobol grid for a Gaussian chain)."""
    if isinstance(chain, MarkovChain) and chain.n_states**length <= 2**16:
        return chain.windows(length).values
    if isinstance(chain, GaussianAR1):
        return chain.qmc_windows(length, count, seed=0).values
    return chain.sample_windows(length, count, rng=0).values


@dataclass(frozen=True)
class Task:
    """A regression task on a chain: Y_k = target(X_{k-lags}, ..., X_k) + noise_std * eps_k.

    ``target`` maps an array (..., lags + 1, d) of inputs, oldest first, to (...). A target written as an
    expression of the inputs (:meth:`from_expression`) and the named tasks (:func:`make_task`) keep their
    data in ``spec``, from which a study's configuration records and rebuilds them.
    """

    chain: MarkovChain | GaussianAR1
    target: Callable[[np.ndarray], np.ndarray]
    lags: int
    noise_std: float = 0.0
    name: str = "custom"
    spec: dict | None = field(default=None, init=False, compare=False, repr=False)  # dropped by replace()

    def __repr__(self) -> str:
        target = getattr(self.target, "text", getattr(self.target, "__name__", "a function"))
        return (f"Task({self.name!r}, target {target!r}, lags {self.lags}, noise_std {self.noise_std:g}, "
                f"on {self.chain!r})")

    @classmethod
    def from_expression(cls, chain, target: str, noise_std=0.0, *, window=None, field="target") -> Task:
        """Y_k = ``target`` + noise, the target an expression of the inputs such as
        ``"sin(x0_0) * x1_1 + 0.5 * x2_0"`` (``x{lag}_{component}``; ``x{lag}`` for scalar inputs; grammar in
        :mod:`meanfield.expressions`), parsed without ``eval`` and checked to be finite on the chain's states
        (all windows of a small finite chain, else 4096 stationary windows). ``window`` bounds the lags."""
        from .expressions import parse_expression

        if not isinstance(chain, (MarkovChain, GaussianAR1)):
            raise ValueError(f"chain must be a MarkovChain or a GaussianAR1, got {type(chain).__name__}")
        expression = parse_expression(target, chain.input_dim, window=window, field=field)
        expression.check_finite(_check_windows(chain, expression.lags + 1), field=field)
        noise_std = checks.real(noise_std, "noise_std", 0)
        task = cls(chain, expression, expression.lags, noise_std, name="custom")
        object.__setattr__(task, "spec", dict(target=expression.text, noise_std=noise_std, chain=chain_spec(chain)))
        return task

    def description(self) -> dict:
        """The task as data: ``spec`` for named and expression tasks; for a Python function, its name and a
        fingerprint (a digest of its values on every window of a small finite chain, else on 4096 fixed windows,
        of the lags and of the noise), so that a changed function never reuses a stale result."""
        if self.spec is not None:
            return dict(self.spec)
        windows = _check_windows(self.chain, self.lags + 1)
        values = np.asarray(self.target(windows), dtype=float)
        digest = hashlib.sha256(values.tobytes() + f"{self.lags}/{self.noise_std!r}".encode()).hexdigest()[:16]
        name = getattr(self.target, "__qualname__", type(self.target).__name__)
        return dict(function=f"{getattr(self.target, '__module__', '?')}.{name} (fingerprint {digest})",
                    noise_std=self.noise_std, chain=chain_spec(self.chain))

    def __post_init__(self):
        if isinstance(self.lags, bool) or not isinstance(self.lags, (int, np.integer)) or self.lags < 0:
            raise ValueError(f"lags must be a non-negative integer, got {self.lags!r}")
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std must be finite and >= 0, got {self.noise_std!r}")

    @property
    def input_dim(self) -> int:
        return self.chain.input_dim

    def conditional_mean(self, windows) -> np.ndarray:
        """ybar on windows (a WindowSet or an array (M, L, d) with L >= lags + 1)."""
        values = window_values(windows)
        if values.ndim != 3 or values.shape[2] != self.input_dim:
            raise ValueError(f"windows must have shape (M, L, {self.input_dim}), got {values.shape}")
        if values.shape[1] < self.lags + 1:
            raise ValueError(f"windows must have length >= lags + 1 = {self.lags + 1}, got {values.shape[1]}")
        return np.asarray(self.target(values[:, values.shape[1] - self.lags - 1:, :]), dtype=float)

    def stream(self, seed=None) -> TaskStream:
        """An endless stationary stream of (X_k, Y_k), produced in blocks of any size.

        The chain path and the noise come from two independent child streams of ``seed``, so the data
        do not depend on how the sequence is split into blocks.
        """
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        chain_seed, noise_seed = seq.spawn(2)
        return TaskStream(self, np.random.default_rng(chain_seed), np.random.default_rng(noise_seed))


class TaskStream:
    """Stateful generator of consecutive blocks of the data sequence of a task."""

    def __init__(self, task: Task, chain_rng: np.random.Generator, noise_rng: np.random.Generator):
        self.task, self.chain_rng, self.noise_rng = task, chain_rng, noise_rng
        # Burn in `lags` steps so that the first target has its full history.
        path = task.chain.simulate(task.lags + 1, chain_rng)
        self._history = task.chain.values(path[:task.lags])  # last `lags` inputs emitted
        self._next_state = path[task.lags]  # state of the next input, already drawn

    def next(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n_steps`` inputs (n, d) and targets (n,)."""
        n_steps = _positive_int(n_steps, "n_steps")
        task, chain = self.task, self.task.chain
        path = chain.simulate(n_steps + 1, self.chain_rng, start=self._next_state)
        self._next_state = path[n_steps]
        x = chain.values(path[:n_steps])
        full = np.concatenate([self._history, x])
        blocks = np.lib.stride_tricks.sliding_window_view(full, task.lags + 1, axis=0)  # (n, d, lags+1)
        y = np.asarray(task.target(np.moveaxis(blocks, -1, -2)), dtype=float)
        if task.noise_std > 0:
            y = y + task.noise_std * self.noise_rng.standard_normal(n_steps)
        self._history = full[full.shape[0] - task.lags:]
        return x, y


def _product_of_last_two(h):
    return h[..., -1, 0] * h[..., -2, 0]


def _previous_input(h):
    return h[..., -2, 0]


def _sin_of_mix(h):
    return np.sin(h[..., -1, 0] + 0.5 * h[..., -2, 0])


def _sticky_chain(P):
    try:
        return MarkovChain(P, [-1.0, 1.0])
    except ValueError as err:
        raise ValueError(f"stay must give an ergodic chain: {err}") from None


def make_task(name: str, **options) -> Task:
    """A named task.

    ``"parity2"``: states {-1, +1}, sticky chain P = [[q1, 1-q1], [1-q2, q2]] (``stay`` = (q1, q2),
    default (0.9, 0.6), stationary law (0.8, 0.2)), Y_k = X_k X_{k-1} + noise (``noise_std``, default 0.1).
    The stay probabilities differ on purpose: with an odd activation and no bias the RNN computes an
    odd function of the window, the target is even, and under a sign-symmetric window law (q1 = q2)
    the two are orthogonal in L2(pi), so nothing could be learned (``theory_notes/model.md`` section 5).
    ``"delay1"``: states {-1, +1}, sticky symmetric chain (``stay`` default 0.8), Y_k = X_{k-1} + noise
    (``noise_std``, default 0.1): recall the previous input, a pure memory task with an odd target.
    ``"ar1-sin"``: scalar AR(1) input X_{k+1} = a X_k + sqrt(1 - a^2) eps (``a`` default 0.5, unit
    stationary variance), Y_k = sin(X_k + 0.5 X_{k-1}) + noise (``noise_std``, default 0.1).
    """
    spec = dict(name=name, **options)
    noise_std = checks.real(options.pop("noise_std", 0.1), "noise_std", 0)
    if name == "parity2":
        q1, q2 = checks.real_list(options.pop("stay", (0.9, 0.6)), "stay", 0, 1, min_length=2)[:2]
        chain = _sticky_chain([[q1, 1 - q1], [1 - q2, q2]])
        target = _product_of_last_two
    elif name == "delay1":
        q = checks.real(options.pop("stay", 0.8), "stay", 0, 1)
        chain = _sticky_chain([[q, 1 - q], [1 - q, q]])
        target = _previous_input
    elif name == "ar1-sin":
        a = checks.real(options.pop("a", 0.5), "a", -1, 1)
        if abs(a) == 1:
            raise ValueError(f"a must be in (-1, 1) for a stationary chain, got {a!r}")
        chain = GaussianAR1([[a]], [[1 - a * a]])
        target = _sin_of_mix
    else:
        raise ValueError(f"unknown task {name!r}; named tasks are {TASK_NAMES}")
    if options:
        raise ValueError(f"unknown options for task {name!r}: {sorted(options)}")
    task = Task(chain, target, lags=1, noise_std=noise_std, name=name)
    object.__setattr__(task, "spec", spec)
    return task


TASK_NAMES = ("parity2", "delay1", "ar1-sin")
