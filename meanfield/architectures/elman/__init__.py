"""The Elman RNN: settings (:class:`Elman`), the finite network trained by gradient descent (``network``)
and its infinite-width kernels, the RNTK and NNGP (``kernel``); derivation in ``theory_notes/rntk.md``."""

from .kernel import KernelOverflowError, pack_sequences, rntk
from .network import ElmanRNN
from .settings import Elman, KernelPair

__all__ = ["Elman", "ElmanRNN", "KernelOverflowError", "KernelPair", "pack_sequences", "rntk"]
