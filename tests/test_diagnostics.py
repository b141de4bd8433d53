import warnings

import numpy as np
import pytest
from helpers import finite_difference_jacobian

from meanfield.architectures.elman.network import ElmanRNN
from meanfield.diagnostics import (
    alignment,
    gd_stability,
    jacobian_change_norm,
    kernel_distance,
    ntk_gp,
    relative_change,
    track_training,
)


class LinearModel:
    """f(x) = theta . phi(x) / sqrt(p) with fixed random features: its NTK is exactly constant."""

    def __init__(self, p, input_len, seed=0):
        rng = np.random.default_rng(seed)
        self.A = rng.normal(size=(p, input_len))
        self.theta = rng.normal(size=p)
        self.width = p

    def features(self, X):
        return np.maximum(np.stack([np.ravel(x) for x in X]) @ self.A.T, 0) / np.sqrt(self.width)

    def __call__(self, X):
        return self.features(X) @ self.theta

    def ntk(self, X, Y=None, other=None):
        return self.features(X) @ self.features(X if Y is None else Y).T

    def parameters(self):
        return [self.theta]

    def copy(self):
        other = LinearModel.__new__(LinearModel)
        other.A, other.theta, other.width = self.A, self.theta.copy(), self.width
        return other

    def train(self, X, y, lr, steps, record_every=1):
        F = self.features(X)
        for _ in range(steps):
            self.theta -= lr * F.T @ (F @ self.theta - y) / len(X)


def test_linear_model_stays_in_the_kernel_regime():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(4, 1)) for _ in range(12)]
    X_held = [rng.normal(size=(4, 1)) for _ in range(5)]
    y = rng.normal(size=12)
    model = LinearModel(50, 4)
    d = track_training(model, X, y, X_held, lr=0.01, steps=400, checkpoints=4)
    assert np.max(np.abs(d.kernel_distance)) < 1e-14 and np.max(np.abs(d.kernel_velocity)) < 1e-14  # rounding
    assert np.all(d.jacobian_change == 0) and d.stability_constant == 0
    assert d.weight_change[-1] > 0.01  # it did train
    assert d.train_loss[-1] < 0.8 * d.train_loss[0]
    assert np.max(d.prediction_gap) < 0.02  # gradient descent with a small step follows the flow
    # and, with a large step, is exactly the discrete map of its (constant) kernel, off the flow
    d = track_training(model, X, y, X_held, lr=1.0, steps=8, checkpoints=4)
    assert np.max(d.discrete_gap) < 1e-12 < 0.05 < np.max(d.prediction_gap), (d.discrete_gap, d.prediction_gap)


def test_cross_network_ntk_and_jacobian_change_equal_finite_differences():
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(T, 2)) for T in (3, 4, 3)]
    net0 = ElmanRNN(5, 2, layers=2, activation="tanh", sigma_b=0.3, seed=2)
    net = net0.copy()
    net.train(X, np.array([1.0, -1.0, 0.5]), 0.5, 5)
    J0, Jt = finite_difference_jacobian(net0, X), finite_difference_jacobian(net, X)
    np.testing.assert_allclose(net.ntk(X, other=net0), Jt @ J0.T, atol=1e-8)
    assert jacobian_change_norm(net, net0, X) == pytest.approx(np.linalg.norm(Jt - J0, 2), rel=1e-6)
    assert np.linalg.norm(Jt - J0, 2) > 1e-3  # training did change the Jacobian


def test_kernel_distance_and_alignment_closed_cases():
    G = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert kernel_distance(G, 5 * G) == pytest.approx(0.0, abs=1e-15)
    assert kernel_distance(np.diag([1.0, 0.0]), np.diag([0.0, 1.0])) == pytest.approx(1.0)
    y = np.array([1.0, -2.0])
    assert alignment(np.outer(y, y), y) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        kernel_distance(G, np.eye(3))


def test_diagonal_rnn_and_mlp_follow_the_diagnostics_protocol():
    """DiagonalRNN (windows) and an MLP (the Elman RNN on one flattened step) under the same diagnostics."""
    from meanfield.architectures.diagonal.network import DiagonalRNN
    from meanfield.data import make_task

    task = make_task("delay1")
    ws = task.chain.sample_windows(5, 20, rng=3)
    X, y = ws.values[:14], task.conditional_mean(ws)[:14]
    small = DiagonalRNN(6, seed=4, symmetric=False)
    trained = small.copy()
    trained.train(X, y, 0.5, 5)
    J0, Jt = finite_difference_jacobian(small, X), finite_difference_jacobian(trained, X)
    np.testing.assert_allclose(trained.ntk(X, other=small), Jt @ J0.T, atol=1e-8)
    assert jacobian_change_norm(trained, small, X) == pytest.approx(np.linalg.norm(Jt - J0, 2), rel=1e-6)
    for width, expect_small in ((64, False), (4096, True)):
        d = track_training(DiagonalRNN(width, seed=5), X, y, ws.values[14:], lr=1.0, steps=20, checkpoints=2)
        assert d.train_loss[-1] < d.train_loss[0]
        assert (d.kernel_distance[-1] < 1e-3) == expect_small, (width, d.kernel_distance)
    flat = [x.reshape(1, -1) for x in X]
    mlp = ElmanRNN(256, flat[0].shape[1], activation="relu", seed=6)
    d = track_training(mlp, flat, y, [x.reshape(1, -1) for x in ws.values[14:]], lr=0.2, steps=10, checkpoints=2)
    assert d.train_loss[-1] < d.train_loss[0] and np.all(np.isfinite(d.kernel_distance))


