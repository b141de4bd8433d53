"""The aeon estimators of meanfield.timeseries and the compiled SVM cross-validation of meanfield.svm."""

import warnings

import numpy as np
import pytest

pytest.importorskip("aeon")
pytest.importorskip("sklearn")

from aeon.classification.base import BaseClassifier  # noqa: E402
from aeon.testing.estimator_checking import parametrize_with_checks  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from meanfield.architectures.elman import rntk  # noqa: E402
from meanfield.svm import cv_accuracies  # noqa: E402
from meanfield.timeseries import FlatNTKClassifier, FlatRBFClassifier, RNTKClassifier, RNTKRegressor  # noqa: E402


@parametrize_with_checks([RNTKClassifier, RNTKRegressor, FlatRBFClassifier, FlatNTKClassifier])
def test_aeon_estimator_checks(check):
    with warnings.catch_warnings():  # aeon's checks read every fitted attribute, scikit-learn's SVC deprecates two
        warnings.filterwarnings("ignore", "Attribute `prob", FutureWarning)
        check()


def sklearn_cv(K, y, folds, Cs):
    return np.array([np.mean([np.mean(SVC(kernel="precomputed", C=C).fit(K[np.ix_(tr, tr)], y[tr])
                                      .predict(K[np.ix_(va, tr)]) == y[va]) for tr, va in folds]) for C in Cs])


@pytest.mark.parametrize("n, classes", [(60, 2), (80, 3), (120, 5), (150, 2)])
def test_compiled_cross_validation_equals_libsvm(n, classes):
    """LIBSVM's algorithm, compiled: the same fold accuracies as scikit-learn's SVC (LIBSVM itself) for every C,
    on noisy problems where C matters (the accuracies move by 0.1-0.3 across C)."""
    rng = np.random.default_rng(n + classes)
    X = rng.normal(size=(n, 5))
    y = rng.integers(0, classes, n)
    X[:, 0] += 0.8 * y
    K = np.exp(-0.2 * ((X[:, None] - X[None]) ** 2).sum(-1))
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    Cs = [0.01, 0.1, 1.0, 10.0, 100.0]
    ours, ref = cv_accuracies(K, y, folds, Cs), sklearn_cv(K, y, folds, Cs)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert ref.max() - ref.min() > 0.05  # C changes the answer: the comparison can fail
    # string labels are classes like any other
    labels = np.array([f"c{v}" for v in y])
    np.testing.assert_allclose(cv_accuracies(K, labels, folds, Cs), ref, rtol=0, atol=1e-12)


def test_kernels_of_large_scale_reuse_the_hard_margin_solution_and_equal_libsvm():
    """s K with C is K with s C: at s = 1e6 every C of the grid is a hard margin (no multiplier at its bound), so
    the larger values of C reuse the first solution; the accuracies still equal LIBSVM's, unsorted Cs included."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(50, 30))
    y = rng.integers(0, 3, 50)
    K = 1e6 * np.exp(-0.05 * ((X[:, None] - X[None]) ** 2).sum(-1))
    folds = list(StratifiedKFold(5, shuffle=True, random_state=1).split(X, y))
    Cs = [10.0, 0.01, 1.0]
    np.testing.assert_allclose(cv_accuracies(K, y, folds, Cs), sklearn_cv(K, y, folds, Cs), rtol=0, atol=1e-12)


def test_duplicated_points_with_both_labels_equal_libsvm():
    """Identical samples give a zero curvature quad = |phi_i - phi_j|^2 = 0 exactly (integer features, linear
    kernel); LIBSVM then divides by TAU = 1e-12, never by 0. (At C = 10 the two solvers stop at different points
    within the tolerance on this degenerate problem, as the module's docstring says; at C <= 1 they agree.)"""
    rng = np.random.default_rng(5)
    X = rng.integers(-2, 3, size=(30, 3)).astype(float)
    y = (X[:, 0] + rng.integers(0, 2, 30) > 0).astype(int)
    X, y = np.concatenate([X, X[:10], np.zeros((4, 3))]), np.concatenate([y, 1 - y[:10], [0, 1, 0, 1]])
    K = X @ X.T
    folds = list(StratifiedKFold(4, shuffle=True, random_state=2).split(X, y))
    Cs = [0.1, 1.0]
    ours = cv_accuracies(K, y, folds, Cs)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, sklearn_cv(K, y, folds, Cs), rtol=0, atol=1e-12)


