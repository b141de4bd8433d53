import numpy as np
import pytest

from meanfield.solvers.fixed_point import FixedPointError, fixed_point
from meanfield.solvers.ode import LinearKernelFlow, integrate_ode, linear_flow_rhs


def contraction(rho, n=50, seed=0):
    """T(x) = rho (0.9 Q x + 0.1 sin x) + a with Q stochastic: modulus rho in the max norm, and the
    Perron direction of Q makes plain iteration contract at nearly that rate."""
    rng = np.random.default_rng(seed)
    Q = rng.uniform(0, 1, size=(n, n))
    Q /= Q.sum(axis=1, keepdims=True)
    a = rng.normal(size=n)
    return lambda x: rho * (0.9 * Q @ x + 0.1 * np.sin(x)) + a


@pytest.mark.parametrize("rho", [0.5, 0.95])
def test_picard_and_anderson_reach_the_same_fixed_point(rho):
    T = contraction(rho)
    p = fixed_point(T, np.zeros(50), method="picard", tol=1e-13, maxiter=5000, rho=rho)
    a = fixed_point(T, np.zeros(50), method="anderson", depth=6, tol=1e-13, rho=rho)
    assert p.converged and a.converged
    np.testing.assert_allclose(p.x, a.x, atol=1e-11)
    np.testing.assert_allclose(T(a.x), a.x, atol=1e-12)
    assert a.iterations < p.iterations / 2  # acceleration pays off
    assert p.residuals.size == p.iterations


def test_error_bound_holds_on_a_known_fixed_point():
    # T(x) = rho x + (1 - rho) x*: fixed point x*, contraction modulus exactly rho
    rho, x_star = 0.9, np.linspace(-1, 1, 7)
    T = lambda x: rho * x + (1 - rho) * x_star  # noqa: E731
    for method in ("picard", "anderson"):
        for maxiter in (3, 10, 40):
            r = fixed_point(T, np.full(7, 5.0), method=method, maxiter=maxiter, rho=rho, tol=1e-300,
                            raise_on_failure=False)
            err = np.max(np.abs(r.x - x_star))
            rounding = 16 * np.finfo(float).eps * max(1.0, np.abs(r.x).max())  # the bound is exact arithmetic
            assert err <= r.error_bound + rounding, (method, maxiter, err, r.error_bound)
    # the Picard bound is tight for this map: error = rho/(1-rho) |x_k - x_{k-1}|
    r = fixed_point(T, np.full(7, 5.0), method="picard", maxiter=5, rho=rho, tol=1e-300, raise_on_failure=False)
    assert np.max(np.abs(r.x - x_star)) == pytest.approx(r.error_bound, rel=1e-9)


def test_a_non_contraction_is_reported():
    T = lambda x: 2.0 * x + 1.0  # noqa: E731  fixed point -1, repelling
    r = fixed_point(T, np.zeros(3), method="picard", maxiter=50, raise_on_failure=False)
    assert not r.converged and "not converged" in r.message
    with pytest.raises(FixedPointError, match="not converged") as info:
        fixed_point(lambda x: x + 1.0, np.zeros(3), method="anderson", maxiter=30)
    assert not info.value.result.converged
    with np.errstate(over="ignore", invalid="ignore"):
        r = fixed_point(lambda x: np.exp(x) + x * 1e300, np.ones(2), method="picard", maxiter=100,
                        raise_on_failure=False)
    assert not r.converged and "diverged" in r.message


def test_fixed_point_validation():
    T = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="method"):
        fixed_point(T, np.zeros(2), method="newton")
    with pytest.raises(ValueError, match="rho"):
        fixed_point(T, np.zeros(2), rho=1.0)
    with pytest.raises(ValueError, match="x0"):
        fixed_point(T, np.array([np.nan]))
    with pytest.raises(ValueError, match="shape"):
        fixed_point(lambda x: np.zeros(3), np.zeros(2))


def random_problem(M=30, rank=None, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(M, rank or M))
    K = F @ F.T / F.shape[1]
    w = rng.dirichlet(np.ones(M))
    return K, w, rng.normal(size=M), rng.normal(size=M)


