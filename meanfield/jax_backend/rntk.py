"""The RNTK/NNGP Gram on JAX: ``rntk(..., backend="jax")`` (:func:`meanfield.architectures.elman.kernel.rntk`).

The same recursion as the Numba kernel (``theory_notes/rntk.md``), laid out for a GPU: a block of pairs
(rows of X times columns of Y) is updated by one ``jax.lax.scan`` over time whose body is elementwise on the
whole block, with the closed-form duals (arc-cosine kernels for ReLU, arcsine for erf; the same 96 x 96
trapezoid rule as the Numba kernel for tanh).

- Last readout: the sequences are end-aligned on a common timeline of T_max steps; the pair (i, j) is on its
  end-aligned diagonal from step max(T_max - T_i, T_max - T_j) on and frozen (masked) before, with the
  initial K = sigma_h^2 when T_i = T_j and 0 otherwise, exactly as the Numba kernel.
- Mean readout: the scan runs over x's steps t, and the state holds K(t, u) for all of y's steps u
  (a (block, block, T_max) grid, shifted by one u per step); cells beyond either length are left out of the sums.

Exact duplicates. The Numba kernel gets lambda = 1 exactly for a sequence paired with itself (or with an
identical copy) because its own-variance pass and its pair pass share their arithmetic; ReLU's
(pi - arccos lambda) would turn an ulp of difference into 1e-8. Here the pairs of identical sequences are found
on the host (by content) and, at their equal-time steps, Sigma(t, t') is set to the (equal) own variance, which is
the exact value; so the result does not depend on XLA computing two expressions with the same rounding.

Blocking: the Gram is computed in blocks of ``block`` x ``block`` pairs (default: a working set of about
``BLOCK_BYTES``), the last block padded so that each block shape compiles once; at most ``IN_FLIGHT`` blocks are
queued on the device while finished ones are copied into the result, so n = 10^5 sequences need device memory
for the inputs and a few blocks only. The hyperparameters are arguments of the compiled functions, not
constants, so a grid search compiles once.
"""

from __future__ import annotations

import math
from collections import deque
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import checks
from ..activations import ERF, LINEAR, RELU, TANH
from ..backends import precision

BLOCK_BYTES = 384 * 2**20  # working set of one block (its state, temporaries and result)
IN_FLIGHT = 4  # blocks queued on the device (and copied to the host as they finish) while the host stores
# Time steps per iteration of the compiled loop over time: on an H100, 3 took a 1000 x 1000 block over 150 steps
# from 3.9 to 2.8 ms and a 2000 x 2000 block from 13.5 to 9.8 ms (10 was slower than 1); on a CPU it only
# lengthens the compilation.
SCAN_UNROLL = 3 if jax.default_backend() == "gpu" else 1
SMALL_INPUT_DIM = 32  # up to this input dimension the products x_t . y_t' are fused elementwise; above, a matmul