def test_cross_validation_errors():
    K = np.eye(4)
    folds = [(np.array([0, 1]), np.array([2, 3])), (np.array([2, 3]), np.array([0, 1]))]
    with pytest.raises(ValueError, match="square"):
        cv_accuracies(np.ones((4, 3)), [0, 1, 0, 1], folds, [1.0])
    with pytest.raises(ValueError, match="every sample"):
        cv_accuracies(K, [0, 1, 0, 1], folds[:1], [1.0])
    with pytest.raises(ValueError, match="4 labels"):
        cv_accuracies(K, [0, 1, 0], folds, [1.0])


def sequences(rng, n, lengths, channels=1):
    """Two classes: a slow and a fast sine with random phase and noise, of random lengths; aeon's list input."""
    X, y = [], []
    for i in range(n):
        T = int(rng.choice(lengths))
        t = np.arange(T)
        base = np.sin((0.1 if i % 2 == 0 else 0.5) * t + rng.uniform(0, 2 * np.pi))
        X.append(base[None, :] + 0.2 * rng.normal(size=(channels, T)))
        y.append(f"class{i % 2}")
    return X, np.array(y)


def test_classifier_is_the_kernel_svm_it_claims_with_the_choice_of_a_brute_force_search():
    rng = np.random.default_rng(0)
    X, y = sequences(rng, 40, [20, 30, 40], channels=2)
    X_test, y_test = sequences(rng, 30, [25, 35], channels=2)
    grid = dict(sigma_w=(1.2, 1.41), sigma_b=(0.0, 0.5), sigma_h=(0.0, 0.5), C=(0.1, 10.0))
    for convention, settings in (("ours", dict()), ("authors", dict(readout="per_step", initial_state="independent"))):
        clf = RNTKClassifier(convention=convention, folds=4, **grid).fit(X, y)
        seqs, test = [x.T for x in X], [x.T for x in X_test]
        folds = list(StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
        # the brute-force search with scikit-learn's SVC, first best in grid order
        best = None
        for sw in grid["sigma_w"]:
            for sb in grid["sigma_b"]:
                for sh in grid["sigma_h"]:
                    K = rntk(seqs, sigma_w=sw, sigma_b=sb, sigma_h=sh, **settings)
                    for C, score in zip(grid["C"], sklearn_cv(K, y, folds, grid["C"])):
                        if best is None or score > best[0] + 1e-12:
                            best = (score, dict(sigma_w=sw, sigma_b=sb, sigma_h=sh, C=C))
        assert clf.best_params_ == best[1] and clf.cv_score_ == pytest.approx(best[0])
        params = {k: v for k, v in best[1].items() if k != "C"}
        svm = SVC(kernel="precomputed", C=best[1]["C"]).fit(rntk(seqs, **params, **settings), y)
        np.testing.assert_array_equal(clf.predict(X_test), svm.predict(rntk(test, seqs, **params, **settings)))
        assert np.mean(clf.predict(X_test) == y_test) > 0.9


def test_regressor_is_the_gaussian_process_and_its_error_bar_is_calibrated():
    """Functions drawn from the NNGP prior: the posterior mean is the GP formula, and the test residuals divided by
    the predicted standard deviation have mean square 1 (Monte Carlo over 100 independent draws of 12 correlated
    residuals: tolerance 5 standard errors of the mean over draws)."""
    rng = np.random.default_rng(1)
    X, _ = sequences(rng, 30, [10, 15])
    X_test, _ = sequences(rng, 12, [8, 12])
    settings = dict(sigma_w=1.3, sigma_b=0.2, sigma_h=0.0)
    noise = 0.05
    seqs, test = [x.T for x in X], [x.T for x in X_test]
    K = rntk(seqs + test, kind="nngp", **settings)
    L = np.linalg.cholesky(K + 1e-10 * np.eye(len(K)))
    reg = RNTKRegressor(kind="nngp", amplitude=1.0, noise=noise, normalize_y=False, **settings)
    z = []
    for _ in range(100):
        f = L @ rng.normal(size=len(K))
        y = f[:30] + np.sqrt(noise) * rng.normal(size=30)
        reg.fit(X, y)
        mean, std = reg.predict(X_test), reg.predict_std(X_test, latent=True)
        z.append(np.mean(((f[30:] - mean) / std) ** 2))
    assert abs(np.mean(z) - 1) < 5 * np.std(z) / np.sqrt(len(z)), (np.mean(z), np.std(z))
    # the mean against the formula, on the last draw
    Kxx, Kzx = K[:30, :30], K[30:, :30]
    expected = Kzx @ np.linalg.solve(Kxx + noise * np.eye(30), y)
    np.testing.assert_allclose(mean, expected, rtol=1e-10, atol=1e-12)
    expected_var = np.diag(K[30:, 30:] - Kzx @ np.linalg.solve(Kxx + noise * np.eye(30), Kzx.T))
    np.testing.assert_allclose(std, np.sqrt(expected_var), rtol=1e-8)


def test_estimator_errors():
    rng = np.random.default_rng(2)
    X, y = sequences(rng, 10, [6])
    with pytest.raises(ValueError, match="convention"):
        RNTKClassifier(convention="theirs", sigma_w=1.4, sigma_b=0.0, sigma_h=0.0, C=1.0).fit(X, y)
    with pytest.raises(ValueError, match="sigma_b"):
        RNTKClassifier(sigma_w=1.4, sigma_b=(-1.0,), sigma_h=0.0, C=1.0).fit(X, y)
    with pytest.raises(ValueError, match="C"):
        RNTKClassifier(sigma_w=1.4, sigma_b=0.0, sigma_h=0.0, C=(0.0, 1.0)).fit(X, y)
    with pytest.raises(ValueError, match="backend 'numba' only"):
        RNTKClassifier(convention="authors", sigma_w=1.4, sigma_b=0.0, sigma_h=0.0, C=1.0, backend="jax").fit(X, y)
    for params, match in ((dict(noise=0.0), "noise must be a finite number > 0"),
                          (dict(amplitude=-1.0), "amplitude must be a finite number > 0"),
                          (dict(noise="auto"), r"noise must be one of \['fit'\]"),
                          (dict(normalize_y="yes"), "normalize_y must be true or false")):
        with pytest.raises(ValueError, match=match):
            RNTKRegressor(**params).fit(X, rng.normal(size=10))


def test_exploding_kernels_are_left_out_of_the_search_as_the_authors_code_does():
    """Above ReLU's edge of chaos the variances grow like (sigma_w^2/2)^T: sigma_w = 2 over 120 steps gives Gram
    entries near 2^120 = 1e36, which score 0 and are never chosen."""
    rng = np.random.default_rng(3)
    X, y = sequences(rng, 16, [120])
    clf = RNTKClassifier(sigma_w=(2.0, 1.41), sigma_b=0.0, sigma_h=0.0, C=(1.0, 10.0), folds=2).fit(X, y)
    assert clf.n_exploded_ == 1 and clf.best_params_["sigma_w"] == 1.41
    with pytest.raises(ValueError, match="every kernel setting"):
        RNTKClassifier(sigma_w=(2.0, 2.1), sigma_b=0.0, sigma_h=0.0, C=(1.0, 10.0), folds=2).fit(X, y)


ESTIMATORS = [RNTKClassifier(sigma_w=1.41, sigma_b=0.1, sigma_h=0.0, C=1.0), RNTKRegressor(),
              FlatRBFClassifier(scales=1.0, C=1.0), FlatNTKClassifier(layers=1, sigma_b=0.0, C=1.0)]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("X, match", [
    (np.empty((0, 1, 12)), "X must hold at least one series"),
    ([], "X must hold at least one series"),
    (np.empty((4, 1, 0)), r"X\[0\] is empty .*at least one time step"),
    ([np.ones((1, 5)), np.ones((1, 0)), np.ones((1, 5)), np.ones((1, 5))], r"X\[1\] is empty .*at least one time step"),
])
def test_collections_without_series_or_time_steps_are_refused_naming_X(estimator, X, match):
    """aeon's own checks fail on them with an IndexError or NumPy's 'zero-size array to reduction operation'."""
    y = np.array(["a", "b", "a", "b"][:len(X)]) if isinstance(estimator, BaseClassifier) else np.zeros(len(X))
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, y)


