"""Helpers shared by the tests (the package never imports them)."""

import numpy as np


def finite_difference_jacobian(net, X, h=1e-6):
    """Central differences of net(X) with respect to every entry of net.parameters(): J (M, P)."""
    rows = []
    for P in net.parameters():
        for idx in np.ndindex(P.shape):
            old = P[idx]
            P[idx] = old + h
            up = net(X)
            P[idx] = old - h
            down = net(X)
            P[idx] = old
            rows.append((up - down) / (2 * h))
    return np.array(rows).T
