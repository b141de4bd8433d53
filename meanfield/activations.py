"""The table of activation functions: sigma, sigma', sup|sigma|, sup|sigma'| and the Gaussian dual.

``ACTIVATIONS`` (linear, tanh, erf, relu) is the one table; everything that takes an activation looks
it up with :func:`get_activation`, which refuses an unknown or unsupported name with one message. Every
activation exists twice: as a Numba scalar function for the compiled kernels (selected by the row's
``code``), and as NumPy ufuncs (the row's ``__call__`` and ``derivative``) for the reference
implementations the tests compare against. A new activation adds a row here and a branch in
:func:`sigma_and_derivative`, :func:`activate_inplace` and :func:`gaussian_dual`.

Kernels select the activation by a small integer *code* (``TANH``, ``ERF``, ...) instead of receiving a
function object: Numba cannot cache functions that take other jitted functions as arguments, and a
loop-invariant branch on the code is hoisted out of the unit loop by LLVM (loop unswitching), so the
tanh path stays vectorised.

Why our own tanh: ``math.tanh`` is an opaque libm call that stops LLVM from vectorising the unit loop
(about 15 ns per unit-step instead of about 2.5 ns). ``tanh_scalar`` below uses only arithmetic and a
bit cast: for |z| < 0.625 the Cephes rational approximation z + z^3 P(z^2)/Q(z^2); otherwise
(e^{2|z|} - 1)/(e^{2|z|} + 1) with e^x evaluated by Cody-Waite range reduction, a degree-13 Taylor
polynomial on |r| <= ln(2)/2, and the scale 2^n built from its IEEE-754 bits. The two branches share a
single division. Measured relative error against ``numpy.tanh``: below 4e-16 (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.extending import intrinsic
from scipy import special

TANH = 0
ERF = 1
RELU = 2
LINEAR = 3


@dataclass(frozen=True)
class Activation:
    """One row of the activation table.

    ``code`` selects the activation in compiled kernels; ``sup_value`` and ``sup_derivative`` are
    sup|sigma| and sup|sigma'| (``inf`` where unbounded); ``dual`` says how the Gaussian dual
    (E[sigma(u) sigma(v)], E[sigma'(u) sigma'(v)]) is computed by :func:`gaussian_dual`.
    """

    name: str
    code: int
    sup_value: float
    sup_derivative: float
    dual: str

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.sup_value)

    def __call__(self, z):
        """sigma(z) with NumPy/SciPy ufuncs (the reference for the compiled kernels)."""
        if self.code == TANH:
            return np.tanh(z)
        if self.code == RELU:
            return np.maximum(z, 0.0)
        if self.code == LINEAR:
            return np.asarray(z, dtype=float)
        return special.erf(z)

    def derivative(self, z):
        """sigma'(z) with NumPy ufuncs (ReLU: 0 at 0, as in the compiled kernels)."""
        if self.code == TANH:
            return 1.0 - np.tanh(z) ** 2
        if self.code == RELU:
            return (np.asarray(z) > 0).astype(float)
        if self.code == LINEAR:
            return np.ones_like(np.asarray(z, dtype=float))
        return 2.0 / math.sqrt(math.pi) * np.exp(-np.square(z))


ACTIVATIONS = {a.name: a for a in (
    Activation("linear", LINEAR, math.inf, 1.0, "closed form: (s12, 1)"),
    Activation("tanh", TANH, 1.0, 1.0, "tensor trapezoid rule on the Cholesky factor"),
    Activation("erf", ERF, 1.0, 2.0 / math.sqrt(math.pi), "closed form (arcsine), theory_notes/rntk.md section 3"),
    Activation("relu", RELU, math.inf, 1.0, "closed form (arc-cosine kernels of degree 1 and 0)"),
)}


def get_activation(name, *, bounded=False, allowed=None, argument="activation") -> Activation:
    """The table row of the activation called ``name``, with one error message everywhere.

    ``bounded`` restricts to activations with sup|sigma| < inf (the diagonal RNN's memory state and its
    limit need them); ``allowed`` to a subset of names (a model that supports only some).
    """
    names = [n for n in ACTIVATIONS if (not bounded or ACTIVATIONS[n].bounded) and (allowed is None or n in allowed)]
    if not isinstance(name, str) or name not in names:
        why = " (bounded: sup|sigma| must be finite)" if bounded else ""
        raise ValueError(f"{argument} must be one of {sorted(names)}{why}, got {name!r}")
    return ACTIVATIONS[name]