def test_series_of_other_channels_than_in_fit_are_named_in_predict_and_predict_std():
    rng = np.random.default_rng(4)
    X, y = sequences(rng, 8, [6])
    reg = RNTKRegressor().fit(X, rng.normal(size=8))
    clf = RNTKClassifier(sigma_w=1.41, sigma_b=0.1, sigma_h=0.0, C=1.0).fit(X, y)
    X3 = rng.normal(size=(2, 3, 6))
    for predict in (reg.predict, reg.predict_std, lambda X: reg.predict(X, return_std=True), clf.predict):
        with pytest.raises(ValueError, match="X has 3 channels, but RNTK(Regressor|Classifier) was fitted on "
                                             "1-channel series"):
            predict(X3)
    with pytest.raises(ValueError, match=r"X\[0\] is empty"):
        reg.predict_std(np.empty((2, 1, 0)))


@pytest.mark.parametrize("folds", [1, 0, 2.0, True])
def test_folds_are_checked_before_any_gram_even_with_one_setting(folds, monkeypatch):
    rng = np.random.default_rng(5)
    X, y = sequences(rng, 8, [6])

    def no_gram(*args):
        raise AssertionError("a Gram was computed")

    for clf in (RNTKClassifier(sigma_w=1.41, sigma_b=0.1, sigma_h=0.0, C=1.0, folds=folds),
                FlatRBFClassifier(scales=1.0, C=1.0, folds=folds)):
        monkeypatch.setattr(type(clf), "_gram", no_gram)
        with pytest.raises(ValueError, match="folds must be an integer >= 2"):
            clf.fit(X, y)


