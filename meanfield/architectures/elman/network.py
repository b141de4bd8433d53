"""The finite-width Elman RNN of ``theory_notes/rntk.md`` section 1 (NTK parameterisation).

    g^{l,t} = (sigma_w/sqrt n) W^l h^{l,t-1} + (sigma_u/sqrt m_l) U^l h^{l-1,t} + sigma_b b^l,
    h^{l,t} = phi(g^{l,t}),  h^{0,t} = x_t,  h^{l,0} = sigma_h xi^l (fixed, not trained),
    f(x) = (sigma_v/sqrt n) V r(x),  r = h^{L,T} ("last") or (1/T) sum_t h^{L,t} ("mean"),
    f(x) = (sigma_v/sqrt n) (1/sqrt T) sum_{s<T} V_s h^{L,T-s}   ("per_step": a readout vector per step from the end),

all of W, U, b, V (V_s) standard normal; with ``initial_state="independent"`` every sequence gets a fresh
h^{l,0} = sigma_h xi at each evaluation (``theory_notes/rntk.md`` section 7). Its infinite-width kernels are
:func:`meanfield.architectures.elman.kernel.rntk`.
``parameterisation="mup"`` scales the readout by sigma_v/n instead (the mean-field / muP readout) and
multiplies the learning rate of :meth:`ElmanRNN.train` by n, so that f still moves O(1) per unit of
training time while each hidden pre-activation moves O(1) instead of O(n^{-1/2}): features are learned
and the NTK does not stay fixed (``theory_notes/regime.md``).

Gradients by backpropagation through time, vectorised over a batch of equal-length sequences (ragged
inputs are grouped by length). The empirical NTK never forms the P-dimensional Jacobian: with
delta^{l,t} = df/dg^{l,t}, the W^l block of <grad f(x), grad f(x')> is
(sigma_w^2/n) sum_{t,t'} (delta^{l,t} . delta'^{l,t'}) (h^{l,t-1} . h'^{l,t'-1}), and likewise for U and b.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from ... import checks
from ...backends import check_backend_and_dtype
from ..settings import resolve
from .kernel import check_gram, pack_sequences
from .settings import Elman


def _backend_and_dtype(backend, dtype, settings):
    """Checked (backend, dtype): float32 only on the JAX backend; the JAX module for "jax", else None."""
    backend, dtype = check_backend_and_dtype(backend, dtype)
    if backend == "numba":
        return None, dtype
    if settings.readout == "per_step" or settings.initial_state != "shared":
        raise ValueError("readout='per_step' and initial_state='independent' run on backend 'numba' only")
    from ...jax_backend import elman

    return elman, dtype


@dataclass
class _Features:
    """What the NTK needs of a batch of equal-length sequences (B sequences, T steps, width n)."""

    deltas: list  # per layer (B, T, n): df/dg^{l,t}
    states_prev: list  # per layer (B, T, n): h^{l,t-1}
    inputs: list  # per layer (B, T, m_l): h^{l-1,t}
    readout: np.ndarray  # (B, n): r(x); per-step readout (B, T, n), row s against V_s
    outputs: np.ndarray  # (B,)


def _pair_products(A, B):
    """(a, t, b, s) -> A[a, t] . B[b, s] for A (Ma, T, k), B (Mb, S, k), as one BLAS product."""
    Ma, T, k = A.shape
    Mb, S, _ = B.shape
    return (A.reshape(Ma * T, k) @ B.reshape(Mb * S, k).T).reshape(Ma, T, Mb, S)


def _readout_products(a, b):
    """r(x) . r(y) for readout features (B, n), or per-step ones (B, T, n) whose rows s meet on the common steps."""
    if a.ndim == 2:
        return a @ b.T
    S = min(a.shape[1], b.shape[1])
    return np.einsum("asn,bsn->ab", a[:, :S], b[:, :S])


class ElmanRNN:
    """Width-n, depth-L Elman RNN in NTK parameterisation (section 4 of the reference).

    Parameters
    ----------
    width, input_dim : int
    parameterisation : {"ntk", "mup"}
        Readout multiplier sigma_v/sqrt(n) ("ntk") or sigma_v/n ("mup", with the learning rate times n).
    seed : int, SeedSequence or None
    settings : Elman, or the keywords of :class:`Elman`
        (layers, activation, sigma_w, sigma_u, sigma_b, sigma_v, sigma_h, readout)
    """

    def __init__(self, width, input_dim, *, parameterisation="ntk", seed=None, settings: Elman | None = None,
                 **hyperparameters):
        self.settings = resolve(Elman, settings, hyperparameters)
        self.width = checks.integer(width, "width", 1)
        self.input_dim = checks.integer(input_dim, "input_dim", 1)
        self.parameterisation = checks.choice(parameterisation, "parameterisation", ("ntk", "mup"))
        layers = self.layers
        checks.fits_in_memory(16.0 * layers * self.width * (self.width + self.input_dim + 3), "width",
                              f"an Elman RNN of width {self.width} and depth {layers}")
        rng = np.random.default_rng(seed)
        n = self.width
        self.W = [rng.standard_normal((n, n)) for _ in range(layers)]
        self.U = [rng.standard_normal((n, input_dim if l == 0 else n)) for l in range(layers)]
        self.b = [rng.standard_normal(n) for _ in range(layers)]
        self.V = rng.standard_normal(n)
        self.h0 = [self.sigma_h * rng.standard_normal(n) for _ in range(layers)]
        # streams of their own, so that the draws above are those of the default conventions: the readout
        # vectors V_s, s >= 1, drawn in order of s as longer sequences come (V_0 is the V above), and the
        # independent initial states
        self._v_rng, self._h0_rng = (np.random.default_rng(s) for s in rng.integers(2**63, size=(2, 4)))
        if self.readout == "per_step":
            self.V = self.V[None, :]

    layers = property(lambda self: self.settings.layers)
    activation = property(lambda self: self.settings.activation)
    readout = property(lambda self: self.settings.readout)
    initial_state = property(lambda self: self.settings.initial_state)
    sigma_w = property(lambda self: self.settings.sigma_w)
    sigma_u = property(lambda self: self.settings.sigma_u)
    sigma_b = property(lambda self: self.settings.sigma_b)
    sigma_v = property(lambda self: self.settings.sigma_v)
    sigma_h = property(lambda self: self.settings.sigma_h)
    _act = property(lambda self: self.settings.act)

    @property
    def readout_scale(self) -> float:
        """The multiplier of V: sigma_v/sqrt(n) (NTK) or sigma_v/n (muP)."""
        return self.sigma_v / (self.width if self.parameterisation == "mup" else math.sqrt(self.width))

    def parameters(self) -> list:
        """The trained arrays (W^l, U^l, b^l, V); the initial state is fixed. With the per-step readout, V grows
        (a new array) when a longer sequence than any before arrives: take the list after such a call."""
        return [*self.W, *self.U, *self.b, self.V]

    def copy(self) -> ElmanRNN:
        other = ElmanRNN.__new__(ElmanRNN)
        other.__dict__.update(self.__dict__)
        other.W, other.U, other.b = [w.copy() for w in self.W], [u.copy() for u in self.U], [c.copy() for c in self.b]
        other.V, other.h0 = self.V.copy(), [h.copy() for h in self.h0]
        other._v_rng, other._h0_rng = copy.deepcopy(self._v_rng), copy.deepcopy(self._h0_rng)
        return other

    def _readout_vectors(self, T):
        """The per-step readout: V (S, n) with S >= T rows, drawn on first need."""
        if self.V.shape[0] < T:
            self.V = np.vstack([self.V, self._v_rng.standard_normal((T - self.V.shape[0], self.width))])
        return self.V

    # -- forward and backward on a batch of equal-length sequences -----------------------------
    def _scales(self, layer):
        m_l = self.input_dim if layer == 0 else self.width
        return self.sigma_w / math.sqrt(self.width), self.sigma_u / math.sqrt(m_l)

    def _batch(self, x: np.ndarray) -> _Features:
        """Forward and BPTT for x (B, T, m)."""
        B, T, _ = x.shape
        n, L = self.width, self.layers
        pre = [np.empty((B, T, n)) for _ in range(L)]
        prev = [np.empty((B, T, n)) for _ in range(L)]
        inputs = [x] + [np.empty((B, T, n)) for _ in range(L - 1)]
        if self.initial_state == "shared":
            h = [np.broadcast_to(h0, (B, n)) for h0 in self.h0]
        else:
            h = [self.sigma_h * self._h0_rng.standard_normal((B, n)) for _ in range(L)]
        for t in range(T):
            below = x[:, t]
            for l in range(L):
                aw, au = self._scales(l)
                prev[l][:, t] = h[l]
                if l > 0:
                    inputs[l][:, t] = below
                g = aw * h[l] @ self.W[l].T + au * below @ self.U[l].T + self.sigma_b * self.b[l]
                pre[l][:, t] = g
                h[l] = self._act(g)
                below = h[l]
        top_states = np.concatenate([prev[-1][:, 1:], h[-1][:, None]], axis=1)  # h^{L,t}, t = 1..T
        av = self.readout_scale
        readout_grad = np.zeros((T, n))  # df/dh^{L,t} from the readout
        if self.readout == "per_step":  # r (B, T, n): h^{L,T-s}/sqrt(T), against V_s
            r = top_states[:, ::-1] / math.sqrt(T)
            V = self._readout_vectors(T)[:T]
            readout_grad[:] = av * V[::-1] / math.sqrt(T)
            outputs = av * np.einsum("bsn,sn->b", r, V)
        elif self.readout == "last":
            r = h[-1]
            readout_grad[T - 1] = av * self.V
            outputs = av * r @ self.V
        else:
            r = top_states.mean(axis=1)
            readout_grad[:] = av * self.V / T
            outputs = av * r @ self.V
        deltas = [np.empty((B, T, n)) for _ in range(L)]
        future = [np.zeros((B, n)) for _ in range(L)]  # df/dh^{l,t} through g^{l,t+1}
        for t in range(T - 1, -1, -1):
            above = None  # df/dh^{l,t} through g^{l+1,t}
            for l in range(L - 1, -1, -1):
                aw, au = self._scales(l)
                grad_h = future[l] + readout_grad[t] if l == L - 1 else future[l].copy()
                if above is not None:
                    grad_h += above
                delta = self._act.derivative(pre[l][:, t]) * grad_h
                deltas[l][:, t] = delta
                future[l] = aw * delta @ self.W[l]
                above = au * delta @ self.U[l] if l > 0 else None
        return _Features(deltas, prev, inputs, r, outputs)

    def _features(self, X):
        """Features of every sequence, grouped by length; returns (list of (indices, _Features))."""
        flat, offsets = pack_sequences(X, "X", input_dim=self.input_dim)
        lengths = np.diff(offsets)
        groups = []
        for T in np.unique(lengths):
            idx = np.flatnonzero(lengths == T)
            batch = np.stack([flat[offsets[i]:offsets[i + 1]] for i in idx])
            groups.append((idx, self._batch(batch)))
        return groups, len(lengths)

    def __call__(self, X, *, backend="numba", dtype="float64") -> np.ndarray:
        """f on each sequence of X, shape (M,) (backend, dtype: as in :meth:`train`)."""
        jax_path, dtype = _backend_and_dtype(backend, dtype, self.settings)
        if jax_path is not None:
            return jax_path.outputs(self, X, dtype)
        groups, M = self._features(X)
        out = np.empty(M)
        for idx, feat in groups:
            out[idx] = feat.outputs
        return out

    # -- kernels ---------------------------------------------------------------------------------
    def ntk(self, X, Y=None, other=None, *, backend="numba", dtype="float64") -> np.ndarray:
        """Empirical NTK Gram <grad_theta f(x_i), grad_theta' f'(y_j)> (all of W, U, b, V trained).

        ``other``: a network of the same architecture (e.g. this one before training) whose gradients
        at Y are used on the right, giving J(theta) J(theta')^T; default: this network. backend, dtype: as
        in :meth:`train`.
        """
        jax_path, dtype = _backend_and_dtype(backend, dtype, self.settings)
        if jax_path is not None:
            return self._finite(jax_path.gram(self, X, Y, other, dtype, "ntk"), "empirical NTK", X, Y)
        other = self if other is None else other
        gx, M = self._features(X)
        gy, P = (gx, M) if (Y is None and other is self) else other._features(X if Y is None else Y)
        G = np.zeros((M, P))
        for ix, fx in gx:
            for iy, fy in gy:
                block = self.readout_scale**2 * _readout_products(fx.readout, fy.readout)
                for l in range(self.layers):
                    aw, au = self._scales(l)
                    dd = _pair_products(fx.deltas[l], fy.deltas[l])
                    hh = _pair_products(fx.states_prev[l], fy.states_prev[l])
                    ii = _pair_products(fx.inputs[l], fy.inputs[l])
                    block += np.einsum("atbs,atbs->ab", dd, aw**2 * hh + au**2 * ii + self.sigma_b**2)
                G[np.ix_(ix, iy)] = block
        return self._finite(G, "empirical NTK", X, Y)

    def nngp(self, X, Y=None, *, backend="numba", dtype="float64") -> np.ndarray:
        """sigma_v^2 r(x) . r(y) / n: the output covariance averaged over the readout V exactly (backend,
        dtype: as in :meth:`train`)."""
        jax_path, dtype = _backend_and_dtype(backend, dtype, self.settings)
        if jax_path is not None:
            return self._finite(jax_path.gram(self, X, Y, None, dtype, "nngp"), "empirical NNGP", X, Y)
        gx, M = self._features(X)
        gy, P = (gx, M) if Y is None else self._features(Y)
        G = np.zeros((M, P))
        for ix, fx in gx:
            for iy, fy in gy:
                G[np.ix_(ix, iy)] = self.readout_scale**2 * _readout_products(fx.readout, fy.readout)
        return self._finite(G, "empirical NNGP", X, Y)

    def _finite(self, G, what, X, Y):
        """G, refused with a :class:`KernelOverflowError` naming sigma_w and the lengths if an entry overflowed."""
        lengths_x = [np.shape(x)[0] for x in X]
        lengths_y = lengths_x if Y is None else [np.shape(y)[0] for y in Y]
        return check_gram(np.asarray(G), what, self.settings, lengths_x, lengths_y)

    # -- training --------------------------------------------------------------------------------
    def _gradient_step(self, groups, residual, lr):
        """theta -= lr * sum_i residual_i grad f(x_i) over the sequences of ``groups``.

        All groups are stacked along (sequence, time) so that each weight matrix gets one BLAS
        product, scaled on the small operand, and is updated in place (no n x n temporaries per group).
        """
        n = self.width
        for l in range(self.layers):
            aw, au = self._scales(l)
            D = np.concatenate([(f.deltas[l] * residual[idx][:, None, None]).reshape(-1, n) for idx, f in groups])
            prev = np.concatenate([f.states_prev[l].reshape(-1, n) for _, f in groups])
            inputs = np.concatenate([f.inputs[l].reshape(-1, f.inputs[l].shape[2]) for _, f in groups])
            self.W[l] -= (lr * aw * D).T @ prev
            self.U[l] -= (lr * au * D).T @ inputs
            self.b[l] -= lr * self.sigma_b * D.sum(axis=0)
        if self.readout == "per_step":
            for idx, f in groups:
                T = f.readout.shape[1]
                self.V[:T] -= lr * self.readout_scale * np.einsum("b,bsn->sn", residual[idx], f.readout)
            return
        readouts = np.concatenate([f.readout for _, f in groups])
        e = np.concatenate([residual[idx] for idx, _ in groups])
        self.V -= lr * self.readout_scale * e @ readouts

    def train(self, X, y, lr, steps, *, mode="full", X_eval=None, record_every=1, seed=None, backend="numba",
              dtype="float64"):
        """Gradient descent on (1/2M) sum_i (f(x_i) - y_i)^2; returns (record steps, f on X_eval).

        ``mode="full"``: full-batch steps theta -= lr grad L, so that in the kernel regime f follows
        f' = -(1/M) Theta (f - y) in time t = lr * step. In muP the step is lr * n.
        ``mode="online"``: one sequence per step
        (drawn uniformly with ``seed``), theta -= lr (f_i - y_i) grad f_i, whose expectation is the
        full-batch step.

        backend: "numba" (NumPy, the reference) or "jax" (:mod:`meanfield.jax_backend.elman`, full-batch mode
        only: the steps between records run in one compiled loop on the device); dtype: "float64", or
        "float32" on the JAX backend only.
        """
        jax_path, dtype = _backend_and_dtype(backend, dtype, self.settings)
        y = np.asarray(y, dtype=float)
        M = len(X)
        if y.shape != (M,) or not np.all(np.isfinite(y)):
            raise ValueError(f"y must be {M} finite targets, got shape {y.shape}")
        lr = checks.positive(lr, "lr")
        steps = checks.integer(steps, "steps", 0)
        record_every = checks.integer(record_every, "record_every", 1)
        if mode not in ("full", "online"):
            raise ValueError(f"mode must be 'full' or 'online', got {mode!r}")
        if jax_path is not None and mode != "full":
            raise ValueError(f"mode must be 'full' with backend 'jax' (online steps run on backend 'numba'), got "
                             f"{mode!r}")
        X_eval = X if X_eval is None else X_eval
        rng = np.random.default_rng(seed)
        lr = lr * self.width if self.parameterisation == "mup" else lr
        if jax_path is not None:
            return jax_path.train(self, X, y, lr, steps, X_eval, record_every, dtype)
        recorded, values = [], []
        for k in range(int(steps) + 1):
            if k % record_every == 0:
                recorded.append(k)
                values.append(self(X_eval))
            if k == steps:
                break
            if mode == "full":
                groups, _ = self._features(X)
                residual = np.empty(M)
                for idx, f in groups:
                    residual[idx] = f.outputs
                self._gradient_step(groups, (residual - y) / M, lr)
            else:
                i = int(rng.integers(M))
                groups, _ = self._features([np.asarray(X[i], float)])
                self._gradient_step(groups, groups[0][1].outputs - y[i:i + 1], lr)
            if not np.all(np.isfinite(self.V)):
                raise FloatingPointError(f"training diverged at step {k}; try a smaller lr")
        return np.array(recorded), np.array(values)
