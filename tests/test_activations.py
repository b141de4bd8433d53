import math

import numpy as np
import pytest
from numba import njit
from scipy import special

from meanfield.activations import (
    ERF,
    TANH,
    acos_scalar,
    activation_code,
    derivative_numpy,
    sigma_and_derivative,
)


@njit(cache=True)
def _apply(z, code):
    s, ds = np.empty_like(z), np.empty_like(z)
    for i in range(z.size):
        s[i], ds[i] = sigma_and_derivative(z[i], code)
    return s, ds


def test_tanh_matches_numpy_to_a_few_ulp():
    z = np.concatenate([np.linspace(-40, 40, 400001), np.geomspace(1e-300, 1e3, 5000),
                        -np.geomspace(1e-300, 1e3, 5000), [0.0, -0.0, 0.625, -0.625, 0.6249999999, 20.0]])
    s, ds = _apply(z, TANH)
    exact = np.tanh(z)
    rel = np.abs(s - exact) / np.maximum(np.abs(exact), np.finfo(float).tiny)
    assert rel.max() < 1e-15
    np.testing.assert_allclose(ds, 1 - exact**2, rtol=1e-14, atol=1e-15)


def test_tanh_special_values():
    s, _ = _apply(np.array([np.nan, np.inf, -np.inf]), TANH)
    assert math.isnan(s[0]) and s[1] == 1.0 and s[2] == -1.0


def test_erf_and_derivative():
    z = np.linspace(-6, 6, 10001)
    s, ds = _apply(z, ERF)
    np.testing.assert_allclose(s, special.erf(z), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(ds, derivative_numpy("erf", z), rtol=1e-14)
    # derivative against a central difference of erf
    h = 1e-6
    np.testing.assert_allclose(ds, (special.erf(z + h) - special.erf(z - h)) / (2 * h), atol=1e-8)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        activation_code("relu6")


@njit(cache=True)
def _acos(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = acos_scalar(x[i])
    return out


def test_vectorisable_arccos():
    near_one = np.geomspace(1e-16, 1, 2000)
    x = np.concatenate([np.linspace(-1, 1, 400001), 1 - near_one, -1 + near_one])
    np.testing.assert_allclose(_acos(x), np.arccos(x), rtol=0, atol=5e-14)
    assert _acos(np.array([1.0]))[0] == 0.0 and _acos(np.array([-1.0]))[0] == math.pi
    assert _acos(np.array([1.5]))[0] == 0.0  # clamped (lambda can exceed 1 by rounding)