def test_settings_whose_gram_overflows_are_scored_as_exploded_and_a_single_one_is_refused():
    from meanfield.architectures.elman.kernel import KernelOverflowError

    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 1, 60)) + np.arange(12)[:, None, None] % 2
    y = np.array([str(i % 2) for i in range(12)])
    clf = RNTKClassifier(sigma_w=(1.41, 40.0), sigma_b=0.1, sigma_h=0.0, C=1.0, folds=2).fit(X, y)
    assert clf.n_exploded_ == 1 and clf.best_params_["sigma_w"] == 1.41
    with pytest.raises(KernelOverflowError, match="sigma_w=40"):
        RNTKClassifier(sigma_w=40.0, sigma_b=0.1, sigma_h=0.0, C=1.0).fit(X, y)


def test_the_default_grid_is_the_papers_and_the_fitted_counts_are_kept():
    """[RNTK] (arXiv:2006.10246) section 6: sigma_w in {1.34, 1.35, ..., 1.47, sqrt 2}, sigma_b in {0, 0.01, 0.05, 0.1,
    0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1, 2}, sigma_h in {0, 0.01, 0.1, 0.5, 1}, C in {0.01, 0.1, 1, 10, 100}: 4500."""
    clf = RNTKClassifier()
    grid = [clf.sigma_w, clf.sigma_b, clf.sigma_h, clf.C]
    assert np.allclose(grid[0], [1.34 + 0.01 * i for i in range(14)] + [np.sqrt(2)], rtol=0, atol=1e-15)
    assert grid[1:] == [(0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0, 2.0), (0.0, 0.01, 0.1, 0.5, 1.0),
                        (0.01, 0.1, 1.0, 10.0, 100.0)]
    assert np.prod([len(g) for g in grid]) == 4500
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 1, 6)) + np.arange(12)[:, None, None] % 2
    y = np.array([str(i % 2) for i in range(12)])
    fit = RNTKClassifier(sigma_w=(1.35, 1.41), sigma_b=0.1, sigma_h=(0.0, 0.5, 1.0), C=(1.0, 10.0), folds=2).fit(X, y)
    assert fit.n_candidates_ == 2 * 3 * 2 and fit.n_exploded_ == 0 and 0 <= fit.cv_score_ <= 1