# fastmath flags that are safe here: no 'nnan'/'ninf', so non-finite values are still detected.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
JIT = dict(cache=True, fastmath=FASTMATH, error_model="numpy")


@intrinsic
def _int_bits_as_float(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (an LLVM bitcast; vectorisable)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_TWO_POW_52 = 4503599627370496

# Cephes tanh.c: tanh(z) = z + z^3 P(z^2) / Q(z^2) on |z| < 0.625 (Q monic).
_P0, _P1, _P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_Q0, _Q1, _Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@njit(inline="always", **JIT)
def _exp_nonneg(x):
    """e^x for 0 <= x <= 40 (the range tanh needs), relative error about 1 ulp."""
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (
            1 / 3628800 + r * (1 / 39916800 + r * (1 / 479001600 + r / 6227020800))))))))))))
    return p * _int_bits_as_float((np.int64(n) + 1023) * _TWO_POW_52)


@njit(inline="always", **JIT)
def tanh_scalar(z):
    """tanh(z), vectorisable by LLVM (see the module docstring)."""
    a = abs(z)
    a = 20.0 if a > 20.0 else a  # tanh(20) == 1 in double precision; a NaN stays NaN
    s = _exp_nonneg(2.0 * a)
    z2 = z * z
    q = ((z2 + _Q0) * z2 + _Q1) * z2 + _Q2
    small = a < 0.625
    num = z * q + z * z2 * ((_P0 * z2 + _P1) * z2 + _P2) if small else (
        (1.0 - s) if z < 0.0 else (s - 1.0))
    den = q if small else s + 1.0
    return num / den


@njit(inline="always", **JIT)
def sigma_and_derivative(z, code):
    """(sigma(z), sigma'(z)) for the activation with kernel code ``code``."""
    if code == TANH:
        s = tanh_scalar(z)
        return s, 1.0 - s * s
    if code == RELU:
        return (z, 1.0) if z > 0.0 else (0.0, 0.0)
    if code == LINEAR:
        return z, 1.0
    return math.erf(z), 1.1283791670955126 * math.exp(-z * z)


@njit(inline="always", **JIT)
def activate_inplace(z, ds, n, code):
    """z[:n] <- sigma(z[:n]) and ds[:n] <- sigma'(z[:n]) (old z).

    The branch on the code sits outside the loops so that each loop is small and the tanh loop
    vectorises; a branch inside one big loop is beyond LLVM's unswitching threshold.
    """
    if code == TANH:
        for i in range(n):
            s = tanh_scalar(z[i])
            z[i] = s
            ds[i] = 1.0 - s * s
    elif code == RELU:
        for i in range(n):
            positive = z[i] > 0.0
            ds[i] = 1.0 if positive else 0.0
            z[i] = z[i] if positive else 0.0
    elif code == LINEAR:
        for i in range(n):
            ds[i] = 1.0
    else:
        for i in range(n):
            zi = z[i]
            z[i] = math.erf(zi)
            ds[i] = 1.1283791670955126 * math.exp(-zi * zi)


NORMAL_RULE_ORDER = 96  # per dimension, for the dual of activations without a closed form
NORMAL_RULE_HALF_WIDTH = 8.5  # the N(0, 1) mass beyond is 2e-17


def normal_rule(order=NORMAL_RULE_ORDER, rule="trapezoid"):
    """Nodes and weights (summing to 1) of E[h(z)], z ~ N(0, 1).

    ``"trapezoid"``: equally spaced nodes on +-8.5 with Gaussian weights. For integrands analytic only
    in a strip around the real axis (tanh and its compositions) it converges like exp(-2 pi a / h),
    much faster than Gauss-Hermite (``theory_notes/limit.md`` section 4): for the tanh dual at
    variance 3, 96 nodes give 1e-12 against 5e-7 for Gauss-Hermite. ``"hermite"``: Gauss-Hermite.
    """
    if rule == "trapezoid":
        x = np.linspace(-NORMAL_RULE_HALF_WIDTH, NORMAL_RULE_HALF_WIDTH, order) if order > 1 else np.zeros(1)
        w = np.exp(-0.5 * x**2)
    elif rule == "hermite":
        x, w = np.polynomial.hermite_e.hermegauss(order)
    else:
        raise ValueError(f"rule must be 'trapezoid' or 'hermite', got {rule!r}")
    return x, w / w.sum()


# fdlibm e_asin.c: asin(x) = x + x^3 P(x^2) / Q(x^2) on |x| <= 0.5, relative error below 2^-58.
_ASIN_P = (1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
           -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05)
