"""SymPy checks of theory_notes/model.md (run by the tests; exits non-zero on a failed check)."""

import sympy as sp


def check_rtrl(steps=3, d=2):
    """The RTRL recursions equal the derivatives of the unrolled map (section 3), sigma generic."""
    sigma = sp.Function("sigma")
    w = sp.symbols(f"w0:{d}")
    b = sp.Symbol("b")
    xs = [sp.symbols(f"x{k}_0:{d}") for k in range(steps)]
    u = sp.Symbol("u")
    S, Jw, Jb = sp.Integer(0), [sp.Integer(0)] * d, sp.Integer(0)
    for k in range(steps):
        z = sum(wj * xj for wj, xj in zip(w, xs[k])) + b * S
        ds = sp.Subs(sp.Derivative(sigma(u), u), u, z)  # sigma'(z) for a generic sigma
        Jw = [ds * (xs[k][j] + b * Jw[j]) for j in range(d)]
        Jb = ds * (S + b * Jb)
        S = sigma(z)
    for j in range(d):
        assert sp.simplify(sp.diff(S, w[j]).doit() - Jw[j].doit()) == 0, f"J^w_{j}"
    assert sp.simplify(sp.diff(S, b).doit() - Jb.doit()) == 0, "J^b"


def check_oddness(steps=3):
    """With sigma = tanh, S and J are odd in the window (section 5)."""
    w, b = sp.symbols("w b")
    xs = sp.symbols(f"x0:{steps}")

    def unroll(inputs):
        S, Jw, Jb = sp.Integer(0), sp.Integer(0), sp.Integer(0)
        for x in inputs:
            z = w * x + b * S
            ds = 1 - sp.tanh(z) ** 2
            Jw, Jb, S = ds * (x + b * Jw), ds * (S + b * Jb), sp.tanh(z)
        return S, Jw, Jb

    plus, minus = unroll(xs), unroll([-x for x in xs])
    for a, m in zip(plus, minus):
        assert sp.simplify(a + m) == 0


def check_best_odd_fit():
    """argmin_f p (g - f)^2 + q (g + f)^2 = g (p - q)/(p + q), and the residual loss (section 5)."""
    p, q, g, f = sp.symbols("p q g f", positive=True)
    loss = p * (g - f) ** 2 + q * (g + f) ** 2
    fstar = sp.solve(sp.diff(loss, f), f)[0]
    assert sp.simplify(fstar - g * (p - q) / (p + q)) == 0
    residual = sp.simplify(loss.subs(f, fstar) / 2)
    assert sp.simplify(residual - (p + q) * g**2 * (1 - ((p - q) / (p + q)) ** 2) / 2) == 0


if __name__ == "__main__":
    check_rtrl()
    check_oddness()
    check_best_odd_fit()
    print("theory_notes/model.md: all checks passed")