def test_the_flat_rbf_gram_is_the_gaussian_kernel_of_the_flattened_series():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(4, 2, 5)), rng.normal(size=(3, 2, 5))
    Y[1] = X[2] + 0.01  # a close pair: its squared distance is far below 1
    G = FlatRBFClassifier()._gram(list(X), list(Y), dict(scale=0.3))
    ref = [[np.exp(-0.3 / 10 * np.sum((x - y) ** 2)) for y in Y] for x in X]
    np.testing.assert_allclose(G, ref, rtol=1e-12)


def test_two_dimensional_collections_without_series_or_steps_are_refused_naming_X():
    clf = RNTKClassifier(sigma_w=1.41, sigma_b=0.1, sigma_h=0.0, C=1.0)
    with pytest.raises(ValueError, match="X must hold at least one series"):
        clf.fit(np.empty((0, 12)), np.array([]))
    with pytest.raises(ValueError, match=r"X\[0\] is empty"):
        clf.fit(np.empty((4, 0)), np.array(list("abab")))


def log_evidence(K, r, a, s):
    """log N(r | 0, a K + s I), directly."""
    C = a * K + s * np.eye(len(r))
    return -0.5 * (r @ np.linalg.solve(C, r) + np.linalg.slogdet(C)[1] + len(r) * np.log(2 * np.pi))


def regression_problem(seed, n=25):
    rng = np.random.default_rng(seed)
    X, _ = sequences(rng, n, [8, 12])
    y = 3.0 + np.array([x[0, -3:].sum() for x in X]) + 0.3 * rng.normal(size=n)
    settings = dict(sigma_w=1.2, sigma_b=0.3, sigma_h=0.0)
    return X, y, settings, rntk([x.T for x in X], kind="nngp", **settings)


def test_regressor_log_marginal_likelihood_is_the_gaussian_density_of_the_targets():
    """At fixed and at fitted (amplitude, noise), about the training mean (normalize_y) or 0."""
    X, y, settings, K = regression_problem(0)
    for normalize_y in (False, True):
        r = y - y.mean() * normalize_y
        for a, s in ((1.0, 0.1), (0.02, 2.0), (30.0, 1e-3)):
            reg = RNTKRegressor(amplitude=a, noise=s, normalize_y=normalize_y, **settings).fit(X, y)
            assert (reg.amplitude_, reg.noise_) == pytest.approx((a, s), rel=1e-14)
            assert reg.log_marginal_likelihood_ == pytest.approx(log_evidence(K, r, a, s), rel=1e-10)
        reg = RNTKRegressor(normalize_y=normalize_y, **settings).fit(X, y)
        expected = log_evidence(K, r, reg.amplitude_, reg.noise_)
        assert reg.log_marginal_likelihood_ == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("noise", ["fit", 0.2])
def test_regressor_amplitude_and_noise_maximise_the_evidence(noise):
    """The fitted point has zero gradient in (log a, log s) (central differences of the direct density) and no point
    of a fine grid around it does better; a fixed noise stays, the amplitude maximises the evidence given it."""
    X, y, settings, K = regression_problem(1, n=40)
    reg = RNTKRegressor(noise=noise, **settings).fit(X, y)
    a, s, r = reg.amplitude_, reg.noise_, y - y.mean()
    best = log_evidence(K, r, a, s)
    assert noise == "fit" or s == noise
    h = 1e-4
    for k in range(2 if noise == "fit" else 1):  # d/d log a, and d/d log s when the noise is fitted
        up, down = (np.array([a, s]) * np.exp(sign * h * np.eye(2)[k]) for sign in (1, -1))
        grad = (log_evidence(K, r, *up) - log_evidence(K, r, *down)) / (2 * h)
        assert abs(grad) < 1e-4, (k, grad)
    factors = np.exp(np.linspace(-0.2, 0.2, 21))
    noise_factors = factors if noise == "fit" else [1.0]
    grid = [log_evidence(K, r, a * fa, s * fs) for fa in factors for fs in noise_factors]
    assert max(grid) <= best + 1e-9


