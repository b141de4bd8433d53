"""Kernels of sequences: the recurrent NTK and NNGP (rntk) of the Elman RNN."""

from .rntk import rntk

__all__ = ["rntk"]
