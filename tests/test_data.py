import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import linalg

from meanfield.architectures.diagonal import DiagonalRNN, train_online
from meanfield.data import GaussianAR1, MarkovChain, Task, WindowSet, chain_from_spec, gth_stationary, make_task


def random_chain(m, rng, d=1):
    P = rng.dirichlet(np.ones(m), size=m)
    return MarkovChain(P, rng.normal(size=(m, d)))


def eigenvector_stationary(P):
    vals, vecs = linalg.eig(P.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    return v / v.sum()


def test_stationary_law_of_random_chains_matches_eigenvector():
    rng = np.random.default_rng(0)
    for _ in range(20):
        chain = random_chain(5, rng)
        pi = chain.stationary
        np.testing.assert_allclose(pi, eigenvector_stationary(chain.P), rtol=1e-10)
        np.testing.assert_allclose(pi @ chain.P, pi, atol=1e-15)


def test_gth_keeps_relative_accuracy_on_a_nearly_decomposable_chain():
    eps = 1e-13
    P = np.array([[1 - eps, eps, 0], [eps, 1 - 2 * eps, eps], [0, 2 * eps, 1 - 2 * eps]])
    # detailed balance: pi_0 eps = pi_1 eps, pi_1 eps = pi_2 2 eps  =>  pi = (2, 2, 1) / 5
    np.testing.assert_allclose(gth_stationary(P), [0.4, 0.4, 0.2], rtol=1e-12)


def test_empirical_frequencies_within_five_standard_errors():
    rng = np.random.default_rng(1)
    chain = random_chain(5, rng)
    n = 10**6
    counts = np.bincount(chain.simulate(n, rng), minlength=5)
    pi = chain.stationary
    # Markov-chain CLT: asymptotic variance of the indicator of state j is 2 pi_j Z_jj - pi_j - pi_j^2,
    # with the fundamental matrix Z = (I - P + 1 pi)^{-1}.
    Z = np.linalg.inv(np.eye(5) - chain.P + np.outer(np.ones(5), pi))
    se = np.sqrt((2 * pi * np.diag(Z) - pi - pi**2) / n)
    assert np.all(np.abs(counts / n - pi) < 5 * se), (counts / n - pi) / se


def test_mixing_is_second_eigenvalue_modulus():
    chain = MarkovChain([[0.9, 0.1], [0.2, 0.8]], [0.0, 1.0])
    assert chain.mixing == pytest.approx(0.7)


@pytest.mark.parametrize("P, match", [
    (np.ones((2, 3)) / 3, "square"),
    ([[1.2, -0.2], [0.5, 0.5]], "non-negative"),
    ([[0.5, 0.4], [0.5, 0.5]], "row 0 sums"),
    ([[np.nan, 1], [0.5, 0.5]], "finite"),
    ([[1.0, 0.0], [0.5, 0.5]], "irreducible"),
    ([[0.0, 1.0], [1.0, 0.0]], "aperiodic"),
    ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.5, 0, 0.5, 0]], "period 2"),
])
def test_invalid_transition_matrices_are_refused(P, match):
    m = np.shape(P)[0]
    with pytest.raises(ValueError, match=match):
        MarkovChain(P, np.arange(m, dtype=float))


def test_invalid_states_are_refused():
    P = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(ValueError, match="states must have shape"):
        MarkovChain(P, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="states must be finite"):
        MarkovChain(P, [1.0, np.inf])


def test_all_windows_have_stationary_probabilities():
    rng = np.random.default_rng(2)
    chain = random_chain(3, rng, d=2)
    ws = chain.windows(4)
    assert ws.values.shape == (81, 4, 2) and ws.weights.sum() == pytest.approx(1.0)
    i = 37
    idx = ws.indices[i]
    expected = chain.stationary[idx[0]] * np.prod([chain.P[idx[j], idx[j + 1]] for j in range(3)])
    assert ws.weights[i] == pytest.approx(expected)
    np.testing.assert_array_equal(ws.values[i], chain.states[idx])
    with pytest.raises(ValueError, match="sample_windows"):
        chain.windows(40)


