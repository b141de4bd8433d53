"""The activations of :data:`meanfield.activations.ACTIVATIONS` in ``jax.numpy``, shared by the JAX modules.

``sigma_and_derivative`` gives (sigma(z), sigma'(z)) as the compiled kernels define them, for forward
derivatives; ``activation`` gives sigma alone, for code differentiated by JAX (ReLU through ``jax.nn.relu``,
whose derivative at 0 is 0, as in the NumPy and compiled kernels).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from ..activations import ERF, LINEAR, RELU, TANH, get_activation

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def sigma_and_derivative(z, code: int):
    """(sigma(z), sigma'(z)) elementwise for the activation with kernel code ``code`` (a Python int)."""
    if code == TANH:
        s = jnp.tanh(z)
        return s, 1.0 - s * s
    if code == RELU:
        positive = z > 0
        return jnp.where(positive, z, 0.0), positive.astype(z.dtype)
    if code == LINEAR:
        return z, jnp.ones_like(z)
    if code == ERF:
        return erf(z), TWO_OVER_SQRT_PI * jnp.exp(-z * z)
    raise ValueError(f"unknown activation code {code}")


def activation(name: str):
    """sigma as a function of a JAX array, for the activation called ``name``."""
    name = get_activation(name).name
    return {"linear": lambda z: z, "tanh": jnp.tanh, "erf": erf, "relu": jax.nn.relu}[name]
