"""The RNTK as aeon estimators: :class:`RNTKClassifier` (kernel SVM) and :class:`RNTKRegressor` (Gaussian process).

They take what every aeon estimator takes: a 3D array (n_cases, n_channels, n_timepoints), or a list of 2D arrays
(n_channels, n_timepoints_i) of different lengths, so pipelines, benchmarking code and unequal-length collections
work as for aeon's own models. The kernels are :func:`meanfield.architectures.elman.kernel.rntk` with either
convention (``theory_notes/rntk.md`` section 7):

- ``convention="ours"``: one initial state shared by all sequences, the readout from the last state;
- ``convention="authors"``: the RNTK_UCI code's, a fresh initial state per sequence and the per-step
  (equal-time average) readout.

:class:`RNTKClassifier` runs the protocol of [RNTK]: a C-SVM (LIBSVM, through scikit-learn) whose kernel
hyperparameters and C are chosen by stratified k-fold cross-validation on the training set. Each Gram over the
training set is computed once per kernel setting and reused for every C and fold; prediction needs one more, test
against training, at the chosen setting. :class:`FlatRBFClassifier` and :class:`FlatNTKClassifier` are the same
search with the Gaussian kernel and the ReLU MLP's NTK on the flattened series (equal lengths), the baselines of
``meanfield rntk``.

:class:`RNTKRegressor` is the Gaussian process whose prior covariance is a K + s I, K the RNTK (or NNGP) Gram: the
amplitude a, the noise variance s and, when given grids, the network's scales are chosen by the log marginal
likelihood of the training targets (the evidence), from one eigendecomposition of each Gram.

The estimators do not normalise the series: ``meanfield rntk`` z-normalises them as the UCR archive does
(:func:`meanfield.studies.ucr.standardise`). Needs the optional extra ``[data]`` (aeon, scikit-learn).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
from tqdm.auto import tqdm

from . import checks

try:
    from aeon.classification.base import BaseClassifier
    from aeon.regression.base import BaseRegressor
    from aeon.utils.validation.collection import get_n_channels
except ImportError as err:
    raise checks.missing_extra("data", "meanfield.timeseries", err) from None
from .architectures.elman import rntk
from .architectures.elman.kernel import KernelOverflowError
from .architectures.elman.settings import READOUTS
from .svm import cv_accuracies

CONVENTIONS = {"ours": dict(readout="last", initial_state="shared"),
               "authors": dict(readout="per_step", initial_state="independent")}
KINDS = ("ntk", "nngp")
DIRECTIONS = ("forward", "backward", "both")  # the series as given, time-reversed, or the sum of the two kernels
# [RNTK]'s grid (sigma_u = 1, one layer)
PAPER_SIGMA_W = (*(round(1.34 + 0.01 * i, 2) for i in range(14)), math.sqrt(2.0))
PAPER_SIGMA_B = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0, 2.0)
PAPER_SIGMA_H = (0.0, 0.01, 0.1, 0.5, 1.0)
PAPER_C = (0.01, 0.1, 1.0, 10.0, 100.0)
# RNTKRegressor's, chosen by the evidence: from short memory to ReLU's edge of chaos
REGRESSOR_SIGMA_W = (0.5, 0.8, 1.0, 1.2, 1.41)
_TAGS = {"capability:multivariate": True, "capability:unequal_length": True, "capability:multithreading": True,
         "X_inner_type": ["np-list", "numpy3D"]}


def _grid_values(value, name, minimum=0.0):
    """A hyperparameter given as one number or a sequence of them: the checked tuple."""
    values = tuple(np.atleast_1d(np.asarray(value, dtype=float)).tolist()) if not isinstance(value, str) else ()
    if not values:
        raise ValueError(f"{name} must be a number or a non-empty sequence of numbers, got {value!r}")
    return tuple(checks.real(v, name, minimum) for v in values)


def _exploded(G, limit=1e12):
    """The RNTK_UCI code's guard: a setting whose Gram has |G|_F / n^2 >= 1e12 (above ReLU's edge of chaos the
    variances grow like (sigma_w^2 / 2)^T, 1e49 for sigma_w = 1.47 and T = 1460) scores 0 in the search. Such
    Grams make C meaningless and the SVM's solver crawl."""
    return not np.all(np.isfinite(G)) or np.linalg.norm(G) / G.shape[0] ** 2 >= limit


