"""Fixed points x = T(x) of maps on arrays: Picard iteration and Anderson acceleration.

Error bounds (``theory_notes/limit.md`` section 2). If T is a contraction with modulus rho in the
chosen norm, the fixed point x* satisfies, for any x,

    |x - x*| <= |T(x) - x| / (1 - rho),

and for a Picard iterate x_k = T(x_{k-1}) the sharper |x_k - x*| <= rho / (1 - rho) |x_k - x_{k-1}|.
The solver returns T(x) for the last evaluated x, for which |T(x) - x*| <= rho |x - x*| gives
|T(x) - x*| <= rho / (1 - rho) |T(x) - x| whatever the method (Picard or Anderson).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


class FixedPointError(RuntimeError):
    """Raised when the iteration does not converge; ``result`` holds the last iterate."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass
class FixedPointResult:
    """Outcome of :func:`fixed_point` (in the spirit of ``scipy.optimize.OptimizeResult``).

    x: T of the last evaluated point; converged: that point's residual |T(x) - x| <= tol; iterations: number of
    evaluations of T; residuals: |T(x_k) - x_k| per iteration; error_bound: a-posteriori bound on
    |x - x*| when ``rho`` was given (else None); message: how it ended.
    """

    x: np.ndarray
    converged: bool
    iterations: int
    residuals: np.ndarray
    error_bound: float | None
    message: str
    method: str = "picard"


def _norm(v, norm):
    return float(np.linalg.norm(v.ravel(), ord=norm))


def fixed_point(T: Callable[[np.ndarray], np.ndarray], x0, *, method="anderson", depth=5, damping=1.0,
                tol=1e-12, maxiter=1000, rho=None, norm=np.inf, raise_on_failure=True) -> FixedPointResult:
    """Solve x = T(x) for an array x.

    Parameters
    ----------
    T : callable
        The map, array -> array of the same shape.
    x0 : array
        Starting point.
    method : {"picard", "anderson"}
        Plain iteration, or Anderson acceleration (type II, Walker & Ni 2011) with memory ``depth``.
    damping : float in (0, 1]
        Mixing parameter: x_{k+1} = x_k + damping (T(x_k) - x_k) (Picard) and its Anderson analogue.
    tol : float
        Stop when |T(x) - x| <= tol (in ``norm``, default the max norm).
    maxiter : int
        Maximum number of evaluations of T.
    rho : float in [0, 1), optional
        A known contraction modulus of T, used for the a-posteriori error bound.
    raise_on_failure : bool
        Raise :class:`FixedPointError` when not converged (default); else return the result with
        ``converged = False``.
    """
    if method not in ("picard", "anderson"):
        raise ValueError(f"method must be 'picard' or 'anderson', got {method!r}")
    if not (0 < damping <= 1):
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    if not (isinstance(depth, (int, np.integer)) and depth >= 1):
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    if not (isinstance(maxiter, (int, np.integer)) and maxiter >= 1):
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if rho is not None and not (0 <= rho < 1):
        raise ValueError(f"rho must be in [0, 1) (a contraction modulus), got {rho!r}")
    x = np.array(x0, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    shape = x.shape
    residuals = []
    dX, dF = [], []  # Anderson histories of differences of iterates and of residual vectors
    x_prev = f_prev = None
    message = f"not converged within maxiter = {maxiter} iterations"
    converged = False
    for it in range(1, maxiter + 1):
        tx = np.asarray(T(x), dtype=float)
        if tx.shape != shape:
            raise ValueError(f"T must preserve the shape {shape}, returned {tx.shape}")
        f = (tx - x).ravel()
        r = _norm(f, norm)
        residuals.append(r)
        if not np.isfinite(r):
            message = f"diverged: non-finite residual at iteration {it}"
            break
        if r <= tol:
            converged = True
            message = f"converged: residual {r:.3g} <= tol {tol:.3g}"
            break
        if method == "picard":
            x_new = x + damping * (tx - x)
        else:
            if f_prev is not None:
                dX.append((x - x_prev).ravel())
                dF.append(f - f_prev)
                if len(dF) > depth:
                    dX.pop(0)
                    dF.pop(0)
            x_prev, f_prev = x, f
            step = x.ravel() + damping * f
            if dF:
                Fm = np.stack(dF, axis=1)
                gamma = np.linalg.lstsq(Fm, f, rcond=None)[0]
                step = step - (np.stack(dX, axis=1) + damping * Fm) @ gamma
            x_new = step.reshape(shape)
        x = x_new
    iterations = len(residuals)
    bound = rho / (1 - rho) * residuals[-1] if rho is not None and np.isfinite(residuals[-1]) else None
    result = FixedPointResult(x=tx, converged=converged, iterations=iterations,
                              residuals=np.array(residuals), error_bound=bound, message=message, method=method)
    if not converged and raise_on_failure:
        raise FixedPointError(f"fixed_point ({method}): {message}; last residual {residuals[-1]:.3g}", result)
    return result
