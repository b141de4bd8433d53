"""Activations on JAX: (sigma(z), sigma'(z)) as the compiled kernels of :mod:`meanfield.activations` define them
(ReLU: derivative 0 at 0)."""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erf

from ..activations import ERF, LINEAR, RELU, TANH

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