def _sequences(X):
    """aeon's inner collection (cases of (channels, T)) as the kernel's sequences (T, channels)."""
    return [np.ascontiguousarray(np.asarray(x, dtype=float).T) for x in X]


class _Collections:
    """aeon's handling of the series, with plain errors where its own checks fail obscurely: no series or an empty
    series (an IndexError or NumPy's "zero-size array" error), a different number of channels than in fit."""

    def _preprocess_collection(self, X, store_metadata=True):
        if isinstance(X, list) or isinstance(X, np.ndarray) and X.ndim > 1:
            if len(X) == 0:
                raise ValueError("X must hold at least one series, got none")
            for i, x in enumerate(X):
                if isinstance(x, np.ndarray) and x.size == 0:
                    raise ValueError(f"X[{i}] is empty (shape {x.shape}): series need at least one time step and one "
                                     "channel")
        return super()._preprocess_collection(X, store_metadata)

    def _check_shape(self, X):
        n_channels, fitted = get_n_channels(X), self.metadata_["n_channels"]
        if n_channels != fitted:
            raise ValueError(f"X has {n_channels} channel{'s' * (n_channels != 1)}, but {type(self).__name__} was "
                             f"fitted on {fitted}-channel series")
        super()._check_shape(X)


class _RNTKSettings:
    """The Elman settings of the estimators' kernel, from their parameters."""

    def _kernel_settings(self):
        checks.choice(self.kind, "kind", KINDS)
        checks.choice(self.convention, "convention", tuple(CONVENTIONS))
        return dict(activation=self.activation, layers=self.layers, sigma_u=self.sigma_u,
                    **CONVENTIONS[self.convention])

    def _rntk(self, X, Y, params):
        """The Gram of the kernel setting ``params``; its ``direction`` ("forward" when absent): the series as
        given, each one reversed in time (the kernel of the network that reads it backward), or the sum of the two
        (the kernel of the sum of two independent networks, one each way: ``theory_notes/rntk.md`` section 9)."""
        params = dict(params)
        direction = params.pop("direction", "forward")
        settings = {**self._kernel_settings(), **params}
        ways = {"forward": (False,), "backward": (True,), "both": (False, True)}[direction]
        return sum(self._one_way(X, Y, settings, backward) for backward in ways)

    def _one_way(self, X, Y, settings, backward):
        """The Gram of one direction. A training Gram (Y = None) is kept for the next setting, so that "both"
        reuses the "forward" and "backward" Grams computed just before it (direction varies fastest in the grid)."""
        def run():
            rev = (lambda Z: Z) if not backward else (lambda Z: None if Z is None else [z[::-1] for z in Z])
            return rntk(rev(X), rev(Y), kind=self.kind, backend=self.backend, **settings)

        if Y is not None:
            return run()
        cache = self.__dict__.setdefault("_grams", {})
        key = (id(X), backward, tuple(sorted(settings.items())))
        if key not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            cache[key] = run()
        return cache[key]

    def _grid(self):
        """The settings to search: (sigma_w, sigma_b, sigma_h), and the readout and direction where the estimator
        has them; the kernel's other settings checked first."""
        self._kernel_settings()
        axes = {name: _grid_values(getattr(self, name), name) for name in ("sigma_w", "sigma_b", "sigma_h")}
        if hasattr(self, "direction"):
            readout = CONVENTIONS[self.convention]["readout"] if self.readout is None else self.readout
            axes["readout"] = checks.choice_list(np.atleast_1d(readout).tolist(), "readout", READOUTS)
            axes["direction"] = checks.choice_list(np.atleast_1d(self.direction).tolist(), "direction", DIRECTIONS)
            if len(axes["readout"]) == 1 and self.readout is None:
                del axes["readout"]  # the convention's own
            if axes["direction"] == ("forward",):
                del axes["direction"]  # the kernel as before: best_params_ as before
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _over_grid(estimator, grid: list, work, *args):
    """(params, ``work(params, *args)``) for each setting of ``grid``, in order: in this process, or in
    ``estimator.n_jobs`` processes (joblib; -1: all cores); with ``estimator.verbose``, a progress bar."""
    n_jobs = estimator.n_jobs
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise ValueError(f"n_jobs must be a positive integer or -1 (all cores), got {n_jobs!r}")
    if n_jobs == 1 or len(grid) == 1:
        results = (work(params, *args) for params in grid)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(work)(params, *args) for params in grid)
    with tqdm(total=len(grid), desc=type(estimator).__name__, unit="setting", disable=not estimator.verbose) as bar:
        for params, result in zip(grid, results):
            yield params, result
            bar.update()


