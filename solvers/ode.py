"""ODE solvers for kernel flows: the exact linear flow and a general integrator (scipy's solve_ivp).

The linear kernel flow on M points with weights pi_j >= 0 (``theory_notes/limit.md`` section 5):

    d/dt f_t = alpha K Pi (ybar - f_t),   Pi = diag(pi),

for a symmetric positive semi-definite K. With B = Pi^{1/2}, A = B K B = V Lambda V^T and
r_t = ybar - f_t, u_t = B r_t solves u' = -alpha A u, so u_t = V exp(-alpha Lambda t) V^T u_0 and

    f_t = f_0 + alpha K Pi int_0^t r_s ds = f_0 + K B V phi_t(Lambda) V^T B r_0,
    phi_t(lambda) = (1 - exp(-alpha lambda t)) / lambda   (= alpha t at lambda = 0).

This integral form needs no inverse of B or of Lambda (zero weights and a singular K are fine), and
it evaluates the flow at any point x outside the grid: replace the rows K by K(x, grid) and f_0 by
f_0(x), which is the ODE d/dt f_t(x) = alpha sum_j pi_j K(x, x_j)(ybar_j - f_t(x_j)) integrated in time.

Gradient descent with step h is the same map taken in steps: f_{k+1} = f_k + h alpha K Pi (ybar - f_k).
Then u_k = (I - h alpha Lambda)^k u_0, and f_{kh} has the same integral form with

    phi_{kh}(lambda) = (1 - (1 - h alpha lambda)^k) / lambda   (= alpha k h at lambda = 0),

which tends to the flow's phi_t as h -> 0 at fixed t = kh (``LinearKernelFlow(..., step=h)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import integrate, linalg


def phi(lam, t, alpha) -> np.ndarray:
    """phi_t(lambda) = (1 - exp(-alpha lambda t)) / lambda (alpha t at lambda = 0), elementwise, broadcast."""
    lam, t = np.asarray(lam, dtype=float), np.asarray(t, dtype=float)
    safe = np.where(lam > 0, lam, 1.0)
    return np.where(lam > 0, -np.expm1(-alpha * lam * t) / safe, alpha * t)


def phi_discrete(lam, t, alpha, step) -> np.ndarray:
    """(1 - (1 - step alpha lambda)^k) / lambda with k = t / step (alpha t at lambda = 0): gradient descent's phi."""
    lam, t = np.asarray(lam, dtype=float), np.asarray(t, dtype=float)
    k = np.rint(t / step)
    if np.any(np.abs(k * step - t) > 1e-9 * np.maximum(t, step)):
        raise ValueError(f"times must be multiples of the step {step:g}, got {t}")
    x = step * alpha * lam
    small = np.where(x < 0.5, x, 0.0)  # 1 - (1 - x)^k without cancellation when x is tiny
    one_minus = np.where(x < 0.5, -np.expm1(k * np.log1p(-small)), 1.0 - np.power(1.0 - x, k))
    safe = np.where(lam > 0, lam, 1.0)
    return np.where(lam > 0, one_minus / safe, alpha * k * step)


def _reals(value, name) -> np.ndarray:
    """``value`` as a float array; booleans, complex numbers, strings and ragged lists refused, naming it."""
    try:
        arr = np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} must be an array of real numbers, got a ragged sequence") from None
    if arr.dtype.kind not in "iuf":
        got = repr(value) if arr.ndim == 0 else f"an array of dtype {arr.dtype}"
        raise ValueError(f"{name} must be an array of real numbers, got {got}")
    return arr.astype(float, copy=False)