@pytest.mark.parametrize("rank", [None, 5])
def test_exact_linear_flow_matches_solve_ivp(rank):
    K, w, ybar, f0 = random_problem(rank=rank)
    times = np.linspace(0, 40, 21)
    exact = LinearKernelFlow(K, w, ybar, 3.0, f0)
    num = integrate_ode(linear_flow_rhs(K, w, ybar, 3.0), f0, times, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(exact.on_grid(times), num.y, atol=1e-8)
    # the off-grid formula on the grid rows reproduces the grid solution
    np.testing.assert_allclose(exact.at(times, K[:4], f0[:4]), exact.on_grid(times)[:, :4], atol=1e-12)


@pytest.mark.parametrize("rank", [None, 5])
def test_gradient_descent_map_matches_its_loop_and_tends_to_the_flow(rank):
    K, w, ybar, f0 = random_problem(rank=rank)
    K_cross = np.random.default_rng(7).normal(size=(3, K.shape[0]))
    h, alpha = 0.05, 3.0
    gd = LinearKernelFlow(K, w, ybar, alpha, f0, step=h)
    f, g, grid, off = f0.copy(), np.zeros(3), [f0], [np.zeros(3)]
    for _ in range(40):  # the map itself, step by step
        r = alpha * h * w * (ybar - f)
        f, g = f + K @ r, g + K_cross @ r
        grid.append(f), off.append(g)
    times = h * np.arange(41)
    np.testing.assert_allclose(gd.on_grid(times), grid, atol=1e-10)
    np.testing.assert_allclose(gd.at(times, K_cross), off, atol=1e-10)
    with pytest.raises(ValueError, match="multiples of the step"):
        gd.on_grid([0.3 * h])
    # at fixed time the map approaches the flow, with an O(h) error
    errors = [np.max(np.abs(LinearKernelFlow(K, w, ybar, alpha, f0, step=2.0 / 2**k).on_grid([2.0])
                            - LinearKernelFlow(K, w, ybar, alpha, f0).on_grid([2.0]))) for k in range(6, 10)]
    np.testing.assert_allclose(np.diff(np.log2(errors)), -1.0, atol=0.1)


def test_residual_tends_to_the_projection_on_the_null_space():
    K, w, ybar, f0 = random_problem(M=25, rank=6, seed=1)
    flow = LinearKernelFlow(K, w, ybar, 2.0, f0)
    B = np.sqrt(w)
    late = B * (ybar - flow.on_grid([1e7])[0])
    # independent computation of the projection: range of A = range of B K B, via its rank-6 SVD
    U, s, _ = np.linalg.svd(B[:, None] * K * B[None, :])
    U6 = U[:, :6]
    r0 = B * (ybar - f0)
    np.testing.assert_allclose(late, r0 - U6 @ (U6.T @ r0), atol=1e-7)
    np.testing.assert_allclose(flow.residual_at_infinity(), late, atol=1e-7)
    assert np.linalg.norm(late) > 0.1  # rank-deficient: a residual remains


def test_operator_gives_the_coefficients():
    K, w, ybar, f0 = random_problem(M=12, seed=2)
    flow = LinearKernelFlow(K, w, ybar, 1.5, f0)
    np.testing.assert_allclose(flow.operator(0.7) @ (ybar - f0), flow.coefficients([0.7])[0], atol=1e-12)
    K_cross = np.random.default_rng(3).normal(size=(4, 12))
    np.testing.assert_allclose(flow.cross_operator(0.7, K_cross), K_cross @ flow.operator(0.7), atol=1e-12)
    # the flow from other initial values on the grid (the Gaussian initialisation's coupling)
    g0 = np.random.default_rng(4).normal(size=12)
    np.testing.assert_allclose(flow.at([0.7], K_cross, np.zeros(4), f0=g0)[0],
                               K_cross @ flow.operator(0.7) @ (ybar - g0), atol=1e-12)


def test_linear_flow_validation():
    K, w, ybar, _ = random_problem(M=5)
    with pytest.raises(ValueError, match="symmetric"):
        LinearKernelFlow(K + np.triu(np.ones((5, 5)), 1), w, ybar, 1.0)
    with pytest.raises(ValueError, match="semi-definite"):
        LinearKernelFlow(-K, w, ybar, 1.0)
    with pytest.raises(ValueError, match="weights"):
        LinearKernelFlow(K, -w, ybar, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        LinearKernelFlow(K, w, ybar, 0.0)
    with pytest.raises(ValueError, match="ybar"):
        LinearKernelFlow(K, w, ybar[:3], 1.0)
    with pytest.raises(ValueError, match="step"):
        LinearKernelFlow(K, w, ybar, 1.0, step=-0.1)
    flow = LinearKernelFlow(K, w, ybar, 1.0)
    with pytest.raises(ValueError, match="K_cross must be an array of real numbers"):
        flow.at([1.0], "x")
    with pytest.raises(ValueError, match="times must be an array of real numbers"):
        flow.on_grid("x")


@pytest.mark.parametrize("argument, value, match", [
    ("alpha", "x", "alpha must be a finite number > 0, got 'x'"),
    ("alpha", True, "alpha must be a finite number > 0, got True"),
    ("alpha", None, "alpha must be a finite number > 0"),
    ("alpha", np.ones(2), "alpha must be a finite number > 0"),
    ("step", "x", "step must be a finite number > 0"),
    ("step", np.nan, "step must be a finite number > 0"),
    ("K", "x", "K must be an array of real numbers, got 'x'"),
    ("K", 1.0, r"K must be a non-empty square matrix, got shape \(\)"),
    ("K", [[1.0], [0.0, 1.0]], "K must be an array of real numbers, got a ragged sequence"),
    ("K", np.eye(3) * 1j, "K must be an array of real numbers, got an array of dtype complex128"),
    ("K", np.eye(3, dtype=bool), "K must be an array of real numbers, got an array of dtype bool"),
    ("weights", "abc", "weights must be an array of real numbers"),
    ("ybar", None, "ybar must be an array of real numbers, got None"),
    ("f0", ["a", "b", "c"], "f0 must be an array of real numbers"),
])
def test_linear_flow_arguments_are_named(argument, value, match):
    arguments = dict(K=np.eye(3), weights=np.full(3, 1 / 3), ybar=np.ones(3), alpha=1.0)
    with pytest.raises(ValueError, match=match):
        LinearKernelFlow(**{**arguments, argument: value})
