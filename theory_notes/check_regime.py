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


if __name__ == "__main__":
    check_step_scales()
    check_kernel_distance_is_quadratic()
    print("theory_notes/regime.md: all checks passed")
