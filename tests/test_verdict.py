"""The convergence study's verdict and diagnoses (meanfield.studies.convergence.verdict): on synthetic reports
whose answer is known, each diagnosis on a report built to trigger it and on one built not to; and on real
configs in tests/test_study.py (the quick study: consistent, nothing flagged) and here (a target that the limit
cannot learn)."""

import math

import numpy as np
import pytest

from meanfield.stats import fit_rate
from meanfield.studies.convergence import LEARNS_NOTHING, MINOR_SHARE, TARGET_HALF_WIDTH, verdict

WIDTHS = [128, 256, 512, 1024, 2048]


def report(errors, *, seeds=None, loss_ratio=0.3, grid_error=0.0, quadrature=1e-9, moments=None, widths=WIDTHS,
           rule="trapezoid", outputs=None):
    """A convergence report with the fields the verdict reads."""
    errors = [np.asarray(e, float) for e in errors]
    out = dict(widths=widths, seeds=seeds or errors[0].size, rate=fit_rate(widths, errors).as_dict(),
               errors={str(N): dict(sup_per_seed=list(e)) for N, e in zip(widths, errors)},
               limit=dict(loss_ratio=loss_ratio, grid_error=grid_error, kernel_quadrature_error=quadrature,
                          quadrature_error=outputs, quadrature=dict(rule=rule)))
    if moments is not None:
        out["moments"] = moments
    return out


def power_law(exponents, seeds=16, noise=0.05, seed=0, widths=WIDTHS):
    """Errors 1 * N^p (one exponent per width, as a local slope) times lognormal noise."""
    rng = np.random.default_rng(seed)
    logm = np.cumsum([0.0] + [p * math.log(b / a) for p, a, b in zip(exponents, widths, widths[1:])])
    return [np.exp(m + noise * rng.standard_normal(seeds)) for m in logm]


def kinds(v):
    return [d["kind"] for d in v["diagnoses"]]


def test_a_clean_half_power_law_is_consistent_with_nothing_flagged():
    v = verdict(report(power_law([-0.5] * 4)))
    assert v["status"] == "consistent" and v["diagnoses"] == [] and v["suggested_widths"] is None
    rate = fit_rate(WIDTHS, power_law([-0.5] * 4))
    assert v["sentence"] == (f"consistent with the theory: the rate {rate.slope:.3f} [{rate.ci_low:.3f}, "
                             f"{rate.ci_high:.3f}] holds -1/2")


def test_small_pre_asymptotic_widths_are_found_with_their_refit_lack_of_fit_and_suggested_widths():
    errors = power_law([-0.05, -0.2, -0.5, -0.5])  # flat at the small widths, then -1/2
    r = report(errors)
    v = verdict(r)
    assert v["status"] == "misses" and kinds(v) == ["pre-asymptotic"]
    refit = fit_rate(WIDTHS[2:], errors[2:])  # the first subset that holds -1/2: N >= 512
    assert not fit_rate(WIDTHS[1:], errors[1:]).covers(-0.5) and refit.covers(-0.5)
    text = v["diagnoses"][0]["text"]
    assert f"without N < 512 the rate is {refit.slope:.3f}" in text and v["suggested_widths"] == [512, 1024, 2048,
                                                                                                   4096, 8192]
    # lack of fit by hand: log m + log(N)/2 against its inverse-variance mean over N >= 512
    logm = np.log([e.mean() for e in errors])
    var = np.array([e.var(ddof=1) / (e.size * e.mean() ** 2) for e in errors])
    shifted = logm + 0.5 * np.log(WIDTHS)
    c = np.sum(shifted[2:] / var[2:]) / np.sum(1 / var[2:])
    kept = np.arange(5) >= 2  # a kept width is part of c: Var(s_j - c) = v_j - 1/W; a dropped one is independent
    z = (shifted - c) / np.sqrt(var + np.where(kept, -1, 1) / np.sum(1 / var[2:]))
    assert "z = " + ", ".join(f"{x:+.1f}" for x in z) in text and abs(z[0]) > 10 and abs(z[-1]) < 3


def test_a_rate_that_misses_everywhere_is_not_called_pre_asymptotic():
    v = verdict(report(power_law([-1.0] * 4)))
    assert v["status"] == "misses" and kinds(v) == ["not pre-asymptotic"] and v["suggested_widths"] is None


def test_a_narrow_interval_around_zero_misses_without_asking_for_seeds():
    v = verdict(report(power_law([0.0] * 4, seeds=16, noise=0.02), loss_ratio=1.0))
    assert v["status"] == "misses" and v["sentence"].endswith("excludes -1/2 and holds no decrease at all")
    assert kinds(v) == ["learns nothing"]


