"""Assertions for regression tests of theory in a user's own pytest suite.

Each assertion fits what it checks from the data, with the studentised interval of
:func:`meanfield.stats.fit_rate` (calibrated by reseeding: ``docs/design.md``), and fails with a message
that says what was expected, what was measured, and the numbers behind it.

Example, a user's ``test_my_theory.py``::

    import meanfield
    from meanfield.testing import assert_converges_to_limit, assert_rate

    def test_my_chain_converges_at_the_mean_field_rate():
        chain = meanfield.MarkovChain([[0.9, 0.1], [0.2, 0.8]], [[-1.0, 0.5], [1.0, 0.0]])
        task = meanfield.Task.from_expression(chain, "tanh(x0_0 + x1_1)", noise_std=0.1)
        result = meanfield.convergence_study(task, quick=True, seeds=24, window=8, progress=False)
        assert_converges_to_limit(result, level=0.999)  # rate -1/2, no grid floor
        assert_rate(result.widths, list(result.kernel_errors.values()), expected=-0.5)
"""

from __future__ import annotations

import numpy as np

from .stats import RateFit, fit_rate


def _table(x, errors_per_seed) -> str:
    return ", ".join(f"{xi:g}: {np.mean(e):.3g}" for xi, e in zip(x, errors_per_seed))


def _check(fit: RateFit, expected: float, what: str, means: str):
    level = f"{100 * fit.level:g}%"
    problems = []
    if not fit.covers(expected):
        problems.append(f"its {level} interval [{fit.ci_low:.3f}, {fit.ci_high:.3f}] misses the expected "
                        f"{expected:g}")
    if fit.covers(0.0):
        problems.append(f"its {level} interval [{fit.ci_low:.3f}, {fit.ci_high:.3f}] contains 0, so no "
                        f"trend in x is established (more seeds or a wider range)")
    if problems:
        raise AssertionError(f"{what}: slope {fit.slope:.3f}; " + "; ".join(problems) + f". Mean errors: {means}")


def assert_rate(x, errors_per_seed, expected=-0.5, *, level=0.95, scale="log") -> RateFit:
    """Fit error ~ C x^slope from per-seed errors (at least two per x) and assert that the interval at ``level``
    contains ``expected`` and excludes 0. Returns the fit."""
    fit = fit_rate(x, errors_per_seed, scale=scale, level=level)
    _check(fit, expected, "rate", _table(x, errors_per_seed))
    return fit


def assert_converges_to_limit(result, expected=-0.5, *, level=0.99, grid_error_ratio=0.1, moments_within=5.0):
    """Assert what a convergence study (:func:`meanfield.convergence_study`) should show:

    - the rate of sup_t |f^N_t - f_t| has an interval at ``level`` containing ``expected`` and excluding 0 (a
      calibrated interval at 0.99 fails on correct code for one seed in a hundred, so a regression test that
      must not flake uses a level such as 0.999);
    - the limit's grid error is below ``grid_error_ratio`` times the mean error at the largest width (so the
      comparison has no floor of its own);
    - with the Gaussian initialisation, the mean and variance over seeds at the largest width are within
      ``moments_within`` Monte Carlo standard errors of the limit's.
    """
    report = result.report
    errors = list(result.errors.values())
    _check(fit_rate(result.widths, errors, level=level), expected, "rate of sup_t |f^N_t - f_t| in N",
           _table(result.widths, errors))
    lim = report["limit"]
    if lim["grid_error_ratio"] > grid_error_ratio:
        raise AssertionError(f"grid error of the limit {lim['grid_error']:.3g} is {lim['grid_error_ratio']:.2f} of the "
                             f"mean error at the largest width (allowed: {grid_error_ratio:g}); raise the grid "
                             f"(limit.grid, now {lim['grid_windows']} windows)")
    if "moments" in report:
        m = report["moments"][str(result.widths[-1])]
        for name in ("mean", "var"):
            if m[f"{name}_error"] > moments_within * m[f"{name}_se"]:
                raise AssertionError(f"{name} over seeds at N = {result.widths[-1]}: error {m[f'{name}_error']:.3g} is "
                                     f"more than {moments_within:g} Monte Carlo standard errors "
                                     f"({m[f'{name}_se']:.3g})")