_ASIN_Q = (-2.40339491173441421878e+00, 2.02094576023350569471e+00, -6.88283971605453293030e-01,
           7.70381505559019352791e-02)


@njit(inline="always", **JIT)
def acos_scalar(x):
    """arccos(x) on [-1, 1], straight-line code that LLVM vectorises (about 1 ulp).

    fdlibm's rational approximation of asin on [0, 0.5]: arccos x = pi/2 - asin x for |x| < 0.5, and
    arccos |x| = 2 asin(sqrt((1 - |x|)/2)) above (arccos x = pi - arccos |x| for x < 0). ``math.acos`` is a
    libm call that keeps the RNTK's loop over pairs scalar, and so did an earlier Chebyshev series summed in
    a loop over its 23 coefficients: LLVM left that inner loop rolled, and the loop around it scalar (about
    24 ns per value against 2.2 ns now). Inputs are clamped to [-1, 1]; arccos(1) = 0 exactly.
    """
    a = abs(x)
    a = 1.0 if a > 1.0 else a
    small = a < 0.5
    z = x * x if small else 0.5 * (1.0 - a)
    s = x if small else math.sqrt(z)
    p0, p1, p2, p3, p4, p5 = _ASIN_P
    q1, q2, q3, q4 = _ASIN_Q
    p = z * (p0 + z * (p1 + z * (p2 + z * (p3 + z * (p4 + z * p5)))))
    q = 1.0 + z * (q1 + z * (q2 + z * (q3 + z * q4)))
    r = s + s * (p / q)
    return (0.5 * math.pi - r) if small else (2.0 * r if x > 0.0 else math.pi - 2.0 * r)


@njit(inline="always", **JIT)
def relu_dual(s11, s12, s22):
    """Arc-cosine kernels of degree 1 and 0 (ReLU): (E[phi(u)phi(v)], E[phi'(u)phi'(v)])."""
    root = math.sqrt(s11 * s22)
    ok = s11 > 0.0 and s22 > 0.0  # a zero variance means an identically 0 variable
    lam = s12 / root if ok else 0.0
    lam = min(1.0, max(-1.0, lam))
    theta = acos_scalar(lam)
    v = root * (lam * (math.pi - theta) + math.sqrt(1.0 - lam * lam)) / (2.0 * math.pi)
    dv = (math.pi - theta) / (2.0 * math.pi)
    return (v, dv) if ok else (0.0, 0.0)


@njit(inline="always", **JIT)
def gaussian_dual_rows(s11, s12, s22, code, zx, zw, v, dv, n):
    """gaussian_dual over arrays: v[:n], dv[:n] for s11 (scalar), s12[:n], s22[:n].

    The branch on the code sits outside the loops, so the ReLU loop vectorises.
    """
    if code == RELU:
        for i in range(n):
            v[i], dv[i] = relu_dual(s11, s12[i], s22[i])
    else:
        for i in range(n):
            v[i], dv[i] = gaussian_dual(s11, s12[i], s22[i], code, zx, zw)


@njit(**JIT)
def gaussian_dual(s11, s12, s22, code, zx, zw):
    """(E[sigma(u) sigma(v)], E[sigma'(u) sigma'(v)]) for (u, v) ~ N(0, [[s11, s12], [s12, s22]]).

    Closed forms for linear, ReLU (arc-cosine kernels) and erf (``theory_notes/rntk.md`` section 3); a tensor
    rule (``normal_rule``) on the Cholesky factor for any other activation (tanh). A zero variance
    means a variable that is identically 0 (sigma(0) = 0 and, for ReLU, sigma'(0) = 0).
    """
    if code == RELU:
        return relu_dual(s11, s12, s22)
    if code == LINEAR:
        return s12, 1.0
    if code == ERF:
        a, c = 1.0 + 2.0 * s11, 1.0 + 2.0 * s22
        return (2.0 / math.pi * math.asin(2.0 * s12 / math.sqrt(a * c)),
                4.0 / math.pi / math.sqrt(a * c - 4.0 * s12 * s12))
    a = math.sqrt(max(s11, 0.0))
    c = s12 / a if a > 0.0 else 0.0
    d = math.sqrt(max(s22 - c * c, 0.0))
    v = 0.0
    dv = 0.0
    for i in range(zx.size):
        su, du = sigma_and_derivative(a * zx[i], code)
        for j in range(zx.size):
            sv, dd = sigma_and_derivative(c * zx[i] + d * zx[j], code)
            wij = zw[i] * zw[j]
            v += wij * su * sv
            dv += wij * du * dd
    return v, dv



