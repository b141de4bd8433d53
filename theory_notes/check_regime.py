"""SymPy checks of theory_notes/regime.md (run by the tests; exits non-zero on a failed check)."""

import sympy as sp


def check_step_scales():
    """Exponents of n in one step (section 1): NTK lazy, muP feature learning, f moves O(1) in both."""
    n = sp.Symbol("n", positive=True)
    for readout, lr, want_weight, want_feature in ((n ** sp.Rational(-1, 2), 1, -1, sp.Rational(-1, 2)),
                                                   (1 / n, n, sp.Rational(-1, 2), 0)):
        delta = readout  # df/dg_i: the readout multiplier times V_i = O(1)
        weight_step = lr * n ** sp.Rational(-1, 2) * delta  # eta (sigma_w/sqrt n) delta_i h_j
        feature_step = n ** sp.Rational(-1, 2) * n * weight_step  # (sigma_w/sqrt n) sum_j dW_ij h_j, coherent
        # f moves by lr * NTK; the NTK is n terms (grad f_i)^2 per hidden layer, grad f_i = O(n^-1/2) x delta...
        ntk = n * (n ** sp.Rational(-1, 2) * delta) ** 2 * n  # sum over the n x n weights of (h_j delta_i / sqrt n)^2
        assert sp.simplify(sp.log(weight_step, n)) == want_weight
        assert sp.simplify(sp.log(feature_step, n)) == want_feature
        assert sp.simplify(sp.log(lr * ntk, n)) == 0  # the function speed is O(1) in both


def check_kernel_distance_is_quadratic():
    """S(G, G + eps D) = eps^2 |D_perp|^2 / (2 |G|^2) + O(eps^3) for a 2 x 2 example (section 2)."""
    eps = sp.Symbol("epsilon", positive=True)
    a, b, c, d, e, f = sp.symbols("a b c d e f", real=True)
    G = sp.Matrix([[a, b], [b, c]])
    D = sp.Matrix([[d, e], [e, f]])
    inner = lambda X, Y: sum(X[i] * Y[i] for i in range(4))  # noqa: E731
    S = 1 - inner(G, G + eps * D) / sp.sqrt(inner(G, G) * inner(G + eps * D, G + eps * D))
    series = sp.series(S, eps, 0, 3).removeO()
    D_perp = D - inner(D, G) / inner(G, G) * G
    expected = eps**2 * inner(D_perp, D_perp) / (2 * inner(G, G))
    assert sp.simplify(series - expected) == 0


def check_gradient_descent_map():
    """Section 3: k steps of u <- (1 - h lambda) u add h sum_{j<k} (1 - h lambda)^j = (1 - (1 - h lambda)^k)/lambda
    to the integral, which tends to the flow's (1 - exp(-lambda t))/lambda at t = k h as h -> 0 (alpha = 1)."""
    h, lam, t = sp.symbols("h lambda t", positive=True)
    k, j = sp.symbols("k j", integer=True, positive=True)
    total = sp.summation(h * (1 - h * lam) ** j, (j, 0, k - 1))
    assert sp.simplify(total - (1 - (1 - h * lam) ** k) / lam) == 0
    at_time = ((1 - (1 - h * lam) ** (t / h)) / lam)
    assert sp.simplify(sp.limit(at_time, h, 0, "+") - (1 - sp.exp(-lam * t)) / lam) == 0
    # the first-order error in h: phi_h - phi = (t lambda / 2) exp(-lambda t) h + O(h^2)
    series = sp.series(at_time - (1 - sp.exp(-lam * t)) / lam, h, 0, 2).removeO()
    assert sp.simplify(series - t * lam * sp.exp(-lam * t) * h / 2) == 0


def check_ntk_gp_covariance():
    """Section 6: with f = (f_train, f_test) ~ N(0, K) and the linearised output f_test - A f_train + A y, the
    covariance is K_tt - A K_rt - K_tr A^T + A K_rr A^T (2 training points, 1 test point, symbolic)."""
    a1, a2 = sp.symbols("a1 a2", real=True)
    k = sp.symbols("k11 k12 k13 k22 k23 k33", real=True)
    K = sp.Matrix([[k[0], k[1], k[2]], [k[1], k[3], k[4]], [k[2], k[4], k[5]]])  # train, train, test
    A = sp.Matrix([[a1, a2]])
    L = sp.Matrix([[-a1, -a2, 1]])  # f_test - A f_train
    K_rr, K_tr, K_tt = K[:2, :2], K[2:, :2], K[2:, 2:]
    assert sp.simplify(L * K * L.T - (K_tt - A * K_tr.T - K_tr * A.T + A * K_rr * A.T)) == sp.zeros(1, 1)


if __name__ == "__main__":
    check_step_scales()
    check_kernel_distance_is_quadratic()
    check_gradient_descent_map()
    check_ntk_gp_covariance()
    print("theory_notes/regime.md: all checks passed")
