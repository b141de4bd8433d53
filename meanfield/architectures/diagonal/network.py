"""Wide RNN with the simplified (diagonal) weight matrix, trained by online SGD with exact RTRL.

Model (``theory_notes/model.md`` sections 1-4). Unit i has
parameters (c^i, w^i in R^d, b^i):

    z^i_k = w^i . X_k + b^i S^i_{k-1},   S^i_k = sigma(z^i_k),   S^i_{-1} = 0,
    f^N_k = N^{-1/2} sum_i c^i S^i_k.

Forward derivatives (real-time recurrent learning, exact because the recurrence is diagonal):

    J^{w,i}_k = sigma'(z^i_k) (X_k + b^i J^{w,i}_{k-1}),   J^{b,i}_k = sigma'(z^i_k) (S^i_{k-1} + b^i J^{b,i}_{k-1}).

Online SGD on (1/2)(Y_k - f^N_k)^2 with learning rate alpha/N, i.e. with e_k = Y_k - f^N_k:

    c^i += alpha N^{-3/2} e_k S^i_k,  w^i += alpha N^{-3/2} e_k c^i J^{w,i}_k,  b^i += alpha N^{-3/2} e_k c^i J^{b,i}_k

(the gradient is taken at the current parameters, so the w and b updates use c before its update).
Training time is t = k/N.

Implementation notes. The step loop is one compiled function: a single pass over the units per step
applies the update of step k-1 (it needs e_{k-1}, a reduction over all units) and then the forward and
RTRL step k. Units are processed in fixed chunks, which are the grain of the optional thread
parallelism and make the sum f^N_k independent of the number of threads. Symmetric initialisation
stores the pair (c, w, b), (-c, w, b) as the two halves of the unit arrays; the halves are chunked
identically and summed separately, so f^N_0 = A + (-A) = 0 exactly in floating point.
Hidden weights are stored unit-last, ``W`` of shape (d, N), so every inner loop runs over units and
vectorises.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit, prange
from tqdm.auto import tqdm

from ... import checks
from ...activations import JIT, activate_inplace
from ...backends import check_backend_and_dtype
from ...data import Task, window_values
from ..settings import resolve
from .settings import Diagonal

CHUNK = 512  # units per chunk: the chunk's scratch and state rows stay in L1
PARALLEL_MIN_UNITS = 8192  # below this the per-step cost of waking threads outweighs the work
SEGMENT_UNIT_STEPS = 2**23  # unit-steps per compiled call (progress bar and data-block granularity)


def chunk_starts(n_units: int) -> tuple[np.ndarray, int]:
    """Chunk boundaries over the units and the number of chunks in the first half.

    For even N the halves [0, N/2) and [N/2, N) are split identically (see the module docstring).
    """
    groups = [(0, n_units // 2), (n_units // 2, n_units)] if n_units % 2 == 0 else [(0, n_units)]
    starts = []
    for lo, hi in groups:
        n = max(1, -(-(hi - lo) // CHUNK))
        starts.append(lo + (np.arange(n) * (hi - lo)) // n)
    return np.concatenate([*starts, [n_units]]).astype(np.int64), len(starts[0])


def as_windows(windows, input_dim: int | None, name: str = "windows") -> np.ndarray:
    """Validate windows (a WindowSet or an array (M, L, d)) and return a C-contiguous float array.

    ``input_dim`` None accepts any d.
    """
    values = np.ascontiguousarray(window_values(windows, name))
    if values.ndim != 3 or 0 in values.shape or (input_dim is not None and values.shape[2] != input_dim):
        want = "d" if input_dim is None else input_dim
        raise ValueError(f"{name} must have shape (M, L, {want}) with M, L >= 1, got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite (contains NaN or inf)")
    return values


# ----------------------------------------------------------------------------------------------
# Compiled kernels
# ----------------------------------------------------------------------------------------------

@njit(inline="always", **JIT)
def _sgd_update(lo, hi, lr_e, c, W, b, S, JW, Jb, g):
    """theta += lr * e * grad over units lo..hi; leaves lr*e*c_old per unit in g (needed for W).

    Loops index chunk-local slices from 0: with ``i - lo`` indices LLVM cannot prove an index is
    non-negative, keeps Numba's wraparound select on every access, and does not vectorise.
    """
    n = hi - lo
    c_, b_, S_, Jb_ = c[lo:hi], b[lo:hi], S[lo:hi], Jb[lo:hi]
    for i in range(n):
        gi = lr_e * c_[i]
        c_[i] += lr_e * S_[i]
        b_[i] += gi * Jb_[i]
        g[i] = gi
    for j in range(W.shape[0]):
        Wj, JWj = W[j, lo:hi], JW[j, lo:hi]
        for i in range(n):
            Wj[i] += g[i] * JWj[i]


@njit(inline="always", **JIT)
def _update_and_step(lo, hi, lr_e, x, code, c, W, b, S, JW, Jb, g, z):
    """Update of step k-1, then forward and RTRL step k for units lo..hi; returns sum c_i S_i."""
    _sgd_update(lo, hi, lr_e, c, W, b, S, JW, Jb, g)
    n = hi - lo
    c_, b_, S_, Jb_ = c[lo:hi], b[lo:hi], S[lo:hi], Jb[lo:hi]
    for i in range(n):
        z[i] = b_[i] * S_[i]
    for j in range(W.shape[0]):
        xj, Wj = x[j], W[j, lo:hi]
        for i in range(n):
            z[i] += Wj[i] * xj
    activate_inplace(z, g, n, code)  # z <- sigma(z), g <- sigma'(z)
    acc = 0.0
    for i in range(n):
        s = z[i]
        Jb_[i] = g[i] * (S_[i] + b_[i] * Jb_[i])
        S_[i] = s
        acc += c_[i] * s
    for j in range(W.shape[0]):
        xj, JWj = x[j], JW[j, lo:hi]
        for i in range(n):
            JWj[i] = g[i] * (xj + b_[i] * JWj[i])
    return acc


@njit(**JIT)
def _halves_sum(partial, n_first):
    """(sum of the first n_first chunk sums) + (sum of the rest), each in a fixed serial order.

    A separate non-parallel function on purpose: inside a ``parallel=True`` function Numba turns
    ``partial[:n].sum()`` into a threaded reduction whose order depends on the thread count.
    """
    first = 0.0
    for i in range(n_first):
        first += partial[i]
    second = 0.0
    for i in range(n_first, partial.size):
        second += partial[i]
    return first + second


@njit(parallel=True, **JIT)
def _train_segment(X, Y, lr, inv_sqrt_n, code, c, W, b, S, JW, Jb, starts, n_first, threaded):
    """Run len(Y) online SGD steps in place; all parameters are up to date on return.

    Returns (sum of (1/2) e_k^2, index of the first step with a non-finite output or -1).
    """
    n_chunks = starts.size - 1
    partial = np.empty(n_chunks)
    scratch = np.empty((n_chunks, 2, CHUNK))
    e_prev = 0.0
    loss = 0.0
    for k in range(Y.size):
        lr_e = lr * e_prev
        x = X[k]
        if threaded:
            for ch in prange(n_chunks):
                partial[ch] = _update_and_step(starts[ch], starts[ch + 1], lr_e, x, code, c, W, b, S,
                                               JW, Jb, scratch[ch, 0], scratch[ch, 1])
        else:
            for ch in range(n_chunks):
                partial[ch] = _update_and_step(starts[ch], starts[ch + 1], lr_e, x, code, c, W, b, S,
                                               JW, Jb, scratch[ch, 0], scratch[ch, 1])
        f = _halves_sum(partial, n_first) * inv_sqrt_n
        e = Y[k] - f
        # not math.isfinite: under 'nsz' + 'reassoc' LLVM folds it to True (it is lowered via e - e)
        if not abs(e) < math.inf:
            return loss, k
        loss += 0.5 * e * e
        e_prev = e
    lr_e = lr * e_prev
    for ch in prange(n_chunks):
        _sgd_update(starts[ch], starts[ch + 1], lr_e, c, W, b, S, JW, Jb, scratch[ch, 0])
    return loss, -1


@njit(parallel=True, **JIT)
def window_states_kernel(windows, W, b, code, jacobian):
    """Memory states after each window, from S = 0 (and J = 0) with frozen parameters.

    windows (M, L, d); W (d, N); b (N,). Returns S (M, N), JW (M, d, N), Jb (M, N); the Jacobian arrays
    are empty (size 0 in their unit axis) when ``jacobian`` is False.
    """
    M, L, d = windows.shape
    N = b.size
    nj = N if jacobian else 0
    S = np.zeros((M, N))
    JW = np.zeros((M, d, nj))
    Jb = np.zeros((M, nj))
    for m in prange(M):
        z = np.empty(N)
        ds = np.empty(N)
        Sm = S[m]
        for t in range(L):
            x = windows[m, t]
            for i in range(N):
                z[i] = b[i] * Sm[i]
            for j in range(d):
                xj, Wj = x[j], W[j]
                for i in range(N):
                    z[i] += Wj[i] * xj
            activate_inplace(z, ds, N, code)
            if jacobian:
                Jbm = Jb[m]
                for i in range(N):
                    Jbm[i] = ds[i] * (Sm[i] + b[i] * Jbm[i])
                for j in range(d):
                    xj, JWj = x[j], JW[m, j]
                    for i in range(N):
                        JWj[i] = ds[i] * (xj + b[i] * JWj[i])
            Sm[:] = z
    return S, JW, Jb


@njit(parallel=True, **JIT)
def path_states_kernel(path, W, b, code, S, JW, Jb):
    """Memory states along one input path from S = 0 (and J = 0), after every step, with frozen parameters.

    path (n, d); W (d, N); b (N,). Fills S (n, N), JW (d, n, N), Jb (n, N) (given, so that one buffer serves many
    calls): row k is the state after the inputs path[0..k], which equals :func:`window_states_kernel` of the
    window path[0..k]. Blocks of units run in parallel, each walking the path once (n steps instead of n L for
    the n windows of length L).
    """
    n, d = path.shape
    N = b.size
    n_blocks = (N + 63) // 64
    for blk in prange(n_blocks):
        lo, hi = blk * 64, min(N, blk * 64 + 64)
        m = hi - lo
        s, jb, z, ds = np.zeros(m), np.zeros(m), np.empty(m), np.empty(m)
        jw = np.zeros((d, m))
        for k in range(n):
            for i in range(m):
                z[i] = b[lo + i] * s[i]
            for j in range(d):
                x = path[k, j]
                for i in range(m):
                    z[i] += W[j, lo + i] * x
            activate_inplace(z, ds, m, code)
            for i in range(m):
                jb[i] = ds[i] * (s[i] + b[lo + i] * jb[i])
                s[i] = z[i]
                S[k, lo + i] = z[i]
                Jb[k, lo + i] = jb[i]
            for j in range(d):
                x = path[k, j]
                for i in range(m):
                    jw[j, i] = ds[i] * (x + b[lo + i] * jw[j, i])
                    JW[j, k, lo + i] = jw[j, i]


@njit(**JIT)
def _readout(S, c, starts, n_first, inv_sqrt_n):
    """N^{-1/2} sum_i c_i S_{m,i} for each row m, summed chunk by chunk and half by half."""
    M = S.shape[0]
    out = np.empty(M)
    n_chunks = starts.size - 1
    partial = np.empty(n_chunks)
    for m in range(M):
        row = S[m]
        for ch in range(n_chunks):
            c_, row_ = c[starts[ch]:starts[ch + 1]], row[starts[ch]:starts[ch + 1]]
            acc = 0.0
            for i in range(c_.size):
                acc += c_[i] * row_[i]
            partial[ch] = acc
        out[m] = _halves_sum(partial, n_first) * inv_sqrt_n
    return out


# ----------------------------------------------------------------------------------------------
# Model and training
# ----------------------------------------------------------------------------------------------

class DiagonalRNN:
    """Width-N RNN with a diagonal hidden-to-hidden matrix (``theory_notes/model.md`` section 2).

    Parameters
    ----------
    n_units : int
        Width N (even when ``symmetric``).
    input_dim : int
        Input dimension d.
    seed : int, SeedSequence or None
        Seed of the initialisation; c ~ N(0, 1), (w, b) by :meth:`Diagonal.sample_hidden`.
    settings : Diagonal, or the keywords of :class:`Diagonal` (activation, sigma_w, beta, symmetric)
    """

    def __init__(self, n_units, input_dim=1, *, seed=None, settings: Diagonal | None = None, **hyperparameters):
        self.settings = resolve(Diagonal, settings, hyperparameters)
        n_units = checks.integer(n_units, "n_units", 1)
        input_dim = checks.integer(input_dim, "input_dim", 1)
        if self.symmetric and n_units % 2:
            raise ValueError(f"n_units must be even for the symmetric initialisation, got {n_units}")
        checks.fits_in_memory(24.0 * n_units * (input_dim + 2), "n_units", f"a network of width {n_units}")
        rng = np.random.default_rng(checks.seed(seed))
        half = n_units // 2 if self.symmetric else n_units
        c = rng.standard_normal(half)
        W, b = self.settings.sample_hidden(rng, half, input_dim)
        if self.symmetric:
            c, W, b = np.concatenate([c, -c]), np.concatenate([W, W], axis=1), np.concatenate([b, b])
        self.c, self.W, self.b = c, np.ascontiguousarray(W), b

    activation = property(lambda self: self.settings.activation)
    sigma_w = property(lambda self: self.settings.sigma_w)
    beta = property(lambda self: self.settings.beta)
    symmetric = property(lambda self: self.settings.symmetric)
    _code = property(lambda self: self.settings.act.code)

    @classmethod
    def from_parameters(cls, c, w, b, *, settings: Diagonal | None = None, **hyperparameters):
        """A model with given parameters c (N,), w (N, d), b (N,) (e.g. the result of training); its
        settings as for the constructor, except that ``symmetric`` defaults to False."""
        c = np.array(c, dtype=float)
        w = np.array(w, dtype=float)
        b = np.array(b, dtype=float)
        if c.ndim != 1 or w.ndim != 2 or w.shape[0] != c.size or b.shape != c.shape:
            raise ValueError(f"need c (N,), w (N, d), b (N,); got {c.shape}, {w.shape}, {b.shape}")
        for name, value in (("c", c), ("w", w), ("b", b)):
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite")
        model = cls.__new__(cls)
        model.settings = resolve(Diagonal, settings, hyperparameters, symmetric=False)
        model.c, model.W, model.b = c, np.ascontiguousarray(w.T), b
        return model

    def copy(self) -> DiagonalRNN:
        return DiagonalRNN.from_parameters(self.c, self.w, self.b, settings=self.settings)

    @property
    def n_units(self) -> int:
        return self.c.size

    @property
    def input_dim(self) -> int:
        return self.W.shape[0]

    @property
    def w(self) -> np.ndarray:
        """Input weights, shape (N, d) (a view of the unit-last storage ``W``)."""
        return self.W.T

    @property
    def rho(self) -> float:
        """Contraction modulus of the memory map at initialisation: max|b| sup|sigma'| <= beta sup|sigma'|."""
        return float(np.max(np.abs(self.b))) * self.settings.act.sup_derivative

    def memory_states(self, windows, jacobian=True):
        """S (M, N), J^w (M, N, d) and J^b (M, N) at the end of each window, from S = 0, J = 0."""
        values = as_windows(windows, self.input_dim)
        S, JW, Jb = window_states_kernel(values, self.W, self.b, self._code, bool(jacobian))
        return (S, np.transpose(JW, (0, 2, 1)), Jb) if jacobian else S

    def jacobian(self, windows) -> np.ndarray:
        """d f^N / d theta on each window, shape (M, N (d + 2)), columns (c, w unit-major, b)."""
        S, Jw, Jb = self.memory_states(windows)
        scale = 1.0 / math.sqrt(self.n_units)
        return scale * np.concatenate([S, (self.c[None, :, None] * Jw).reshape(S.shape[0], -1),
                                       self.c * Jb], axis=1)

    def ntk(self, windows, windows2=None, other=None) -> np.ndarray:
        """Empirical NTK Gram J(x) J'(x')^T = N^{-1} sum_i [S S' + c_i c'_i (J^w . J^w' + J^b J^b')].

        ``other``: a network of the same width whose Jacobian is used on the right (default: this one).
        """
        J = self.jacobian(windows)
        if other is None and windows2 is None:
            return J @ J.T
        return J @ (other or self).jacobian(windows if windows2 is None else windows2).T

    def parameters(self) -> list:
        """The trained arrays (c, W, b)."""
        return [self.c, self.W, self.b]

    def __call__(self, windows) -> np.ndarray:
        return self.forward(windows)

    def train(self, windows, targets, lr, steps, record_every=1):
        """Full-batch gradient descent on (1/2M) sum (f(x_i) - y_i)^2 over fixed windows (in place).

        The diagnostics' protocol (:mod:`meanfield.diagnostics`); online SGD on a data stream is
        :func:`train_online`. Returns (recorded steps, f on the windows at those steps).
        """
        y = np.asarray(targets, dtype=float)
        recorded, values = [], []
        N, d = self.n_units, self.input_dim
        for k in range(int(steps) + 1):
            J = self.jacobian(windows)  # columns (c, w unit-major, b); the c block is S / sqrt(N)
            f = J[:, :N] @ self.c
            if k % record_every == 0:
                recorded.append(k)
                values.append(f)
            if k == steps:
                break
            grad = J.T @ (f - y) / len(y)
            self.c -= lr * grad[:N]
            self.W -= lr * grad[N:N * (d + 1)].reshape(N, d).T
            self.b -= lr * grad[N * (d + 1):]
        return np.array(recorded), np.array(values)

    def forward(self, windows) -> np.ndarray:
        """f^N on each window (forward pass from S = 0 with the current parameters), shape (M,)."""
        S = self.memory_states(windows, jacobian=False)
        starts, n_first = chunk_starts(self.n_units)
        return _readout(S, self.c, starts, n_first, 1.0 / math.sqrt(self.n_units))


@dataclass
class TrainResult:
    """Outcome of :func:`train_online`.

    ``times`` are training times t = k/N of the records, ``steps`` the step counts k, ``outputs`` the
    network on the probe windows at those times (R + 1, P), ``losses`` the mean online loss
    (1/2)(Y_k - f^N_k)^2 over each of the R intervals, ``model`` the trained network, ``config`` the
    parameters of the run.
    """

    times: np.ndarray
    steps: np.ndarray
    outputs: np.ndarray
    losses: np.ndarray
    probes: np.ndarray
    model: DiagonalRNN
    config: dict = field(default_factory=dict)

    def probe_loss(self, targets) -> np.ndarray:
        """(1/2) mean over probes of (target - f^N_t)^2 at each record, shape (R + 1,)."""
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (self.outputs.shape[1],):
            raise ValueError(f"targets must have shape ({self.outputs.shape[1]},), got {targets.shape}")
        return 0.5 * np.mean((self.outputs - targets) ** 2, axis=1)

    def save(self, path) -> Path:
        """Write the result to an ``.npz`` file (the config as a JSON string)."""
        path = Path(path)
        m = self.model
        np.savez(path, times=self.times, steps=self.steps, outputs=self.outputs, losses=self.losses,
                 probes=self.probes, c=m.c, w=m.w, b=m.b,
                 config=json.dumps({**self.config, **dataclasses.asdict(m.settings)}))
        return path

    @classmethod
    def load(cls, path) -> TrainResult:
        with np.load(path) as data:
            config = json.loads(str(data["config"]))
            settings = Diagonal(**{f.name: config[f.name] for f in dataclasses.fields(Diagonal)})
            model = DiagonalRNN.from_parameters(data["c"], data["w"], data["b"], settings=settings)
            return cls(data["times"], data["steps"], data["outputs"], data["losses"], data["probes"],
                       model, config)


NS_PER_UNIT_STEP = 3.0
"""The simulator's speed on one core in ns per unit, step and input component + 2 (benchmarks/bench_simulator.py:
2.6-4 ns; 1.6 measured at N = 256..1024), for estimates."""
NS_PER_STEP = 250.0
"""A step's fixed cost in ns, whatever the width (the chain, the target, the loop: 230-260 ns measured at N = 8, 16)."""