class _GramSearch(_Collections, BaseClassifier):
    """C-SVM with a precomputed kernel, its hyperparameters and C chosen by stratified k-fold cross-validation
    on the training set (the first best in grid order wins ties). Subclasses give the grid (:meth:`_grid`) and the
    Gram (:meth:`_gram`, Y = None for the symmetric training Gram).

    Fitted attributes: ``best_params_`` (the kernel's and C), ``cv_score_`` (the chosen mean fold accuracy;
    NaN when the grid has one point and nothing is chosen), ``n_candidates_``, ``n_exploded_`` (settings scored 0
    because their Gram exploded, :func:`_exploded`, or overflowed float64). With ``verbose``, a progress bar over
    the kernel settings.
    """

    def _grid(self):
        raise NotImplementedError

    def _gram(self, X, Y, params):
        raise NotImplementedError

    def _folds(self, y, n_folds):
        from sklearn.model_selection import StratifiedKFold

        largest_class = np.unique(y, return_counts=True)[1].max()
        splits = int(max(2, min(n_folds, largest_class)))
        cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=self.random_state)
        with warnings.catch_warnings():  # a class with fewer members than folds
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            return list(cv.split(np.zeros(len(y)), y))

    def _fit(self, X, y):
        from sklearn.svm import SVC

        seqs = _sequences(X)
        grid = list(self._grid())
        Cs = _grid_values(self.C, "C")
        if any(c <= 0 for c in Cs):
            raise ValueError(f"C must be positive, got {Cs}")
        n_folds = checks.integer(self.folds, "folds", 2)  # even when the grid has one point and nothing is chosen
        single = len(grid) * len(Cs) == 1
        folds = None if single else self._folds(y, n_folds)
        best, exploded = None, 0
        if single:
            best = (math.nan, grid[0], Cs[0])
        else:
            for params, (scores, bad) in _over_grid(self, grid, self._scores, seqs, y, folds, Cs):
                exploded += bad
                for C, score in zip(Cs, scores):
                    if best is None or score > best[0] + 1e-12:
                        best = (score, params, C)
        if exploded == len(grid):
            raise ValueError("every kernel setting of the grid gives an exploded Gram (|G|_F / n^2 >= 1e12): lower "
                             "sigma_w (ReLU's edge of chaos is sqrt 2)")
        score, params, C = best
        self.model_ = SVC(kernel="precomputed", C=C).fit(self._gram(seqs, None, params), y)
        self.best_params_ = dict(params, C=C)
        self.cv_score_ = float(score)
        self.n_candidates_ = len(grid) * len(Cs)
        self.n_exploded_ = exploded
        self._train = seqs
        self.__dict__.pop("_grams", None)  # the training Grams kept during the search
        return self

    def _scores(self, params, seqs, y, folds, Cs):
        """The cross-validated accuracy of each C for one kernel setting, and whether its Gram exploded (scored 0;
        one past float64 counts as exploded)."""
        try:
            G = self._gram(seqs, None, params)
        except KernelOverflowError:
            return np.zeros(len(Cs)), True
        if _exploded(G):
            return np.zeros(len(Cs)), True
        return cv_accuracies(G, y, folds, Cs), False

    def _predict(self, X):
        params = {k: v for k, v in self.best_params_.items() if k != "C"}
        return self.model_.predict(self._gram(_sequences(X), self._train, params))


