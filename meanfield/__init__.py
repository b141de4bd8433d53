"""meanfield-rnn: wide recurrent neural networks and their infinite-width limits."""

from .architectures import Diagonal, Elman, MuP
from .architectures.diagonal import DiagonalRNN, LimitModel, TrainResult, fluctuations, limit_kernel, train_online
from .architectures.elman import ElmanRNN, rntk
from .architectures.mup import KernelSaddle, MuPNetwork, langevin
from .data import GaussianAR1, MarkovChain, Task, WindowSet, make_task

__all__ = ["Diagonal", "DiagonalRNN", "Elman", "ElmanRNN", "GaussianAR1", "KernelSaddle", "LimitModel", "MarkovChain",
           "MuP", "MuPNetwork", "Task", "TrainResult", "WindowSet", "fluctuations", "langevin", "limit_kernel",
           "make_task", "rntk", "convergence_study", "train_online"]
__version__ = "0.1.0"


def __getattr__(name):
    """``meanfield.convergence_study``, imported on first use (it loads the study framework)."""
    if name == "convergence_study":
        from .studies.convergence import convergence_study

        return convergence_study
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