def training_seconds(n_units, input_dim, horizon) -> float:
    """The estimated time of one online-SGD training of width ``n_units`` for ``horizon`` (Numba, one core)."""
    return round(horizon * n_units) * (NS_PER_STEP + n_units * (input_dim + 2) * NS_PER_UNIT_STEP) * 1e-9



def _checked_training(model, task, horizon, alpha, probes, n_records, seed, allow_long=False):
    """Validate train_online's arguments (a training estimated over a day is refused unless ``allow_long``); return
    (horizon, alpha, n_records, probes, n_steps, record_steps)."""
    if not isinstance(model, DiagonalRNN):
        raise TypeError(f"model must be a DiagonalRNN, got {type(model).__name__}")
    if not isinstance(task, Task):
        raise ValueError(f"task must be a meanfield Task (see meanfield.make_task), got {type(task).__name__}")
    if task.input_dim != model.input_dim:
        raise ValueError(f"task input_dim {task.input_dim} != model input_dim {model.input_dim}")
    checks.seed(seed)
    horizon = checks.positive(horizon, "horizon")
    alpha = checks.positive(alpha, "alpha")
    n_records = checks.integer(n_records, "n_records", 1)
    probes = as_windows(probes, model.input_dim, "probes")
    n_steps = int(round(horizon * model.n_units))
    checks.within_time(training_seconds(model.n_units, model.input_dim, horizon), "horizon, with the model's n_units",
                       allow_long=allow_long)
    if n_steps < n_records:
        raise ValueError(f"horizon * n_units = {n_steps} steps is fewer than n_records = {n_records}")
    record_steps = np.round(np.linspace(0, n_steps, n_records + 1)).astype(np.int64)
    return horizon, alpha, n_records, probes, n_steps, record_steps


