"""The activations of :data:`meanfield.activations.ACTIVATIONS` in ``jax.numpy`` (shared by the JAX modules).

Derivatives come from JAX's differentiation rules; ReLU uses ``jax.nn.relu``, whose derivative at 0 is 0, as
in the NumPy and compiled kernels.
"""

from __future__ import annotations

from ..activations import get_activation


def activation(name):
    """sigma as a function of a JAX array, for the activation called ``name``."""
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erf

    name = get_activation(name).name
    return {"linear": lambda z: z, "tanh": jnp.tanh, "erf": erf, "relu": jax.nn.relu}[name]


def seed_key(seed):
    """A ``jax.random`` key drawn from NumPy's generator of ``seed`` (int, SeedSequence, Generator or None)."""
    import jax
    import numpy as np

    return jax.random.key(int(np.random.default_rng(seed).integers(0, 2**31 - 1)))
