"""The diagonal-RNN simulator on JAX: online SGD with exact RTRL for all seeds of one width at once.

Same arithmetic as the Numba kernel of :mod:`meanfield.architectures.diagonal.network` (see its docstring
and ``theory_notes/model.md`` sections 1-4): at step k the update of step k-1 (with e_{k-1}) is applied,
then the forward and RTRL step k; the pending update is applied at the end of each compiled segment, so
that the parameters are up to date at every record. One ``lax.scan`` over the steps of a segment carries
the state of every seed (``vmap``), units as arrays; the readout sums the two halves of the units
separately, so the symmetric initialisation gives f^N_0 = A + (-A) = 0 exactly, as on the Numba path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..backends import precision
from .activations import sigma_and_derivative

SEGMENT_UNIT_STEPS = 2**27  # seeds x units x steps per compiled call (progress and data-block granularity)


def _readout(c, S, half, inv_sqrt_n):
    """N^{-1/2} (sum over the first ``half`` units of c S + sum over the rest), over the last axis."""
    return (jnp.sum(c[..., :half] * S[..., :half], axis=-1) + jnp.sum(c[..., half:] * S[..., half:], axis=-1)) \
        * inv_sqrt_n


def _update(state, lr_e):
    """theta += lr e grad at the current state (the gradient uses c before its update)."""
    c, W, b, S, JW, Jb = state
    g = lr_e * c
    return c + lr_e * S, W + g * JW, b + g * Jb, S, JW, Jb


@functools.partial(jax.jit, static_argnames=("code", "half"), donate_argnums=(0,))
def _segment(state, X, Y, lr, inv_sqrt_n, *, code, half):
    """len(Y) steps for every seed. state: (c, W, b, S, JW, Jb) with leading seed axis; X (seeds, n, d), Y (seeds, n).

    Returns (state with the pending update applied, sum of (1/2) e_k^2 per seed, first non-finite step or -1).
    """

    def one_seed(state, X, Y):
        def step(carry, xy):
            state, e_prev, loss, bad, k = carry
            x, y = xy
            c, W, b, S, JW, Jb = _update(state, lr * e_prev)
            z = b * S + x @ W
            s, ds = sigma_and_derivative(z, code)
            Jb = ds * (S + b * Jb)
            JW = ds * (x[:, None] + b * JW)
            e = y - _readout(c, s, half, inv_sqrt_n)
            bad = jnp.where((bad < 0) & ~jnp.isfinite(e), k, bad)
            return ((c, W, b, s, JW, Jb), e, loss + 0.5 * e * e, bad, k + 1), None

        zero = jnp.zeros((), Y.dtype)
        init = (state, zero, zero, jnp.array(-1, jnp.int32), jnp.array(0, jnp.int32))
        (state, e_last, loss, bad, _), _ = jax.lax.scan(step, init, (X, Y))
        return _update(state, lr * e_last), loss, bad

    return jax.vmap(one_seed)(state, X, Y)


@functools.partial(jax.jit, static_argnames=("code", "half"))
def _probe_outputs(c, W, b, windows, inv_sqrt_n, *, code, half):
    """f^N on each probe window from S = 0 for every seed: c, b (seeds, N), W (seeds, d, N) -> (seeds, P)."""

    def one_seed(c, W, b):
        def step(S, x):
            return sigma_and_derivative(b * S + x @ W, code)[0], None

        S0 = jnp.zeros((windows.shape[0], c.shape[0]), c.dtype)
        S, _ = jax.lax.scan(step, S0, jnp.swapaxes(windows, 0, 1))
        return _readout(c, S, half, inv_sqrt_n)

    return jax.vmap(one_seed)(c, W, b)


def _segments(record_steps, max_steps):
    """(record index, steps) of each compiled call: every recording interval split into at most max_steps."""
    for r in range(len(record_steps) - 1):
        todo = int(record_steps[r + 1] - record_steps[r])
        while todo > 0:
            n = min(todo, max_steps)
            yield r, n
            todo -= n


def train_seeds(c, W, b, *, code, half, streams, record_steps, probes, alpha, dtype="float64", progress=True,
                desc="train"):
    """Online SGD of ``len(streams)`` networks of one width in one compiled program per segment shape.

    c, b (seeds, N) and W (seeds, d, N): initial parameters (NumPy, from the same streams as the Numba path);
    streams: one :class:`meanfield.data.TaskStream` per seed; record_steps: step counts of the records (first
    0); probes (P, L, d). Returns dict(outputs (seeds, R + 1, P), losses (seeds, R), c, W, b) as NumPy arrays.
    Raises FloatingPointError naming the seed index and step of the first non-finite output.
    """
    n_seeds, N = c.shape
    lr, inv_sqrt_n = alpha * N**-1.5, 1.0 / np.sqrt(N)
    n_records = len(record_steps) - 1
    max_steps = max(1, SEGMENT_UNIT_STEPS // (N * n_seeds))
    with precision(dtype):
        dt = jnp.dtype(dtype)
        put = functools.partial(jnp.asarray, dtype=dt)
        state = (put(c), put(W), put(b), jnp.zeros((n_seeds, N), dt), jnp.zeros(W.shape, dt),
                 jnp.zeros((n_seeds, N), dt))
        windows, scalars = put(probes), (put(lr), put(inv_sqrt_n))
        outputs = [_probe_outputs(*state[:3], windows, scalars[1], code=code, half=half)]
        losses = [jnp.zeros(n_seeds, dt) for _ in range(n_records)]
        pending, done = None, 0

        def check(previous):
            start, n, bad = previous
            bad = np.asarray(bad)
            if np.any(bad >= 0):
                seed = int(np.argmax(bad >= 0))
                step = start + int(bad[seed])
                raise FloatingPointError(
                    f"the network output became non-finite at step {step} (t = {step / N:.4g}) for seed index "
                    f"{seed} with alpha = {alpha:g}; try a smaller alpha")

        with tqdm(total=int(record_steps[-1]), disable=not progress, unit="step", desc=desc) as bar:
            for r, n in _segments(record_steps, max_steps):
                blocks = [stream.next(n) for stream in streams]
                X = put(np.stack([x for x, _ in blocks]))
                Y = put(np.stack([y for _, y in blocks]))
                state, loss, bad = _segment(state, X, Y, *scalars, code=code, half=half)
                losses[r] = losses[r] + loss
                if pending is not None:  # check the previous segment while this one runs
                    check(pending)
                    bar.update(pending[1])
                pending = (done, n, bad)
                done += n
                if done == record_steps[r + 1]:
                    outputs.append(_probe_outputs(*state[:3], windows, scalars[1], code=code, half=half))
            check(pending)
            bar.update(pending[1])
        lengths = np.diff(np.asarray(record_steps, dtype=float))
        return dict(outputs=np.stack([np.asarray(o, dtype=float) for o in outputs], axis=1),
                    losses=np.stack([np.asarray(v, dtype=float) for v in losses], axis=1) / lengths,
                    c=np.asarray(state[0], dtype=float), W=np.asarray(state[1], dtype=float),
                    b=np.asarray(state[2], dtype=float))
