"""The diagonal RNN ([LSS]): settings (:class:`Diagonal`), the finite network trained by online SGD
(``network``), its infinite-width limit (``limit``) and the N^-1/2 fluctuations around it (``fluctuations``);
equations in ``theory_notes/model.md``, ``theory_notes/limit.md`` and ``theory_notes/fluctuations.md``."""

from .fluctuations import Fluctuations, fluctuations
from .limit import KernelResult, LimitModel, limit_kernel, periodic_memory, quadrature_nodes
from .network import DiagonalRNN, TrainResult, train_online, train_seeds
from .settings import Diagonal

__all__ = ["Diagonal", "DiagonalRNN", "Fluctuations", "KernelResult", "LimitModel", "TrainResult", "fluctuations",
           "limit_kernel", "periodic_memory", "quadrature_nodes", "train_online", "train_seeds"]
