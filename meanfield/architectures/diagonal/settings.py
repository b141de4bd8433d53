"""The diagonal RNN family ([LSS]'s simplified weight matrix; ``theory_notes/model.md`` sections 1-2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import checks
from ...activations import Activation, get_activation


@dataclass(frozen=True)
class Diagonal:
    """The one definition of a diagonal RNN's hyperparameters, checked once; it builds the finite
    network (:meth:`network`), its infinite-width limit (:meth:`limit`) and the limit kernel (:meth:`kernel`).

    activation : a bounded row of :data:`meanfield.activations.ACTIVATIONS` ("tanh", "erf")
    sigma_w : input weights w ~ N(0, sigma_w^2 I_d)
    beta : recurrent weights b ~ Uniform[-beta, beta], with beta sup|sigma'| < 1 (a contraction)
    symmetric : units in pairs (c, w, b), (-c, w, b), so that f^N_0 = 0 exactly

    Examples
    --------
    >>> from meanfield import Diagonal, make_task
    >>> arch = Diagonal(activation="tanh", sigma_w=1.0, beta=0.5)
    >>> net = arch.network(64, input_dim=1, seed=0)
    >>> round(arch.rho, 3), net.n_units
    (0.5, 64)
    """

    activation: str = "tanh"
    sigma_w: float = 1.0
    beta: float = 0.5
    symmetric: bool = True

    def __post_init__(self):
        act = get_activation(self.activation, bounded=True)
        object.__setattr__(self, "sigma_w", checks.real(self.sigma_w, "sigma_w", 0))
        object.__setattr__(self, "beta", checks.real(self.beta, "beta", 0))
        object.__setattr__(self, "symmetric", checks.boolean(self.symmetric, "symmetric"))
        if self.beta * act.sup_derivative >= 1:
            raise ValueError(f"beta * sup|sigma'| must be < 1 for a contraction; with {self.activation} beta must be "
                             f"< {1 / act.sup_derivative:.6g}, got {self.beta!r}")

    @property
    def act(self) -> Activation:
        return get_activation(self.activation)

    @property
    def rho(self) -> float:
        """beta sup|sigma'|: the contraction modulus of the memory map (``theory_notes/limit.md`` section 2)."""
        return self.beta * self.act.sup_derivative

    def truncation_bound(self, window: int) -> float:
        """rho^L sup|sigma|: bound on the state error from truncating histories to windows of length L."""
        return self.rho**window * self.act.sup_value

    def sample_hidden(self, rng: np.random.Generator, n: int, input_dim: int):
        """The law of (w, b): W (d, n) with N(0, sigma_w^2) entries, then b (n,) uniform on [-beta, beta]."""
        W = self.sigma_w * rng.standard_normal((input_dim, n))
        return W, rng.uniform(-self.beta, self.beta, n)

    def network(self, n_units, input_dim=1, seed=None):
        """A :class:`~meanfield.architectures.diagonal.network.DiagonalRNN` of width ``n_units``."""
        from .network import DiagonalRNN

        return DiagonalRNN(n_units, input_dim, seed=seed, settings=self)

    def limit(self, task, window=8, alpha=1.0, **options):
        """The :class:`~meanfield.architectures.diagonal.limit.LimitModel` of training on ``task``."""
        from .limit import LimitModel

        return LimitModel(task, window, alpha, settings=self, **options)

    def kernel(self, X, Y=None, **options):
        """The limit kernel and NNGP (:func:`~meanfield.architectures.diagonal.limit.limit_kernel`)."""
        from .limit import limit_kernel

        return limit_kernel(X, Y, settings=self, **options)