def test_too_few_seeds_says_how_many_would_resolve_the_rate():
    errors = power_law([-0.5] * 4, seeds=2, noise=0.8, seed=3)
    r = report(errors)
    lo, hi = r["rate"]["ci_low"], r["rate"]["ci_high"]
    assert lo < 0 < hi
    v = verdict(r)
    needed = math.ceil(2 * ((hi - lo) / 2 / TARGET_HALF_WIDTH) ** 2)
    assert v["status"] == "no trend established" and kinds(v) == ["too few seeds"]
    assert f"about {needed} seeds would narrow it" in v["diagnoses"][0]["text"]
    assert "too few seeds" not in kinds(verdict(report(power_law([-0.5] * 4, seeds=16, noise=0.05))))


@pytest.mark.parametrize("ratio, flagged", [(LEARNS_NOTHING + 0.01, True), (LEARNS_NOTHING - 0.01, False)])
def test_a_limit_that_learns_nothing_is_flagged(ratio, flagged):
    v = verdict(report(power_law([-0.5] * 4), loss_ratio=ratio))
    assert ("learns nothing" in kinds(v)) == flagged


@pytest.mark.parametrize("field, rule, fix", [("grid_error", "trapezoid", "limit.grid"),
                                              ("quadrature", "trapezoid", "limit.order"),
                                              ("quadrature", "sobol", "limit.nodes")])
@pytest.mark.parametrize("share, flagged", [(MINOR_SHARE * 1.01, True), (MINOR_SHARE * 0.99, False)])
def test_a_limit_error_above_a_tenth_of_the_largest_error_is_flagged(field, rule, fix, share, flagged):
    errors = power_law([-0.5] * 4)
    v = verdict(report(errors, rule=rule, **{field: share * errors[-1].mean()}))
    assert ("limit error" in kinds(v)) == flagged
    if flagged:
        assert fix in v["diagnoses"][0]["text"]


@pytest.mark.parametrize("share, flagged", [(MINOR_SHARE * 1.01, True), (MINOR_SHARE * 0.99, False)])
def test_a_sobol_rules_error_is_judged_in_the_outputs_not_in_the_kernels_entries(share, flagged):
    errors = power_law([-0.5] * 4)
    largest = errors[-1].mean()
    v = verdict(report(errors, rule="sobol", quadrature=10 * largest, outputs=share * largest))
    assert ("limit error" in kinds(v)) == flagged
    if flagged:
        text = v["diagnoses"][0]["text"]
        assert "quadrature error in the outputs" in text and "limit.nodes" in text


@pytest.mark.parametrize("error, flagged", [(0.019, True), (0.021, False)])
def test_the_monte_carlo_floor_of_the_gaussian_initialisation_is_flagged(error, flagged):
    moments = {str(WIDTHS[-1]): dict(mean_error=error, mean_se=0.01)}  # two standard errors: 0.02
    v = verdict(report(power_law([-0.5] * 4), moments=moments))
    assert ("Monte Carlo floor" in kinds(v)) == flagged


def test_an_even_target_on_a_symmetric_chain_is_not_learned_by_an_odd_network_and_the_study_says_so(tmp_path):
    import meanfield
    from meanfield.studies.framework import DiagnosisWarning

    chain = meanfield.MarkovChain([[0.7, 0.3], [0.3, 0.7]], [-1.0, 1.0])
    task = meanfield.Task.from_expression(chain, "x0 * x1", noise_std=0.1)  # even in X; tanh networks are odd
    with pytest.warns(DiagnosisWarning, match="learns almost nothing"):
        result = meanfield.convergence_study(task, widths=[64, 128], seeds=2, horizon=0.5, n_records=4, window=4,
                                             order=(16, 4), probes=4, workers=0, progress=False)
    assert result.report["limit"]["loss_ratio"] > 0.99
    assert "learns nothing" in kinds(result.report["verdict"])
    assert "the limit learns almost nothing" in result.summary()
    odd = meanfield.Task.from_expression(chain, "x1", noise_std=0.1)
    result = meanfield.convergence_study(odd, widths=[64, 128], seeds=2, horizon=0.5, n_records=4, window=4,
                                         order=(16, 4), probes=4, workers=0, progress=False)
    assert "learns nothing" not in kinds(result.report["verdict"])


def test_the_fluctuation_theory_singles_out_pre_asymptotic_widths_when_the_refit_cannot():
    """The user's AR(1) study of the issue: 4 widths, the refit without the small ones too wide to hold -1/2, but
    the predicted law fits only the wider widths (z = -4.0, -3.1, -1.7, +1.6)."""
    errors = power_law([-0.3, -0.25, -0.2, -0.3], seeds=8, noise=0.1, seed=1)
    r = report(errors)
    r["fluctuations"] = dict(widths={str(N): dict(z=z) for N, z in zip(WIDTHS, (-4.0, -3.1, -1.7, 1.6, 0.5))})
    v = verdict(r)
    assert v["status"] == "misses" and kinds(v) == ["pre-asymptotic"], v
    assert "N < 512 do not fit the predicted N^-1/2 law" in v["diagnoses"][0]["text"]
    assert v["suggested_widths"] == [512, 1024, 2048, 4096, 8192]
    r["fluctuations"]["widths"]["2048"]["z"] = 3.0  # the widest does not fit either: not pre-asymptotic
    assert kinds(verdict(r)) == ["not pre-asymptotic"]
