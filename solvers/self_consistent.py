"""Self-consistent equations x = F(x) with possibly several solutions (e.g. saddle-point kernel equations).

Two methods, each from several starting points:

- ``"anderson"``: damped fixed-point iteration with Anderson acceleration (:func:`solvers.fixed_point.fixed_point`);
- ``"newton-krylov"``: Newton's method on G(x) = F(x) - x with a Krylov linear solver
  (``scipy.optimize.newton_krylov``), for hard cases where the iteration is slow.

Both are (quasi-)Newton methods, and both can converge to solutions that plain iteration would leave
(Anderson is a secant method: on m = tanh(2 m) it also finds the repelling m = 0). So the distinct
solutions are returned with their stability under plain iteration: the spectral radius of the
Jacobian of F at the solution (finite differences; below 1 means attracting).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import optimize

from .fixed_point import fixed_point


@dataclass
class Solution:
    """One solution x* of x = F(x): residual |F(x*) - x*|, spectral radius of dF at x*, how it was found."""

    x: np.ndarray
    residual: float
    spectral_radius: float | None
    method: str
    starts: int = 1  # how many starting points converged to it

    @property
    def attracting(self) -> bool | None:
        return None if self.spectral_radius is None else self.spectral_radius < 1


@dataclass
class SelfConsistentResult:
    """Distinct solutions found, and the outcome of every start (converged or not, and why)."""

    solutions: list
    attempts: list = field(default_factory=list)

    @property
    def n_solutions(self) -> int:
        return len(self.solutions)


def _spectral_radius(F, x, h=1e-6, max_size=400):
    """Spectral radius of the Jacobian of F at x by central differences (None for large problems)."""
    flat = x.ravel()
    if flat.size > max_size:
        return None
    J = np.empty((flat.size, flat.size))
    for k in range(flat.size):
        e = np.zeros_like(flat)
        e[k] = h
        J[:, k] = (np.ravel(F((flat + e).reshape(x.shape))) - np.ravel(F((flat - e).reshape(x.shape)))) / (2 * h)
    return float(np.max(np.abs(np.linalg.eigvals(J))))


def solve_self_consistent(F: Callable[[np.ndarray], np.ndarray], starts, *, method="anderson", damping=1.0,
                          depth=5, tol=1e-10, maxiter=2000, distinct_tol=1e-6, stability=True) -> SelfConsistentResult:
    """Solve x = F(x) from each of ``starts`` (a list of arrays, or one array) and group the solutions.

    Solutions closer than ``distinct_tol`` (max norm, relative to max(1, |x|)) count as one. Starts that
    do not converge are reported in ``attempts`` and not raised, since several starts are the point.
    """
    if method not in ("anderson", "newton-krylov"):
        raise ValueError(f"method must be 'anderson' or 'newton-krylov', got {method!r}")
    starts = [np.asarray(starts, dtype=float)] if isinstance(starts, np.ndarray) else [
        np.asarray(s, dtype=float) for s in starts]
    if not starts:
        raise ValueError("starts must contain at least one starting point")
    solutions, attempts = [], []
    for i, x0 in enumerate(starts):
        try:
            if method == "anderson":
                res = fixed_point(F, x0, method="anderson", depth=depth, damping=damping, tol=tol, maxiter=maxiter,
                                  raise_on_failure=False)
                ok, x, note = res.converged, res.x, res.message
            else:
                x = optimize.newton_krylov(lambda z: np.asarray(F(z), dtype=float) - z, x0, f_tol=tol,
                                           maxiter=maxiter)
                ok, note = True, "converged"
        except (optimize.NoConvergence, ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            ok, x, note = False, None, f"{type(err).__name__}: {err}"
        attempts.append(dict(start=i, converged=bool(ok), message=note))
        if not ok:
            continue
        residual = float(np.max(np.abs(np.asarray(F(x)) - x)))
        for sol in solutions:
            if np.max(np.abs(sol.x - x)) <= distinct_tol * max(1.0, float(np.max(np.abs(x)))):
                sol.starts += 1
                break
        else:
            solutions.append(Solution(np.array(x), residual, _spectral_radius(F, np.array(x)) if stability else None,
                                      method))
    return SelfConsistentResult(solutions, attempts)