def default_block(readout, layers, code, t_max, itemsize, nodes) -> int:
    """Rows (and columns) of a block whose working set is about ``BLOCK_BYTES``."""
    per_pair = itemsize * (3 * layers + 10 + (4 * nodes if code == TANH else 0))
    if readout == "mean":
        per_pair *= t_max
    return max(1, math.isqrt(BLOCK_BYTES // per_pair))


# ------------------------------------------------------------------------------------------------------------
# Duals and the one-layer update (elementwise, broadcasting)
# ------------------------------------------------------------------------------------------------------------

def _arccos_and_sine(lam):
    """(arccos lam, sqrt(1 - lam^2)) for lam in [-1, 1], accurate near +-1 ((1 - lam)(1 + lam) has no
    cancellation, unlike 1 - lam^2, and atan2 has no branch at the ends)."""
    sine = jnp.sqrt((1 - lam) * (1 + lam))
    return jnp.arctan2(sine, lam), sine


def _dual(code, s11, s12, s22, zx, zw):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[s11, s12], [s12, s22]]), as
    :func:`meanfield.activations.gaussian_dual` (a zero variance means a variable identically 0)."""
    if code == RELU:
        ok = (s11 > 0) & (s22 > 0)
        root = jnp.sqrt(jnp.where(ok, s11 * s22, 1))
        lam = jnp.clip(jnp.where(ok, s12 / root, 0), -1, 1)
        theta, sine = _arccos_and_sine(lam)
        v = root * (lam * (math.pi - theta) + sine) / (2 * math.pi)
        dv = (math.pi - theta) / (2 * math.pi)
        return jnp.where(ok, v, 0), jnp.where(ok, dv, 0)
    if code == LINEAR:
        return s12 + jnp.zeros_like(s11 * s22), jnp.ones_like(s11 * s12 * s22)
    if code == ERF:
        a, c = 1 + 2 * s11, 1 + 2 * s22
        x = 2 * s12 / jnp.sqrt(a * c)
        arcsine = jnp.arctan2(x, jnp.sqrt((1 - x) * (1 + x)))
        return 2 / math.pi * arcsine, 4 / math.pi / jnp.sqrt(a * c - 4 * s12 * s12)
    # tanh: the tensor trapezoid rule on the Cholesky factor, one node of u per loop iteration
    shape = jnp.broadcast_shapes(jnp.shape(s11), jnp.shape(s12), jnp.shape(s22))
    a = jnp.broadcast_to(jnp.sqrt(jnp.maximum(s11, 0)), shape)
    c = jnp.where(a > 0, s12 / jnp.where(a > 0, a, 1), 0)
    d = jnp.sqrt(jnp.maximum(s22 - c * c, 0))

    def node(i, acc):
        su = jnp.tanh(a * zx[i])
        sv = jnp.tanh((c * zx[i])[..., None] + d[..., None] * zx)
        return (acc[0] + zw[i] * su * jnp.sum(sv * zw, axis=-1),
                acc[1] + zw[i] * (1 - su * su) * jnp.sum((1 - sv * sv) * zw, axis=-1))

    zero = jnp.zeros(shape, s12.dtype)
    return lax.fori_loop(0, zx.shape[0], node, (zero, zero))


def _products(x, y):
    """x_a . y_b / m for rows x (A, m) and y (B, ..., m): an array (A, B, ...)."""
    m = x.shape[-1]
    if m <= SMALL_INPUT_DIM:
        xb = x.reshape(x.shape[:1] + (1,) * (y.ndim - 1) + x.shape[1:])
        return jnp.sum(xb * y[None], axis=-1) / m
    return jnp.einsum("am,b...m->ab...", x, y, precision=lax.Precision.HIGHEST) / m


def _layers(p, code, zx, zw, below, prev, s11, s22, same):
    """One step of all layers on a block: (K, Kd, Theta) per layer, from the previous (K, Kd, Theta) per layer
    ``prev`` and the input products ``below``. ``same`` marks the equal-time steps of identical sequences,
    where Sigma(t, t') is the own variance exactly."""
    sw, su, sb = p[0], p[1], p[2]
    out = []
    kd_below = th_below = None
    for layer, (k, kd, th) in enumerate(prev):
        sig = sw * k + su * below + sb
        sig = jnp.where(same, s11[layer], sig)
        kk, dd = _dual(code, s11[layer], sig, s22[layer], zx, zw)
        tt = sig + sw * kd * th
        if layer > 0:
            tt = tt + su * kd_below * th_below
        out.append((kk, dd, tt))
        below, kd_below, th_below = kk, dd, tt
    return out


# ------------------------------------------------------------------------------------------------------------
# Compiled pieces
# ------------------------------------------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("layers", "code"))
def _own_variances(x, p, zx, zw, *, layers, code):
    """Sigma^l(t, t) of each sequence, (T_max, layers, n), from start-aligned inputs x (T_max, n, m)."""
    m = x.shape[-1]

    def step(k, x_t):
        below = jnp.sum(x_t * x_t, axis=-1) / m
        new_k, var = [], []
        for layer in range(layers):
            s = p[0] * k[layer] + p[1] * below + p[2]
            below = _dual(code, s, s, s, zx, zw)[0]
            var.append(s)
            new_k.append(below)
        return jnp.stack(new_k), jnp.stack(var)

    k0 = jnp.full((layers, x.shape[1]), p[4], x.dtype)
    return lax.scan(step, k0, x)[1]


@partial(jax.jit, static_argnames=("axis",))
def _end_aligned(a, start, *, axis):
    """a (T_max, ...) start-aligned, sequences along ``axis`` -> end-aligned: step tau of sequence i is its step
    tau - start_i (its first step before it starts, where the pairs are masked)."""
    shape = [1] * a.ndim
    shape[0], shape[axis] = a.shape[0], a.shape[axis]
    tau = jnp.arange(a.shape[0])[:, None] - start[None, :]
    return jnp.take_along_axis(a, jnp.maximum(tau, 0).reshape(shape), axis=0)


@jax.jit
def _upper_mirrored(a):
    """The upper triangle of a square block and its mirror image below the diagonal."""
    return jnp.triu(a) + jnp.triu(a, 1).T


def _readout(p, kinds, k, kd, th):
    parts = {"nngp": p[3] * k, "ntk": p[3] * (k + kd * th)}
    return tuple(parts[kind] for kind in kinds)


@partial(jax.jit, static_argnames=("layers", "code", "kinds", "unroll"))
def _block_last(x, vx, sx, idx, y, vy, sy, idy, p, zx, zw, *, layers, code, kinds, unroll=1):
    """Last readout of a block: x (T_max, bx, m) end-aligned, vx (T_max, layers, bx), sx (bx,) the first
    aligned step of each sequence, idx (bx,) content ids; the same for y. Returns the arrays of ``kinds``."""
    start = jnp.maximum(sx[:, None], sy[None, :])
    same = idx[:, None] == idy[None, :]
    shape = start.shape
    k0 = jnp.where(sx[:, None] == sy[None, :], p[4], 0).astype(x.dtype)
    zero = jnp.zeros(shape, x.dtype)
    init = tuple((k0, zero, zero) for _ in range(layers))

    def step(prev, inputs):
        x_t, y_t, vx_t, vy_t, tau = inputs
        new = _layers(p, code, zx, zw, _products(x_t, y_t), prev, vx_t[:, :, None], vy_t[:, None, :], same)
        active = tau >= start
        return tuple(tuple(jnp.where(active, n, o) for n, o in zip(lay, old)) for lay, old in zip(new, prev)), None

    final = lax.scan(step, init, (x, y, vx, vy, jnp.arange(x.shape[0])), unroll=unroll)[0]
    return _readout(p, kinds, *final[-1])


@partial(jax.jit, static_argnames=("layers", "code", "kinds", "unroll"))
def _block_mean(x, vx, tx, idx, y, vy, ty, idy, p, zx, zw, *, layers, code, kinds, unroll=1):
    """Mean readout of a block: inputs start-aligned, tx/ty the lengths. The state holds, per layer, K, Kd and
    Theta at (t, u) for all of y's steps u; a step moves t by one and reads (t - 1, u - 1) by a shift in u."""
    t_max = x.shape[0]
    y_rows = jnp.swapaxes(y, 0, 1)  # (by, T_max, m)
    vy_rows = jnp.transpose(vy, (1, 2, 0))[:, None]  # (layers, 1, by, T_max)
    u = jnp.arange(t_max)
    same = (idx[:, None] == idy[None, :])[:, :, None]
    in_y = (u[None, :] < ty[:, None])[None]  # (1, by, T_max)
    shape = (x.shape[1], y.shape[1], t_max)
    zero = jnp.zeros(shape, x.dtype)
    init = (tuple((zero, zero, zero) for _ in range(layers)), jnp.zeros(shape[:2], x.dtype),
            jnp.zeros(shape[:2], x.dtype))

    def shift(a, first):
        return jnp.concatenate([jnp.broadcast_to(first, a.shape[:2] + (1,)).astype(a.dtype), a[..., :-1]], axis=-1)

    def step(carry, inputs):
        grid, acc_k, acc_ntk = carry
        x_t, vx_t, t = inputs
        prev = tuple((shift(k, jnp.where(t == 0, p[4], 0)), shift(kd, 0), shift(th, 0)) for k, kd, th in grid)
        new = _layers(p, code, zx, zw, _products(x_t, y_rows), prev, vx_t[:, :, None, None], vy_rows,
                      same & (u == t))
        k, kd, th = new[-1]
        valid = (t < tx)[:, None, None] & in_y
        acc_k = acc_k + jnp.sum(jnp.where(valid, k, 0), axis=-1)
        acc_ntk = acc_ntk + jnp.sum(jnp.where(valid, k + kd * th, 0), axis=-1)
        return (tuple(new), acc_k, acc_ntk), None

    _, acc_k, acc_ntk = lax.scan(step, init, (x, vx, jnp.arange(t_max)), unroll=unroll)[0]
    scale = p[3] / (tx[:, None] * ty[None, :]).astype(x.dtype)
    parts = {"nngp": scale * acc_k, "ntk": scale * acc_ntk}
    return tuple(parts[kind] for kind in kinds)


# ------------------------------------------------------------------------------------------------------------
# Host side
# ------------------------------------------------------------------------------------------------------------

def _padded(flat, offsets, n_pad, t_max, dtype):
    """Start-aligned, zero-padded time-major inputs (t_max, n_pad, m) and the lengths (n_pad,) (padding rows:
    length t_max, all zeros)."""
    lengths = np.diff(offsets)
    n = lengths.size
    out = np.zeros((n_pad, t_max, flat.shape[1]), dtype=dtype)
    if np.all(lengths == t_max):
        out[:n] = flat.reshape(n, t_max, -1)
    else:
        sequence = np.repeat(np.arange(n), lengths)
        out[sequence, np.arange(flat.shape[0]) - np.repeat(offsets[:-1], lengths)] = flat
    return np.ascontiguousarray(out.transpose(1, 0, 2)), np.concatenate([lengths, np.full(n_pad - n, t_max)])


def _content_ids(sets):
    """One id per distinct sequence content over all (flat, offsets) in ``sets``."""
    seen = {}
    out = []
    for flat, offsets in sets:
        flat = flat + 0.0  # -0.0 and 0.0 are the same input
        out.append(np.array([seen.setdefault(flat[lo:hi].tobytes(), len(seen))
                             for lo, hi in zip(offsets[:-1].tolist(), offsets[1:].tolist())], dtype=np.int32))
    return out


def gram(fx, ox, fy, oy, *, arch, kinds, dtype="float64", block=None, nodes=None):
    """The Gram matrices ``kinds`` (a tuple of "nngp", "ntk") of X (flat ``fx``, offsets ``ox``, as
    :func:`meanfield.architectures.elman.kernel.pack_sequences` returns them) against Y (``fy is None``: Y = X,
    only the blocks on and above the diagonal, mirrored). ``nodes`` = (zx, zw), the normal rule for tanh.
    Returns NumPy arrays of ``dtype``."""
    np_dtype = np.dtype(dtype)
    symmetric = fy is None
    if symmetric:
        fy, oy = fx, ox
    nx, ny = ox.size - 1, oy.size - 1
    t_max = int(max(np.diff(ox).max(), np.diff(oy).max()))
    code, layers = arch.act.code, arch.layers
    zx, zw = nodes if nodes is not None else (np.zeros(1), np.ones(1))
    if block is None:
        block = default_block(arch.readout, layers, code, t_max, np_dtype.itemsize, zx.size)
    bx, by = min(block, nx), min(block, ny)
    if symmetric:
        bx = by = min(bx, by)
    n_bx, n_by = -(-nx // bx), -(-ny // by)
    ids = _content_ids([(fx, ox)] if symmetric else [(fx, ox), (fy, oy)])
    ids_x, ids_y = ids[0], ids[-1]
    p_host = np.array([arch.sigma_w, arch.sigma_u, arch.sigma_b, arch.sigma_v, arch.sigma_h]) ** 2
    checks.fits_in_memory(nx * ny * np_dtype.itemsize * len(kinds), "kind",
                          f"the {nx} x {ny} Gram{'s' if len(kinds) > 1 else ''} ({', '.join(kinds)}, {dtype})")
    out = {kind: np.empty((nx, ny), dtype=np_dtype) for kind in kinds}
    with precision(dtype):
        p, zx, zw = (jnp.asarray(a, dtype=np_dtype) for a in (p_host, zx, zw))
        def prepare(flat, offsets, ids, n_pad):
            x, lengths = _padded(flat, offsets, n_pad, t_max, np_dtype)
            x, lengths = jnp.asarray(x), jnp.asarray(lengths.astype(np.int32))
            ids = jnp.asarray(np.concatenate([ids, np.full(n_pad - ids.size, -1, np.int32)]))
            var = _own_variances(x, p, zx, zw, layers=layers, code=code)
            if arch.readout == "mean":
                return x, var, lengths, ids
            start = t_max - lengths
            return _end_aligned(x, start, axis=1), _end_aligned(var, start, axis=2), start, ids

        sides = [prepare(fx, ox, ids_x, n_bx * bx)]
        sides.append(sides[0] if symmetric else prepare(fy, oy, ids_y, n_by * by))
        fn = _block_last if arch.readout == "last" else _block_mean

        def piece(side, index, size):
            x, var, steps, ids = side
            lo = index * size
            return (lax.dynamic_slice_in_dim(x, lo, size, 1), lax.dynamic_slice_in_dim(var, lo, size, 2),
                    lax.dynamic_slice_in_dim(steps, lo, size, 0), lax.dynamic_slice_in_dim(ids, lo, size, 0))

        def store(i, j, results):
            r0, c0 = i * bx, j * by
            r1, c1 = min(r0 + bx, nx), min(c0 + by, ny)
            for kind, (blk, mirror) in zip(kinds, results):
                out[kind][r0:r1, c0:c1] = np.asarray(blk)[:r1 - r0, :c1 - c0]
                if mirror is not None:
                    out[kind][c0:c1, r0:r1] = np.asarray(mirror)[:c1 - c0, :r1 - r0]

        queue = deque()
        for i in range(n_bx):
            rows = piece(sides[0], i, bx)
            for j in range(i if symmetric else 0, n_by):
                results = fn(*rows, *piece(sides[1], j, by), p, zx, zw, layers=layers, code=code, kinds=kinds,
                             unroll=SCAN_UNROLL)
                # symmetric: the upper triangle of a diagonal block, as the Numba kernel computes it, mirrored;
                # an off-diagonal block also fills its transposed place. Both on the device, so that the host
                # only copies contiguous rows.
                pieces = [(_upper_mirrored(r), None) if symmetric and i == j else
                          (r, jnp.transpose(r) if symmetric else None) for r in results]
                for array in (a for pair in pieces for a in pair if a is not None):
                    array.copy_to_host_async()  # the copy overlaps the next blocks' computation
                queue.append((i, j, pieces))
                if len(queue) > IN_FLIGHT:
                    store(*queue.popleft())
        while queue:
            store(*queue.popleft())
    return out
