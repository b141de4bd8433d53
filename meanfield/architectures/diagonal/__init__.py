"""The diagonal RNN ([LSS]): settings (:class:`Diagonal`), the finite network trained by online SGD
(``network``) and its infinite-width limit (``limit``); equations in ``theory_notes/model.md`` and
``theory_notes/limit.md``."""

from .limit import KernelResult, LimitModel, limit_kernel, periodic_memory, quadrature_nodes
from .network import DiagonalRNN, TrainResult, train_online, train_seeds
from .settings import Diagonal

__all__ = ["Diagonal", "DiagonalRNN", "KernelResult", "LimitModel", "TrainResult", "limit_kernel", "periodic_memory",
           "quadrature_nodes", "train_online", "train_seeds"]
