"""The JAX backend's hot paths (imported only when ``backend="jax"`` is chosen; see :mod:`meanfield.backends`).

Each module mirrors one Numba/NumPy path and is tested against it in float64 on the CPU:
``diagonal`` (the online-SGD simulator, all seeds of a width at once), ``rntk`` (the RNTK/NNGP Gram),
``mup`` (the muP Langevin sampler) and ``elman`` (Elman gradient descent and its empirical NTK).
"""