def _run_config(model, task, horizon, alpha, n_records, seed, backend, dtype) -> dict:
    return dict(n_units=model.n_units, input_dim=model.input_dim, task=task.name, horizon=horizon, alpha=alpha,
                n_records=n_records, seed=None if seed is None else repr(seed), backend=backend, dtype=dtype)


def train_online(model: DiagonalRNN, task: Task, horizon: float, alpha: float, probes, n_records=20,
                 seed=None, progress=True, threaded=None, *, backend="numba", dtype="float64",
                 allow_long=False) -> TrainResult:
    """Train a copy of ``model`` by online SGD on the data sequence of ``task`` for ``horizon * N`` steps.

    Parameters
    ----------
    model : DiagonalRNN
        The initial network (not modified).
    task : Task
        Data sequence and targets; its input dimension must match the model's.
    horizon : float
        Training time T > 0; the run takes round(T N) steps of learning rate alpha / N.
    alpha : float
        The learning-rate constant alpha > 0 of the paper.
    probes : WindowSet or array (P, L, d)
        Fixed windows on which the network is evaluated at each record.
    n_records : int
        Number of recording intervals: outputs are recorded at R + 1 equally spaced times in [0, T].
    seed : int, SeedSequence or None
        Seed of the data sequence (the chain path and the noise are independent streams, so the data
        do not depend on how the run is split into compiled calls).
    progress : bool
        Show a progress bar over the steps.
    threaded : bool or None
        Numba backend: split each step's units over Numba's threads (``numba.set_num_threads`` sets their
        number). None chooses threads for N >= 8192. The result does not depend on this choice.
    backend : "numba" or "jax"
        The compute backend (:mod:`meanfield.backends`); both see the same data and initial parameters.
    dtype : "float64" or "float32"
        Floating-point type (float32 on the JAX backend only).
    allow_long : bool
        Run a training estimated at more than a day on this machine (refused otherwise, before any work).
    """
    if check_backend_and_dtype(backend, dtype)[0] == "jax":
        return train_seeds([model], task, horizon, alpha, probes, n_records, [seed], progress, backend="jax",
                           dtype=dtype, allow_long=allow_long)[0]
    horizon, alpha, n_records, probes, n_steps, record_steps = _checked_training(
        model, task, horizon, alpha, probes, n_records, seed, allow_long)
    N = model.n_units
    threaded = N >= PARALLEL_MIN_UNITS if threaded is None else bool(threaded)

    net = model.copy()
    S, Jb = np.zeros(N), np.zeros(N)
    JW = np.zeros_like(net.W)
    starts, n_first = chunk_starts(N)
    lr, inv_sqrt_n = alpha * N**-1.5, 1.0 / math.sqrt(N)
    stream = task.stream(seed)
    segment = max(1, SEGMENT_UNIT_STEPS // N)

    outputs = np.empty((n_records + 1, probes.shape[0]))
    losses = np.empty(n_records)
    outputs[0] = net.forward(probes)
    with tqdm(total=n_steps, disable=not progress, unit="step", desc=f"train N={N}") as bar:
        for r in range(n_records):
            done, loss_sum = record_steps[r], 0.0
            while done < record_steps[r + 1]:
                n = int(min(segment, record_steps[r + 1] - done))
                X, Y = stream.next(n)
                loss, bad = _train_segment(np.ascontiguousarray(X), Y, lr, inv_sqrt_n, net._code, net.c,
                                           net.W, net.b, S, JW, Jb, starts, n_first, threaded)
                if bad >= 0:
                    raise FloatingPointError(
                        f"the network output became non-finite at step {done + bad} (t = "
                        f"{(done + bad) / N:.4g}) with alpha = {alpha:g}; try a smaller alpha")
                loss_sum += loss
                done += n
                bar.update(n)
            losses[r] = loss_sum / (record_steps[r + 1] - record_steps[r])
            outputs[r + 1] = net.forward(probes)
    config = _run_config(model, task, horizon, alpha, n_records, seed, "numba", "float64")
    return TrainResult(record_steps / N, record_steps, outputs, losses, probes, net, config)


def train_seeds(models, task: Task, horizon: float, alpha: float, probes, n_records=20, seeds=None, progress=True,
                *, backend="numba", dtype="float64", allow_long=False) -> list[TrainResult]:
    """:func:`train_online` for several networks of one width and settings, one data seed each.

    On the JAX backend one compiled program trains all of them at once (the seeds are a batch axis); on
    the Numba backend they run one after the other. ``seeds``: one data seed per model (default: None for
    each). Returns one :class:`TrainResult` per model, as :func:`train_online` would. ``allow_long``: as in
    :func:`train_online`, for all of them together.
    """
    backend, dtype = check_backend_and_dtype(backend, dtype)
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one DiagonalRNN")
    seeds = [None] * len(models) if seeds is None else list(seeds)
    if len(seeds) != len(models):
        raise ValueError(f"seeds must hold one seed per model ({len(models)}), got {len(seeds)}")
    _checked_training(models[0], task, horizon, alpha, probes, n_records, seeds[0], allow_long=True)
    bad = next((i for i, m in enumerate(models) if not isinstance(m, DiagonalRNN)), None)
    if bad is not None:
        raise TypeError(f"models[{bad}] must be a DiagonalRNN, got {type(models[bad]).__name__}")
    checks.within_time(sum(training_seconds(m.n_units, m.input_dim, horizon) for m in models),
                       "horizon, with the models' n_units", allow_long=allow_long)
    if backend == "numba":
        return [train_online(m, task, horizon, alpha, probes, n_records, s, progress, backend=backend, dtype=dtype,
                             allow_long=True) for m, s in zip(models, seeds)]
    first = models[0]
    checked = [_checked_training(m, task, horizon, alpha, probes, n_records, s, True) for m, s in zip(models, seeds)]
    for i, m in enumerate(models):
        if (m.n_units, m.input_dim, m.settings) != (first.n_units, first.input_dim, first.settings):
            raise ValueError(f"models[{i}] differs from models[0] in width, input_dim or settings; train_seeds "
                             "batches networks of one width and one setting")
    horizon, alpha, n_records, probes, n_steps, record_steps = checked[0]
    from ...jax_backend.diagonal import train_seeds as train_on_jax

    N = first.n_units
    out = train_on_jax(np.stack([m.c for m in models]), np.stack([m.W for m in models]),
                       np.stack([m.b for m in models]), code=first._code, half=N // 2 if N % 2 == 0 else N,
                       streams=[task.stream(s) for s in seeds], record_steps=record_steps, probes=probes,
                       alpha=alpha, dtype=dtype, progress=progress, desc=f"train N={N} x {len(models)} (jax)")
    results = []
    for i, (m, s) in enumerate(zip(models, seeds)):
        net = DiagonalRNN.from_parameters(out["c"][i], out["W"][i].T, out["b"][i], settings=m.settings)
        results.append(TrainResult(record_steps / N, record_steps, out["outputs"][i], out["losses"][i], probes,
                                   net, _run_config(m, task, horizon, alpha, n_records, s, "jax", dtype)))
    return results
