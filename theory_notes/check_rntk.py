"""SymPy checks of theory_notes/rntk.md (run by the tests; exits non-zero on a failed check)."""

import math

import sympy as sp
from scipy import integrate


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
    # on the diagonal (u = v): relu E[phi^2] = S/2, E[phi'^2] = 1/2
    assert sp.simplify(relu_v.subs({s12: s11, s22: s11}) - s11 / 2) == 0
    assert sp.simplify(relu_dv.subs({s12: s11, s22: s11}) - sp.Rational(1, 2)) == 0


def check_one_step_is_a_perceptron():
    """For T = 1 and sigma_h = 0 the recursion is the NTK of a depth-L perceptron (section 4)."""
    sw, su, sb = sp.symbols("sigma_w2 sigma_u2 sigma_b2", positive=True)
    x = sp.Symbol("x")  # K^0(1,1') = x . x' / m
    V = sp.Function("V")  # dual activation (of Sigma), generic
    Vd = sp.Function("Vd")
    # RNN recursion at t = t' = 1, layers 1 and 2, with K(0,0) = sigma_h^2 = 0 and Theta(0,0) = 0
    sigma1 = sw * 0 + su * x + sb
    theta1 = sigma1 + sw * Vd(0) * 0
    sigma2 = sw * 0 + su * V(sigma1) + sb
    theta2 = sigma2 + sw * Vd(0) * 0 + su * Vd(sigma1) * theta1
    # perceptron NTK: Theta^1 = Sigma^1, Theta^2 = Sigma^2 + sigma_u^2 Kd^1 Theta^1
    assert sp.simplify(theta2 - ((su * V(su * x + sb) + sb) + su * Vd(su * x + sb) * (su * x + sb))) == 0


if __name__ == "__main__":
    check_closed_forms()
    check_one_step_is_a_perceptron()
    print("theory_notes/rntk.md: all checks passed")
