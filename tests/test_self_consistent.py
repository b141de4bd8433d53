import numpy as np
import pytest
from scipy import optimize

from meanfield.solvers.self_consistent import solve_self_consistent


def ising(beta):
    return lambda m: np.tanh(beta * m)


def test_all_three_solutions_are_found_and_classified():
    """m = tanh(2 m): solutions 0 (repelling, slope 2) and +-m* (attracting, slope 2 (1 - m*^2) < 1)."""
    m_star = optimize.brentq(lambda m: np.tanh(2 * m) - m, 0.1, 1.0)
    starts = [np.array([s]) for s in np.linspace(-1.5, 1.5, 8)]
    it = solve_self_consistent(ising(2.0), starts, method="anderson", damping=0.5)
    assert sum(s.starts for s in it.solutions) == 8
    truth = {-m_star: True, 0.0: False, m_star: True}  # value -> attracting
    for sol in it.solutions:
        value = min(truth, key=lambda v: abs(v - sol.x[0]))
        assert abs(sol.x[0] - value) < 1e-9 and sol.attracting == truth[value], (sol.x, sol.spectral_radius)
    assert {round(float(s.x[0]), 6) for s in it.solutions} >= {round(-m_star, 6), round(m_star, 6)}
    nk = solve_self_consistent(ising(2.0), [np.array([0.05]), np.array([-0.05]), np.array([1.0])],
                               method="newton-krylov")
    values = sorted(float(s.x[0]) for s in nk.solutions)
    assert any(abs(v) < 1e-9 for v in values)
    zero = next(s for s in nk.solutions if abs(s.x[0]) < 1e-9)
    assert zero.spectral_radius == pytest.approx(2.0, rel=1e-6) and not zero.attracting


def test_single_solution_below_the_critical_coupling():
    """For beta < 1 the map contracts: every start gives the one solution m = 0."""
    res = solve_self_consistent(ising(0.7), [np.array([s]) for s in (-2.0, 0.3, 5.0)])
    assert res.n_solutions == 1 and abs(res.solutions[0].x[0]) < 1e-9 and res.solutions[0].starts == 3


def test_matrix_equation_and_failed_starts_are_reported():
    """A positive definite kernel equation K = S + 0.5 tanh(K) (elementwise), solved from several starts."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    S = A @ A.T / 4 + np.eye(4)
    F = lambda K: S + 0.5 * np.tanh(K)  # noqa: E731  (a contraction: |0.5 tanh'| <= 0.5)
    res = solve_self_consistent(F, [np.zeros((4, 4)), np.eye(4) * 3])
    assert res.n_solutions == 1
    K = res.solutions[0].x
    np.testing.assert_allclose(K, F(K), atol=1e-9)
    assert res.solutions[0].spectral_radius <= 0.5 + 1e-6
    for method in ("anderson", "newton-krylov"):  # x = x + 1 has no solution: every start must fail, visibly
        none = solve_self_consistent(lambda x: x + 1.0, [np.zeros(2), np.ones(2)], method=method, maxiter=50)
        assert none.n_solutions == 0 and [a["converged"] for a in none.attempts] == [False, False]
    with pytest.raises(ValueError, match="method"):
        solve_self_consistent(F, [np.zeros((4, 4))], method="bisection")
