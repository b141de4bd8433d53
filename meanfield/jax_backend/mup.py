"""The muP Langevin sampler of :func:`meanfield.architectures.mup.network.langevin` on JAX.

Same model, prior, data term Phi = (N beta)/2 sum_R (y - f)^2 and update rule as the NumPy reference
(:func:`~meanfield.architectures.mup.network.langevin_update`: prior drift, preconditioned gradient,
Leimkuhler-Matthews noise averaging two consecutive draws), with grad Phi by ``jax.grad`` through the
unrolled recursion (backpropagation through time). The steps between two records run in one compiled
``lax.scan``/``fori_loop``, so there is no Python loop per step; the records of a chunk of intervals come back
to the host, so memory stays that of the network plus the records. The noise is ``jax.random``'s, keyed from
``seed``; the initial parameters and the data are the caller's NumPy arrays, and ``net.params`` receives the
final state in place.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from tqdm.auto import tqdm

from ..backends import jax_module, precision
from .activations import activation

jax = jax_module()
jnp = jax.numpy
lax = jax.lax

KEYS = ("U", "W", "v")
RECORDS_PER_CHUNK = 256  # recording intervals per compiled call (and per host transfer)


def forward(params, X, *, activation_name, shared):
    """Pre-activations h (T + 1, P, N) and outputs f (T + 1, P), as ``MuPNetwork.forward``."""
    act = activation(activation_name)
    T = X.shape[1] - 1
    N = params["v"].shape[0]
    inputs = jnp.einsum("ptd,nd->tpn", X, params["U"])
    h = [inputs[0]]
    for t in range(1, T + 1):
        h.append(act(h[-1]) @ params["W"][0 if shared else t - 1].T + inputs[t])
    h = jnp.stack(h)
    return h, act(h) @ params["v"] / N


def _data_term(params, X, y, readout, beta, *, activation_name, shared):
    h, f = forward(params, X, activation_name=activation_name, shared=shared)
    N = params["v"].shape[0]
    return 0.5 * N * beta * jnp.sum(jnp.where(readout, (y - f) ** 2, 0.0)), (h, f)


@partial(jax.jit, static_argnames=("activation_name", "shared"))
def data_gradient(params, X, y, readout, beta, *, activation_name, shared):
    """(gradients, Phi, h, f) as ``MuPNetwork.data_gradient``, the gradients by ``jax.grad``."""
    (phi, (h, f)), grads = jax.value_and_grad(_data_term, has_aux=True)(
        params, X, y, readout, beta, activation_name=activation_name, shared=shared)
    return grads, phi, h, f


def update(params, grads, xi, new, step_size, prior_var):
    """The reference's step theta <- (1 - eta) theta - eta M grad Phi + sqrt(eta M / 2) (xi + new), out of place."""
    return {k: params[k] * (1.0 - step_size) - step_size * prior_var[k] * grads[k]
            + jnp.sqrt(step_size * prior_var[k] / 2) * (xi[k] + new[k]) for k in params}


def _normals(key, params):
    """Standard normal arrays shaped like ``params``, from one draw (one generator in the compiled program)."""
    sizes = [params[k].size for k in KEYS]
    z = jax.random.normal(key, (sum(sizes),), params["v"].dtype)
    parts = jnp.split(z, np.cumsum(sizes)[:-1])
    return {k: part.reshape(params[k].shape) for k, part in zip(KEYS, parts)}


def _step(state, problem, static):
    """One sampler step; returns the new state and (Phi, h, f) before the update."""
    params, xi, key, step, first_bad = state
    grads, phi, h, f = data_gradient(params, problem["X"], problem["y"], problem["readout"], problem["beta"], **static)
    key, sub = jax.random.split(key)
    new = _normals(sub, params)
    first_bad = jnp.where((first_bad < 0) & ~jnp.isfinite(phi), step, first_bad)
    params = update(params, grads, xi, new, problem["step_size"], problem["prior_var"])
    return (params, new, key, step + 1, first_bad), (phi, h, f)


