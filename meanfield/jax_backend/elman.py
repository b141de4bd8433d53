"""Elman RNN gradient descent and its empirical NTK (:class:`~meanfield.architectures.elman.network.ElmanRNN`) on JAX.

The forward pass is one ``lax.scan`` over time per group of equal-length sequences (ragged inputs are grouped by
length, as on the NumPy path). Full-batch gradient descent takes ``jax.grad`` of (1/2M) sum_i (f(x_i) - y_i)^2
and runs the steps between two records in one compiled ``fori_loop``, the parameters staying on the device. The
empirical NTK follows the NumPy contraction and never forms the Jacobian: delta^{l,t} = df/dg^{l,t} comes from
one ``jax.vjp`` of f with respect to a zero shift of the pre-activations, and each parameter group contributes
sum_{t,t'} (delta^{l,t} . delta'^{l,t'}) (z^{t} . z'^{t'}) with z its input (h^{l,t-1}, h^{l-1,t} or 1).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..architectures.elman.kernel import pack_sequences
from ..backends import jax_module, precision
from .activations import activation

jax = jax_module()
jnp = jax.numpy
lax = jax.lax


def _static(net):
    """What the compiled programs depend on besides the shapes: the activation and the readout."""
    return net.activation, net.readout


def _fixed(net, real):
    """The untrained part of ``net`` as arrays: initial states h0 and the multipliers of W, U, b and V (traced,
    so that the NTK and muP parameterisations and any sigma share one compiled program per shape)."""
    n = net.width
    return dict(h0=[jnp.asarray(h, real) for h in net.h0], aw=jnp.asarray(net.sigma_w / math.sqrt(n), real),
                au=[jnp.asarray(net.sigma_u / math.sqrt(net.input_dim if l == 0 else n), real)
                    for l in range(net.layers)],
                sb=jnp.asarray(net.sigma_b, real), av=jnp.asarray(net.readout_scale, real))


def _params(net, real):
    return dict(W=[jnp.asarray(w, real) for w in net.W], U=[jnp.asarray(u, real) for u in net.U],
                b=[jnp.asarray(c, real) for c in net.b], V=jnp.asarray(net.V, real))


def _forward(params, fixed, x, shift, static):
    """f (B,) of x (B, T, m), with ``shift`` (per layer (T, B, n)) added to the pre-activations; also returns
    per layer h^{l,t-1} and h^{l-1,t} (time-major) and the readout r (B, n)."""
    name, readout = static
    act = activation(name)
    aw, au, sb = fixed["aw"], fixed["au"], fixed["sb"]
    B = x.shape[0]

    def cell(h, inputs):
        x_t, shift_t = inputs
        below, new, ins = x_t, [], []
        for l in range(len(h)):
            ins.append(below)
            below = act(aw * h[l] @ params["W"][l].T + au[l] * below @ params["U"][l].T + sb * params["b"][l]
                        + shift_t[l])
            new.append(below)
        return new, (h, ins, below)

    start = [jnp.broadcast_to(h, (B, h.shape[0])) for h in fixed["h0"]]
    last, (prev, ins, top) = lax.scan(cell, start, (jnp.swapaxes(x, 0, 1), shift))
    r = last[-1] if readout == "last" else top.mean(axis=0)
    return fixed["av"] * r @ params["V"], (prev, ins, r)


def _zero_shift(params, x):
    n = params["V"].shape[0]
    return [jnp.zeros((x.shape[1], x.shape[0], n), x.dtype) for _ in params["W"]]


def _outputs(params, fixed, x, static):
    return _forward(params, fixed, x, _zero_shift(params, x), static)[0]


def _loss(params, fixed, batches, targets, static):
    M = sum(y.shape[0] for y in targets)
    return sum(0.5 / M * jnp.sum((_outputs(params, fixed, x, static) - y) ** 2) for x, y in zip(batches, targets))


@partial(jax.jit, static_argnames="static")
def _descend(params, first_bad, step, count, fixed, batches, targets, lr, static):
    """``count`` full-batch steps theta -= lr grad L; ``first_bad``: the first step whose V is not finite."""
    gradient = jax.grad(_loss)

    def body(_, carry):
        params, first_bad, step = carry
        grads = gradient(params, fixed, batches, targets, static)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        first_bad = jnp.where((first_bad < 0) & ~jnp.all(jnp.isfinite(params["V"])), step, first_bad)
        return params, first_bad, step + 1

    return lax.fori_loop(0, count, body, (params, first_bad, step))


@partial(jax.jit, static_argnames="static")
def _batch_outputs(params, fixed, batches, static):
    return [_outputs(params, fixed, x, static) for x in batches]


@partial(jax.jit, static_argnames="static")
def _features(params, fixed, x, static):
    """(deltas, h^{l,t-1}, h^{l-1,t}) per layer, batch-major (B, T, .), and the readout r (B, n)."""
    f, pullback, (prev, ins, r) = jax.vjp(lambda s: _forward(params, fixed, x, s, static), _zero_shift(params, x),
                                          has_aux=True)
    deltas = pullback(jnp.ones_like(f))[0]
    batch_major = [[jnp.swapaxes(a, 0, 1) for a in arrays] for arrays in (deltas, prev, ins)]
    return (*batch_major, r)


def _pair_products(A, B):
    """(a, t, b, s) -> A[a, t] . B[b, s]."""
    return jnp.einsum("atk,bsk->atbs", A, B)


@jax.jit
def _ntk(fx, fy, fixed):
    aw, au, sb = fixed["aw"], fixed["au"], fixed["sb"]
    block = fixed["av"] ** 2 * fx[3] @ fy[3].T
    for l in range(len(au)):
        inner = aw**2 * _pair_products(fx[1][l], fy[1][l]) + au[l] ** 2 * _pair_products(fx[2][l], fy[2][l]) + sb**2
        block = block + jnp.einsum("atbs,atbs->ab", _pair_products(fx[0][l], fy[0][l]), inner)
    return block


def _padded(groups):
    """The features of all groups as one batch (the sequences in the order of the returned indices), time
    padded with zeros to the longest: a padded step has delta = 0, so it adds nothing to the Gram."""
    T = max(feats[0][0].shape[1] for _, feats in groups)

    def pad(a):
        return jnp.pad(a, ((0, 0), (0, T - a.shape[1]), (0, 0)))

    stacked = [[jnp.concatenate([pad(feats[part][l]) for _, feats in groups]) for l in range(len(groups[0][1][0]))]
               for part in range(3)]
    readout = jnp.concatenate([feats[3] for _, feats in groups])
    return np.concatenate([idx for idx, _ in groups]), (*stacked, readout)


def _groups(X, input_dim, real):
    """[(indices, batch (B, T, m))] of the sequences of X grouped by length, and their number."""
    flat, offsets = pack_sequences(X, "X", input_dim=input_dim)
    lengths = np.diff(offsets)
    groups = []
    for T in np.unique(lengths):
        idx = np.flatnonzero(lengths == T)
        groups.append((idx, jnp.asarray(np.stack([flat[offsets[i]:offsets[i + 1]] for i in idx]), real)))
    return groups, len(lengths)


def outputs(net, X, dtype):
    """f on each sequence of X, as ``ElmanRNN.__call__``."""
    with precision(dtype), jax.default_matmul_precision("highest"):
        real = jnp.dtype(dtype)
        groups, M = _groups(X, net.input_dim, real)
        values = _batch_outputs(_params(net, real), _fixed(net, real), [x for _, x in groups], _static(net))
        out = np.empty(M)
        for (idx, _), f in zip(groups, values):
            out[idx] = np.asarray(f, dtype=float)
        return out


def gram(net, X, Y, other, dtype, kind):
    """The empirical NTK (``kind="ntk"``) or NNGP Gram of ``net`` at X against ``other`` at Y, as
    ``ElmanRNN.ntk``/``nngp`` (Y None: X; other None: net)."""
    other = net if other is None else other
    with precision(dtype), jax.default_matmul_precision("highest"):
        real = jnp.dtype(dtype)

        def features(model, Z):
            groups, count = _groups(Z, model.input_dim, real)
            params, fixed = _params(model, real), _fixed(model, real)
            return [(idx, _features(params, fixed, z, _static(model))) for idx, z in groups], count

        gx, M = features(net, X)
        gy, P = (gx, M) if (Y is None and other is net) else features(other, X if Y is None else Y)
        (ix, fx), (iy, fy) = _padded(gx), _padded(gy)
        fixed = _fixed(net, real)
        block = _ntk(fx, fy, fixed) if kind == "ntk" else fixed["av"] ** 2 * fx[3] @ fy[3].T
        G = np.zeros((M, P))
        G[np.ix_(ix, iy)] = np.asarray(block, dtype=float)
        return G


def train(net, X, y, lr, steps, X_eval, record_every, dtype):
    """Full-batch gradient descent on validated inputs (``lr`` already scaled for muP); updates ``net`` in place
    and returns (record steps, f on X_eval) as ``ElmanRNN.train``."""
    static = _static(net)
    with precision(dtype), jax.default_matmul_precision("highest"):
        real = jnp.dtype(dtype)
        groups, _ = _groups(X, net.input_dim, real)
        batches = [x for _, x in groups]
        targets = [jnp.asarray(y[idx], real) for idx, _ in groups]
        evals = _groups(X_eval, net.input_dim, real)
        fixed = _fixed(net, real)
        state = (_params(net, real), jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))
        recorded, values = [], []
        for k in range(0, steps + 1, record_every):
            if k:
                state = _descend(*state, record_every, fixed, batches, targets, lr, static)
            _check(state)
            out = np.empty(evals[1])
            for (idx, _), f in zip(evals[0], _batch_outputs(state[0], fixed, [x for _, x in evals[0]], static)):
                out[idx] = np.asarray(f, dtype=float)
            recorded.append(k)
            values.append(out)
        if steps % record_every:
            state = _descend(*state, steps % record_every, fixed, batches, targets, lr, static)
            _check(state)
        params = state[0]
        for name in ("W", "U", "b"):
            for target, value in zip(getattr(net, name), params[name]):
                target[...] = np.asarray(value, dtype=float)
        net.V[...] = np.asarray(params["V"], dtype=float)
    return np.array(recorded), np.array(values)


def _check(state):
    first_bad = int(state[1])
    if first_bad >= 0:
        raise FloatingPointError(f"training diverged at step {first_bad}; try a smaller lr")