class RNTKClassifier(_RNTKSettings, _GramSearch):
    """C-SVM with the recurrent NTK (or its NNGP twin), as [RNTK] ran it.

    Parameters
    ----------
    kind : {"ntk", "nngp"}
        The RNTK, or the NNGP of the same network.
    convention : {"ours", "authors"}
        Shared initial state and last readout, or the RNTK_UCI code's independent initial states and per-step
        readout (``theory_notes/rntk.md`` section 7).
    sigma_w, sigma_b, sigma_h, C : number or sequence of numbers
        The grid searched by cross-validation; the defaults are [RNTK]'s: sigma_w in {1.34, ..., 1.47} and
        sqrt(2), sigma_b in {0, ..., 2}, sigma_h in {0, 0.01, 0.1, 0.5, 1}, C in {0.01, ..., 100} (4500 settings).
    sigma_u : float
        The input weights' scale (the paper's 1).
    activation, layers : the network's (ReLU, one layer in the paper).
    folds : int
        Stratified folds of the cross-validation (fewer when the training set is too small).
    random_state : int
        The folds' shuffle.
    readout : None, or one or a sequence of "last", "mean", "per_step"
        The readout, searched by the cross-validation with the rest (``theory_notes/rntk.md``); None: the
        convention's ("last" for "ours", "per_step" for "authors").
    direction : one or a sequence of "forward", "backward", "both"
        The series as given, time-reversed, or the sum of both kernels (``theory_notes/rntk.md`` section 9),
        searched by the cross-validation with the rest.
    backend : {"numba", "jax"}
        Where the Grams are computed; the "authors" convention needs "numba".
    verbose : bool
        A progress bar over the kernel settings.
    n_jobs : int
        Processes over which the kernel settings are spread (joblib; -1: all cores); 1: this process.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield.timeseries import RNTKClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.normal(size=(1, T)) + (i % 2) for i, T in enumerate(rng.integers(10, 20, 20))]
    >>> y = np.array([str(i % 2) for i in range(20)])
    >>> clf = RNTKClassifier(sigma_w=1.41, sigma_b=(0.0, 0.5), sigma_h=0.0, C=(1.0, 10.0), folds=4).fit(X, y)
    >>> float(np.mean(clf.predict(X) == y))
    1.0
    """

    _tags = _TAGS

    def __init__(self, kind="ntk", convention="ours", sigma_w=PAPER_SIGMA_W, sigma_b=PAPER_SIGMA_B,
                 sigma_h=PAPER_SIGMA_H, C=PAPER_C, sigma_u=1.0, activation="relu", layers=1, folds=10,
                 random_state=0, backend="numba", verbose=False, n_jobs=1, readout=None, direction="forward"):
        self.kind = kind
        self.convention = convention
        self.readout = readout
        self.direction = direction
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b
        self.sigma_h = sigma_h
        self.C = C
        self.sigma_u = sigma_u
        self.activation = activation
        self.layers = layers
        self.folds = folds
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose
        self.n_jobs = n_jobs
        super().__init__()

    def _gram(self, X, Y, params):
        return self._rntk(X, Y, params)

    @classmethod
    def _get_test_params(cls, parameter_set="default"):
        return [dict(sigma_w=1.41, sigma_b=0.1, sigma_h=0.0, C=1.0),
                dict(convention="authors", kind="nngp", sigma_w=(1.35, 1.41), sigma_b=0.0, sigma_h=0.5,
                     C=(1.0, 10.0), folds=2)]


def _flat(X, name):
    lengths = {x.shape for x in X}
    if len(lengths) > 1:
        raise ValueError(f"{name} needs series of equal length and channels, got shapes {sorted(lengths)}")
    return np.stack([x.ravel() for x in X])


class FlatRBFClassifier(_GramSearch):
    """C-SVM with the Gaussian kernel exp(-gamma |x - x'|^2) on the flattened series, gamma = scale / (T m) for
    each scale of ``scales`` (equal lengths); the RBF baseline of ``meanfield rntk``."""

    _tags = {**_TAGS, "capability:unequal_length": False, "X_inner_type": "numpy3D"}

    def __init__(self, scales=(0.1, 0.3, 1.0, 3.0), C=PAPER_C, folds=10, random_state=0, verbose=False,
                 n_jobs=1):
        self.scales = scales
        self.C = C
        self.folds = folds
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs
        super().__init__()

    def _grid(self):
        for scale in _grid_values(self.scales, "scales"):
            yield dict(scale=scale)

    def _gram(self, X, Y, params):
        A = _flat(X, "FlatRBFClassifier")
        B = A if Y is None else _flat(Y, "FlatRBFClassifier")
        sq = np.maximum(np.sum(A**2, 1)[:, None] + np.sum(B**2, 1)[None, :] - 2 * A @ B.T, 0.0)
        return np.exp(-params["scale"] / A.shape[1] * sq)


