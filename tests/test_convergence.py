import numpy as np
import pytest

from meanfield.data import make_task
from meanfield.estimators import gaussian_moment_errors, memory_state_errors, trajectory_errors
from meanfield.stats import fit_rate


def synthetic(slope, widths, seeds, rng, noise=0.3):
    return [2.0 * N**slope * rng.lognormal(0, noise, seeds) for N in widths]


def test_fit_rate_recovers_a_known_slope_and_covers_it():
    rng = np.random.default_rng(0)
    widths = 2 ** np.arange(7, 15)
    fit = fit_rate(widths, synthetic(-0.5, widths, 8, rng))
    assert fit.covers(-0.5) and abs(fit.slope + 0.5) < 0.05 and fit.ci_high < 0
    # a different true slope is not covered
    assert not fit_rate(widths, synthetic(-0.25, widths, 8, rng)).covers(-0.5)


@pytest.mark.parametrize("n_widths, seeds, noise", [(8, 8, 0.3), (5, 8, 0.6), (3, 4, 0.3)])
def test_fit_rate_interval_has_its_nominal_coverage(n_widths, seeds, noise):
    """Coverage of the nominal 95% over 2000 independent data sets lies in [0.93, 0.97]: 3.5 binomial standard
    errors (0.005) around 0.95 on each side, so a correct interval fails this with probability below 1e-3."""
    rng = np.random.default_rng(n_widths)
    widths = 2.0 ** np.arange(7, 7 + n_widths)
    hits = sum(fit_rate(widths, synthetic(-0.5, widths, seeds, rng, noise)).covers(-0.5) for _ in range(2000))
    assert 0.93 <= hits / 2000 <= 0.97, hits / 2000


def test_fit_rate_standard_error_is_the_spread_of_the_slope():
    """The delta-method standard error against the spread of slopes over independent data sets."""
    rng = np.random.default_rng(11)
    widths = 2.0 ** np.arange(8, 13)
    fits = [fit_rate(widths, synthetic(-0.5, widths, 8, rng)) for _ in range(2000)]
    sd = np.std([f.slope for f in fits], ddof=1)  # relative standard error of an sd from 2000 draws: 1.6%
    assert np.median([f.se for f in fits]) == pytest.approx(sd, rel=0.1)


def test_fit_rate_geometric_scale():
    rng = np.random.default_rng(1)
    k = np.arange(1, 21)
    errs = [0.7**kk * rng.lognormal(0, 0.2, 6) for kk in k]
    fit = fit_rate(k, errs, scale="linear")
    assert np.exp(fit.ci_low) <= 0.7 <= np.exp(fit.ci_high)
    lo, hi = fit.band(k)
    assert np.all(lo <= fit.predict(k)) and np.all(fit.predict(k) <= hi)


def test_fit_rate_is_reproducible_and_validates():
    rng = np.random.default_rng(2)
    data = synthetic(-0.5, [64, 128, 256], 4, rng)
    assert fit_rate([64, 128, 256], data) == fit_rate([64, 128, 256], data)
    with pytest.raises(ValueError, match="positive"):
        fit_rate([64, -128], data[:2])
    with pytest.raises(ValueError, match="one array per x"):
        fit_rate([64, 128, 256], data[:2])
    with pytest.raises(ValueError, match="positive"):
        fit_rate([64, 128], [[1.0], [0.0]])


def test_trajectory_errors():
    limit = np.zeros((3, 2))
    out = np.array([[0.0, 0.0], [0.3, -0.4], [0.0, 0.1]])
    sup, l2 = trajectory_errors(out, limit, weights=[3.0, 1.0])
    assert sup == pytest.approx(0.4)
    np.testing.assert_allclose(l2, [0.0, np.sqrt(0.75 * 0.09 + 0.25 * 0.16), np.sqrt(0.25 * 0.01)])
    with pytest.raises(ValueError, match="same shape"):
        trajectory_errors(out, limit[:2])


def test_gaussian_moment_errors_against_exact_samples():
    rng = np.random.default_rng(4)
    cov = np.array([[[1.0, 0.3], [0.3, 0.5]]] * 2)
    mean = np.array([[0.2, -0.1]] * 2)
    samples = mean + rng.multivariate_normal([0, 0], cov[0], size=(4000, 2))
    res = gaussian_moment_errors(samples, mean, cov)
    assert res["mean_error"] < 4 * res["mean_se"] and res["var_error"] < 4 * res["var_se"]
    biased = gaussian_moment_errors(samples + 0.3, mean, cov)
    assert biased["mean_error"] > 10 * biased["mean_se"]


def test_memory_state_converges_no_slower_than_rho():
    task = make_task("delay1")
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(1, 1000)), rng.uniform(-0.6, 0.6, 1000)
    errs = memory_state_errors(task.chain, W, b, n_steps=15, n_sequences=4, seed=6)
    assert np.all(np.diff(errs.mean(axis=0)) < 0)
    fit = fit_rate(np.arange(1, 16), list(errs.T), scale="linear")
    assert np.exp(fit.ci_high) < 0.6  # the contraction modulus bounds the geometric rate


class _FixedPaths:
    """A stand-in chain whose simulate() hands out prescribed paths (state index = row of the values)."""

    def __init__(self, paths):
        self.paths = list(paths)

    def simulate(self, n_steps, rng=None):
        path = self.paths.pop(0)
        assert path.shape[0] == n_steps
        return path

    def values(self, path):
        return path


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_memory_state_errors_against_a_numpy_reference(activation):
    """Each error is mean_i |S_i(last k inputs) - S_i(whole path)|: recomputed here with the NumPy state
    recursion (meanfield.reference) on prescribed paths, for every k. With no burn-in the window of the
    last k = n_steps inputs is the whole path (error exactly 0), and the contraction bounds every error
    by mean_i (|b_i| sup|sigma'|)^k (sup|sigma| = 1: the state forgotten is at most 1 away from 0)."""
    from meanfield.activations import get_activation
    from meanfield.reference import window_states_reference

    rng = np.random.default_rng(7)
    N, d, n_steps = 64, 2, 12
    W, b = rng.normal(size=(d, N)), rng.uniform(-0.8, 0.8, N)
    lip = get_activation(activation).sup_derivative
    for burn_in in (0, 9):
        paths = rng.normal(size=(3, burn_in + n_steps, d))
        errs = memory_state_errors(_FixedPaths(paths), W, b, activation=activation, n_steps=n_steps,
                                   n_sequences=3, burn_in=burn_in)
        assert errs.shape == (3, n_steps)
        for s, path in enumerate(paths):
            full = window_states_reference(path[None], W.T, b, activation)[0][0]
            expected = [np.mean(np.abs(window_states_reference(path[None, -k:], W.T, b, activation)[0][0] - full))
                        for k in range(1, n_steps + 1)]
            np.testing.assert_allclose(errs[s], expected, rtol=1e-9, atol=1e-15)
        bound = np.array([np.mean((np.abs(b) * lip) ** k) for k in range(1, n_steps + 1)])
        assert np.all(errs <= bound + 1e-15)
        if burn_in == 0:
            assert np.all(errs[:, -1] == 0)
        assert np.all(errs[:, :-1] > 0)