def test_sampled_windows_follow_the_window_law():
    chain = MarkovChain([[0.7, 0.3], [0.4, 0.6]], [-1.0, 1.0])
    exact = chain.windows(2)
    n = 40000
    sampled = chain.sample_windows(2, n, rng=3)
    codes = sampled.indices[:, 0] * 2 + sampled.indices[:, 1]
    freq = np.bincount(codes, minlength=4) / n
    se = np.sqrt(exact.weights * (1 - exact.weights) / n)  # windows are independent
    assert np.all(np.abs(freq - exact.weights) < 5 * se)


def test_gaussian_ar1_stationary_covariance():
    A = np.array([[0.5, 0.2], [0.0, 0.3]])
    Q = np.array([[1.0, 0.3], [0.3, 0.5]])
    chain = GaussianAR1(A, Q)
    S = chain.stationary_cov
    np.testing.assert_allclose(A @ S @ A.T - S + Q, 0, atol=1e-12)
    scalar = GaussianAR1(0.6, 0.64)
    assert scalar.stationary_cov[0, 0] == pytest.approx(1.0)
    x = scalar.simulate(200000, rng=4)[:, 0]
    # AR(1) with unit variance: Var(mean) ~ (1 + a) / ((1 - a) n); variance estimate SE ~ sqrt(2(1+a^2)/((1-a^2) n))
    assert abs(x.mean()) < 5 * np.sqrt(4 / 200000)
    assert abs(x.var() - 1) < 5 * np.sqrt(2 * 1.36 / 0.64 / 200000)
    with pytest.raises(ValueError, match="spectral radius"):
        GaussianAR1([[1.1]], [[1.0]])
    with pytest.raises(ValueError, match="positive definite"):
        GaussianAR1([[0.5]], [[-1.0]])


@pytest.mark.parametrize("name", ["parity2", "ar1-sin"])
def test_stream_targets_and_block_invariance(name):
    task = make_task(name, noise_std=0.0)
    x, y = task.stream(5).next(300)
    windows = np.lib.stride_tricks.sliding_window_view(x, 2, axis=0).transpose(0, 2, 1)
    np.testing.assert_array_equal(y[1:], task.conditional_mean(windows))
    noisy = make_task(name, noise_std=0.3)
    s1, s2 = noisy.stream(7), noisy.stream(7)
    xa, ya = s1.next(1000)
    parts = [s2.next(n) for n in (1, 299, 700)]
    np.testing.assert_array_equal(xa, np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(ya, np.concatenate([p[1] for p in parts]))


def test_stream_noise_has_the_stated_variance():
    task = make_task("parity2", noise_std=0.5)
    x, y = task.stream(8).next(100000)
    residual = y[1:] - x[1:, 0] * x[:-1, 0]
    n = residual.size
    assert abs(residual.var() - 0.25) < 5 * 0.25 * np.sqrt(2 / n)


def test_task_validation():
    chain = MarkovChain([[0.5, 0.5], [0.5, 0.5]], [0.0, 1.0])
    with pytest.raises(ValueError, match="lags"):
        Task(chain, lambda h: h[..., -1, 0], lags=-1)
    with pytest.raises(ValueError, match="noise_std"):
        Task(chain, lambda h: h[..., -1, 0], lags=0, noise_std=float("nan"))
    with pytest.raises(ValueError, match="unknown task"):
        make_task("parity3")
    task = make_task("parity2")
    with pytest.raises(ValueError, match="length >= lags"):
        task.conditional_mean(np.zeros((4, 1, 1)))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(2, 6)).map(lambda s: (s[0], s[0])),
              elements=st.floats(0.01, 1.0)))
def test_stationary_law_properties_on_random_positive_matrices(weights):
    P = weights / weights.sum(axis=1, keepdims=True)
    chain = MarkovChain(P, np.arange(P.shape[0], dtype=float))
    pi = chain.stationary
    assert np.all(pi > 0) and pi.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pi @ chain.P, pi, rtol=1e-12, atol=1e-15)
    ws = chain.windows(3)
    np.testing.assert_allclose(ws.weights.sum(), 1.0, rtol=1e-12)
    # marginal of the last window entry is pi again (stationarity of the window law)
    np.testing.assert_allclose(np.bincount(ws.indices[:, -1], weights=ws.weights), pi, rtol=1e-10)


