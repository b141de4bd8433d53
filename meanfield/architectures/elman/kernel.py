"""The recurrent neural tangent kernel (RNTK) and NNGP of the Elman RNN, for sequences of any lengths.

Network (NTK parameterisation, ``theory_notes/rntk.md`` section 1, [RNTK] arXiv:2006.10246):

    g^{l,t} = (sigma_w/sqrt n) W^l h^{l,t-1} + (sigma_u/sqrt m_l) U^l h^{l-1,t} + sigma_b b^l,
    h^{l,t} = phi(g^{l,t}),  h^{0,t} = x_t,  h^{l,0} = sigma_h * (a fixed N(0, I) vector),
    f(x) = (sigma_v/sqrt n) V h^{L,T}   (readout "last")  or  (sigma_v/sqrt n) V (1/T) sum_t h^{L,t} ("mean").

Infinite-width recursion (derived in ``theory_notes/rntk.md``), for a pair of time steps (t, t'):

    Sigma^l(t,t') = sigma_w^2 K^l(t-1,t'-1) + sigma_u^2 K^{l-1}(t,t') + sigma_b^2,
    K^l(t,t') = E[phi(u) phi(v)],  Kd^l(t,t') = E[phi'(u) phi'(v)],  (u,v) ~ N(0, Sigma^l on {t, t'}),
    Theta^l(t,t') = Sigma^l(t,t') + sigma_w^2 Kd^l(t-1,t'-1) Theta^l(t-1,t'-1)
                    + sigma_u^2 Kd^{l-1}(t,t') Theta^{l-1}(t,t')   (the last term for l >= 2),

with K^0(t,t') = x_t . x'_t' / m, K^l(0,0) = sigma_h^2, K^l(0,t') = 0 for t' >= 1, Theta^l(0,.) = 0.
NNGP = sigma_v^2 K^L(T,T'), NTK = sigma_v^2 [K^L(T,T') + Kd^L(T,T') Theta^L(T,T')] for the last
readout (the 1/(T T') sum over all (t, t') for the mean readout).

For the last readout only the end-aligned diagonal t' - t = T' - T reaches (T, T'), so a pair costs
O(L min(T, T')) plus the variances Sigma^l(t,t) of each sequence, computed once per sequence.

The conventions of the RNTK_UCI code (``theory_notes/rntk.md`` section 7): ``readout="per_step"`` sums the
readout kernels over that same diagonal, scaled by 1/sqrt(T T') (equal lengths: (1/T) sum_t); with
``initial_state="independent"`` K^l(0,0) = sigma_h^2 only for a sequence paired with itself in a symmetric Gram.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ... import backends, checks
from ...activations import ERF, JIT, LINEAR, RELU, gaussian_dual, gaussian_dual_rows, normal_rule
from ..settings import resolve
from .settings import Elman

KINDS = ("ntk", "nngp", "both")
VARIANCE_LIMIT = 1e150
"""The largest pre-activation variance the recursion accepts: the Gaussian duals take sqrt(var * var'), which
overflows float64 near 1e154 (above the edge of chaos the variance grows geometrically along the sequence)."""


class KernelOverflowError(ValueError):
    """A kernel that would overflow float64; the message names sigma_w, the activation and the sequence length."""


def _hint(arch) -> str:
    return (f"with sigma_w={arch.sigma_w:g} ({arch.act.name}) the variances grow along the sequence; lower sigma_w "
            f"(or sigma_u, sigma_b, sigma_h) or shorten the sequences")


def check_variances(var, offsets, arch, name="X"):
    """Refuse, with a :class:`KernelOverflowError`, own variances Sigma^l(t,t) (L, total T) above
    :data:`VARIANCE_LIMIT` or not finite: the sequence, its length and the first such step are named."""
    bad = ~(np.abs(var) <= VARIANCE_LIMIT)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad.any(axis=0))[0])
    i = int(np.searchsorted(offsets, first, side="right") - 1)
    raise KernelOverflowError(
        f"the RNTK of {name}[{i}] (length {int(offsets[i + 1] - offsets[i])}) overflows float64: its pre-activation "
        f"variance exceeds {VARIANCE_LIMIT:.0e} at step {first - int(offsets[i]) + 1}; {_hint(arch)}")


def check_gram(G, what, arch, lengths_x, lengths_y):
    """Refuse, with a :class:`KernelOverflowError`, a Gram matrix with a NaN or infinite entry, naming the first
    pair and the lengths of its sequences."""
    bad = ~np.isfinite(G)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise KernelOverflowError(f"the {what} Gram is not finite at ({i}, {j}) (sequence lengths {lengths_x[i]} and "
                                  f"{lengths_y[j]}): float64 overflowed; {_hint(arch)}")
    return G


def pack_sequences(X, name="X", input_dim=None):
    """Validate a list of sequences (each (T_i, m)) or an array (M, T, m); return (flat, offsets)."""
    if isinstance(X, np.ndarray) and X.ndim == 3 and X.size and (input_dim is None or X.shape[2] == input_dim):
        X = np.asarray(X, dtype=float)
        if np.all(np.isfinite(X)):  # the common case in one pass (the loop below names the first bad sequence)
            M, T, m = X.shape
            return np.ascontiguousarray(X.reshape(M * T, m)), np.arange(M + 1, dtype=np.int64) * T
    if isinstance(X, np.ndarray) and X.ndim == 3:
        seqs = list(X)
    elif isinstance(X, (list, tuple)):
        seqs = [np.asarray(x, dtype=float) for x in X]
    else:
        raise ValueError(f"{name} must be a list of arrays (T_i, m) or an array (M, T, m)")
    if not seqs:
        raise ValueError(f"{name} must contain at least one sequence")
    m = input_dim
    for i, x in enumerate(seqs):
        if x.ndim == 1:
            raise ValueError(f"{name}[{i}] must have shape (T, m); for scalar inputs use shape (T, 1)")
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name}[{i}] must have shape (T, m) with T, m >= 1, got {x.shape}")
        if m is None:
            m = x.shape[1]
        if x.shape[1] != m:
            raise ValueError(f"{name}[{i}] has input dimension {x.shape[1]}, expected {m}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{i}] contains NaN or inf")
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([x.shape[0] for x in seqs])
    return np.ascontiguousarray(np.concatenate(seqs), dtype=float), offsets


@njit(inline="always", **JIT)
def _input_product(a, b):
    """a . b / m for two input vectors."""
    acc = 0.0
    for j in range(a.size):
        acc += a[j] * b[j]
    return acc / a.size


@njit(inline="always", **JIT)
def _preactivation(p, k_prev, below):
    """Sigma^l(t,t') from K^l(t-1,t'-1) and the layer below.

    The own-variance pass and the pair pass share this and ``_input_product`` so that a sequence
    paired with itself reproduces its variances bit for bit: then lambda = 1 exactly, where the ReLU
    derivative kernel (pi - arccos lambda)/(2 pi) would turn an ulp of difference into 1e-8.
    """
    return p[0] * k_prev + p[1] * below + p[2]


@njit(**JIT)
def _own_variances(flat, offsets, L, p, code, zx, zw):
    """Sigma^l(t,t) (L, total T) and K^l(t,t) for every sequence, stacked like ``flat``."""
    total = flat.shape[0]
    var = np.empty((L, total))
    k = np.empty((L, total))
    for q in range(offsets.size - 1):
        for t in range(offsets[q], offsets[q + 1]):
            below = _input_product(flat[t], flat[t])
            for ll in range(L):
                prev = p[4] if t == offsets[q] else k[ll, t - 1]
                s = _preactivation(p, prev, below)
                var[ll, t] = s
                k[ll, t] = gaussian_dual(s, s, s, code, zx, zw)[0]
                below = k[ll, t]
    return var, k


@njit(**JIT)
def _row_last(fx, x0, Tx, vx, ya, oy, vya, j0, L, p, code, zx, zw, shared, per_step, self_first, nngp_row, ntk_row):
    """(NNGP, NTK) of sequence x against sequences j0.. of Y, last or per-step readout, into the two rows.

    Y comes end-aligned on a common timeline of T_max steps, time-major (``_end_aligned``): ya (T_max, P, m)
    and its own variances vya (L, T_max, P), so that x's step t meets every y_j at the same aligned step
    T_max - Tx + t, in contiguous memory. The pair (x, y_j) is on its end-aligned diagonal from
    t = max(0, Tx - Ty_j) on and masked before. The loops run over the pairs, which are independent, in
    passes without branches and on contiguous rows, so they vectorise; a loop over the steps of one pair is a
    latency-bound chain (sqrt, division, arccos).

    The initial states meet at K = sigma_h^2 when they are the same vector: with ``shared`` when the lengths are
    equal (the two start at the same aligned step), else only for the pair of x with itself (``self_first``: Y
    is X from x on). ``per_step`` sums the top layer's kernels over the diagonal, scaled by 1/sqrt(Tx Ty).
    """
    s_w, s_u, s_v, s_h = p[0], p[1], p[3], p[4]
    nj = oy.size - 1 - j0
    shift = ya.shape[0] - Tx  # aligned step of x's step 0
    start = np.empty(nj, dtype=np.int64)
    k_prev = np.empty((L, nj))
    kd_prev = np.zeros((L, nj))
    th_prev = np.zeros((L, nj))
    sum_k = np.zeros(nj)
    sum_ntk = np.zeros(nj)
    for jj in range(nj):
        Ty = oy[j0 + jj + 1] - oy[j0 + jj]
        start[jj] = max(0, Tx - Ty)
        same_start = (Tx == Ty) if shared else (self_first and jj == 0)
        for ll in range(L):
            k_prev[ll, jj] = s_h if same_start else 0.0
    below = np.empty(nj)
    sig = np.empty(nj)
    kk = np.empty(nj)
    kd = np.empty(nj)
    th_below = np.zeros(nj)
    for t in range(Tx):
        xt = fx[x0 + t]
        yt = ya[shift + t, j0:]  # inactive pairs read y's first step; their results are masked
        for jj in range(nj):
            below[jj] = _input_product(xt, yt[jj])
        for ll in range(L):
            kp, kdp, thp = k_prev[ll], kd_prev[ll], th_prev[ll]
            for jj in range(nj):
                sig[jj] = _preactivation(p, kp[jj], below[jj])
            gaussian_dual_rows(vx[ll, x0 + t], sig, vya[ll, shift + t, j0:], code, zx, zw, kk, kd, nj)
            kd_low = kd_prev[ll - 1] if ll > 0 else kd  # layer below at this step, already updated in place
            s_low = s_u if ll > 0 else 0.0
            for jj in range(nj):
                active = t >= start[jj]
                th = sig[jj] + s_w * kdp[jj] * thp[jj] + s_low * kd_low[jj] * th_below[jj]
                kp[jj] = kk[jj] if active else kp[jj]
                kdp[jj] = kd[jj] if active else kdp[jj]
                thp[jj] = th if active else thp[jj]
                below[jj] = kk[jj]
                th_below[jj] = th
        if per_step:
            for jj in range(nj):
                if t >= start[jj]:
                    sum_k[jj] += k_prev[L - 1, jj]
                    sum_ntk[jj] += k_prev[L - 1, jj] + kd_prev[L - 1, jj] * th_prev[L - 1, jj]
    top = L - 1
    for jj in range(nj):
        if per_step:
            Ty = oy[j0 + jj + 1] - oy[j0 + jj]
            scale = s_v / np.sqrt(Tx * Ty)
            nngp_row[j0 + jj] = scale * sum_k[jj]
            ntk_row[j0 + jj] = scale * sum_ntk[jj]
        else:
            nngp_row[j0 + jj] = s_v * k_prev[top, jj]
            ntk_row[j0 + jj] = s_v * (k_prev[top, jj] + kd_prev[top, jj] * th_prev[top, jj])


@njit(**JIT)
def _pair_mean(flat_x, x0, Tx, var_x, flat_y, y0, Ty, var_y, L, p, code, zx, zw, same_start):
    """(NNGP, NTK) of one pair, mean readout: the full (T, T') grid, layer by layer; the initial states meet at
    sigma_h^2 when ``same_start`` (one vector), else at 0."""
    s_w, s_u, s_v, s_h = p[0], p[1], p[3], p[4]
    # layer below: K^{l-1}(t, t') and its derivative/Theta on the grid (index 0 = time 0)
    below_k = np.zeros((Tx + 1, Ty + 1))
    below_kd = np.zeros((Tx + 1, Ty + 1))
    below_th = np.zeros((Tx + 1, Ty + 1))
    for t in range(1, Tx + 1):
        for u in range(1, Ty + 1):
            below_k[t, u] = _input_product(flat_x[x0 + t - 1], flat_y[y0 + u - 1])
    k = np.zeros((Tx + 1, Ty + 1))
    kd = np.zeros((Tx + 1, Ty + 1))
    th = np.zeros((Tx + 1, Ty + 1))
    for ll in range(L):
        k[:, :] = 0.0
        kd[:, :] = 0.0
        th[:, :] = 0.0
        k[0, 0] = s_h if same_start else 0.0
        for t in range(1, Tx + 1):
            for u in range(1, Ty + 1):
                sig = _preactivation(p, k[t - 1, u - 1], below_k[t, u])
                kk, dd = gaussian_dual(var_x[ll, x0 + t - 1], sig, var_y[ll, y0 + u - 1], code, zx, zw)
                tt = sig + s_w * kd[t - 1, u - 1] * th[t - 1, u - 1]
                if ll > 0:
                    tt += s_u * below_kd[t, u] * below_th[t, u]
                k[t, u], kd[t, u], th[t, u] = kk, dd, tt
        below_k[:, :] = k
        below_kd[:, :] = kd
        below_th[:, :] = th
    nngp = 0.0
    ntk = 0.0
    for t in range(1, Tx + 1):
        for u in range(1, Ty + 1):
            nngp += k[t, u]
            ntk += k[t, u] + kd[t, u] * th[t, u]
    scale = s_v / (Tx * Ty)
    return scale * nngp, scale * ntk


@njit(**JIT)
def _row(i, fx, ox, vx, fy, oy, vy, ya, vya, symmetric, mean, per_step, shared, L, p, code, zx, zw, nngp, ntk):
    x0, Tx = ox[i], ox[i + 1] - ox[i]
    j0 = i if symmetric else 0
    if mean:  # the full grid is start-aligned: the initial states meet when shared, or for x with itself
        for j in range(j0, oy.size - 1):
            same_start = shared or (symmetric and j == i)
            nngp[i, j], ntk[i, j] = _pair_mean(fx, x0, Tx, vx, fy, oy[j], oy[j + 1] - oy[j], vy, L, p, code,
                                               zx, zw, same_start)
    else:
        _row_last(fx, x0, Tx, vx, ya, oy, vya, j0, L, p, code, zx, zw, shared, per_step, symmetric, nngp[i], ntk[i])


@njit(parallel=True, **JIT)
def _gram(fx, ox, vx, fy, oy, vy, ya, vya, symmetric, mean, per_step, shared, L, p, code, zx, zw):
    """NNGP and NTK Gram matrices; with ``symmetric`` (Y is X) each pair is computed once.

    A symmetric Gram's row i holds M - i pairs: rows go to the threads in couples (r, M - 1 - r) of
    equal total work.
    """
    M, P = ox.size - 1, oy.size - 1
    nngp = np.zeros((M, P))
    ntk = np.zeros((M, P))
    n_tasks = (M + 1) // 2 if symmetric else M
    for task in prange(n_tasks):
        r = np.int64(task)  # prange indices are unsigned: M - 1 - r would become a float
        _row(r, fx, ox, vx, fy, oy, vy, ya, vya, symmetric, mean, per_step, shared, L, p, code, zx, zw, nngp, ntk)
        if symmetric and M - 1 - r != r:
            _row(M - 1 - r, fx, ox, vx, fy, oy, vy, ya, vya, symmetric, mean, per_step, shared, L, p, code, zx, zw,
                 nngp, ntk)
    if symmetric:
        for i in range(M):
            for j in range(i):
                nngp[i, j], ntk[i, j] = nngp[j, i], ntk[j, i]
    return nngp, ntk


def _end_aligned(flat, offsets, var, t_max):
    """Sequences and their own variances end-aligned on t_max steps, time-major: (t_max, P, m) and
    (L, t_max, P); before a sequence starts, its first step."""
    lengths = np.diff(offsets)
    step = np.arange(t_max)[:, None] - (t_max - lengths)[None, :]
    source = offsets[:-1][None, :] + np.maximum(step, 0)
    return np.ascontiguousarray(flat[source]), np.ascontiguousarray(var[:, source])


def rntk(X, Y=None, *, kind="ntk", settings: Elman | None = None, backend="numba", dtype="float64", block=None,
         **hyperparameters):
    """Gram matrix of the RNTK and/or NNGP between two lists of sequences.

    Parameters
    ----------
    X, Y : list of arrays (T_i, m), or arrays (M, T, m)
        Sequences, each with its own length, oldest step first; Y = None means Y = X (symmetric Gram,
        each pair computed once).
    kind : {"ntk", "nngp", "both"}
        What to return; "both" gives the pair (nngp, ntk). :meth:`Elman.kernel` returns both as an object.
    settings : Elman, or the keywords of :class:`Elman`
        (layers, activation, sigma_w, sigma_u, sigma_b, sigma_v, sigma_h, readout). Closed-form duals for
        linear, ReLU and erf; a 96 x 96 trapezoidal rule in the Gaussian for tanh (about 1e-12 accurate).
    backend : {"numba", "jax"}
        "jax" computes the Gram in blocks on JAX's default device (:mod:`meanfield.jax_backend.rntk`); it
        agrees with "numba" to about 1e-14 in float64.
    dtype : {"float64", "float32"}
        The precision of the computation and of the result; "float32" needs ``backend="jax"`` (errors in
        ``docs/performance.md``).
    block : int, optional
        JAX backend: rows and columns of a block of the Gram computed at once (default: a working set of a few
        hundred MB).
    """
    backend, dtype = backends.check_backend_and_dtype(backend, dtype)
    if block is not None:
        if backend == "numba":
            raise ValueError("block applies to backend='jax' only (the Numba kernel needs no blocks)")
        block = checks.integer(block, "block", 1)
    arch = resolve(Elman, settings, hyperparameters)
    checks.choice(kind, "kind", KINDS)
    layers, readout, code = arch.layers, arch.readout, arch.act.code
    with np.errstate(over="ignore"):  # an infinite square is refused with the variances below
        p = np.array([arch.sigma_w, arch.sigma_u, arch.sigma_b, arch.sigma_v, arch.sigma_h]) ** 2
    fx, ox = pack_sequences(X, "X")
    symmetric = Y is None
    fy, oy = (fx, ox) if symmetric else pack_sequences(Y, "Y", input_dim=fx.shape[1])
    zx, zw = normal_rule() if code not in (RELU, ERF, LINEAR) else (np.zeros(1), np.ones(1))
    vx, _ = _own_variances(fx, ox, layers, p, code, zx, zw)
    vy = vx if symmetric else _own_variances(fy, oy, layers, p, code, zx, zw)[0]
    check_variances(vx, ox, arch, "X")
    if not symmetric:
        check_variances(vy, oy, arch, "Y")
    kinds = ("nngp", "ntk") if kind == "both" else (kind,)
    lengths = (np.diff(ox), np.diff(oy))
    if backend == "jax":
        if readout == "per_step" or arch.initial_state != "shared":
            raise ValueError("readout='per_step' and initial_state='independent' are computed on backend 'numba' "
                             "only")
        from ...jax_backend.rntk import gram

        out = gram(fx, ox, None if symmetric else fy, oy, arch=arch, kinds=kinds, dtype=dtype, block=block,
                   nodes=(zx, zw))
        out = {k: check_gram(out[k], k.upper(), arch, *lengths) for k in kinds}
        return tuple(out[k] for k in kinds) if kind == "both" else out[kind]
    if readout == "mean":  # each thread holds six (T + 1) x (T' + 1) grids of one pair
        t_max = int(max(np.diff(ox).max(), np.diff(oy).max()))
        need = 6 * 8 * (t_max + 1) ** 2 * numba.get_num_threads()
        checks.fits_in_memory(need, "readout='mean'", f"on sequences of length {t_max} (six (T + 1)^2 grids per "
                              f"thread; readout='last' needs none)")
    if readout != "mean":
        ya, vya = _end_aligned(fy, oy, vy, int(max(np.diff(ox).max(), np.diff(oy).max())))
    else:  # the mean readout reads fy and vy
        ya, vya = np.empty((0, 0, fy.shape[1])), np.empty((layers, 0, 0))
    nngp, ntk = _gram(fx, ox, vx, fy, oy, vy, ya, vya, symmetric, readout == "mean", readout == "per_step",
                      arch.initial_state == "shared", layers, p, code, zx, zw)
    out = {"nngp": nngp, "ntk": ntk}
    for k in kinds:
        check_gram(out[k], k.upper(), arch, *lengths)
    return tuple(out[k] for k in kinds) if kind == "both" else out[kind]


def time_weights(x, y, *, settings: Elman | None = None, **hyperparameters):
    """How the last-readout NNGP of the pair (x, y) weights their time steps: w_s = dK/d(x_s . y_s / m).

    The derivative of sigma_v^2 K^L(T, T') with respect to the input product at each step of the end-aligned
    diagonal, the variances held fixed (they depend on x_s . x_s and y_s . y_s only). Forward mode along the
    recursion of ``theory_notes/rntk.md`` section 2: dK^l = Kd^l dSigma^l and dSigma^l(s) = sigma_w^2 dK^l(s - 1)
    + sigma_u^2 dK^{l-1}(s); for one layer, w_s = sigma_v^2 sigma_u^2 Kd(s) prod_{r > s} sigma_w^2 Kd(r), the
    analysis of [RNTK] section 4. Below ReLU's edge of chaos (sigma_w^2 Kd < 1) the weights decay geometrically
    into the past, and a long series washes out its early steps.

    Returns an array of min(T, T') weights, oldest step first (the last entry is the last step).
    """
    arch = resolve(Elman, settings, hyperparameters)
    if arch.readout != "last":
        raise ValueError(f"time_weights is the weighting of the last readout, got readout={arch.readout!r}")
    flat, offsets = pack_sequences([x, y], "x, y")
    L, code = arch.layers, arch.act.code
    p = np.array([arch.sigma_w, arch.sigma_u, arch.sigma_b, arch.sigma_v, arch.sigma_h]) ** 2
    zx, zw = normal_rule() if code not in (RELU, ERF, LINEAR) else (np.zeros(1), np.ones(1))
    var, _ = _own_variances(flat, offsets, L, p, code, zx, zw)
    Tx, Ty = int(offsets[1]), int(offsets[2] - offsets[1])
    n = min(Tx, Ty)
    xs, ys = flat[Tx - n:Tx], flat[Tx + Ty - n:]
    vx, vy = var[:, Tx - n:Tx], var[:, Tx + Ty - n:]
    k_prev = [p[4] if (Tx == Ty and arch.initial_state == "shared") else 0.0] * L
    d_prev = [np.zeros(n) for _ in range(L)]
    for s in range(n):
        below, d_below = float(xs[s] @ ys[s]) / xs.shape[1], np.zeros(n)
        d_below[s] = 1.0
        for ll in range(L):
            sig = p[0] * k_prev[ll] + p[1] * below + p[2]
            k, kd = gaussian_dual(vx[ll, s], sig, vy[ll, s], code, zx, zw)
            d_prev[ll] = kd * (p[0] * d_prev[ll] + p[1] * d_below)
            k_prev[ll], below, d_below = k, k, d_prev[ll]
    return p[3] * d_prev[L - 1]