@pytest.mark.parametrize("scale, shift", [(1e3, -7.0), (-0.04, 0.5)])
def test_regressor_with_normalize_y_is_equivariant_to_shifting_and_scaling_the_targets(scale, shift):
    X, y, settings, _ = regression_problem(2)
    X_test = X[:5] + [x + 0.1 for x in X[5:10]]
    reg, moved = (RNTKRegressor(**settings).fit(X, targets) for targets in (y, scale * y + shift))
    mean, std = reg.predict(X_test, return_std=True)
    moved_mean, moved_std = moved.predict(X_test, return_std=True)
    np.testing.assert_allclose(moved_mean, scale * mean + shift, rtol=1e-9, atol=1e-9 * abs(scale))
    np.testing.assert_allclose(moved_std, abs(scale) * std, rtol=1e-9)
    assert (moved.amplitude_, moved.noise_) == pytest.approx((scale**2 * reg.amplitude_, scale**2 * reg.noise_),
                                                             rel=1e-9)
    assert moved.log_marginal_likelihood_ == pytest.approx(reg.log_marginal_likelihood_ - len(y) * np.log(abs(scale)),
                                                           rel=1e-12, abs=1e-9)


def test_regressor_predict_with_return_std_is_predict_and_predict_std():
    """scikit-learn's convention; the standard deviation of y is that of f with the noise variance added."""
    X, y, settings, _ = regression_problem(3)
    X_test, _ = sequences(np.random.default_rng(4), 7, [6, 14])
    reg = RNTKRegressor(**settings).fit(X, y)
    mean, std = reg.predict(X_test, return_std=True)
    np.testing.assert_allclose(mean, reg.predict(X_test), rtol=1e-14)
    np.testing.assert_allclose(std, reg.predict_std(X_test), rtol=1e-14)
    np.testing.assert_allclose(std**2, reg.predict_std(X_test, latent=True) ** 2 + reg.noise_, rtol=1e-12)


def test_regressor_recovers_the_prior_its_targets_are_drawn_from_and_its_intervals_cover():
    """Targets drawn from the model itself, y ~ N(0, a K + s I) over 120 series (100 to fit, 20 held out), 100 times:
    the fitted amplitude and noise have medians at the truth (within 5 standard errors of a median over the draws:
    1.25 sd / 10), and the 90% predictive intervals cover 90% of the 2000 held-out targets (within 4 binomial
    standard errors, 0.027; 0.918 here)."""
    rng = np.random.default_rng(5)
    n, m, draws, a, s = 100, 20, 100, 1.0, 0.1
    X, _ = sequences(rng, n + m, [10, 15, 20])
    settings = dict(sigma_w=1.3, sigma_b=0.2, sigma_h=0.0)
    L = np.linalg.cholesky(a * rntk([x.T for x in X], kind="nngp", **settings) + s * np.eye(n + m))
    reg = RNTKRegressor(normalize_y=False, **settings)
    fitted, covered = [], []
    for _ in range(draws):
        y = L @ rng.normal(size=n + m)
        mean, std = reg.fit(X[:n], y[:n]).predict(X[n:], return_std=True)
        fitted.append(np.log([reg.amplitude_ / a, reg.noise_ / s]))
        covered.append(np.abs(y[n:] - mean) <= 1.6448536269514722 * std)
    fitted = np.array(fitted)
    assert np.all(np.abs(np.median(fitted, 0)) < 5 * 1.2533 * fitted.std(0) / np.sqrt(draws)), fitted
    assert abs(np.mean(covered) - 0.9) < 4 * np.sqrt(0.9 * 0.1 / np.size(covered)), np.mean(covered)


