"""Plain NumPy reference implementations of the compiled kernels.

They follow the equations of ``theory_notes/model.md`` literally (forward step, then error, then the
SGD update, one step at a time, vectorised over units) and are the yardstick of the tests and the
NumPy baseline of the benchmarks. They are slow on purpose: no fusion, no chunking.
"""

from __future__ import annotations

import math

import numpy as np

from .activations import get_activation, normal_rule


def train_reference(c, w, b, X, Y, alpha, activation="tanh", state=None):
    """Online SGD with RTRL, one step at a time.

    c (N,), w (N, d), b (N,) initial parameters; X (n, d) inputs; Y (n,) targets; learning rate
    alpha / N. ``state`` = (S, Jw, Jb) continues a run (default: zeros). Returns a dict with the final
    parameters, the final state and the errors e_k = Y_k - f^N_k.
    """
    act = get_activation(activation)
    c, w, b = (np.array(a, dtype=float) for a in (c, w, b))
    N, d = w.shape
    if state is None:
        S, Jw, Jb = np.zeros(N), np.zeros((N, d)), np.zeros(N)
    else:
        S, Jw, Jb = (np.array(a, dtype=float) for a in state)
    lr = alpha * N**-1.5
    errors = np.empty(len(Y))
    for k in range(len(Y)):
        x = X[k]
        z = w @ x + b * S
        s, ds = act(z), act.derivative(z)
        Jw = ds[:, None] * (x[None, :] + b[:, None] * Jw)
        Jb = ds * (S + b * Jb)
        S = s
        e = Y[k] - c @ S / math.sqrt(N)
        errors[k] = e
        grad_c, grad_w, grad_b = S, c[:, None] * Jw, c * Jb
        c = c + lr * e * grad_c
        w = w + lr * e * grad_w
        b = b + lr * e * grad_b
    return dict(c=c, w=w, b=b, S=S, Jw=Jw, Jb=Jb, errors=errors)


def window_states_reference(windows, w, b, activation="tanh"):
    """S (M, N), J^w (M, N, d), J^b (M, N) after each window (M, L, d) from zero state."""
    act = get_activation(activation)
    windows = np.asarray(windows, dtype=float)
    M, L, d = windows.shape
    N = b.size
    S, Jw, Jb = np.zeros((M, N)), np.zeros((M, N, d)), np.zeros((M, N))
    for t in range(L):
        x = windows[:, t, :]  # (M, d)
        z = x @ w.T + b * S
        ds = act.derivative(z)
        Jw = ds[:, :, None] * (x[:, None, :] + b[None, :, None] * Jw)
        Jb = ds * (S + b * Jb)
        S = act(z)
    return S, Jw, Jb


def gaussian_dual_reference(s11, s12, s22, activation, order=128):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) by a tensor trapezoidal rule, for any activation."""
    x, w = normal_rule(order)
    a = math.sqrt(max(s11, 0.0))
    c = s12 / a if a > 0 else 0.0
    d = math.sqrt(max(s22 - c * c, 0.0))
    u = a * x[:, None] + 0 * x[None, :]
    v = c * x[:, None] + d * x[None, :]
    ww = np.outer(w, w)
    act = get_activation(activation)
    return float(np.sum(ww * act(u) * act(v))), float(np.sum(ww * act.derivative(u) * act.derivative(v)))


def rntk_reference(X, Y=None, *, layers=1, activation="relu", sigma_w=1.0, sigma_u=1.0, sigma_b=0.0,
                   sigma_v=1.0, sigma_h=0.0, readout="last", initial_state="shared", dual=None):
    """(NNGP, NTK) Gram matrices by the full (T, T') recursion for every pair (slow; for tests).

    ``dual(s11, s12, s22)`` defaults to quadrature of the activation (:func:`gaussian_dual_reference`).
    Y = None: Y is X, and with ``initial_state="independent"`` each sequence meets its own initial state on the
    diagonal (else no pair shares one).
    """
    dual = dual or (lambda a, b, c: gaussian_dual_reference(a, b, c, activation))
    sw, su, sb, sv, sh = (s**2 for s in (sigma_w, sigma_u, sigma_b, sigma_v, sigma_h))

    def grids(x, y, same_start):
        Tx, Ty, m = x.shape[0], y.shape[0], x.shape[1]
        below_k = np.zeros((Tx + 1, Ty + 1))
        below_k[1:, 1:] = x @ y.T / m
        below_kd = below_th = np.zeros_like(below_k)
        # each sequence's own variances, layer by layer
        vx_below, vy_below = np.sum(x * x, 1) / m, np.sum(y * y, 1) / m
        for ll in range(layers):
            vx, vy = np.empty(Tx), np.empty(Ty)
            kx, ky = sh, sh
            for t in range(Tx):
                vx[t] = sw * kx + su * vx_below[t] + sb
                kx = dual(vx[t], vx[t], vx[t])[0]
                vx_below[t] = kx
            for t in range(Ty):
                vy[t] = sw * ky + su * vy_below[t] + sb
                ky = dual(vy[t], vy[t], vy[t])[0]
                vy_below[t] = ky
            k, kd, th = (np.zeros((Tx + 1, Ty + 1)) for _ in range(3))
            k[0, 0] = sh if same_start else 0.0
            for t in range(1, Tx + 1):
                for u in range(1, Ty + 1):
                    s = sw * k[t - 1, u - 1] + su * below_k[t, u] + sb
                    k[t, u], kd[t, u] = dual(vx[t - 1], s, vy[u - 1])
                    th[t, u] = s + sw * kd[t - 1, u - 1] * th[t - 1, u - 1] + (
                        su * below_kd[t, u] * below_th[t, u] if ll > 0 else 0.0)
            below_k, below_kd, below_th = k, kd, th
        return k, kd, th

    symmetric = Y is None
    X = [np.asarray(x, float) for x in X]
    Y = X if symmetric else [np.asarray(y, float) for y in Y]
    nngp, ntk = np.empty((len(X), len(Y))), np.empty((len(X), len(Y)))
    for i, x in enumerate(X):
        for j, y in enumerate(Y):
            k, kd, th = grids(x, y, initial_state == "shared" or (symmetric and i == j))
            if readout == "last":
                nngp[i, j] = sv * k[-1, -1]
                ntk[i, j] = sv * (k[-1, -1] + kd[-1, -1] * th[-1, -1])
            elif readout == "per_step":  # the end-aligned diagonal, 1/sqrt(T T')
                steps = range(min(x.shape[0], y.shape[0]))
                scale = sv / np.sqrt(x.shape[0] * y.shape[0])
                nngp[i, j] = scale * sum(k[-1 - s, -1 - s] for s in steps)
                ntk[i, j] = scale * sum(k[-1 - s, -1 - s] + kd[-1 - s, -1 - s] * th[-1 - s, -1 - s] for s in steps)
            else:
                scale = sv / (x.shape[0] * y.shape[0])
                nngp[i, j] = scale * k[1:, 1:].sum()
                ntk[i, j] = scale * (k[1:, 1:] + kd[1:, 1:] * th[1:, 1:]).sum()
    return nngp, ntk
