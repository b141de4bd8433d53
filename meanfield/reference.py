"""Plain NumPy reference implementations of the compiled kernels.

They follow the equations of ``theory_notes/model.md`` literally (forward step, then error, then the
SGD update, one step at a time, vectorised over units) and are the yardstick of the tests and the
NumPy baseline of the benchmarks. They are slow on purpose: no fusion, no chunking.
"""

from __future__ import annotations

import math

import numpy as np

from .activations import derivative_numpy, sigma_numpy


def train_reference(c, w, b, X, Y, alpha, activation="tanh", state=None):
    """Online SGD with RTRL, one step at a time.

    c (N,), w (N, d), b (N,) initial parameters; X (n, d) inputs; Y (n,) targets; learning rate
    alpha / N. ``state`` = (S, Jw, Jb) continues a run (default: zeros). Returns a dict with the final
    parameters, the final state and the errors e_k = Y_k - f^N_k.
    """
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
        s, ds = sigma_numpy(activation, z), derivative_numpy(activation, z)
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
    windows = np.asarray(windows, dtype=float)
    M, L, d = windows.shape
    N = b.size
    S, Jw, Jb = np.zeros((M, N)), np.zeros((M, N, d)), np.zeros((M, N))
    for t in range(L):
        x = windows[:, t, :]  # (M, d)
        z = x @ w.T + b * S
        ds = derivative_numpy(activation, z)
        Jw = ds[:, :, None] * (x[:, None, :] + b[None, :, None] * Jw)
        Jb = ds * (S + b * Jb)
        S = sigma_numpy(activation, z)
    return S, Jw, Jb