def test_regressor_chooses_the_kernel_setting_of_largest_evidence_and_shows_progress(capsys):
    X, y, _, _ = regression_problem(6)
    grid = dict(sigma_w=(0.8, 1.41), sigma_b=(0.0, 1.0), sigma_h=0.0)
    fits = [RNTKRegressor(sigma_w=sw, sigma_b=sb, sigma_h=0.0).fit(X, y) for sw in grid["sigma_w"]
            for sb in grid["sigma_b"]]
    best = max(fits, key=lambda f: f.log_marginal_likelihood_)
    reg = RNTKRegressor(verbose=True, **grid).fit(X, y)
    assert reg.best_params_ == best.best_params_ and reg.log_marginal_likelihood_ == best.log_marginal_likelihood_
    assert (reg.amplitude_, reg.noise_) == (best.amplitude_, best.noise_)
    assert len({f.log_marginal_likelihood_ for f in fits}) == 4  # the choice matters
    assert "RNTKRegressor: 100%" in capsys.readouterr().err
    RNTKClassifier(sigma_w=(1.2, 1.41), sigma_b=0.1, sigma_h=0.0, C=1.0, folds=2, verbose=True).fit(
        X, np.array(["a", "b"] * 12 + ["a"]))
    assert "RNTKClassifier: 100%|" in capsys.readouterr().err


def test_smo_multipliers_and_intercept_equal_libsvms_when_no_vector_is_free():
    """With every support vector at its bound C the intercept is the midpoint of LIBSVM's bounds on y G (its rule
    without free vectors), which single precision does not blur: equal to scikit-learn's to 1e-7."""
    from meanfield.svm import _smo

    rng = np.random.default_rng(0)
    for _ in range(3):
        X = rng.normal(size=(40, 3))
        y = np.where(X[:, 0] + 0.8 * rng.normal(size=40) > 0, 1, -1)
        K = X @ X.T + 1.0
        alpha, rho = _smo(K, np.arange(40), y.astype(float), 0.001, 1e-3, 10**7)
        ref = SVC(kernel="precomputed", C=0.001).fit(K, y)
        assert not np.any((alpha > 0) & (alpha < 0.001))  # no free vector: the case under test
        assert rho == pytest.approx(-ref.intercept_[0], abs=1e-7)
        full = np.zeros(40)
        full[ref.support_] = np.abs(ref.dual_coef_[0])
        np.testing.assert_allclose(alpha, full, atol=1e-9)


def test_the_evidence_gradient_is_the_derivative_of_the_evidence():
    from meanfield.timeseries import _evidence

    rng = np.random.default_rng(2)
    lam, z2 = rng.uniform(0, 3, 12), rng.uniform(0, 2, 12) ** 2
    for theta in (np.array([0.3, -1.2]), np.array([-2.0, 0.5])):
        value, grad = _evidence(theta, lam, z2)
        d = lam * np.exp(theta[0]) + np.exp(theta[1])
        assert value == pytest.approx(-0.5 * (np.sum(z2 / d) + np.sum(np.log(d)) + 12 * np.log(2 * np.pi)), rel=1e-13)
        h = 1e-6
        numeric = [(_evidence(theta + h * e, lam, z2)[0] - _evidence(theta - h * e, lam, z2)[0]) / (2 * h)
                   for e in np.eye(2)]
        np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


def test_n_jobs_spreads_the_grid_over_processes_with_the_same_choice_and_predictions():
    X, y, _, _ = regression_problem(6)
    X_test = regression_problem(7)[0]
    grid = dict(sigma_w=(0.8, 1.41), sigma_b=(0.0, 1.0), sigma_h=0.0)
    one, two = (RNTKRegressor(n_jobs=n, **grid).fit(X, y) for n in (1, 2))
    assert one.best_params_ == two.best_params_ and one.log_marginal_likelihood_ == two.log_marginal_likelihood_
    np.testing.assert_array_equal(one.predict(X_test), two.predict(X_test))
    labels = np.array(["a", "b"] * 12 + ["a"])
    settings = dict(sigma_w=(1.2, 1.41), sigma_b=(0.0, 0.5), sigma_h=0.0, C=(0.1, 1.0), folds=2)
    one, two = (RNTKClassifier(n_jobs=n, **settings).fit(X, labels) for n in (1, 2))
    assert one.best_params_ == two.best_params_ and one.cv_score_ == two.cv_score_
    np.testing.assert_array_equal(one.predict(X_test), two.predict(X_test))
    for bad in (0, -2, 1.5, True, None):
        with pytest.raises(ValueError, match="n_jobs must be"):
            RNTKClassifier(n_jobs=bad, **settings).fit(X, labels)


