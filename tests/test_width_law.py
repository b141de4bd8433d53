"""The width-length law's estimators on synthetic data with known answers, and the order parameter's closed form."""

import math

import numpy as np
import pytest
from scipy import optimize

from meanfield.architectures.elman import Elman
from meanfield.studies.width_law import crossing, crossings, order_parameter, power_law

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


def test_power_law_recovers_gamma_and_its_interval():
    rng = np.random.default_rng(1)
    lengths = [4, 8, 16, 32, 64]
    gamma = 0.7
    cells = []
    for T in lengths:
        reps = 50.0 * T**gamma * np.exp(0.05 * rng.standard_normal(1000))
        cells.append(dict(width=50.0 * T**gamma, replicates=reps))
    fit = power_law(lengths, cells)
    assert fit["gamma"] == pytest.approx(gamma, abs=1e-12) and fit["constant"] == pytest.approx(50.0)
    # replicate slopes: sd = 0.05 / sqrt(sum (log T - mean)^2) for independent log-normal noise
    sd = 0.05 / np.sqrt(np.sum((np.log(lengths) - np.mean(np.log(lengths))) ** 2))
    assert fit["ci"][0] == pytest.approx(gamma - 1.96 * sd, abs=0.3 * sd)
    assert fit["ci"][1] == pytest.approx(gamma + 1.96 * sd, abs=0.3 * sd)
    assert power_law(lengths[:2], cells[:2]) is None


def test_order_parameter_against_the_closed_form_of_erf():
    """erf: E[erf(g)^2] = (2/pi) arcsin(2q/(1+2q)) and E[erf'(g)^2] = (4/pi)/sqrt(1+4q) for g ~ N(0, q)."""
    for sigma_w in (1.0, 1.65, 2.0):
        arch = Elman(activation="erf", sigma_w=sigma_w, sigma_u=1.0, sigma_b=0.1)
        q = optimize.brentq(lambda q, s=sigma_w: s**2 * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + 1.01 - q,
                            1e-3, 100)
        assert order_parameter(arch) == pytest.approx(sigma_w**2 * 4 / math.pi / math.sqrt(1 + 4 * q), rel=1e-10)
    assert order_parameter(Elman(activation="linear", sigma_w=0.8)) == pytest.approx(0.64, rel=1e-12)
    # the default study's middle sigma_w sits at the edge of chaos
    assert abs(order_parameter(Elman(activation="erf", sigma_w=1.65, sigma_u=1.0, sigma_b=0.1)) - 1) < 0.01
