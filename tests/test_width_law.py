"""The width-length law's estimators on synthetic data with known answers, and the order parameter's closed form."""

import math

import numpy as np
import pytest
from scipy import optimize

from meanfield.architectures.elman import Elman
from meanfield.studies.width_law import crossing, crossings, growth_law, order_parameter

WIDTHS = np.array([32, 64, 128, 256, 512, 1024])


def test_crossing_of_an_exact_power_law_is_exact_measured_or_extrapolated():
    C = 3.0
    means = C * WIDTHS**-0.5  # n* = (C / tol)^2 exactly
    width, status = crossing(WIDTHS, means, 0.2)
    assert status == "measured" and width == pytest.approx((C / 0.2) ** 2, rel=1e-12)
    width, status = crossing(WIDTHS, means, 0.05)  # past the grid: the n^-1/2 law from the widest width
    assert status == "extrapolated" and width == pytest.approx((C / 0.05) ** 2, rel=1e-12)
    width, status = crossing(WIDTHS, means, 1.0)
    assert status == "below the grid" and width == pytest.approx(9.0, rel=1e-12)
    # a steeper law is interpolated exactly between grid points too (log-log linear)
    width, _ = crossing(WIDTHS, 100.0 / WIDTHS, 0.3)
    assert width == pytest.approx(100 / 0.3, rel=1e-12)
    # a bent curve: the crossing is solved on the least-squares power law of the widths within a factor LOCAL = 4
    means = np.array([2.0, 1.5, 0.9, 0.5, 0.4, 0.33])  # crosses 0.7 between 128 and 256 (located at about 181)
    logn, logm = np.log(WIDTHS), np.log(means)
    located = logn[2] + (logm[2] - math.log(0.7)) / (logm[2] - logm[3]) * (logn[3] - logn[2])
    near = np.abs(logn - located) <= math.log(4.0)
    slope, intercept = np.polyfit(logn[near], logm[near], 1)
    assert near.sum() == 4 and crossing(WIDTHS, means, 0.7)[0] == pytest.approx(
        math.exp((math.log(0.7) - intercept) / slope), rel=1e-12)


def test_crossing_interval_covers_the_truth_at_its_level():
    """Gaps with multiplicative noise around C n^-1/2: the 95% bootstrap interval of the crossing covers the true
    (C / tol)^2 in about 95% of repeated experiments (binomial tolerance for 200 repeats)."""
    rng = np.random.default_rng(0)
    C, tol, seeds, repeats = 3.0, 0.2, 8, 200
    truth = (C / tol) ** 2
    hits = 0
    for _ in range(repeats):
        gaps = [C * n**-0.5 * np.exp(0.25 * rng.standard_normal(seeds) - 0.25**2 / 2) for n in WIDTHS]
        ci = crossings(WIDTHS, gaps, tol, rng, n_boot=400)["ci"]
        hits += ci[0] <= truth <= ci[1]
    # percentile bootstrap intervals from 8 seeds under-cover a little; 4 binomial SDs below 0.95 is the bar
    assert hits / repeats > 0.95 - 4 * math.sqrt(0.95 * 0.05 / repeats) - 0.05, hits


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_growth_law_recovers_its_exponent_and_interval(scale):
    """n* = 50 T^0.7 (or 50 exp(0.02 T)) with independent log-normal replicates: the point fit is exact, the percentile
    interval of the replicate slopes is 1.96 sd of least squares, and the other form fits worse."""
    rng = np.random.default_rng(1)
    lengths = np.array([4, 8, 16, 32, 64, 128])
    x = np.log(lengths) if scale == "log" else lengths.astype(float)
    slope = 0.7 if scale == "log" else 0.02
    cells = [dict(width=50.0 * np.exp(slope * xi),
                  replicates=50.0 * np.exp(slope * xi + 0.05 * rng.standard_normal(4000))) for xi in x]
    fit = growth_law(lengths, cells, scale=scale)
    assert fit["slope"] == pytest.approx(slope, abs=1e-12) and fit["constant"] == pytest.approx(50.0)
    assert fit["rms"] < 1e-12
    sd = 0.05 / np.sqrt(np.sum((x - x.mean()) ** 2))
    assert fit["ci"][0] == pytest.approx(slope - 1.96 * sd, abs=0.15 * sd)
    assert fit["ci"][1] == pytest.approx(slope + 1.96 * sd, abs=0.15 * sd)
    other = growth_law(lengths, cells, scale="linear" if scale == "log" else "log")
    assert other["rms"] > 0.05
    assert growth_law(lengths[:2], cells[:2]) is None
    assert growth_law(lengths, [dict(c, width=None) if i % 2 else c for i, c in enumerate(cells)], scale=scale) \
        ["lengths"] == [int(T) for T in lengths[::2]]