def _positive(value, name) -> float:
    """A finite real number > 0 (not a bool)."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not (math.isfinite(value) and value > 0)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _times(times) -> np.ndarray:
    t = np.atleast_1d(_reals(times, "times"))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("times must be a 1-D array of finite values >= 0")
    return t


class LinearKernelFlow:
    """Exact solution of f' = alpha K Pi (ybar - f) by the symmetric eigendecomposition of Pi^1/2 K Pi^1/2.

    Parameters
    ----------
    K : array (M, M)
        Symmetric positive semi-definite kernel matrix on the grid.
    weights : array (M,)
        Non-negative weights pi_j (a probability vector for an average over a law).
    ybar : array (M,)
        Targets on the grid.
    alpha : float
        Rate constant alpha > 0.
    f0 : array (M,), optional
        Initial values on the grid (default 0).
    step : float, optional
        Gradient descent with this step h instead of the flow: values at times t = k h only (the module's
        docstring). None (default) is the flow.
    """

    def __init__(self, K, weights, ybar, alpha, f0=None, step=None):
        K = _reals(K, "K")
        if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
            raise ValueError(f"K must be a non-empty square matrix, got shape {K.shape}")
        M = K.shape[0]
        if not np.all(np.isfinite(K)):
            raise ValueError("K must be finite")
        scale = max(np.max(np.abs(K)), np.finfo(float).tiny)
        if np.max(np.abs(K - K.T)) > 1e-10 * scale:
            raise ValueError("K must be symmetric")
        weights = _reals(weights, "weights")
        if weights.shape != (M,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"weights must be {M} finite non-negative numbers")
        ybar = _reals(ybar, "ybar")
        if ybar.shape != (M,) or not np.all(np.isfinite(ybar)):
            raise ValueError(f"ybar must be {M} finite numbers, got shape {ybar.shape}")
        f0 = np.zeros(M) if f0 is None else _reals(f0, "f0")
        if f0.shape != (M,) or not np.all(np.isfinite(f0)):
            raise ValueError(f"f0 must be {M} finite numbers, got shape {f0.shape}")
        alpha = _positive(alpha, "alpha")
        self.step = None if step is None else _positive(step, "step")
        self.K, self.weights, self.ybar, self.alpha, self.f0 = 0.5 * (K + K.T), weights, ybar, alpha, f0
        self._B = np.sqrt(weights)
        A = self._B[:, None] * self.K * self._B[None, :]
        lam, V = linalg.eigh(A, driver="evd")  # divide and conquer: faster than the default evr
        if lam.min() < -1e-8 * max(lam.max(), 1e-300):
            raise ValueError(f"K must be positive semi-definite: Pi^1/2 K Pi^1/2 has eigenvalue {lam.min():.3g}")
        self.eigenvalues = np.clip(lam, 0.0, None)
        self._V = V

    @property
    def eigenbasis(self):
        """(B V, Lambda): the columns pi^1/2 v_i of the eigenvectors of A = B K B scaled by B = Pi^1/2, and the
        eigenvalues (clipped at 0), so that <psi_i, a>_pi = (B V)^T a for the eigenfunctions psi_i of K in L^2(pi)."""
        return self._B[:, None] * self._V, self.eigenvalues

    def _phi(self, t):
        if self.step is None:
            return phi(self.eigenvalues, t, self.alpha)
        return phi_discrete(self.eigenvalues, t, self.alpha, self.step)

    def operator(self, t) -> np.ndarray:
        """N_t = B V phi_t(Lambda) V^T B (M, M), so that f_t(x) = f_0(x) + K(x, grid) N_t (ybar - f_0)."""
        BV = self._B[:, None] * self._V
        return (BV * self._phi(float(t))) @ BV.T

    def cross_operator(self, t, K_cross) -> np.ndarray:
        """K_cross N_t (P, M) without forming N_t: P M^2 operations instead of M^3."""
        BV = self._B[:, None] * self._V
        return ((_reals(K_cross, "K_cross") @ BV) * self._phi(float(t))) @ BV.T

    def coefficients(self, times, f0=None) -> np.ndarray:
        """c_t = N_t (ybar - f_0) at each time, shape (T, M); ``f0`` (M,) replaces the flow's initial values."""
        t = _times(times)
        f0 = self.f0 if f0 is None else _reals(f0, "f0")
        if f0.shape != self.f0.shape:
            raise ValueError(f"f0 must have shape {self.f0.shape}, got {f0.shape}")
        u0 = self._V.T @ (self._B * (self.ybar - f0))
        phi = np.stack([self._phi(ti) for ti in t])  # (T, M)
        return (phi * u0) @ self._V.T * self._B

    def on_grid(self, times) -> np.ndarray:
        """f_t on the grid, shape (T, M)."""
        return self.f0 + self.coefficients(times) @ self.K

    def at(self, times, K_cross, f0_cross=None, f0=None) -> np.ndarray:
        """f_t at P points outside the grid, from K_cross = K(points, grid) (P, M); shape (T, P). ``f0_cross``
        (P,) are the initial values at the points and ``f0`` (M,) replaces those on the grid (the flow is affine
        in them, so one flow serves every initialisation)."""
        K_cross = _reals(K_cross, "K_cross")
        if K_cross.ndim != 2 or K_cross.shape[1] != self.K.shape[0]:
            raise ValueError(f"K_cross must have shape (P, {self.K.shape[0]}), got {K_cross.shape}")
        start = 0.0 if f0_cross is None else _reals(f0_cross, "f0_cross")
        return start + self.coefficients(times, f0) @ K_cross.T

    def residual_at_infinity(self) -> np.ndarray:
        """B (ybar - f_inf): the component of B (ybar - f_0) in the null space of A.

        Eigenvalues below M eps lambda_max count as zero (rounding leaves them slightly positive).
        """
        lam = self.eigenvalues
        null = lam <= lam.size * np.finfo(float).eps * lam.max()
        V0 = self._V[:, null]
        return V0 @ (V0.T @ (self._B * (self.ybar - self.f0)))


def linear_flow_rhs(K, weights, ybar, alpha) -> Callable[[float, np.ndarray], np.ndarray]:
    """Right-hand side of the linear kernel flow, for :func:`integrate_ode`."""
    K, weights, ybar = (np.asarray(a, dtype=float) for a in (K, weights, ybar))

    def rhs(t, f):
        return alpha * (K @ (weights * (ybar - f)))

    return rhs


@dataclass
class OdeSolution:
    """Result of :func:`integrate_ode`: values ``y`` (T, n) at ``t``, a dense interpolant ``sol``."""

    t: np.ndarray
    y: np.ndarray
    sol: Callable
    nfev: int
    success: bool
    message: str


def integrate_ode(rhs, y0, times, *, method="DOP853", rtol=1e-10, atol=1e-12) -> OdeSolution:
    """Integrate y' = rhs(t, y) from t = 0 and report y at ``times`` (scipy.integrate.solve_ivp)."""
    t = _times(times)
    if np.any(np.diff(t) < 0):
        raise ValueError("times must be non-decreasing")
    y0 = np.asarray(y0, dtype=float)
    if y0.ndim != 1 or not np.all(np.isfinite(y0)):
        raise ValueError("y0 must be a finite 1-D array")
    t_end = float(t[-1])
    if t_end == 0:
        return OdeSolution(t, np.tile(y0, (t.size, 1)), lambda s: y0, 0, True, "nothing to integrate")
    out = integrate.solve_ivp(rhs, (0.0, t_end), y0, method=method, t_eval=t, dense_output=True, rtol=rtol,
                              atol=atol)
    if not out.success:
        raise RuntimeError(f"integrate_ode: solve_ivp failed: {out.message}")
    return OdeSolution(out.t, out.y.T, out.sol, out.nfev, out.success, out.message)