def test_ntk_gp_is_the_law_of_the_linearised_network_under_gaussian_initialisation():
    """Monte Carlo: f_0 drawn from the NNGP, then the GD map with the NTK, step by step; the sample mean and
    covariance on the test points agree with the closed form within 4 standard errors of S samples."""
    rng = np.random.default_rng(3)
    M, P, S, lr, steps = 6, 3, 40000, 0.7, 5
    A, B = rng.normal(size=(M + P, 4)), rng.normal(size=(M + P, M + P))
    nngp, ntk = A @ A.T + 0.1 * np.eye(M + P), B @ B.T / (M + P)
    y = rng.normal(size=M)
    f = rng.multivariate_normal(np.zeros(M + P), nngp, size=S)  # (S, M + P)
    for _ in range(steps):
        f = f - lr * (f[:, :M] - y) @ ntk[:, :M].T / M
    mean, cov = ntk_gp(nngp, ntk, y, lr=lr, steps=steps)
    test = f[:, M:]
    se_mean = np.sqrt(np.diag(cov) / S)
    assert np.all(np.abs(test.mean(axis=0) - mean) < 4 * se_mean), (test.mean(axis=0), mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / S)
    assert np.all(np.abs(np.cov(test.T) - cov) < 4 * se_cov)
    assert np.max(np.abs(mean)) > 20 * np.max(se_mean)  # it did train
    m0, c0 = ntk_gp(nngp, ntk, y, lr=lr, steps=0)  # untrained: the prior
    assert np.all(m0 == 0) and np.allclose(c0, nngp[M:, M:], atol=1e-14)
    with pytest.raises(ValueError, match="test point"):
        ntk_gp(nngp[:M, :M], ntk[:M, :M], y, lr=lr, steps=1)


def test_relative_change_and_the_stability_constant_by_their_formulas():
    a0, b0 = np.array([1.0, 2.0]), np.array([[3.0], [-1.0]])
    at, bt = np.array([1.5, 2.0]), np.array([[3.0], [1.0]])
    assert relative_change([at, bt], [a0, b0]) == pytest.approx(np.sqrt((0.25 + 4.0) / (1 + 4 + 9 + 1)), rel=1e-15)
    rng = np.random.default_rng(2)
    X = [rng.normal(size=(3, 1)) for _ in range(4)]
    y = rng.normal(size=4)
    net = ElmanRNN(6, 1, activation="tanh", seed=3)
    d = track_training(net, X, y, X[:2], lr=0.3, steps=10)  # the default: 5 checkpoints after the start
    np.testing.assert_allclose(d.times, 0.3 * np.arange(0, 11, 2), rtol=1e-15)
    assert d.lambda_min0 == pytest.approx(np.linalg.eigvalsh(net.ntk(X))[0], rel=1e-12)
    assert d.stability_constant == pytest.approx(np.max(d.jacobian_change) / np.sqrt(d.lambda_min0), rel=1e-12)
    assert d.stability_constant > 0 and d.jacobian_change[0] < 1e-6 * np.max(d.jacobian_change)  # sqrt of rounding


def test_gd_stability_times_and_loss_of_a_mup_network_by_their_formulas():
    assert gd_stability(np.diag([1.0, 4.0, 2.0]), 0.75) == pytest.approx(0.75 * 4.0 / 3)
    rng = np.random.default_rng(4)
    X = [rng.normal(size=(3, 1)) for _ in range(3)]
    y = rng.normal(size=3)
    net = ElmanRNN(6, 1, activation="tanh", parameterisation="mup", seed=1)
    d = track_training(net, X, y, X[:1], lr=0.01, steps=4, checkpoints=2, kernels=False)
    np.testing.assert_allclose(d.times, 0.01 * 6 * np.array([0, 2, 4]), rtol=1e-15)  # muP: t = lr n k
    assert d.train_loss[0] == pytest.approx(0.5 * np.mean((net(X) - y) ** 2), rel=1e-14)


@pytest.mark.parametrize("share, warned", [(0.99, False), (1.01, True)])
def test_a_step_beyond_the_linearised_gd_stability_limit_is_warned(share, warned):
    """lr above 2M / lambda_max(K) makes the linearised GD map diverge, which the discrete gap would report."""
    rng = np.random.default_rng(5)
    X = [rng.normal(size=(3, 1)) for _ in range(4)]
    y = rng.normal(size=4)
    net = ElmanRNN(6, 1, activation="tanh", seed=3)
    K = net.ntk(X)
    lr = share * 2.0 / gd_stability(K, 1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        track_training(net, X, y, X[:1], lr=lr, steps=1, checkpoints=1, K=K, kernels=False)
    texts = [str(w.message) for w in caught if "stability limit" in str(w.message)]
    assert bool(texts) == warned
    if warned:
        assert f"{2 * lr / gd_stability(K, lr):.3g} = 2M / lambda_max(K)" in texts[0]