def test_order_parameter_against_the_closed_form_of_erf():
    """erf: E[erf(g)^2] = (2/pi) arcsin(2q/(1+2q)) and E[erf'(g)^2] = (4/pi)/sqrt(1+4q) for g ~ N(0, q)."""
    for sigma_w in (1.0, 1.65, 2.0):
        arch = Elman(activation="erf", sigma_w=sigma_w, sigma_u=1.0, sigma_b=0.1)
        q = optimize.brentq(lambda q, s=sigma_w: s**2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + 1.01 - q,
                            1e-3, 100)
        assert order_parameter(arch) == pytest.approx(sigma_w**2 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-10)
    assert order_parameter(Elman(activation="linear", sigma_w=0.8)) == pytest.approx(0.64, rel=1e-12)
    # without inputs q = 0 is a fixed point; above sigma_w^2 = pi/4 the stable one is not 0
    chi = order_parameter(Elman(activation="erf", sigma_w=1.5, sigma_u=0.0, sigma_b=0.0))
    q = optimize.brentq(lambda q: 2.25 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) - q, 1e-3, 100)
    assert chi == pytest.approx(2.25 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-10)
    # inputs of other scales: base = sigma_u^2 x^2 + sigma_b^2 = 0.49 * 2 + 0.09
    arch = Elman(activation="erf", sigma_w=1.2, sigma_u=0.7, sigma_b=0.3)
    q = optimize.brentq(lambda q: 1.44 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + 0.98 + 0.09 - q, 1e-3, 100)
    chi = order_parameter(arch, input_square=2.0)
    assert chi == pytest.approx(1.44 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-10)
    # the default study's middle sigma_w sits at the edge of chaos
    assert abs(order_parameter(Elman(activation="erf", sigma_w=1.65, sigma_u=1.0, sigma_b=0.1)) - 1) < 0.01


