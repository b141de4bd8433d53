"""meanfield.stats against exact references: the rate fit written as weighted least squares with the
Welch-Satterthwaite degrees of freedom, and the autocorrelation estimators by direct sums."""

import numpy as np
import pytest
from scipy import stats as sps

from meanfield.stats import chain_mean_se, fit_rate, geweke_z, integrated_autocorrelation, mean_interval


def _reference_fit(x, errors, scale, level):
    """The fit by its textbook construction: OLS of log(mean error) on u = log x (or x), the covariance of the
    coefficients (A'A)^-1 A' diag(v) A (A'A)^-1 with v_k = s_k^2 / (n_k m_k^2) (the delta method), and the
    Welch-Satterthwaite degrees of freedom (sum w_k v_k)^2 / sum (w_k v_k)^2 / (n_k - 1) of the slope's variance."""
    u = np.log(x) if scale == "log" else np.asarray(x, float)
    A = np.column_stack([np.ones_like(u), u])
    means = np.array([np.mean(e) for e in errors])
    n = np.array([len(e) for e in errors])
    v = np.array([np.var(e, ddof=1) for e in errors]) / (n * means**2)
    pinv = np.linalg.inv(A.T @ A) @ A.T  # rows: intercept, slope as linear maps of log m
    intercept, slope = pinv @ np.log(means)
    cov = pinv @ np.diag(v) @ pinv.T
    terms = pinv[1] ** 2 * v
    dof = terms.sum() ** 2 / np.sum(terms**2 / (n - 1))
    half = sps.t.ppf(0.5 + level / 2, dof) * np.sqrt(cov[1, 1])
    return dict(slope=slope, intercept=intercept, se=np.sqrt(cov[1, 1]), dof=dof, ci_low=slope - half,
                ci_high=slope + half, cov=np.array([[cov[1, 1], cov[1, 0]], [cov[0, 1], cov[0, 0]]]))


@pytest.mark.parametrize("scale, level", [("log", 0.95), ("linear", 0.8)])
def test_fit_rate_equals_weighted_least_squares_with_welch_satterthwaite(scale, level):
    rng = np.random.default_rng(3)
    x = np.array([64.0, 128.0, 256.0, 1024.0])
    sizes = [2, 3, 5, 9]  # unequal seed counts: n and n - 1 differ in every term
    errors = [np.exp(rng.normal(-0.5 * np.log(xi), 0.3, size=k)) for xi, k in zip(x, sizes)]
    fit = fit_rate(x, errors, scale=scale, level=level)
    ref = _reference_fit(x, errors, scale, level)
    for name in ("slope", "intercept", "se", "dof", "ci_low", "ci_high"):
        assert getattr(fit, name) == pytest.approx(ref[name], rel=1e-12, abs=1e-14), name
    np.testing.assert_allclose(np.array(fit.cov), ref["cov"], rtol=1e-12, atol=1e-300)
    assert fit.level == level and fit.scale == scale
    at = np.array([100.0, 500.0])
    u = np.log(at) if scale == "log" else at
    A = np.column_stack([np.ones_like(u), u])  # the band: the fitted line's pointwise interval
    cov = np.array([[ref["cov"][1, 1], ref["cov"][0, 1]], [ref["cov"][0, 1], ref["cov"][0, 0]]])
    half = sps.t.ppf(0.5 + level / 2, ref["dof"]) * np.sqrt(np.einsum("ki,ij,kj->k", A, cov, A))
    centre = ref["intercept"] + ref["slope"] * u
    np.testing.assert_allclose(fit.band(at), (np.exp(centre - half), np.exp(centre + half)), rtol=1e-12)


def test_fit_rate_default_level_and_an_exact_power_law():
    x = [100.0, 400.0, 1600.0]
    errors = [[1.0, 1.1], [0.5, 0.55], [0.25, 0.275]]
    fit = fit_rate(x, errors)
    assert fit.level == 0.95 and fit.slope == pytest.approx(-0.5, abs=1e-12)
    assert fit.intercept == pytest.approx(np.log(1.05 * 10), rel=1e-12)


