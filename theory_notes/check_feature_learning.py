"""SymPy checks of theory_notes/feature_learning.md (run by the tests; exits non-zero on a failed check)."""

import sympy as sp


def check_conjugate_kernel():
    """Section 2: d/dK [1/2 tr(K^-1 C) + 1/2 log det K] = -Khat with Khat = 1/2 K^-1 (C - K) K^-1 (2 x 2)."""
    k11, k12, k22, c11, c12, c22 = sp.symbols("k11 k12 k22 c11 c12 c22", real=True)
    K = sp.Matrix([[k11, k12], [k12, k22]])
    C = sp.Matrix([[c11, c12], [c12, c22]])
    f = (K.inv() * C).trace() / 2 + sp.log(K.det()) / 2
    Khat = K.inv() * (C - K) * K.inv() / 2
    # symmetric parameterisation: d/dk12 counts both off-diagonal entries
    assert sp.simplify(sp.diff(f, k11) + Khat[0, 0]) == 0
    assert sp.simplify(sp.diff(f, k22) + Khat[1, 1]) == 0
    assert sp.simplify(sp.diff(f, k12) + 2 * Khat[0, 1]) == 0


def check_gaussian_tilt():
    """Section 2: E_{N(0,K)} exp(Chat h^2) = (1 - 2 Chat K)^-1/2 and the tilted variance is 1/(1/K - 2 Chat)."""
    h = sp.Symbol("h", real=True)
    K, a = sp.symbols("K a", positive=True)
    chat = -a  # a convergent case; the identities continue analytically to 0 < Chat < 1/(2K)
    dens = sp.exp(-h**2 / (2 * K)) / sp.sqrt(2 * sp.pi * K)
    Z = sp.integrate(dens * sp.exp(chat * h**2), (h, -sp.oo, sp.oo))
    assert sp.simplify(Z - 1 / sp.sqrt(1 - 2 * chat * K)) == 0
    m2 = sp.integrate(h**2 * dens * sp.exp(chat * h**2), (h, -sp.oo, sp.oo)) / Z
    assert sp.simplify(m2 - 1 / (1 / K - 2 * chat)) == 0


def _t2_action():
    """Section 4: the linear T = 2 action F(C) for one sequence, inputs at t = 0 only."""
    c0, c1, c2, k, g, gv, beta, y = sp.symbols("c0 c1 c2 k g g_v beta y", positive=True)
    e1, e2, e3 = sp.symbols("e1 e2 e3", real=True)
    C = sp.Matrix([[c0, e1, e3], [e1, c1, e2], [e3, e2, c2]])
    K = sp.Matrix([[k, 0, 0], [0, g**2 * c0, g**2 * e1], [0, g**2 * e1, g**2 * c1]])  # K[C], RNN
    F = ((K.inv() * C).trace() - sp.log(C.det()) + sp.log(K.det()) - 3) / 2 + y**2 / (2 * (gv**2 * c2 + 1 / beta))
    return F, (c0, c1, c2, k, g, gv, beta, y), (e1, e2, e3)


def check_t2_critical_point():
    """Section 4: on the symmetric branch c_t = g^{2t} k a^{(t+1)/3} (a = c2 / (g^4 k)): the odd-lag Hessian
    is singular exactly at a = 8, and the data equation there gives beta_c = 1/(|y| sqrt(8 kappa) - 8 kappa)."""
    F, (c0, c1, c2, k, g, gv, beta, y), (e1, e2, e3) = _t2_action()
    a = sp.Symbol("a", positive=True)
    branch = {c0: k * a ** sp.Rational(1, 3), c1: g**2 * k * a ** sp.Rational(2, 3), c2: g**4 * k * a}
    zero = {e1: 0, e2: 0, e3: 0}
    # stationarity in c0 and c1 holds on the branch for every a
    for c in (c0, c1):
        assert sp.simplify(sp.diff(F, c).subs(zero).subs(branch)) == 0
    # the odd sector (e1, e2) decouples from the even one (e3) at e = 0 ...
    assert sp.simplify(sp.diff(F, e1, e3).subs(zero).subs(branch)) == 0
    # ... and its Hessian determinant is proportional to 2 a^{-1/3} - 1: zero at a = 8
    H = sp.Matrix(2, 2, lambda i, j: sp.diff(F, (e1, e2)[i], (e1, e2)[j])).subs(zero).subs(branch)
    det = sp.simplify(H.det())
    assert sp.simplify(det.subs(a, 8)) == 0
    assert sp.simplify(det.subs(a, 1)) != 0 and det.subs({a: 1, k: 1, g: 1}) > 0  # stable at the prior
    assert det.subs({a: 27, k: 1, g: 1}) < 0  # unstable beyond
    # the c2 equation at a = 8 fixes beta
    eq = sp.diff(F, c2).subs(zero).subs(branch).subs(a, 8)
    kappa = gv**2 * g**4 * k
    beta_c = 1 / (y * sp.sqrt(8 * kappa) - 8 * kappa)
    assert sp.simplify(eq.subs(beta, beta_c)) == 0


def check_weak_signal_order():
    """Section 3: the data source g_v^2/2 G^-1 y y^T G^-1, G = g_v^2 C + 1/beta, is beta^2 g_v^2 y^2/2 + O(beta^3)."""
    beta, gv, C, y = sp.symbols("beta g_v C y", positive=True)
    source = gv**2 / 2 * y**2 / (gv**2 * C + 1 / beta) ** 2
    assert sp.simplify(sp.series(source, beta, 0, 3).removeO() - gv**2 * y**2 * beta**2 / 2) == 0


if __name__ == "__main__":
    check_conjugate_kernel()
    check_gaussian_tilt()
    check_t2_critical_point()
    check_weak_signal_order()
    print("theory_notes/feature_learning.md: all checks passed")
