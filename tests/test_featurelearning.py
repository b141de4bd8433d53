import numpy as np
import pytest

from meanfield.architectures.mup.network import MuPNetwork, langevin
from meanfield.stats import geweke_z, integrated_autocorrelation


@pytest.mark.parametrize("shared", [True, False])
def test_energy_gradient_equals_finite_differences(shared):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(4, 4, 2)), rng.normal(size=(4, 4))
    readout = rng.random((4, 4)) < 0.5
    net = MuPNetwork(5, 2, 3, shared=shared, activation="tanh", g=1.3, seed=1)

    def energy():
        return 0.7 * net.N / 2 * np.sum(np.where(readout, y - net(X), 0.0) ** 2)

    grads, phi, _, _ = net.data_gradient(X, y, readout, 0.7)
    assert phi == pytest.approx(energy(), rel=1e-12)
    h = 1e-6
    for key, P in net.params.items():
        for idx in list(np.ndindex(P.shape))[:40]:
            old = P[idx]
            P[idx] = old + h
            up = energy()
            P[idx] = old - h
            down = energy()
            P[idx] = old
            assert grads[key][idx] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8), (key, idx)


def test_integrated_autocorrelation_of_an_ar1_series():
    rng = np.random.default_rng(2)
    rho, n = 0.8, 200_000
    x = np.empty(n)
    x[0] = 0.0
    eps = rng.standard_normal(n)
    for k in range(1, n):
        x[k] = rho * x[k - 1] + eps[k]
    assert integrated_autocorrelation(x) == pytest.approx((1 + rho) / (1 - rho), rel=0.1)  # 9


@pytest.mark.parametrize("shared", [True, False])
def test_langevin_without_data_samples_the_prior_kernels(shared):
    """beta = 0: the posterior is the prior, which the exact Ornstein-Uhlenbeck step samples without
    discretisation bias even at a large step. Sampled C_{t,t'} against 3000 independent prior networks,
    within 4 standard errors (effective sample sizes from the autocorrelation)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3, 3, 2))
    kw = dict(shared=shared, activation="tanh", g=1.2)
    net = MuPNetwork(24, 2, 2, seed=4, **kw)
    samples = langevin(net, X, np.zeros(3), beta=0.0, step_size=0.3, n_steps=6000, burn_in=100, thin=2, seed=5)
    mean, se = samples.kernel_estimate()
    prior = np.array([MuPNetwork(24, 2, 2, seed=[6, s], **kw).kernels(X) for s in range(3000)])
    prior_mean, prior_se = prior.mean(axis=0), prior.std(axis=0, ddof=1) / np.sqrt(len(prior))
    allowed = 4 * np.sqrt(se**2 + prior_se**2)
    assert np.all(np.abs(mean - prior_mean) <= allowed), np.max(np.abs(mean - prior_mean) / allowed)
    assert samples.outputs.shape == (2950, 3, 3)


def test_sampler_validation():
    net = MuPNetwork(4, 1, 2, seed=0)
    with pytest.raises(ValueError, match="X must be"):
        langevin(net, np.zeros((3, 5, 1)), np.zeros(3), beta=1.0, step_size=0.1, n_steps=10, burn_in=1)
    with pytest.raises(ValueError, match="y must be"):
        langevin(net, np.zeros((3, 3, 1)), np.zeros((2, 3)), beta=1.0, step_size=0.1, n_steps=10, burn_in=1)
    with pytest.raises(ValueError, match="beta"):
        langevin(net, np.zeros((3, 3, 1)), np.zeros(3), beta=-1.0, step_size=0.1, n_steps=10, burn_in=1)
    with pytest.raises(ValueError, match="activation"):
        MuPNetwork(4, 1, 2, activation="relu")


def test_geweke_flags_a_drifting_chain():
    rng = np.random.default_rng(4)
    stationary = rng.standard_normal(4000)
    assert abs(geweke_z(stationary)) < 4
    assert abs(geweke_z(stationary + 3 * np.exp(-np.arange(4000) / 400))) > 4
