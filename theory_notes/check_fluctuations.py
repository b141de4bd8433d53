"""SymPy checks of theory_notes/fluctuations.md (run by the tests; exits non-zero on a failed check)."""

import sympy as sp
from sympy.stats import E, Normal


def check_node_covariance():
    """For k = A + c^2 B with c ~ N(0, 1) independent of (A, B): Cov_c(k, k') = 2 B B', so by the law of total
    covariance Cov(k, k') = Cov_{w,b}(A + B, A' + B') + 2 E_{w,b}[B B'] (section 3)."""
    c = Normal("c", 0, 1)
    A, B, A2, B2 = sp.symbols("A B A2 B2", real=True)
    k, k2 = A + c**2 * B, A2 + c**2 * B2
    within = sp.expand(E(k * k2) - E(k) * E(k2))
    assert sp.simplify(within - 2 * B * B2) == 0
    assert sp.simplify(E(k) - (A + B)) == 0  # the mean over c is A + B
    assert E(c**4) == 3


def check_pair_cancellation():
    """The first-order change of k = S S' + c^2 S_w S_w' under one SGD step cancels between the units (c, w) and
    (-c, w) of a symmetric pair: every term is odd in c (section 2)."""
    c, w, eta, e = sp.symbols("c w eta e", real=True)
    x, y, X = sp.symbols("x y X", real=True)
    S = sp.Function("S")

    def k(cc, ww):
        return S(ww, x) * S(ww, y) + cc**2 * sp.diff(S(ww, x), ww) * sp.diff(S(ww, y), ww)

    def first_order_change(sign):
        dc = eta * e * S(w, X)  # the gradient of c S(w; X) in c, times the error
        dw = eta * e * c * sp.diff(S(w, X), w)  # and in w
        change = sp.diff(k(c, w), c) * dc + sp.diff(k(c, w), w) * dw
        return change.subs(c, sign * c)

    assert sp.simplify(first_order_change(1) + first_order_change(-1)) == 0
    assert sp.simplify(first_order_change(1)) != 0  # each unit alone does move


def check_response_formula():
    """delta f_t(x) = alpha int_0^t <a, r_s> [a(x) - lambda psi(x) phi_{t-s}(lambda) <psi, a>] ds solves the perturbed
    flow d/dt delta f(x) = -alpha K(x, g) delta f(g) + alpha a(x) <a, r_t>, on a one-window grid (pi = 1, K = k,
    psi(g) = 1, lambda psi(x) = K(x, g) = kx; section 3)."""
    t, s, alpha, k, y = sp.symbols("t s alpha k y", positive=True)
    ax, ag, kx = sp.symbols("a_x a_g k_x", real=True)
    r = y * sp.exp(-alpha * k * s)  # the residual of the unperturbed flow

    def phi(tau):
        return (1 - sp.exp(-alpha * k * tau)) / k

    def delta(a_point, k_point):
        return alpha * sp.integrate(ag * r * (a_point - k_point * phi(t - s) * ag), (s, 0, t))

    at_x, at_g = delta(ax, kx), delta(ag, k)
    rhs = -alpha * kx * at_g + alpha * ax * ag * r.subs(s, t)
    assert sp.simplify(sp.diff(at_x, t) - rhs) == 0
    assert sp.simplify(at_x.subs(t, 0)) == 0


def check_long_run_variance():
    """E_pi[f u] + E_pi[u f] - E_pi[f^2] with u = sum_j P^j f = Z f (Z the fundamental matrix) equals the sum of
    all autocovariances, Var f (1 + l) / (1 - l) with l = 1 - p - q, for a two-state chain (section 4)."""
    p, q = sp.symbols("p q", positive=True)
    P = sp.Matrix([[1 - p, p], [q, 1 - q]])
    pi = sp.Matrix([[q / (p + q), p / (p + q)]])
    assert sp.simplify(pi * P - pi) == sp.zeros(1, 2)
    f = sp.Matrix([1, 0]) - sp.ones(2, 1) * (pi * sp.Matrix([1, 0]))[0]  # centred indicator of state 0
    Z = (sp.eye(2) - P + sp.ones(2, 1) * pi).inv()
    u = Z * f
    Pi = sp.diag(*pi)
    poisson = 2 * (f.T * Pi * u)[0] - (f.T * Pi * f)[0]
    lam = 1 - p - q
    variance = (f.T * Pi * f)[0]
    assert sp.simplify(poisson - variance * (1 + lam) / (1 - lam)) == 0


def check_ornstein_uhlenbeck():
    """For d a = -alpha lambda a dt + alpha d xi (rate Q): P_t = alpha^2 Q int_0^t e^{-2 alpha lambda (t - s)} ds solves
    P' = -2 alpha lambda P + alpha^2 Q; Cov(a(t), a(t')) = e^{-alpha lambda (t - t')} P_{t'} for t >= t'; and the
    target-noise closed form alpha^2 sigma^2 t (1 - e^{-x}) / x, x = 2 alpha lambda t (section 5)."""
    t, t2, u, alpha, lam, Q, sigma = sp.symbols("t t2 u alpha lambda Q sigma", positive=True)
    Pt = alpha**2 * Q * sp.integrate(sp.exp(-2 * alpha * lam * (t - u)), (u, 0, t))
    assert sp.simplify(sp.diff(Pt, t) - (-2 * alpha * lam * Pt + alpha**2 * Q)) == 0
    cross = alpha**2 * Q * sp.integrate(sp.exp(-alpha * lam * (t - u)) * sp.exp(-alpha * lam * (t2 - u)), (u, 0, t2))
    assert sp.simplify(cross - sp.exp(-alpha * lam * (t - t2)) * Pt.subs(t, t2)) == 0
    x = 2 * alpha * lam * t
    closed = alpha**2 * sigma**2 * t * (1 - sp.exp(-x)) / x
    assert sp.simplify(closed - Pt.subs(Q, sigma**2)) == 0


def check_exponential_integrator():
    """Over a step h, int_0^h e^{-kappa u} (u/h) du and int_0^h e^{-kappa u} (1 - u/h) du (the weights of the values
    at the step's start and end of a linear Q) and their series at x = kappa h -> 0 (section 5)."""
    u, h, kappa = sp.symbols("u h kappa", positive=True)
    x = kappa * h
    left = sp.integrate(sp.exp(-kappa * u) * u / h, (u, 0, h))
    whole = sp.integrate(sp.exp(-kappa * u), (u, 0, h))
    assert sp.simplify(left - h * (1 - sp.exp(-x) * (1 + x)) / x**2) == 0
    assert sp.simplify(whole - h * (1 - sp.exp(-x)) / x) == 0
    xs = sp.Symbol("x", positive=True)
    assert sp.series((1 - sp.exp(-xs) * (1 + xs)) / xs**2, xs, 0, 3).removeO() == sp.Rational(1, 2) - xs / 3 + xs**2 / 8
    assert sp.series((1 - sp.exp(-xs)) / xs, xs, 0, 3).removeO() == 1 - xs / 2 + xs**2 / 6


if __name__ == "__main__":
    for name, check in list(globals().items()):
        if name.startswith("check_"):
            check()
    print("theory_notes/fluctuations.md: all checks passed")