def test_fit_rate_interval_covers_at_its_level():
    """Monte Carlo: 2000 studies of lognormal errors with true slope -1/2; coverage within 3 binomial sd."""
    rng = np.random.default_rng(0)
    x = np.array([64.0, 128.0, 256.0, 512.0])
    hits, trials = 0, 2000
    for _ in range(trials):
        errors = [np.exp(rng.normal(-0.5 * np.log(xi), 0.2, size=8)) for xi in x]
        fit = fit_rate(x, errors, level=0.9)
        hits += fit.ci_low <= -0.5 <= fit.ci_high
    sd = np.sqrt(0.9 * 0.1 / trials)
    assert abs(hits / trials - 0.9) < 3 * sd + 0.01  # the delta method's small bias at 8 seeds


def test_mean_interval_is_the_percentile_bootstrap():
    values = np.array([0.3, 1.2, -0.4, 2.2, 0.9, 0.1])
    mean, lo, hi = mean_interval(values, level=0.8, n_boot=500, seed=4)
    assert mean == pytest.approx(values.mean())
    rng = np.random.default_rng(4)
    boot = values[rng.integers(0, values.size, (500, values.size))].mean(axis=1)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(boot, [0.1, 0.9])), rel=1e-14)
    assert lo < mean < hi


def _tau_by_direct_sums(x, c=5.0):
    x = np.asarray(x, float) - np.mean(x)
    n = x.size
    acf = np.array([np.dot(x[: n - k], x[k:]) for k in range(n)])
    acf = acf / acf[0]
    for w in range(1, n):
        tau = 1.0 + 2.0 * acf[1:w + 1].sum()
        if w >= c * tau:
            break
    return max(tau, 1.0)


def test_integrated_autocorrelation_equals_direct_sums_and_the_ar1_value():
    rng = np.random.default_rng(1)
    for rho in (0.0, 0.5, 0.8):
        x = np.zeros(400)
        for t in range(1, x.size):
            x[t] = rho * x[t - 1] + rng.standard_normal()
        assert integrated_autocorrelation(x) == pytest.approx(_tau_by_direct_sums(x), rel=1e-10)
        assert integrated_autocorrelation(x, c=3.0) == pytest.approx(_tau_by_direct_sums(x, c=3.0), rel=1e-10)
    # long AR(1) chain: tau = (1 + rho) / (1 - rho) = 3 for rho = 1/2, within Sokal's error sqrt(2 (2W+1)/n) tau
    x = np.zeros(100_000)
    noise = rng.standard_normal(x.size)
    for t in range(1, x.size):
        x[t] = 0.5 * x[t - 1] + noise[t]
    assert integrated_autocorrelation(x) == pytest.approx(3.0, rel=0.1)
    assert integrated_autocorrelation(np.zeros(10)) == 1.0 and integrated_autocorrelation([1.0, 2.0, 0.5]) == 1.0
    # four steps are enough for an estimate: centred (-1.5, -0.5, 0.5, 1.5) has lag-1 autocorrelation 1.25 / 5, and
    # with c = 1/2 the window stops at W = 1: tau = 1 + 2 / 4
    assert integrated_autocorrelation([1.0, 2.0, 3.0, 4.0], c=0.5) == pytest.approx(1.5, rel=1e-12)


def test_chain_mean_se_and_geweke_z_by_their_formulas():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 2)).cumsum(axis=0) * 0.1 + rng.standard_normal((300, 2))
    se = chain_mean_se(x)
    for j in range(2):
        tau = _tau_by_direct_sums(x[:, j])
        assert se[j] == pytest.approx(np.std(x[:, j], ddof=1) * np.sqrt(tau / 300), rel=1e-10)
    assert chain_mean_se(x[:, 0]) == pytest.approx(se[0])
    y = x[:, 0]
    a, b = y[:30], y[-150:]
    var = sum(np.var(p, ddof=1) * _tau_by_direct_sums(p) / p.size for p in (a, b))
    assert geweke_z(y) == pytest.approx((a.mean() - b.mean()) / np.sqrt(var), rel=1e-10)
    a, b = y[:60], y[-90:]
    var = sum(np.var(p, ddof=1) * _tau_by_direct_sums(p) / p.size for p in (a, b))
    assert geweke_z(y, first=0.2, last=0.3) == pytest.approx((a.mean() - b.mean()) / np.sqrt(var), rel=1e-10)
    assert geweke_z(np.ones(50)) == 0.0