class FlatNTKClassifier(_GramSearch):
    """C-SVM with the NTK of a fully connected ReLU network on the flattened series (the RNTK of the length-1
    sequence that stacks all steps into one input; equal lengths); the MLP-NTK baseline of ``meanfield rntk``."""

    _tags = {**_TAGS, "capability:unequal_length": False, "X_inner_type": "numpy3D"}

    def __init__(self, layers=(1, 2, 3), sigma_b=(0.0, 0.5), C=PAPER_C, folds=10, random_state=0, backend="numba",
                 verbose=False, n_jobs=1):
        self.layers = layers
        self.sigma_b = sigma_b
        self.C = C
        self.folds = folds
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose
        self.n_jobs = n_jobs
        super().__init__()

    def _grid(self):
        layers = tuple(checks.integer(v, "layers", 1) for v in np.atleast_1d(self.layers).tolist())
        for depth, sb in itertools.product(layers, _grid_values(self.sigma_b, "sigma_b")):
            yield dict(layers=depth, sigma_b=sb)

    def _gram(self, X, Y, params):
        flat = [f[None, :] for f in _flat(X, "FlatNTKClassifier")]
        other = None if Y is None else [f[None, :] for f in _flat(Y, "FlatNTKClassifier")]
        return rntk(flat, other, activation="relu", kind="ntk", backend=self.backend, **params)


def _fit_or_positive(value, name):
    """None for "fit", else the checked positive number."""
    if isinstance(value, str):
        checks.choice(value, name, ("fit",))
        return None
    return checks.positive(value, name)


def _evidence(theta, lam, z2):
    """The log marginal likelihood of targets t under N(0, a K + s I) and its gradient in theta = (log a, log s),
    from the eigenvalues lam of K and the squared coordinates z2 of t on its eigenvectors: O(n) per evaluation."""
    a, s = np.exp(theta)
    d = a * lam + s
    r = 0.5 * (z2 / d**2 - 1 / d)
    value = -0.5 * (np.sum(z2 / d) + np.sum(np.log(d)) + len(d) * math.log(2 * math.pi))
    return value, np.array([a * lam @ r, s * np.sum(r)])


# The amplitude in units of mean(t^2) / mean(diag K), the noise in units of mean(t^2): the start's coarse grid, the
# bounds of the search
_START = (np.logspace(-3, 1, 5), np.logspace(-4, 0, 5))
_BOUNDS = ((1e-6, 1e6), (1e-6, 1e1))


def _max_evidence(lam, z2, fixed):
    """theta = (log a, log s) of largest evidence, the entries fixed (not None) kept: L-BFGS-B from the best point
    of a coarse grid."""
    from scipy.optimize import minimize

    scale = np.mean(z2) or 1.0
    unit = np.log([scale / max(np.mean(lam), np.finfo(float).tiny), scale])
    grids = [np.log(start) + u if f is None else [f] for start, u, f in zip(_START, unit, fixed)]
    theta = np.array(max(itertools.product(*grids), key=lambda t: _evidence(np.array(t), lam, z2)[0]))
    free = np.array([f is None for f in fixed])
    if free.any():
        def loss(x):
            t = theta.copy()
            t[free] = x
            value, grad = _evidence(t, lam, z2)
            return -value, -grad[free]

        bounds = [np.log(b) + u for b, u, f in zip(_BOUNDS, unit, free) if f]
        theta[free] = minimize(loss, theta[free], jac=True, method="L-BFGS-B", bounds=bounds).x
    return theta


