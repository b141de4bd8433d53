"""Compiled cross-validation of a C-SVM with a precomputed kernel: LIBSVM's algorithm, all folds and C values at once.

[RNTK]'s protocol chooses the kernel's hyperparameters and C by k-fold cross-validation of LIBSVM's C-SVC. Over
its 900 kernel settings, 5 values of C and 10 folds, that is 45000 fits per kernel and dataset. scikit-learn's
``SVC`` spends 2-12 ms per fit on small problems, mostly outside the solver, so a search of one kernel on one
dataset took minutes. This module solves the same problem as LIBSVM, in the same way, compiled, with the folds
in parallel, and each value of C after the first solved only while the box constraint is active
(:func:`_cv_accuracies`):

- the dual of C-SVC, min 1/2 a'Qa - e'a with 0 <= a <= C, y'a = 0, Q_ij = y_i y_j K_ij, by SMO with LIBSVM's
  second-order working-set selection, its two-variable update and clipping, its stopping rule (maximal violation
  below ``eps`` = 1e-3) and its intercept (the mean of y_i G_i over free vectors, else the midpoint of the bounds)
  (Fan, Chen and Lin, JMLR 2005; Chang and Lin, LIBSVM, 2011). LIBSVM's shrinking is left out: it changes the
  path, not the solution;
- several classes one-against-one, voting, ties to the first class in sorted order, as LIBSVM.

Both stop at the same tolerance. On the tests' problems the fold accuracies equal scikit-learn's ``SVC`` for every C
(``tests/test_timeseries.py``). They are not always equal: LIBSVM keeps the kernel matrix in single precision and
shrinks its working set, this solver works in double precision without shrinking, and on ill-conditioned Grams the
two stop at different points within the tolerance. A reviewer found 7 of about 300 random problems where a fold
accuracy differed, by up to 0.05. :class:`meanfield.timeseries` estimators use this solver to choose, and refit the
chosen model with scikit-learn's ``SVC``, which is LIBSVM itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .activations import JIT

TAU = 1e-12


@njit(**JIT)
def _smo(K, idx, y, C, eps, max_iter):
    """LIBSVM's solver on the samples ``idx`` of the Gram K with labels y (+-1): (alpha, rho)."""
    n = idx.size
    a = np.zeros(n)
    G = -np.ones(n)
    QD = np.empty(n)
    for t in range(n):
        QD[t] = K[idx[t], idx[t]]
    for _ in range(max_iter):
        # working set: i the maximal violator, j by the second-order gain
        g_max, i = -np.inf, -1
        for t in range(n):
            if y[t] > 0:
                if a[t] < C and -G[t] >= g_max:
                    g_max, i = -G[t], t
            elif a[t] > 0 and G[t] >= g_max:
                g_max, i = G[t], t
        g_max2, j, obj_min = -np.inf, -1, np.inf
        if i >= 0:
            ki = idx[i]
            for t in range(n):
                kit = K[ki, idx[t]]
                if y[t] > 0:
                    if a[t] > 0:
                        diff = g_max + G[t]
                        if G[t] >= g_max2:
                            g_max2 = G[t]
                        if diff > 0:
                            quad = QD[i] + QD[t] - 2.0 * kit  # |phi_i - phi_t|^2, either label
                            obj = -diff * diff / (quad if quad > 0 else TAU)
                            if obj <= obj_min:
                                j, obj_min = t, obj
                elif a[t] < C:
                    diff = g_max - G[t]
                    if -G[t] >= g_max2:
                        g_max2 = -G[t]
                    if diff > 0:
                        quad = QD[i] + QD[t] - 2.0 * kit  # |phi_i - phi_t|^2, either label
                        obj = -diff * diff / (quad if quad > 0 else TAU)
                        if obj <= obj_min:
                            j, obj_min = t, obj
        if g_max + g_max2 < eps or j == -1:
            break
        # the two-variable update, clipped to the box, as LIBSVM
        kij = y[i] * y[j] * K[idx[i], idx[j]]  # Q_ij
        old_i, old_j = a[i], a[j]
        if y[i] != y[j]:
            quad = QD[i] + QD[j] + 2.0 * kij
            delta = (-G[i] - G[j]) / (quad if quad > 0 else TAU)
            diff = a[i] - a[j]
            a[i] += delta
            a[j] += delta
            if diff > 0:
                if a[j] < 0:
                    a[j] = 0.0
                    a[i] = diff
            elif a[i] < 0:
                a[i] = 0.0
                a[j] = -diff
            if diff > 0:
                if a[i] > C:
                    a[i] = C
                    a[j] = C - diff
            elif a[j] > C:
                a[j] = C
                a[i] = C + diff
        else:
            quad = QD[i] + QD[j] - 2.0 * kij
            delta = (G[i] - G[j]) / (quad if quad > 0 else TAU)
            total = a[i] + a[j]
            a[i] -= delta
            a[j] += delta
            if total > C:
                if a[i] > C:
                    a[i] = C
                    a[j] = total - C
            elif a[j] < 0:
                a[j] = 0.0
                a[i] = total
            if total > C:
                if a[j] > C:
                    a[j] = C
                    a[i] = total - C
            elif a[i] < 0:
                a[i] = 0.0
                a[j] = total
        di, dj = a[i] - old_i, a[j] - old_j
        ki, kj = idx[i], idx[j]
        for t in range(n):
            G[t] += y[t] * (y[i] * K[ki, idx[t]] * di + y[j] * K[kj, idx[t]] * dj)
    # the intercept
    free, total, ub, lb = 0, 0.0, np.inf, -np.inf
    for t in range(n):
        yg = y[t] * G[t]
        if a[t] >= C:
            if y[t] < 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        elif a[t] <= 0:
            if y[t] > 0:
                ub = min(ub, yg)
            else:
                lb = max(lb, yg)
        else:
            free += 1
            total += yg
    rho = total / free if free > 0 else (ub + lb) / 2
    return a, rho