def test_analyse_uncertainty_recognises_an_ensemble_drawn_from_the_gp():
    """Members drawn from the NTK-GP itself: its coverage of them is the level and the variance ratio 1, within
    their intervals, so it 'describes' them; members with twice the GP's spread are not described."""
    from meanfield.diagnostics import ntk_gp
    from meanfield.studies.width_law import UncertaintySection, analyse_uncertainty, learning_rate, windows

    section = UncertaintySection(sigma_w=(1.0,), lengths=(6,), widths=(8, 16), max_cost=1e9, members=400, n_train=8,
                                 n_heldout=12, lr_fraction=0.5, steps=5, level=0.9)
    model, data = dict(activation="erf", sigma_u=1.0, sigma_b=0.1), dict(seed=3, n_train=8, n_heldout=12, stream=3)
    X, y, X_held, _ = windows(length=6, **data)
    kp = Elman(**model, sigma_w=1.0).kernel(X + X_held)
    mu, cov = ntk_gp(kp.nngp, kp.ntk, y, lr=learning_rate(kp.ntk[:8, :8], 0.5), steps=5)
    draws = np.random.default_rng(0).multivariate_normal(mu, cov, size=400)  # 1 seed in 8 misses the 95% ratio CI
    outputs = {(1.0, 6, 8): mu + 2 * (draws - mu), (1.0, 6, 16): draws}
    result = analyse_uncertainty(section, model, data, outputs, seed=5)[1.0][6]
    wide, exact = result["rows"]
    lo, hi = exact["gp_covers_members_ci"]
    assert lo < 0.9 < hi and hi - lo < 0.06, exact
    assert exact["variance_ratio_ci"][0] < 1 < exact["variance_ratio_ci"][1]
    assert wide["gp_covers_members_ci"][1] < 0.85 and 3 < wide["variance_ratio"] < 5, wide
    assert result["width_described"] == 16
    # each number of a row by its definition
    from scipy import stats

    _, _, _, y_held = windows(length=6, **data)
    sd, z = np.sqrt(np.diag(cov)), stats.norm.ppf(0.95)
    for row, F in ((wide, outputs[(1.0, 6, 8)]), (exact, draws)):
        m, v = F.mean(axis=0), F.var(axis=0, ddof=1)
        assert row["variance_ratio"] == pytest.approx(v.mean() / np.mean(sd**2), rel=1e-12)
        assert row["mean_offset"] == pytest.approx(np.mean(np.abs(m - mu) / sd), rel=1e-12)
        assert row["gp_covers_members"] == pytest.approx(np.mean(np.abs(F - mu) <= z * sd), rel=1e-12)
        assert row["ensemble_coverage"] == pytest.approx(np.mean(np.abs(y_held - m) <= z * np.sqrt(v)), rel=1e-12)
        nll = 0.5 * np.log(2 * np.pi * v) + 0.5 * (y_held - m) ** 2 / v
        assert row["ensemble_nll"] == pytest.approx(nll.mean(), rel=1e-12) and row["members"] == 400
    # the bootstrap intervals, redrawn in the function's order: held-out points, then members per width
    from meanfield.studies.width_law import N_BOOT

    few = {(1.0, 6, 8): draws[:4], (1.0, 6, 16): draws[4:8]}  # 4 members: ddof matters
    for outs in (outputs, few):
        rows = analyse_uncertainty(section, model, data, outs, seed=5)[1.0][6]["rows"]
        rng = np.random.default_rng(5)
        points = rng.integers(0, 12, (N_BOOT, 12))
        for row, F in zip(rows, (outs[(1.0, 6, 8)], outs[(1.0, 6, 16)])):
            boot = F[rng.integers(0, len(F), (N_BOOT, len(F)))]
            m = np.take_along_axis(boot.mean(axis=1), points, 1)
            v = np.take_along_axis(boot.var(axis=1, ddof=1), points, 1)
            covered = (np.abs(y_held[points] - m) <= z * np.sqrt(v)).mean(axis=1)
            assert row["ensemble_coverage_ci"] == pytest.approx(list(np.quantile(covered, [0.025, 0.975])), rel=1e-12)
    assert result["gp_sd"] == pytest.approx(np.sqrt(np.mean(sd**2)), rel=1e-12)
    assert result["gp_coverage"] == pytest.approx(np.mean(np.abs(y_held - mu) <= z * sd), rel=1e-12)
    with pytest.raises(ValueError, match="uncertainty.level"):
        UncertaintySection(**{**section.__dict__, "level": 1.5})
    assert UncertaintySection(**{**section.__dict__, "members": 3}).members == 3


def test_analyse_width_length_on_synthetic_runs_recovers_the_law_and_skips_diverged_widths():
    """Gaps C(T) n^-1/2 with C = T^0.5 (so n* = T / tol^2: gamma = 1); one diverged network at the narrowest width of
    one length is listed and left out."""
    from meanfield.studies.width_law import WidthLengthSection, analyse_width_length, wl_name

    section = WidthLengthSection(sigma_w=(1.0,), lengths=(4, 16, 64), widths=(32, 64, 128, 256, 512, 1024, 2048),
                                 max_cost=1e12, seeds=3, tolerances=(0.2,), lr_fraction=0.5, steps=8, checkpoints=4,
                                 abandon_above=2.0)
    rng = np.random.default_rng(0)
    runs = {}
    for T in section.lengths:
        for n in section.widths:
            for s in range(3):
                gap = math.sqrt(T / n) * np.exp(0.02 * rng.standard_normal(5))
                runs[wl_name(1.0, T, n, s)] = dict(discrete_gap=gap, flow_gap=gap + 0.05, lr=0.1)
    runs[wl_name(1.0, 16, 32, 1)] = dict(discrete_gap=np.array([np.inf]), flow_gap=np.array([np.inf]), lr=0.1)
    result = analyse_width_length(section, runs, {1.0: [4, 16, 64]}, seed=1)[1.0]
    assert result["lengths"][16]["diverged_widths"] == [32] and result["lengths"][16]["rows"][0]["width"] == 64
    for T, c in result["lengths"].items():
        assert c["slope"]["ci_low"] < -0.5 < c["slope"]["ci_high"]
        assert c["crossings"][0.2]["width"] == pytest.approx(T / 0.04, rel=0.05)
    law = result["laws"][0.2]["measured"]
    assert law["ci"][0] < 1 < law["ci"][1] and law["ci"][1] - law["ci"][0] < 0.1