class _GaussianProcess(_Collections, BaseRegressor):
    """Gaussian-process regression with the prior covariance a K + s I of the targets about their training mean
    (``normalize_y``) or 0. The amplitude a and the noise variance s (each "fit" or a fixed value, in the targets'
    units) and the kernel's setting among :meth:`_grid` are those of largest log marginal likelihood of the
    training targets (the evidence, type-II maximum likelihood): one eigendecomposition K = Q diag(lam) Q^T per
    setting makes each evaluation O(n), and L-BFGS-B climbs it in (log a, log s) from the best point of a coarse
    grid. Subclasses give the grid and the Gram (:meth:`_gram`, Y = None for the symmetric training Gram).

    Fitted attributes: ``amplitude_``, ``noise_``, ``log_marginal_likelihood_`` (at them, of the targets in their
    own units), ``best_params_`` (the kernel's setting). With ``verbose``, a progress bar over the settings.
    """

    def _fit(self, X, y):
        given = [_fit_or_positive(self.amplitude, "amplitude"), _fit_or_positive(self.noise, "noise")]
        seqs = _sequences(X)
        y = np.asarray(y, dtype=float)
        center, unit = (np.mean(y), np.std(y) or 1.0) if checks.boolean(self.normalize_y, "normalize_y") else (0, 1)
        fixed = [None if g is None else math.log(g / unit**2) for g in given]  # in the normalised targets' units
        best = None
        grid = list(self._grid())
        for params, fitted in _over_grid(self, grid, self._evidence_fit, seqs, y - center, unit, given, fixed):
            if best is None or fitted[0] > best[0]:
                best = (fitted[0], params, *fitted[1:])
        self.log_marginal_likelihood_, self.best_params_, (self.amplitude_, self.noise_), *factors = best
        self._lam, self._Q, self._z = factors
        self._train, self._center = seqs, center
        self.__dict__.pop("_grams", None)  # the training Grams kept during the search
        return self

    def _evidence_fit(self, params, seqs, centred, unit, given, fixed):
        """For one kernel setting: the largest log evidence, the amplitude and noise at it, and the Gram's
        eigendecomposition (lam, Q) with z = Q^T (y - center)."""
        lam, Q = np.linalg.eigh(self._gram(seqs, None, params))
        lam = np.maximum(lam, 0.0)  # rounding
        z = Q.T @ centred
        theta = _max_evidence(lam, (z / unit) ** 2, fixed)
        values = [unit**2 * math.exp(t) if g is None else g for g, t in zip(given, theta)]
        return _evidence(np.log(values), lam, z**2)[0], values, lam, Q, z

    def _posterior(self, X, std=False, latent=False):
        """The posterior mean at each series of X; with ``std``, also the predictive standard deviation of y
        (of f with ``latent``)."""
        seqs = _sequences(X)
        cross = self._gram(seqs, self._train, self.best_params_) @ self._Q
        d = self.amplitude_ * self._lam + self.noise_
        mean = self._center + self.amplitude_ * cross @ (self._z / d)
        if not std:
            return mean
        n = len(self._train)  # k(x, x) in blocks of n series: at most half the cost of the cross Gram
        prior = np.concatenate([np.diag(self._gram(seqs[i:i + n], None, self.best_params_))
                                for i in range(0, len(seqs), n)])
        var = self.amplitude_ * prior - self.amplitude_**2 * (cross**2) @ (1 / d) + (0.0 if latent else self.noise_)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def _predict(self, X):
        return self._posterior(X)

    def _checked(self, X):
        self._check_is_fitted()
        X = self._preprocess_collection(X, store_metadata=False)
        self._check_shape(X)
        return X

    # aeon's checks refuse a ``predict`` in the estimator's own class (BaseRegressor.predict is final); this one
    # is BaseRegressor.predict, with the same checks of X when return_std adds scikit-learn's standard deviation
    def predict(self, X, return_std=False):
        """The posterior mean at each series of X, and with ``return_std`` the pair (mean, :meth:`predict_std`)
        as scikit-learn's GaussianProcessRegressor gives."""
        return self._posterior(self._checked(X), std=True) if return_std else super().predict(X)

    def predict_std(self, X, latent=False):
        """The predictive standard deviation of y at each series of X, sqrt(a k(x, x) - a^2 k(x, X) (a K + s
        I)^{-1} k(X, x) + s), the interval that covers new observations; with ``latent``, that of the noiseless f
        (without the last s)."""
        return self._posterior(self._checked(X), std=True, latent=latent)[1]