@partial(jax.jit, static_argnames=("activation_name", "shared"))
def _intervals(state, problem, gaps, *, activation_name, shared):
    """For each entry of ``gaps``: one recorded step, then that many steps without records; an entry -1 is
    padding (no step, a zero record), so that chunks of any length run one compiled program. The step is
    traced once: every step of an interval computes the (cheap) record, and the first one keeps it."""
    static = dict(activation_name=activation_name, shared=shared)
    act = activation(activation_name)
    T1, P = problem["y"].shape
    real = problem["y"].dtype
    empty = (jnp.zeros((T1, P), real), jnp.zeros((T1, P, T1, P), real), jnp.zeros((), real))

    def step(i, carry):
        s, record = carry
        s, (phi, h, f) = _step(s, problem, static)
        a = act(h)
        new = (f, jnp.einsum("apn,bqn->apbq", a, a) / a.shape[-1], phi)
        return s, tuple(jnp.where(i == 0, n, r) for n, r in zip(new, record))

    return lax.scan(lambda s, gap: lax.fori_loop(0, gap + 1, step, (s, empty)), state, gaps)


def langevin(net, X, y, readout, *, beta, step_size, n_steps, burn_in, thin, seed, progress, dtype):
    """The sampler on validated inputs (see the reference); returns (outputs, kernels, energies) as NumPy
    float64 arrays and writes the final parameters into ``net.params``."""
    n_records = len(range(burn_in, n_steps, thin))
    # each record is followed by thin - 1 unrecorded steps, the last by what is left of n_steps; the burn-in
    # runs as an interval whose record is dropped
    gaps = np.full(n_records, thin - 1, dtype=np.int32)
    gaps[-1] = n_steps - burn_in - (n_records - 1) * thin - 1
    if burn_in:
        gaps = np.concatenate([[burn_in - 1], gaps]).astype(np.int32)
    chunk = min(RECORDS_PER_CHUNK, gaps.size)
    gaps = np.concatenate([gaps, np.full(-gaps.size % chunk, -1, dtype=np.int32)])
    static = dict(activation_name=net.activation, shared=net.shared)
    with precision(dtype), jax.default_matmul_precision("highest"):
        real = jnp.dtype(dtype)
        problem = dict(X=jnp.asarray(X, real), y=jnp.asarray(y, real), readout=jnp.asarray(readout),
                       beta=jnp.asarray(beta, real), step_size=jnp.asarray(step_size, real),
                       prior_var={k: jnp.asarray(v, real) for k, v in net.prior_var.items()})
        params = {k: jnp.asarray(net.params[k], real) for k in KEYS}
        key, first = jax.random.split(seed_key(seed))
        state = (params, _normals(first, params), key, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32))
        records = []
        with tqdm(total=n_steps, desc="Langevin (jax)", disable=not progress, leave=False) as bar:
            for start in range(0, gaps.size, chunk):
                part = gaps[start:start + chunk]
                state, record = _intervals(state, problem, jnp.asarray(part), **static)
                _check(state)
                records.append([np.asarray(r, dtype=float) for r in record])
                bar.update(int(np.sum(part + 1)))
        for k in KEYS:
            net.params[k][...] = np.asarray(state[0][k], dtype=float)
    outs, kers, energies = (np.concatenate(r)[1 if burn_in else 0:][:n_records] for r in zip(*records))
    return outs, kers, energies


def seed_key(seed):
    """A ``jax.random`` key drawn from NumPy's generator of ``seed`` (int, SeedSequence, Generator or None)."""
    return jax.random.key(int(np.random.default_rng(seed).integers(0, 2**31 - 1)))


def _check(state):
    first_bad = int(state[4])
    if first_bad >= 0:
        raise FloatingPointError(f"Langevin diverged at step {first_bad}; use a smaller step_size")