def test_paths_beyond_the_memory_are_refused_before_allocating():
    """10^12 steps would end in NumPy's MemoryError for 7.28 TiB."""
    for chain in (make_task("delay1").chain, GaussianAR1([[0.5]], [[1.0]])):
        with pytest.raises(ValueError, match="n_steps: a path of 1000000000000 steps needs about .* GiB"):
            chain.simulate(10**12)


@pytest.mark.parametrize("start", [1.5, True, 2, -1, "1"])
def test_the_start_of_a_finite_chain_is_a_state_index(start):
    chain = make_task("delay1").chain
    assert chain.simulate(5, rng=0, start=np.int64(1))[0] == 1
    with pytest.raises(ValueError, match="start must be an integer >= 0 and <= 1"):
        chain.simulate(5, rng=0, start=start)


@pytest.mark.parametrize("start, match", [([1.0, 2.0, 3.0], "shape"), (1.0, "shape"), ([np.nan, 0.0], "finite"),
                                          ([True, 0.0], "booleans"), ("x", "numbers")])
def test_the_start_of_a_gaussian_chain_is_a_finite_vector_of_its_dimension(start, match):
    chain = GaussianAR1(np.diag([0.5, 0.3]), np.eye(2))
    np.testing.assert_array_equal(chain.simulate(3, rng=0, start=[1.0, -1.0])[0], [1.0, -1.0])
    with pytest.raises(ValueError, match=f"start must .*{match}"):
        chain.simulate(3, rng=0, start=start)


def test_booleans_in_chains_are_refused_naming_the_field():
    P = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(ValueError, match="^states must hold numbers, not booleans"):
        MarkovChain(P, [True, False])
    with pytest.raises(ValueError, match="^states must hold numbers, not booleans"):
        MarkovChain(P, [[1.0, True], [0.0, 0.0]])
    with pytest.raises(ValueError, match="^A must hold numbers, not booleans"):
        GaussianAR1(True, np.eye(2))
    spec = dict(kind="finite", transition=P, states=[True, False])
    with pytest.raises(ValueError, match=r"^task\.chain\.states must hold numbers, not booleans"):
        chain_from_spec(spec, field="task.chain")
    for A, Q, key in ((True, [[1.0, 0.0], [0.0, 1.0]], "A"), (0.5, True, "Q"), ([[0.5, False]], [[1.0]], "A")):
        with pytest.raises(ValueError, match=rf"^task\.chain\.{key} must hold numbers, not booleans"):
            chain_from_spec(dict(kind="gaussian-ar1", A=A, Q=Q), field="task.chain")
    with pytest.raises(ValueError, match=r"^task\.chain\.A must be finite"):
        chain_from_spec(dict(kind="gaussian-ar1", A=np.nan, Q=1.0), field="task.chain")
    with pytest.raises(ValueError, match=r"^task\.chain\.states must be an array of numbers"):
        chain_from_spec(dict(kind="finite", transition=P, states=[[1.0], [1.0, 2.0]]), field="task.chain")


def test_ragged_windows_are_refused_naming_the_argument():
    task = make_task("parity2")
    ragged = [[[1.0], [-1.0]], [[1.0]]]
    with pytest.raises(ValueError, match="^windows must be an array .* equal-length windows"):
        task.conditional_mean(ragged)
    for probes in (ragged, WindowSet(ragged, np.full(2, 0.5))):
        with pytest.raises(ValueError, match="^probes must be an array .* equal-length windows"):
            train_online(DiagonalRNN(8, seed=0), task, 1.0, 1.0, probes)


def test_chains_and_tasks_have_short_reprs():
    chain = MarkovChain([[0.8, 0.2], [0.3, 0.7]], [-1.0, 1.0])
    assert repr(chain) == "MarkovChain(2 states in R^1, mixing 0.5)"  # the second eigenvalue of P is 0.5
    assert repr(GaussianAR1([[0.5, 0.2], [0.0, 0.3]], np.eye(2))) == "GaussianAR1(R^2, spectral radius of A 0.5)"
    task = Task.from_expression(chain, "tanh(x0) * x1", 0.1)
    assert repr(task) == ("Task('custom', target 'tanh(x0) * x1', lags 1, noise_std 0.1, on MarkovChain(2 states in "
                          "R^1, mixing 0.5))")


def test_every_public_name_is_listed():
    import meanfield

    assert set(meanfield.__all__) <= set(dir(meanfield)) and "convergence_study" in dir(meanfield)