class RNTKRegressor(_RNTKSettings, _GaussianProcess):
    """Gaussian-process regression with the NNGP or the RNTK of an Elman RNN as the prior covariance.

    The targets y are modelled as y = c + f + e with f ~ GP(0, a K), K the kernel, and e ~ N(0, s) independent, c
    the training mean (``normalize_y``) or 0. The posterior mean is c + a k(x, X) (a K + s I)^{-1} (y - c);
    :meth:`predict_std` (and ``predict(X, return_std=True)``) give the predictive standard deviation of a new
    observation, which includes the noise s; ``predict_std(X, latent=True)`` gives that of f. The amplitude a
    and the noise s are chosen by the log marginal likelihood (the evidence) unless given, and so are sigma_w,
    sigma_b and sigma_h when given as sequences. With ``kind="nngp"`` this is the Bayesian posterior of the
    infinitely wide network with Gaussian weights (a fitted a absorbs sigma_v^2, which only scales the NNGP); with
    ``kind="ntk"`` the NTK is used as a covariance, the kernel-ridge mean of the trained wide network with its GP
    error bar.

    Parameters
    ----------
    kind, convention, activation, layers, sigma_u, backend : as in :class:`RNTKClassifier`
    sigma_w, sigma_b, sigma_h : number or sequence of numbers
        The network's scales; among several settings the one of largest evidence (by default sigma_w in {0.5,
        0.8, 1, 1.2, 1.41}, sigma_b = 0.1, sigma_h = 0). A setting whose Gram overflows float64 raises
        :class:`~meanfield.architectures.elman.kernel.KernelOverflowError`.
    sigma_v : float
        The readout's scale.
    amplitude : "fit" or float
        The prior variance factor a of f (> 0), in the targets' squared units.
    noise : "fit" or float
        The observation noise variance s (> 0), in the targets' squared units.
    normalize_y : bool
        Center the prior at the training targets' mean (and search a and s relative to their variance); else 0.
        Shifting or scaling y shifts or scales the predictions and their standard deviations exactly.
    verbose : bool
        A progress bar over the settings of (sigma_w, sigma_b, sigma_h).
    n_jobs : int
        Processes over which the settings are spread (joblib; -1: all cores); 1: this process.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield.timeseries import RNTKRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 1, 12))
    >>> y = 3 + X[:, 0, -1] + 0.1 * rng.normal(size=200)
    >>> reg = RNTKRegressor().fit(X[:150], y[:150])
    >>> round(reg.score(X[150:], y[150:]), 2)  # R^2
    0.99
    >>> round(float(np.sqrt(reg.noise_)), 2)  # the noise's standard deviation, 0.1
    0.09
    >>> mean, std = reg.predict(X[150:], return_std=True)
    """

    _tags = _TAGS

    def __init__(self, kind="nngp", convention="ours", sigma_w=REGRESSOR_SIGMA_W, sigma_b=0.1, sigma_h=0.0, sigma_v=1.0,
                 amplitude="fit", noise="fit", normalize_y=True, sigma_u=1.0, activation="relu", layers=1,
                 backend="numba", verbose=False, n_jobs=1):
        self.kind = kind
        self.convention = convention
        self.sigma_w = sigma_w
        self.sigma_b = sigma_b
        self.sigma_h = sigma_h
        self.sigma_v = sigma_v
        self.amplitude = amplitude
        self.noise = noise
        self.normalize_y = normalize_y
        self.sigma_u = sigma_u
        self.activation = activation
        self.layers = layers
        self.backend = backend
        self.verbose = verbose
        self.n_jobs = n_jobs
        super().__init__()

    def _gram(self, X, Y, params):
        return self._rntk(X, Y, dict(params, sigma_v=self.sigma_v))

    @classmethod
    def _get_test_params(cls, parameter_set="default"):
        return [dict(), dict(kind="ntk", convention="authors", sigma_w=(1.3, 1.41), sigma_h=0.5, amplitude=2.0,
                             noise=0.1, normalize_y=False)]
