"""The Elman RNN family (``theory_notes/rntk.md``; [RNTK])."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import checks
from ...activations import ACTIVATIONS, Activation, get_activation

READOUTS = ("last", "mean", "per_step")
INITIAL_STATES = ("shared", "independent")


@dataclass(frozen=True)
class KernelPair:
    """The infinite-width kernels of one pair of sequence sets: the RNTK ``ntk`` and its NNGP twin ``nngp``."""

    ntk: np.ndarray
    nngp: np.ndarray


@dataclass(frozen=True)
class Elman:
    """The one definition of an Elman RNN's hyperparameters, checked once; it builds the finite network
    (:meth:`network`) and its infinite-width kernels (:meth:`kernel`, the RNTK and NNGP).

    layers : depth L
    activation : a row of :data:`meanfield.activations.ACTIVATIONS`
    sigma_w, sigma_u, sigma_b, sigma_v, sigma_h : scales of the recurrent, input, bias and readout weights
        and of the (fixed) initial state
    readout : "last" (f from h^{L,T}), "mean" (from the mean over time of h^{L,t}) or "per_step" (a readout
        vector of its own for each step, counted from the end, the outputs averaged: the equal-time
        "average" readout of the RNTK_UCI code, ``theory_notes/rntk.md`` section 7)
    initial_state : "shared" (one fixed h^{l,0} for every sequence) or "independent" (a fresh one per
        sequence, as in the RNTK_UCI code: covariance sigma_h^2 with itself and 0 across sequences)

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Elman
    >>> arch = Elman(activation="relu", sigma_w=1.41)
    >>> X = [np.ones((5, 1)), np.linspace(-1, 1, 8)[:, None]]
    >>> K = arch.kernel(X)
    >>> K.ntk.shape, bool(np.all(np.linalg.eigvalsh(K.ntk) > 0))
    ((2, 2), True)
    """

    layers: int = 1
    activation: str = "relu"
    sigma_w: float = 1.0
    sigma_u: float = 1.0
    sigma_b: float = 0.0
    sigma_v: float = 1.0
    sigma_h: float = 0.0
    readout: str = "last"
    initial_state: str = "shared"

    def __post_init__(self):
        get_activation(self.activation)
        checks.choice(self.readout, "readout", READOUTS)
        checks.choice(self.initial_state, "initial_state", INITIAL_STATES)
        object.__setattr__(self, "layers", checks.integer(self.layers, "layers", 1))
        for name in ("sigma_w", "sigma_u", "sigma_b", "sigma_v", "sigma_h"):
            object.__setattr__(self, name, checks.real(getattr(self, name), name, 0))

    @property
    def act(self) -> Activation:
        return ACTIVATIONS[self.activation]

    def network(self, width, input_dim, parameterisation="ntk", seed=None):
        """An :class:`~meanfield.architectures.elman.network.ElmanRNN` of width ``width``."""
        from .network import ElmanRNN

        return ElmanRNN(width, input_dim, parameterisation=parameterisation, seed=seed, settings=self)

    def kernel(self, X, Y=None, *, backend="numba", dtype="float64", block=None) -> KernelPair:
        """The RNTK and NNGP Gram matrices between the sequences X and Y (default Y = X); ``backend``, ``dtype``
        and ``block`` as in :func:`~meanfield.architectures.elman.kernel.rntk`."""
        from .kernel import rntk

        nngp, ntk = rntk(X, Y, kind="both", settings=self, backend=backend, dtype=dtype, block=block)
        return KernelPair(ntk=ntk, nngp=nngp)
