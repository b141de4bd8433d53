"""Elman RNN gradient descent and empirical NTK on JAX against the NumPy reference (float64 on the CPU)."""

import numpy as np
import pytest

pytest.importorskip("jax")

from meanfield.architectures.elman.network import ElmanRNN  # noqa: E402

CASES = [dict(layers=1, activation="erf", readout="last", parameterisation="ntk", lr=0.05, lengths=(5, 5, 7, 3, 7)),
         dict(layers=2, activation="tanh", readout="mean", parameterisation="mup", lr=0.002, lengths=(6,) * 5)]


def _data(lengths=CASES[0]["lengths"]):
    rng = np.random.default_rng(0)
    return [rng.normal(size=(T, 2)) for T in lengths], rng.normal(size=len(lengths))  # ragged: grouped by length


def _net(case):
    return ElmanRNN(24, 2, parameterisation=case["parameterisation"], seed=1, layers=case["layers"],
                    activation=case["activation"], readout=case["readout"], sigma_b=0.3, sigma_h=0.5)


def _relative(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["activation"])
def test_gradient_descent_trajectory_equals_the_reference(case):
    X, y = _data(case["lengths"])
    ref, fast = _net(case), _net(case)
    steps_ref, f_ref = ref.train(X, y, case["lr"], 30, record_every=7, X_eval=X[1:])
    steps_jax, f_jax = fast.train(X, y, case["lr"], 30, record_every=7, X_eval=X[1:], backend="jax")
    assert np.array_equal(steps_jax, steps_ref) and f_jax.shape == f_ref.shape
    assert _relative(f_jax[-1] - f_jax[0], f_ref[-1] - f_ref[0]) < 1e-10  # the movement, not only f_0
    assert _relative(f_jax, f_ref) < 1e-10
    for p_jax, p_ref in zip(fast.parameters(), ref.parameters()):  # net updated in place, as the reference
        assert _relative(p_jax, p_ref) < 1e-10
    # the kernels of the trained network, also against the network at initialisation (J(theta) J(theta_0)^T)
    start = _net(case)
    for method, kwargs in (("ntk", {}), ("ntk", dict(other=start)), ("nngp", {}), ("__call__", {})):
        expected = getattr(ref, method)(X, **kwargs)
        assert _relative(getattr(fast, method)(X, **kwargs, backend="jax"), expected) < 1e-10, (method, kwargs)


def test_refusals_and_divergence():
    X, y = _data()
    net = _net(CASES[0])
    with pytest.raises(ValueError, match="mode"):
        net.train(X, y, 0.1, 2, mode="online", backend="jax")
    for options, name in ((dict(backend="pytorch"), "backend"), (dict(backend="jax", dtype="half"), "dtype"),
                          (dict(dtype="float32"), "dtype")):
        with pytest.raises(ValueError, match=name):
            net.train(X, y, 0.1, 2, **options)
        with pytest.raises(ValueError, match=name):
            net.ntk(X, **options)
    with pytest.raises(FloatingPointError, match="diverged at step"):
        net.train(X, y, 1e12, 100, record_every=7, X_eval=X[1:], backend="jax")


def test_float32_error_of_a_trajectory():
    X, y = _data()
    case = CASES[0]
    f64 = _net(case).train(X, y, case["lr"], 30, record_every=7, X_eval=X[1:], backend="jax")[1]
    f32 = _net(case).train(X, y, case["lr"], 30, record_every=7, X_eval=X[1:], backend="jax", dtype="float32")[1]
    assert 1e-10 < _relative(f32, f64) < 1e-4
