"""SymPy and numerical checks of theory_notes/rntk.md (run by the tests; exits non-zero on a failed check).

The numerical checks also hold the code of this checkout (its folder above this one comes first on the
path) to the note: the closed-form duals of meanfield.activations and the recursion of
meanfield.architectures.elman.kernel.rntk.
"""

import math
import sys
from pathlib import Path

import numpy as np
import sympy as sp
from scipy import integrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from meanfield.activations import ACTIVATIONS, gaussian_dual  # noqa: E402
from meanfield.architectures.elman import rntk  # noqa: E402


def gaussian_expectation(f, s11, s12, s22, positive_quadrant=False):
    """E[f(u, v)] for (u, v) ~ N(0, [[s11, s12], [s12, s22]]) by adaptive quadrature (u = a z1, v = c z1 + d z2).

    ``positive_quadrant`` integrates over {u > 0, v > 0} only, through the limits z1 > 0 and
    z2 > -c z1 / d, so that ReLU's kinks and indicators never sit inside the integration domain.
    """
    a = math.sqrt(s11)
    c = s12 / a
    d = math.sqrt(s22 - c * c)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    integrand = lambda z2, z1: f(a * z1, c * z1 + d * z2) * phi(z1) * phi(z2)  # noqa: E731
    if positive_quadrant:
        value, _ = integrate.dblquad(integrand, 0, 12, lambda z1: -c * z1 / d, 12, epsabs=1e-13, epsrel=1e-12)
    else:
        value, _ = integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-13, epsrel=1e-12)
    return value


def check_closed_forms():
    """The ReLU and erf dual activations of section 3 (SymPy expressions) against numerical integrals."""
    s11, s12, s22 = sp.symbols("S11 S12 S22", positive=True)
    lam = s12 / sp.sqrt(s11 * s22)
    relu_v = sp.sqrt(s11 * s22) / (2 * sp.pi) * (lam * (sp.pi - sp.acos(lam)) + sp.sqrt(1 - lam**2))
    relu_dv = (sp.pi - sp.acos(lam)) / (2 * sp.pi)
    erf_v = 2 / sp.pi * sp.asin(2 * s12 / sp.sqrt((1 + 2 * s11) * (1 + 2 * s22)))
    erf_dv = 4 / sp.pi / sp.sqrt((1 + 2 * s11) * (1 + 2 * s22) - 4 * s12**2)
    derf = lambda z: 2 / math.sqrt(math.pi) * math.exp(-z * z)  # noqa: E731
    for values in ({s11: 1.3, s12: 0.4, s22: 0.8}, {s11: 2.0, s12: -1.1, s22: 0.9}):
        args = (float(values[s11]), float(values[s12]), float(values[s22]))
        for expr, f, quadrant in ((relu_v, lambda u, v: u * v, True),  # ReLU: u v on the positive quadrant
                                  (relu_dv, lambda u, v: 1.0, True),
                                  (erf_v, lambda u, v: math.erf(u) * math.erf(v), False),
                                  (erf_dv, lambda u, v: derf(u) * derf(v), False)):
            exact = float(expr.subs(values))
            numeric = gaussian_expectation(f, *args, positive_quadrant=quadrant)
            assert abs(exact - numeric) < 1e-9, (expr, exact, numeric)
        # the code's closed forms (meanfield.activations.gaussian_dual) against the same integrals
        for name, f, df, quadrant in (("relu", lambda u, v: u * v, lambda u, v: 1.0, True),
                                      ("erf", lambda u, v: math.erf(u) * math.erf(v), lambda u, v: derf(u) * derf(v),
                                       False)):
            code = gaussian_dual(*args, ACTIVATIONS[name].code, np.zeros(1), np.ones(1))
            numeric = [gaussian_expectation(g, *args, positive_quadrant=quadrant) for g in (f, df)]
            assert np.allclose(code, numeric, rtol=0, atol=1e-9), (name, args, code, numeric)
    # on the diagonal (u = v): relu E[phi^2] = S/2, E[phi'^2] = 1/2
    assert sp.simplify(relu_v.subs({s12: s11, s22: s11}) - s11 / 2) == 0
    assert sp.simplify(relu_dv.subs({s12: s11, s22: s11}) - sp.Rational(1, 2)) == 0


