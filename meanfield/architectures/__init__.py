"""Architectures: each folder holds one model family, its finite network and its infinite-width theory.

- :mod:`meanfield.architectures.mup`: Bayesian RNNs and DNNs in muP (Langevin sampler and the
  saddle-point theory of their representational kernels).
"""
