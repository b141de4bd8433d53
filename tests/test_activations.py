import math

import numpy as np
import pytest
from numba import njit
from scipy import special

from meanfield.activations import (
    ACTIVATIONS,
    ERF,
    TANH,
    acos_scalar,
    activate_inplace,
    gaussian_dual,
    get_activation,
    normal_rule,
    sigma_and_derivative,
)
from meanfield.reference import gaussian_dual_reference


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
    np.testing.assert_allclose(ds, get_activation("erf").derivative(z), rtol=1e-14)
    # derivative against a central difference of erf
    h = 1e-6
    np.testing.assert_allclose(ds, (special.erf(z + h) - special.erf(z - h)) / (2 * h), atol=1e-8)


def test_unknown_activation_is_refused_with_one_message():
    with pytest.raises(ValueError, match=r"activation must be one of \['erf', 'linear', 'relu', 'tanh'\], got 'relu6'"):
        get_activation("relu6")
    with pytest.raises(ValueError, match=r"one of \['erf', 'tanh'\] \(bounded"):
        get_activation("relu", bounded=True)
    with pytest.raises(ValueError, match=r"one of \['erf', 'linear'\]"):
        get_activation("tanh", allowed=("linear", "erf"))


@njit(cache=True)
def _inplace(z, code):
    s, ds = z.copy(), np.empty_like(z)
    activate_inplace(s, ds, z.size, code)
    return s, ds


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_row_of_the_table_agrees_with_itself(name):
    """Compiled scalar, compiled vectorised loop and NumPy reference; the derivative against a central
    difference; sup|sigma| and sup|sigma'| against a fine grid (attained or approached)."""
    act = ACTIVATIONS[name]
    z = np.linspace(-7, 7, 20001)
    z = z[np.abs(z) > 1e-5]  # ReLU's kink
    s, ds = _apply(z, act.code)
    s2, ds2 = _inplace(z, act.code)
    np.testing.assert_allclose(s, act(z), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ds, act.derivative(z), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(s2, act(z), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ds2, act.derivative(z), rtol=1e-13, atol=1e-15)
    h = 1e-6
    np.testing.assert_allclose(act.derivative(z), (act(z + h) - act(z - h)) / (2 * h), atol=1e-7)
    assert np.max(np.abs(act.derivative(z))) == pytest.approx(act.sup_derivative, rel=1e-6)
    if act.bounded:
        assert np.max(np.abs(act(z))) <= act.sup_value and np.max(np.abs(act(10 * z))) > act.sup_value - 1e-12
    else:
        assert np.max(np.abs(act(z))) > 6


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("s11, s12, s22", [(1.0, 0.3, 2.0), (0.5, -0.4, 0.6), (2.0, 1.9, 2.0)])
def test_gaussian_dual_of_every_row_against_quadrature(name, s11, s12, s22):
    zx, zw = normal_rule()
    v, dv = gaussian_dual(s11, s12, s22, ACTIVATIONS[name].code, zx, zw)
    rv, rdv = gaussian_dual_reference(s11, s12, s22, name, order=2000 if name == "relu" else 400)
    kink = name == "relu"  # the trapezoid rule converges only like h^2 across ReLU's kink (and h across its step)
    assert v == pytest.approx(rv, rel=1e-4 if kink else 1e-9, abs=1e-12)
    assert dv == pytest.approx(rdv, rel=2e-3 if kink else 1e-9)


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
