"""meanfield-rnn: wide recurrent neural networks and their infinite-width limits."""

from .architectures import Diagonal, Elman, MuP
from .architectures.diagonal import DiagonalRNN, LimitModel, TrainResult, limit_kernel, train_online
from .architectures.elman import ElmanRNN, rntk
from .architectures.mup import KernelSaddle, MuPNetwork, langevin
from .data import GaussianAR1, MarkovChain, Task, WindowSet, make_task

__all__ = ["Diagonal", "DiagonalRNN", "Elman", "ElmanRNN", "GaussianAR1", "KernelSaddle", "LimitModel", "MarkovChain",
           "MuP", "MuPNetwork", "Task", "TrainResult", "WindowSet", "langevin", "limit_kernel", "make_task", "rntk",
           "train_online"]
__version__ = "0.1.0"
