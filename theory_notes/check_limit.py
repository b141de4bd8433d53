"""SymPy checks of theory_notes/limit.md (run by the tests; exits non-zero on a failed check)."""

import sympy as sp


def check_sup_derivatives():
    """sup|tanh'| = 1 and sup|erf'| = 2/sqrt(pi), both attained at 0 (section 1)."""
    x = sp.Symbol("x", real=True)
    for f, sup in ((sp.tanh(x), 1), (sp.erf(x), 2 / sp.sqrt(sp.pi))):
        d1 = sp.diff(f, x)
        assert sp.simplify(d1.subs(x, 0) - sup) == 0
        assert sp.solve(sp.Eq(sp.diff(d1, x), 0), x) == [0]  # the only critical point of sigma'
        assert sp.limit(d1, x, sp.oo) == 0  # and sigma' decays, so 0 is the maximum


def check_constant_input_jacobian():
    """J^w* = s' x / (1 - b s') and J^b* = s' S* / (1 - b s') solve the fixed-point equations."""
    ds, x, b, S, J = sp.symbols("ds x b S J")
    assert sp.simplify(sp.solve(sp.Eq(J, ds * (x + b * J)), J)[0] - ds * x / (1 - b * ds)) == 0
    assert sp.simplify(sp.solve(sp.Eq(J, ds * (S + b * J)), J)[0] - ds * S / (1 - b * ds)) == 0


def check_a_posteriori_bounds():
    """From e <= r + rho e (e = |x - x*|, r = |Tx - x|): e <= r/(1 - rho); |Tx - x*| <= rho r/(1 - rho)."""
    e, r, rho = sp.symbols("e r rho", positive=True)
    boundary = sp.solve(sp.Eq(e, r + rho * e), e)[0]
    assert sp.simplify(boundary - r / (1 - rho)) == 0
    assert sp.simplify(rho * boundary - rho * r / (1 - rho)) == 0


def check_exact_flow():
    """f_t = f_0 + K B V phi_t(Lambda) V^T B r_0 solves f' = alpha K Pi (ybar - f) (section 5)."""
    t, alpha, th = sp.symbols("t alpha theta", positive=True)
    l1, l2, b1, b2 = sp.symbols("lambda1 lambda2 b1 b2", positive=True)
    V = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])
    B = sp.diag(b1, b2)
    K = B.inv() * V * sp.diag(l1, l2) * V.T * B.inv()  # any K with B K B = V Lambda V^T
    ybar = sp.Matrix(sp.symbols("y1 y2"))
    f0 = sp.Matrix(sp.symbols("g1 g2"))
    phi = sp.diag(*[(1 - sp.exp(-alpha * lam * t)) / lam for lam in (l1, l2)])
    f = f0 + K * B * V * phi * V.T * B * (ybar - f0)
    residual = sp.diff(f, t) - alpha * K * B * B * (ybar - f)
    assert all(sp.simplify(entry) == 0 for entry in residual)
    assert f.subs(t, 0) == f0
    lam = sp.Symbol("lambda", positive=True)
    assert sp.limit((1 - sp.exp(-alpha * lam * t)) / lam, lam, 0) == alpha * t


def check_gaussian_covariance():
    """Cov of f_0(x) - G f_0(grid) equals S_xx - S_xg G^T - G S_gx + G S_gg G^T (section 6)."""
    G = sp.Matrix(2, 2, sp.symbols("G0:4"))
    s = sp.symbols("s0:10")
    # a generic symmetric joint covariance of (f_0(x1), f_0(x2), f_0(g1), f_0(g2))
    C = sp.Matrix(4, 4, lambda i, j: s[min(i, j) * 4 - min(i, j) * (min(i, j) - 1) // 2 + abs(i - j)])
    L = sp.Matrix.hstack(sp.eye(2), -G)  # f_t - mean = L (f_0(x), f_0(grid))
    direct = L * C * L.T
    Sxx, Sxg, Sgg = C[:2, :2], C[:2, 2:], C[2:, 2:]
    formula = Sxx - Sxg * G.T - G * Sxg.T + G * Sgg * G.T
    assert sp.simplify(direct - formula) == sp.zeros(2, 2)


if __name__ == "__main__":
    check_sup_derivatives()
    check_constant_input_jacobian()
    check_a_posteriori_bounds()
    check_exact_flow()
    check_gaussian_covariance()
    print("theory_notes/limit.md: all checks passed")
