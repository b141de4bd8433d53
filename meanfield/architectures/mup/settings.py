"""The Bayesian muP RNN and DNN family ([BFHP]; ``theory_notes/feature_learning.md``)."""

from __future__ import annotations

from dataclasses import dataclass

from ... import checks
from ...activations import Activation, get_activation

SUPPORTED = ("linear", "tanh", "erf")  # the rows of meanfield.activations that the muP theory supports


@dataclass(frozen=True)
class MuP:
    """The one definition of a muP network's hyperparameters, checked once; it builds the finite network
    (:meth:`network`, sampled by :func:`~meanfield.architectures.mup.network.langevin`) and its N = infinity
    saddle-point theory (:meth:`theory`).

    shared : True for the RNN (one W over the steps), False for the DNN (a W per step)
    activation : "linear", "tanh" or "erf"
    g, g_u, g_v : prior scales: W ~ N(0, g^2/N), U ~ N(0, g_u^2/d), v ~ N(0, g_v^2) (readout 1/N)

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MuP
    >>> arch = MuP(shared=True, activation="linear")
    >>> X = np.zeros((1, 3, 1)); X[0, 0, 0] = 1.0
    >>> y = np.zeros((3, 1)); y[-1] = 4.0
    >>> readout = y != 0
    >>> C = arch.theory(X, y, readout, beta=0.1).solve()[0].C  # below beta_c = 0.30: no cross-time term
    >>> abs(float(C[2, 0, 0, 0])) < 1e-8
    True
    """

    shared: bool = True
    activation: str = "linear"
    g: float = 1.0
    g_u: float = 1.0
    g_v: float = 1.0

    def __post_init__(self):
        get_activation(self.activation, allowed=SUPPORTED)
        object.__setattr__(self, "shared", checks.boolean(self.shared, "shared"))
        for name in ("g", "g_u", "g_v"):
            object.__setattr__(self, name, checks.positive(getattr(self, name), name))

    @property
    def act(self) -> Activation:
        return get_activation(self.activation)

    def network(self, width, input_dim, depth, seed=None):
        """A :class:`~meanfield.architectures.mup.network.MuPNetwork` of width ``width`` and depth T = ``depth``."""
        from .network import MuPNetwork

        return MuPNetwork(width, input_dim, depth, seed=seed, settings=self)

    def theory(self, X, y, readout, beta, **options):
        """The :class:`~meanfield.architectures.mup.theory.KernelSaddle` of the posterior at signal strength beta."""
        from .theory import KernelSaddle

        return KernelSaddle(X, y, readout, beta=beta, settings=self, **options)
