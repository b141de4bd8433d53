import math

import numpy as np
import pytest

from meanfield.activations import get_activation
from meanfield.architectures.diagonal import network as rnn
from meanfield.architectures.diagonal.network import DiagonalRNN, TrainResult, train_online
from meanfield.data import MarkovChain, Task, make_task
from meanfield.reference import train_reference, window_states_reference


def mean_of_two_inputs(h):
    return np.tanh(h[..., -1, :].sum(-1) - 0.5 * h[..., -2, :].sum(-1))


def vector_task(d, noise_std=0.1):
    rng = np.random.default_rng(11)
    chain = MarkovChain(rng.dirichlet(np.ones(4), size=4), rng.normal(size=(4, d)))
    return Task(chain, mean_of_two_inputs, lags=1, noise_std=noise_std, name=f"vector{d}")


@pytest.mark.parametrize("d, activation, symmetric, threaded", [
    (1, "tanh", True, False), (1, "erf", False, True), (3, "tanh", False, True), (2, "erf", True, False)])
def test_compiled_training_equals_numpy_reference(d, activation, symmetric, threaded):
    N, n_steps, alpha = 64, 1000, 4.0
    task = vector_task(d)
    model = DiagonalRNN(N, d, activation=activation, beta=0.8, symmetric=symmetric, seed=3)
    probes = task.chain.sample_windows(5, 7, rng=0)
    result = train_online(model, task, horizon=n_steps / N, alpha=alpha, probes=probes, n_records=4,
                          seed=9, progress=False, threaded=threaded)
    X, Y = task.stream(9).next(n_steps)
    ref = train_reference(model.c, model.w, model.b, X, Y, alpha, activation)
    for name in ("c", "w", "b"):
        got, want = getattr(result.model, name), ref[name]
        assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want)), name
    # training moved the parameters well beyond rounding: the comparison is not vacuous
    assert np.max(np.abs(ref["c"] - model.c)) > 1e-2
    ref_losses = 0.5 * ref["errors"] ** 2
    np.testing.assert_allclose(result.losses, [ref_losses[a:b].mean() for a, b in
                                               zip(result.steps[:-1], result.steps[1:])], rtol=1e-10)


def finite_difference_jacobian(model, windows, h=1e-5):
    """Central differences of the final memory state with respect to each w coordinate and b."""
    def states(W, b):
        return rnn.window_states_kernel(windows, W, b, model._code, False)[0]
    JW = np.empty((windows.shape[0], model.n_units, model.input_dim))
    for j in range(model.input_dim):
        dW = np.zeros_like(model.W)
        dW[j] = h  # units are independent, so one perturbation of all units gives every derivative
        JW[:, :, j] = (states(model.W + dW, model.b) - states(model.W - dW, model.b)) / (2 * h)
    Jb = (states(model.W, model.b + h) - states(model.W, model.b - h)) / (2 * h)
    return JW, Jb


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_rtrl_derivatives_equal_finite_differences(activation):
    model = DiagonalRNN(50, 2, activation=activation, beta=0.85, symmetric=False, seed=4)
    windows = np.random.default_rng(5).normal(size=(6, 12, 2))
    S, Jw, Jb = model.memory_states(windows)
    fd_w, fd_b = finite_difference_jacobian(model, windows)
    np.testing.assert_allclose(Jw, fd_w, atol=1e-8)
    np.testing.assert_allclose(Jb, fd_b, atol=1e-8)
    ref_S, ref_Jw, ref_Jb = window_states_reference(windows, model.w, model.b, activation)
    np.testing.assert_allclose(S, ref_S, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Jw, ref_Jw, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Jb, ref_Jb, rtol=1e-12, atol=1e-14)


def test_training_kernel_carries_the_rtrl_derivatives():
    """With learning rate 0 the step loop's J after a sequence is the derivative of its final state."""
    model = DiagonalRNN(40, 3, beta=0.9, symmetric=False, seed=6)
    X = np.random.default_rng(7).normal(size=(15, 3))
    S, Jb, JW = np.zeros(40), np.zeros(40), np.zeros_like(model.W)
    starts, n_first = rnn.chunk_starts(40)
    rnn._train_segment(X, np.zeros(15), 0.0, 1 / math.sqrt(40), model._code, model.c.copy(), model.W.copy(),
                       model.b.copy(), S, JW, Jb, starts, n_first, False)
    fd_w, fd_b = finite_difference_jacobian(model, X[None])
    np.testing.assert_allclose(JW.T, fd_w[0], atol=1e-8)
    np.testing.assert_allclose(Jb, fd_b[0], atol=1e-8)


@pytest.mark.parametrize("n_units", [2, 6, 1554, 2 * rnn.CHUNK * 3])
def test_symmetric_initialisation_gives_exactly_zero_output(n_units):
    model = DiagonalRNN(n_units, 2, sigma_w=1.7, seed=n_units)
    windows = np.random.default_rng(0).normal(size=(9, 7, 2))
    assert np.all(model.forward(windows) == 0.0)
    S = model.memory_states(windows, jacobian=False)
    assert np.any(S != 0)


