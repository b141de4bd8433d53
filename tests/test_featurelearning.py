import numpy as np
import pytest

from meanfield.architectures.mup.network import LangevinSamples, MuPNetwork, langevin
from meanfield.stats import chain_mean_se, geweke_z, integrated_autocorrelation


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


def _ar1_columns(rhos, n, rng):
    """Stationary AR(1) series x_k = rho x_{k-1} + eps_k (unit innovations), one column per rho."""
    from scipy.signal import lfilter

    eps = rng.standard_normal((n, len(rhos)))
    eps[0] /= np.sqrt(1 - np.square(rhos))  # x_0 from the stationary law N(0, 1 / (1 - rho^2))
    return np.stack([lfilter([1.0], [1.0, -r], eps[:, j]) for j, r in enumerate(rhos)], axis=1)


def test_chain_mean_se_of_ar1_series_against_the_closed_form():
    """The standard error of the mean of a stationary AR(1) series of n steps is exactly
    sqrt(sigma^2/n (1 + 2 sum_{k<n} (1 - k/n) rho^k)), sigma^2 = 1/(1 - rho^2), about 1/((1 - rho) sqrt n):
    the autocorrelation time (1 + rho)/(1 - rho) multiplies the i.i.d. variance. Tolerance: 4 standard
    deviations of the estimate, from Sokal's var(tau_hat)/tau^2 = 2 (2W + 1)/n with window W = 5 tau and
    from the sample variance (whose series x^2 has autocorrelation time (1 + rho^2)/(1 - rho^2)).
    LangevinSamples.kernel_estimate must report the same standard errors, entry by entry."""
    rng = np.random.default_rng(11)
    rhos, n = np.array([0.0, 0.5, 0.8, 0.9]), 100_000
    x = _ar1_columns(rhos, n, rng)
    k = np.arange(1, n)
    exact = np.array([np.sqrt((1 + 2 * np.sum((1 - k / n) * r**k)) / (1 - r * r) / n) for r in rhos])
    tau = (1 + rhos) / (1 - rhos)
    rel_sd = np.sqrt(0.25 * 2 * (10 * tau + 1) / n + (1 + rhos**2) / (1 - rhos**2) / (2 * n))
    se = chain_mean_se(x)
    assert se.shape == (4,)
    np.testing.assert_array_less(np.abs(se / exact - 1), 4 * rel_sd)
    assert chain_mean_se(x[:, 3]) == pytest.approx(se[3], rel=1e-12)  # one series: a float
    # the recorded kernels of a sampler, shape (S, T + 1, P, T + 1, P) = (n, 2, 1, 2, 1)
    samples = LangevinSamples(np.zeros((n, 2, 1)), x.reshape(n, 2, 1, 2, 1), np.zeros(n), 0.1, 1)
    mean, kernel_se = samples.kernel_estimate()
    np.testing.assert_allclose(mean.ravel(), x.mean(axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_less(np.abs(kernel_se.ravel() / exact - 1), 4 * rel_sd)


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



def _conditional_mean_of_outputs(kernels, y, readout, beta, g_v):
    """E[f | U, W] under the posterior: f = A v / N is linear in v ~ N(0, g_v^2), so given U and W
    (through C = A A^T / N) Gaussian conditioning on the data term (N beta)/2 |y_R - f_R|^2 gives
    E[f | U, W] = beta g_v^2 C_{., R} (I + beta g_v^2 C_{R, R})^{-1} y_R, for every sample of C."""
    S, T1, P = kernels.shape[:3]
    C = kernels.reshape(S, T1 * P, T1 * P)
    r = readout.ravel()
    a = beta * g_v**2
    rhs = np.broadcast_to(y.ravel()[r], (S, r.sum()))[..., None]
    sol = np.linalg.solve(np.eye(r.sum()) + a * C[:, r][:, :, r], rhs)[..., 0]
    return a * np.einsum("sar,sr->sa", C[:, :, r], sol).reshape(S, T1, P)


@pytest.mark.parametrize("activation, shared, depth, g, step_size", [("linear", True, 1, 0.8, 0.05),
                                                                      ("tanh", False, 2, 1.0, 0.1)])
def test_langevin_outputs_agree_with_gaussian_conditioning_on_the_readout(activation, shared, depth, g, step_size):
    """Rao-Blackwell check of the posterior's data term: for every recorded sample, f minus its exact
    conditional mean given U and W (a closed form in the recorded C, above) has mean zero under the
    posterior. Its chain average must be within 4.5 standard errors (chain_mean_se; over 12 chains of this
    length the z-scores had sd 1.1-1.2, the autocorrelation time being estimated) of 0, while the
    conditional mean at beta / 2 (the posterior of a sampler whose data force is halved) is rejected
    (z of 13 or more over those chains). Width 8, so that f given U, W has an O(1/N) spread; the step
    keeps eta (1 + beta g_v^2 lambda_max(C)) well below 2 (the linear kernel reaches about 8)."""
    rng = np.random.default_rng(12)
    N, d, P, beta, g_v = 8, 2, 3, 1.0, 1.2
    X = rng.normal(size=(P, depth + 1, d)) / np.sqrt(d)
    readout = np.zeros((depth + 1, P), dtype=bool)
    readout[-1] = True
    readout[depth - 1, 0] = True
    y = np.where(readout, rng.choice([-1.0, 1.0], size=(depth + 1, P)), 0.0)
    net = MuPNetwork(N, d, depth, shared=shared, activation=activation, g=g, g_v=g_v, seed=13)
    samples = langevin(net, X, y, readout, beta=beta, step_size=step_size, n_steps=7000, burn_in=1000, thin=1,
                       seed=14)
    residual = samples.outputs - _conditional_mean_of_outputs(samples.kernels, y, readout, beta, g_v)
    z = np.abs(residual.mean(axis=0)) / chain_mean_se(residual)
    assert z.max() < 4.5, z
    halved = samples.outputs - _conditional_mean_of_outputs(samples.kernels, y, readout, beta / 2, g_v)
    assert np.max(np.abs(halved.mean(axis=0)) / chain_mean_se(halved)) > 8  # the check has the power to tell

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