def test_the_cost_cap_keeps_a_width_exactly_at_it_and_lengths_from_two():
    from meanfield.studies.regime import RegimeConfig

    cfg = RegimeConfig.load(quick=True).replace(**{"width_length.max_cost": 8 * 64**2, "width_length.lengths": [2, 8]})
    assert cfg.width_length.widths_at(8) == (16, 32, 64)  # T n^2 = max_cost exactly is run
    assert cfg.width_length.widths_at(2) == (16, 32, 64, 128)
    assert cfg.width_length.lengths == (2, 8)


def test_gaussian_scores_are_the_normal_interval_and_negative_log_density():
    from scipy import stats

    from meanfield.studies.width_law import _gaussian_scores

    rng = np.random.default_rng(0)
    y, mean, var = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.1, 2.0, 50)
    inside, nll = _gaussian_scores(y, mean, var, stats.norm.ppf(0.95))
    np.testing.assert_allclose(nll, -stats.norm.logpdf(y, mean, np.sqrt(var)), rtol=1e-13)
    np.testing.assert_array_equal(inside, np.abs(stats.norm.cdf(y, mean, np.sqrt(var)) - 0.5) <= 0.45)


def test_uncertainty_run_is_the_member_network_trained_on_the_training_windows():
    from meanfield.studies.width_law import learning_rate, uncertainty_run, windows

    model = dict(activation="tanh")
    data = dict(seed=3, n_train=4, n_heldout=3, stream=3)
    out = uncertainty_run(model, 1.2, data, 0.5, 3, 8, 5, member=2)
    X, y, X_held, _ = windows(length=5, **data)
    arch = Elman(activation="tanh", sigma_w=1.2)
    lr = learning_rate(arch.kernel(X).ntk, 0.5)
    net = arch.network(8, 1, seed=np.random.SeedSequence(3, spawn_key=(4, 5, 8, 2)))
    net.train(X, y, lr, 3, record_every=4)
    assert out["lr"] == lr and out["lr"] == pytest.approx(0.5 * 4 / np.linalg.eigvalsh(arch.kernel(X).ntk)[-1])
    np.testing.assert_array_equal(out["outputs"], net(X_held))
    assert out["outputs"].shape == (3,)


def test_width_length_run_is_the_network_trained_against_the_rntk_gd_map():
    from meanfield.diagnostics import track_training
    from meanfield.studies.width_law import learning_rate, width_length_run, windows

    model, data = dict(activation="tanh"), dict(seed=2, n_train=4, n_heldout=3, stream=1)
    out = width_length_run(model, 1.1, data, 0.5, steps=4, checkpoints=2, width=8, length=5, seed_index=1)
    X, y, X_held, _ = windows(length=5, **data)
    arch = Elman(activation="tanh", sigma_w=1.1)
    K, K_cross = arch.kernel(X).ntk, arch.kernel(X_held, X).ntk
    net = arch.network(8, 1, seed=np.random.SeedSequence(2, spawn_key=(3, 5, 8, 1)))
    d = track_training(net, X, y, X_held, lr=learning_rate(K, 0.5), steps=4, checkpoints=2, K=K, K_cross=K_cross,
                       kernels=False)
    assert out["lr"] == learning_rate(K, 0.5)
    np.testing.assert_array_equal(out["discrete_gap"], d.discrete_gap)
    np.testing.assert_array_equal(out["flow_gap"], d.prediction_gap)