def variance_expectation(f, s, positive=False):
    """E[f(u)] for u ~ N(0, s) by adaptive quadrature (over u > 0 only when ``positive``)."""
    root = math.sqrt(s)
    value, _ = integrate.quad(lambda z: f(root * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                              0 if positive else -12, 12, epsabs=1e-13, epsrel=1e-12)
    return value


def check_one_step_is_a_perceptron():
    """For T = 1 and sigma_h = 0 the recursion is the NTK of a depth-L perceptron (section 4):
    Sigma^1 = sigma_u^2 x.x'/m + sigma_b^2, Theta^1 = Sigma^1, Sigma^l = sigma_u^2 K^{l-1} + sigma_b^2,
    Theta^l = Sigma^l + sigma_u^2 Kd^{l-1} Theta^{l-1}, NTK = sigma_v^2 (K^L + Kd^L Theta^L), NNGP = sigma_v^2 K^L,
    whatever sigma_w (the previous state is 0). Built here from numerical Gaussian integrals of phi and phi'
    (no closed forms) and compared with meanfield.architectures.elman.kernel.rntk on two one-step sequences, depth 2."""
    derf = lambda z: 2 / math.sqrt(math.pi) * math.exp(-z * z)  # noqa: E731
    relu = lambda z: max(z, 0.0)  # noqa: E731
    cases = {"relu": (lambda u, v: u * v, lambda u, v: 1.0, lambda z: relu(z) ** 2, True),
             "erf": (lambda u, v: math.erf(u) * math.erf(v), lambda u, v: derf(u) * derf(v),
                     lambda z: math.erf(z) ** 2, False)}
    su2, sb2, sv2, layers = 1.1**2, 0.4**2, 1.3**2, 2
    x, y = np.array([0.8, -0.5]), np.array([0.3, 1.1])
    for name, (f, df, f_sq, quadrant) in cases.items():
        # Sigma as (s_xx, s_xy, s_yy) and Theta(x, y), layer 1
        sig = [su2 * a @ b / 2 + sb2 for a, b in ((x, x), (x, y), (y, y))]
        theta = sig[1]
        for l in range(1, layers + 1):
            k = gaussian_expectation(f, *sig, positive_quadrant=quadrant)
            kd = gaussian_expectation(df, *sig, positive_quadrant=quadrant)
            if l == layers:
                break
            k_xx, k_yy = (variance_expectation(f_sq, s, positive=quadrant) for s in (sig[0], sig[2]))
            sig = [su2 * kk + sb2 for kk in (k_xx, k, k_yy)]
            theta = sig[1] + su2 * kd * theta
        nngp, ntk = sv2 * k, sv2 * (k + kd * theta)
        code_nngp, code_ntk = rntk([x[None]], [y[None]], kind="both", layers=layers, activation=name, sigma_w=1.7,
                                   sigma_u=math.sqrt(su2), sigma_b=math.sqrt(sb2), sigma_v=math.sqrt(sv2))
        assert abs(code_nngp[0, 0] - nngp) < 1e-9 and abs(code_ntk[0, 0] - ntk) < 1e-9, (
            name, code_nngp[0, 0], nngp, code_ntk[0, 0], ntk)


def check_per_step_readout_keeps_equal_times():
    """Section 7: with independent readout vectors V_s the output covariance keeps only the equal-time terms
    s = s'; with one shared V (the "mean" readout) every pair (s, s') stays. Two steps, two units."""
    T = 2
    h = sp.Matrix(T, 2, sp.symbols("h0:4"))  # h[s, i]: unit i, s steps before the end, sequence x
    g = sp.Matrix(T, 2, sp.symbols("g0:4"))  # the same for sequence y
    V = sp.Matrix(T, 2, sp.symbols("v0:4"))  # V[s, i]
    f_x = sum(V[s, i] * h[s, i] for s in range(T) for i in range(2))
    f_y = sum(V[s, i] * g[s, i] for s in range(T) for i in range(2))
    # E over independent standard normal V entries: E[v v'] = 1 if the same entry, else 0
    second_moments = {a * b: (1 if a == b else 0) for a in V for b in V}
    covariance = sp.expand(f_x * f_y).subs({a**2: 1 for a in V}).subs(second_moments)
    assert sp.simplify(covariance - sum(h[s, i] * g[s, i] for s in range(T) for i in range(2))) == 0
    shared = sp.expand(sum(V[0, i] * h[s, i] for s in range(T) for i in range(2))
                       * sum(V[0, i] * g[s, i] for s in range(T) for i in range(2)))
    shared = shared.subs({V[0, i] ** 2: 1 for i in range(2)}).subs({V[0, 0] * V[0, 1]: 0})
    assert sp.simplify(shared - sum(h[s, i] * g[u, i] for s in range(T) for u in range(T) for i in range(2))) == 0


if __name__ == "__main__":
    check_closed_forms()
    check_one_step_is_a_perceptron()
    check_per_step_readout_keeps_equal_times()
    print("theory_notes/rntk.md: all checks passed")