def test_gaussian_readout_variance_matches_e_s_squared():
    """Var f^N_0(x) = E_{w,b}[S(x)^2] exactly for every N; E[S^2] by tensor Gauss quadrature."""
    sigma_w, beta = 1.3, 0.7
    windows = np.array([[[1.0], [-1.0], [1.0]], [[0.5], [0.5], [-2.0]]])
    n_seeds, N = 4000, 16
    f0 = np.array([DiagonalRNN(N, 1, sigma_w=sigma_w, beta=beta, symmetric=False, seed=s).forward(windows)
                   for s in range(n_seeds)])
    xw, ww = np.polynomial.hermite_e.hermegauss(120)
    xb, wb = np.polynomial.legendre.leggauss(60)
    w_nodes = np.repeat(sigma_w * xw, xb.size)[:, None]
    b_nodes = np.tile(beta * xb, xw.size)
    weights = np.repeat(ww / math.sqrt(2 * math.pi), xb.size) * np.tile(wb / 2, xw.size)
    S, _, _ = window_states_reference(windows, w_nodes, b_nodes)
    expected = (S**2) @ weights
    sq = f0**2
    se = sq.std(axis=0, ddof=1) / math.sqrt(n_seeds)
    assert np.all(np.abs(sq.mean(axis=0) - expected) < 4 * se), (sq.mean(axis=0), expected, se)
    assert np.all(np.abs(f0.mean(axis=0)) < 4 * np.sqrt(expected / n_seeds))


def test_training_on_parity2_reduces_the_probe_loss():
    task = make_task("parity2")
    probes = task.chain.windows(6)
    targets = task.conditional_mean(probes)
    losses = []
    for seed in range(3):
        model = DiagonalRNN(256, seed=seed)
        result = train_online(model, task, horizon=2.0, alpha=5.0, probes=probes, n_records=2,
                              seed=100 + seed, progress=False)
        losses.append(0.5 * (result.outputs - targets) ** 2 @ probes.weights)
    losses = np.array(losses)
    np.testing.assert_allclose(losses[:, 0], 0.5 * targets**2 @ probes.weights, rtol=1e-14)  # f_0 = 0
    assert np.all(losses[:, -1] < 0.75 * losses[:, 0]), losses


def test_divergence_is_reported_with_the_step():
    task = make_task("parity2")
    model = DiagonalRNN(32, seed=0)
    with pytest.raises(FloatingPointError, match=r"non-finite at step \d+.*smaller alpha"):
        train_online(model, task, horizon=50.0, alpha=1e6, probes=task.chain.windows(3), progress=False)


def test_result_does_not_depend_on_threads_or_segments(monkeypatch):
    import numba

    task = make_task("ar1-sin")
    model = DiagonalRNN(3 * rnn.CHUNK, seed=1)
    probes = task.chain.sample_windows(4, 5, rng=1)
    kwargs = dict(horizon=0.5, alpha=3.0, probes=probes, n_records=2, seed=2, progress=False)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = train_online(model, task, threaded=False, **kwargs)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = train_online(model, task, threaded=True, **kwargs)
        b2 = train_online(model, task, threaded=False, **kwargs)
        monkeypatch.setattr(rnn, "SEGMENT_UNIT_STEPS", 37 * model.n_units)
        c = train_online(model, task, threaded=True, **kwargs)
    finally:
        numba.set_num_threads(threads)
    for other in (b, b2, c):
        np.testing.assert_array_equal(a.outputs, other.outputs)
        np.testing.assert_array_equal(a.model.c, other.model.c)
        np.testing.assert_array_equal(a.model.w, other.model.w)
        np.testing.assert_array_equal(a.model.b, other.model.b)


def test_result_round_trips_through_npz(tmp_path):
    task = make_task("parity2")
    model = DiagonalRNN(16, seed=0)
    result = train_online(model, task, horizon=1.0, alpha=1.0, probes=task.chain.windows(2), n_records=2,
                          seed=0, progress=False)
    loaded = TrainResult.load(result.save(tmp_path / "run.npz"))
    np.testing.assert_array_equal(loaded.outputs, result.outputs)
    np.testing.assert_array_equal(loaded.model.w, result.model.w)
    assert loaded.config == {**result.config, "activation": "tanh", "sigma_w": 1.0, "beta": 0.5,
                             "symmetric": True}
    np.testing.assert_array_equal(loaded.model.forward(result.probes), result.outputs[-1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_units=0), "n_units"), (dict(n_units=-4), "n_units"), (dict(n_units=7), "even"),
    (dict(n_units=8, beta=1.0), "beta"), (dict(n_units=8, activation="erf", beta=0.9), "beta"),
    (dict(n_units=8, sigma_w=float("nan")), "sigma_w"), (dict(n_units=8, activation="relu"), "activation")])
def test_invalid_models_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiagonalRNN(**kwargs)


def test_invalid_training_arguments_are_refused():
    task = make_task("parity2")
    model = DiagonalRNN(8, seed=0)
    probes = task.chain.windows(2)
    with pytest.raises(ValueError, match="alpha"):
        train_online(model, task, 1.0, -1.0, probes)
    with pytest.raises(ValueError, match="horizon"):
        train_online(model, task, float("inf"), 1.0, probes)
    with pytest.raises(ValueError, match="probes"):
        train_online(model, task, 1.0, 1.0, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="probes must be finite"):
        train_online(model, task, 1.0, 1.0, np.full((3, 2, 1), np.nan))
    with pytest.raises(ValueError, match="input_dim"):
        train_online(DiagonalRNN(8, 2), task, 1.0, 1.0, probes)
    assert get_activation("tanh").code == model._code
