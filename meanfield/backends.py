"""Compute backends: Numba (the default and the reference) and the optional JAX backend.

``backend="jax"`` in Python and ``--backend jax`` on the study CLIs run the hot paths through
:mod:`meanfield.jax_backend`: the diagonal-RNN simulator (all seeds of a width in one compiled program),
the RNTK/NNGP Gram, the muP Langevin sampler and Elman gradient descent with its empirical NTK. Inputs,
initial parameters and probe windows come from the same NumPy streams on both backends, so that they see
identical data.

JAX is installed with ``pip install -e '.[jax]'`` (a CPU build); for a GPU, add the CUDA plugin that
matches your driver, e.g. ``pip install -U "jax[cuda13]"`` (see the README). The JAX backend computes in
float64 by default, inside ``jax.enable_x64`` (the user's global JAX setting is left as it is);
``dtype="float32"`` trades accuracy for speed, with the errors documented in ``docs/performance.md``.
"""

from __future__ import annotations

import contextlib

from . import checks

BACKENDS = ("numba", "jax")
DTYPES = ("float64", "float32")
JAX_MINIMUM = (0, 8)  # jax.enable_x64 as a context manager
INSTALL_HINT = ("the JAX backend needs jax >= 0.8: pip install -e '.[jax]' (CPU), and for a GPU the CUDA plugin "
                "as in the README")


def check_backend(backend, name="backend") -> str:
    """'numba' or 'jax'; for 'jax', JAX must be importable (ImportError with the install line otherwise)."""
    backend = checks.choice(backend, name, BACKENDS)
    if backend == "jax":
        jax_module()
    return backend


def check_dtype(dtype, name="dtype") -> str:
    """'float64' (default of every backend) or 'float32' (JAX backend only)."""
    if not isinstance(dtype, str):
        dtype = getattr(dtype, "__name__", None) or str(dtype)
    return checks.choice(dtype, name, DTYPES)


def check_backend_and_dtype(backend, dtype) -> tuple[str, str]:
    """Checked (backend, dtype): float32 only on the JAX backend (the Numba/NumPy paths compute in float64)."""
    backend, dtype = check_backend(backend), check_dtype(dtype)
    if backend == "numba" and dtype != "float64":
        raise ValueError(f"dtype {dtype!r} needs backend='jax' (the Numba/NumPy path computes in float64)")
    return backend, dtype


def jax_module():
    """The ``jax`` module, or ImportError saying how to install it."""
    try:
        import jax
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    version = tuple(int(part) for part in jax.__version__.split(".")[:2] if part.isdigit())
    if version < JAX_MINIMUM:
        raise ImportError(f"{INSTALL_HINT} (found jax {jax.__version__})")
    return jax


def precision(dtype):
    """Context for JAX work in ``dtype``: float64 runs inside ``jax.enable_x64(True)``."""
    dtype = check_dtype(dtype)
    if dtype == "float32":
        return contextlib.nullcontext()
    return jax_module().enable_x64(True)

