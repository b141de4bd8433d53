"""Architectures: one folder per model family, each with its settings dataclass (the one definition of its
hyperparameters, checked once), its finite network and its infinite-width theory, built from the settings:

- :mod:`~meanfield.architectures.diagonal`: :class:`Diagonal` -> ``DiagonalRNN`` (online SGD) and
  ``LimitModel`` / ``limit_kernel`` (the memory-state limit and its kernel flow);
- :mod:`~meanfield.architectures.elman`: :class:`Elman` -> ``ElmanRNN`` (gradient descent) and the RNTK/NNGP;
- :mod:`~meanfield.architectures.mup`: :class:`MuP` -> ``MuPNetwork`` (Langevin) and ``KernelSaddle``.

A new architecture is a new folder here with the same three parts; nothing else needs to know of it.
"""

from .diagonal import Diagonal
from .elman import Elman
from .mup import MuP

__all__ = ["Diagonal", "Elman", "MuP"]
