"""Bayesian muP RNNs and DNNs ([BFHP]): settings (:class:`MuP`), the network and Langevin sampler
(``network``) and the N = infinity saddle-point theory of their representational kernels (``theory``);
derivation in ``theory_notes/feature_learning.md``."""

from .network import LangevinSamples, MuPNetwork, endpoint_readout, langevin
from .settings import MuP
from .theory import (
    KernelSaddle,
    SaddlePointError,
    SaddleSolution,
    critical_signal,
    critical_signal_t2,
    cross_time_correlation,
    posterior_solution,
    solve_path,
)

__all__ = ["KernelSaddle", "LangevinSamples", "MuP", "MuPNetwork", "SaddlePointError", "SaddleSolution",
           "critical_signal", "critical_signal_t2", "cross_time_correlation", "endpoint_readout", "langevin",
           "posterior_solution", "solve_path"]