# ---- readout and direction as hyperparameters (issue 28)

def test_backward_is_the_kernel_of_the_reversed_series_and_both_is_their_sum():
    rng = np.random.default_rng(11)
    X = [rng.normal(size=(T, 2)) for T in (5, 9, 7)]
    Y = [rng.normal(size=(T, 2)) for T in (6, 4)]
    clf = RNTKClassifier(kind="nngp", readout=("last", "mean"), direction=("forward", "backward", "both"))
    settings = dict(sigma_w=1.3, sigma_b=0.2, sigma_h=0.1, readout="mean")
    for Z in (None, Y):
        forward = rntk(X, Z, kind="nngp", activation="relu", **settings)
        backward = rntk([x[::-1] for x in X], None if Z is None else [z[::-1] for z in Z], kind="nngp",
                        activation="relu", **settings)
        for direction, expected in (("forward", forward), ("backward", backward), ("both", forward + backward)):
            np.testing.assert_array_equal(clf._rntk(X, Z, dict(settings, direction=direction)), expected)
    assert not np.allclose(forward, backward)  # the direction matters on these series


def test_the_two_way_kernel_is_the_limit_of_a_forward_plus_a_backward_network_at_rate_one_half():
    """f(x) = f1(x) + f2(reversed x), two independent Elman networks: its empirical NTK is the sum of theirs and
    tends to the "both" kernel at n^-1/2."""
    from meanfield.architectures.elman import Elman
    from meanfield.stats import fit_rate

    rng = np.random.default_rng(12)
    X = [rng.normal(size=(T, 1)) for T in (4, 6, 5)]
    arch = Elman(activation="relu", sigma_w=1.2, sigma_b=0.1)
    limit = RNTKClassifier()._rntk(X, None, dict(sigma_w=1.2, sigma_b=0.1, sigma_h=0.0, direction="both"))
    widths = [64, 128, 256, 512, 1024]
    errors = []
    for n in widths:
        errs = []
        for s in range(8):
            G = (arch.network(n, 1, seed=[n, s, 0]).ntk(X)
                 + arch.network(n, 1, seed=[n, s, 1]).ntk([x[::-1] for x in X]))
            errs.append(np.linalg.norm(G - limit) / np.linalg.norm(limit))
        errors.append(errs)
    fit = fit_rate(widths, errors, level=0.999)
    assert fit.covers(-0.5) and fit.ci_high < -0.25, fit


def test_cross_validation_reads_a_class_held_at_the_start_backward():
    """The class is the sign of the first three steps; then 27 steps of noise. In the ordered phase the last-state
    kernel has forgotten the start: the search picks a direction that reads it."""
    rng = np.random.default_rng(13)
    def draw(n):
        y = rng.integers(0, 2, n)
        X = rng.normal(size=(n, 1, 30))
        X[:, 0, :3] += np.where(y == 1, 1.5, -1.5)[:, None]
        return X, y.astype(str)

    X, y = draw(60)
    X_test, y_test = draw(60)
    grid = dict(sigma_w=1.0, sigma_b=0.1, sigma_h=0.0, C=(1.0, 10.0), folds=3)
    forward = RNTKClassifier(**grid).fit(X, y)
    searched = RNTKClassifier(direction=("forward", "backward", "both"), **grid).fit(X, y)
    assert "direction" not in forward.best_params_
    assert searched.best_params_["direction"] in ("backward", "both"), searched.best_params_
    assert np.mean(searched.predict(X_test) == y_test) > 0.9 > np.mean(forward.predict(X_test) == y_test) + 0.1


@pytest.mark.parametrize("options, match", [(dict(direction="sideways"), r"direction\[0\]"),
                                            (dict(readout=("last", "first")), r"readout\[1\]")])
def test_readout_and_direction_are_checked_naming_them(options, match):
    X = np.random.default_rng(0).normal(size=(6, 1, 5))
    y = np.array(list("ab") * 3)
    with pytest.raises(ValueError, match=match):
        RNTKClassifier(sigma_w=1.0, sigma_b=0.0, sigma_h=0.0, C=1.0, folds=2, **options).fit(X, y)
