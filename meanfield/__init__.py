"""meanfield-rnn: wide recurrent neural networks and their infinite-width limits."""

from .data import GaussianAR1, MarkovChain, Task, WindowSet, make_task
from .rnn import DiagonalRNN, TrainResult, train_online

__all__ = ["DiagonalRNN", "GaussianAR1", "MarkovChain", "Task", "TrainResult", "WindowSet", "make_task",
           "train_online"]
__version__ = "0.1.0"