@njit(**JIT)
def _one_against_one(K, codes, n_classes, train, test, C, eps, max_iter):
    """Predicted class codes of the samples ``test`` by LIBSVM's one-against-one C-SVC trained on ``train``, and
    whether any multiplier reached its bound C."""
    votes = np.zeros((test.size, n_classes), dtype=np.int64)
    bounded = False
    for k in range(n_classes):
        for l in range(k + 1, n_classes):
            count = 0
            for t in train:
                if codes[t] == k or codes[t] == l:
                    count += 1
            idx = np.empty(count, dtype=np.int64)
            y = np.empty(count)
            count = 0
            for t in train:
                if codes[t] == k or codes[t] == l:
                    idx[count] = t
                    y[count] = 1.0 if codes[t] == k else -1.0
                    count += 1
            a, rho = _smo(K, idx, y, C, eps, max_iter)
            bounded = bounded or np.any(a >= C)
            for s in range(test.size):
                dec = -rho
                for t in range(count):
                    if a[t] != 0.0:
                        dec += y[t] * a[t] * K[test[s], idx[t]]
                votes[s, k if dec > 0 else l] += 1
    out = np.empty(test.size, dtype=np.int64)
    for s in range(test.size):
        out[s] = np.argmax(votes[s])  # the first of the most voted, as LIBSVM
    return out, bounded


@njit(parallel=True, **JIT)
def _cv_accuracies(K, codes, n_classes, fold, n_folds, Cs, eps, max_iter):
    """(len(Cs), n_folds) accuracies on each held-out fold, Cs increasing; the folds run in parallel.

    If no multiplier reaches its bound at C, the box constraint is inactive: the same multipliers satisfy the
    optimality conditions, and LIBSVM's stopping rule and intercept, for every larger C, so the larger values of C
    reuse the predictions instead of solving again. This is what makes kernels of large scale affordable: a Gram
    s K with C is the problem K with s C (the multipliers scale by 1/s), so a kernel of scale 1e8 is a
    hard-margin SVM at every C of the grid, and its solution stays below C.
    """
    acc = np.zeros((Cs.size, n_folds))
    for f in prange(n_folds):
        train = np.flatnonzero(fold != f)
        test = np.flatnonzero(fold == f)
        for c in range(Cs.size):
            pred, bounded = _one_against_one(K, codes, n_classes, train, test, Cs[c], eps, max_iter)
            hits = 0
            for s in range(test.size):
                hits += pred[s] == codes[test[s]]
            acc[c, f] = hits / test.size
            if not bounded:
                acc[c + 1:, f] = acc[c, f]
                break
    return acc


def cv_accuracies(K, y, folds, Cs, *, eps=1e-3, max_iter=-1):
    """Mean held-out accuracy of LIBSVM's C-SVC with the precomputed Gram K for each C in Cs.

    K : (n, n) Gram of the training samples; y : (n,) labels (any type); folds : list of (train, test) index
    arrays that cover every sample once as test (e.g. from scikit-learn's ``StratifiedKFold.split``).
    max_iter : SMO iterations per two-class problem, as scikit-learn's ``SVC(max_iter=)``; -1: LIBSVM's own cap,
    max(10^7, 100 n).
    Returns an array (len(Cs),) of the mean over folds.
    """
    K = np.ascontiguousarray(K, dtype=float)
    n = K.shape[0]
    if K.shape != (n, n) or not np.all(np.isfinite(K)):
        raise ValueError(f"K must be a finite square Gram matrix, got shape {K.shape}")
    classes, codes = np.unique(np.asarray(y), return_inverse=True)
    if codes.size != n:
        raise ValueError(f"y must have {n} labels, got {codes.size}")
    fold = np.full(n, -1, dtype=np.int64)
    for f, (_, test) in enumerate(folds):
        fold[np.asarray(test)] = f
    if np.any(fold < 0):
        raise ValueError("folds must use every sample once as a test sample")
    Cs = np.asarray(Cs, dtype=float)
    order = np.argsort(Cs, kind="stable")
    max_iter = max(10_000_000, 100 * n) if max_iter == -1 else int(max_iter)
    acc = _cv_accuracies(K, codes.astype(np.int64), classes.size, fold, len(folds), Cs[order], float(eps), max_iter)
    out = np.empty(Cs.size)
    out[order] = acc.mean(axis=1)
    return out
