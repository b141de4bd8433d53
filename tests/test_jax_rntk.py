"""The JAX RNTK/NNGP Gram (meanfield.jax_backend.rntk) against the Numba kernel, on the CPU."""

import math

import numpy as np
import pytest

from meanfield import Elman
from meanfield.architectures.elman import rntk

pytest.importorskip("jax")

HYPER = dict(sigma_w=1.1, sigma_u=0.9, sigma_b=0.3, sigma_v=1.2, sigma_h=0.5)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def sequences():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(T, 2)) for T in (3, 5, 4, 1, 5)]
    # Y as many and as long as X, so that both Grams share their compiled shapes; with an exact copy of X[1]
    # (lambda = 1 at its steps, where ReLU's derivative kernel would turn an ulp into 1e-8)
    Y = [rng.normal(size=(T, 2)) for T in (2, 5, 4, 3)] + [X[1].copy()]
    return X, Y


# A covering design (each compiled configuration costs seconds): every activation, both depths and readouts.
CASES = [("relu", 1, "last"), ("relu", 2, "mean"), ("erf", 2, "last"), ("erf", 1, "mean"), ("tanh", 1, "last"),
         ("linear", 2, "mean")]


@pytest.mark.parametrize("activation, layers, readout", CASES)
def test_jax_equals_numba_in_float64(sequences, activation, layers, readout):
    """Different lengths, X vs X (symmetric) and X vs Y, and a block of 2 (several blocks, the last padded)."""
    X, Y = sequences
    arch = Elman(layers=layers, activation=activation, readout=readout, **HYPER)
    for B in (None, Y):
        want = arch.kernel(X, B)
        for block in (None, 2):
            got = arch.kernel(X, B, backend="jax", block=block)
            for name in ("nngp", "ntk"):
                assert getattr(got, name).dtype == np.float64
                assert relative(getattr(got, name), getattr(want, name)) < 1e-12, (name, B is None, block)
            if B is None:
                np.testing.assert_array_equal(got.ntk, got.ntk.T)


def test_equal_lengths_array_input_and_kinds():
    X = np.random.default_rng(1).normal(size=(6, 7, 3))
    kw = dict(activation="relu", layers=1, **HYPER)
    for kind in ("ntk", "nngp"):
        assert relative(rntk(X, X[:4], kind=kind, backend="jax", **kw), rntk(X, X[:4], kind=kind, **kw)) < 1e-12
    nngp, ntk = rntk(X, kind="both", backend="jax", **kw)
    assert relative(ntk, rntk(X, **kw)) < 1e-12 and relative(nngp, rntk(X, kind="nngp", **kw)) < 1e-12


def test_wide_inputs_take_the_matmul_path():
    """Above SMALL_INPUT_DIM channels the input products are a matmul (at full precision)."""
    from meanfield.jax_backend.rntk import SMALL_INPUT_DIM

    rng = np.random.default_rng(3)
    X = [rng.normal(size=(T, SMALL_INPUT_DIM + 8)) for T in (2, 4, 3)]
    for readout in ("last", "mean"):
        kw = dict(activation="relu", readout=readout, **HYPER)
        assert relative(rntk(X, X[::-1], backend="jax", **kw), rntk(X, X[::-1], **kw)) < 1e-12


def test_a_result_that_cannot_fit_is_refused(monkeypatch):
    from meanfield import checks

    monkeypatch.setattr(checks, "available_memory", lambda: 100)
    with pytest.raises(ValueError, match="kind: the 3 x 3 Grams"):
        rntk([np.ones((2, 1))] * 3, kind="both", backend="jax")


def test_float32_error_is_within_its_rounding_bound():
    """A step rounds about ten times (products, Sigma, the dual, Theta) and the recursion carries errors on with
    gain about 1 (sigma_w near sqrt 2): at most about 10 T float32 ulps, relative to the largest entry. Measured
    (docs/performance.md): 2 ulps at T = 10, 4 at T = 40, 17 at T = 150 (ReLU)."""
    rng = np.random.default_rng(2)
    eps = np.finfo(np.float32).eps
    for T in (10, 40):
        X = [rng.normal(size=(int(t), 1)) for t in rng.integers(T // 2, T + 1, size=12)]
        kw = dict(activation="relu", sigma_w=1.41, sigma_b=0.1)
        got = rntk(X, backend="jax", dtype="float32", **kw)
        assert got.dtype == np.float32
        error = relative(got.astype(float), rntk(X, **kw))
        assert error < 10 * T * eps, (T, error / eps)


def test_bad_backend_dtype_and_block_are_refused():
    X = [np.zeros((3, 1))]
    for kwargs, name in ((dict(backend="torch"), "backend"), (dict(dtype="float16"), "dtype"),
                         (dict(dtype="float32"), "dtype"), (dict(backend="jax", block=0), "block"),
                         (dict(block=4), "block"), (dict(backend="jax", block=2.5), "block")):
        with pytest.raises(ValueError, match=name):
            rntk(X, **kwargs)
    assert math.isfinite(rntk(X, backend="jax", dtype="float32")[0, 0])
