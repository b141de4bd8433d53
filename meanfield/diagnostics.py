"""How far is a finite network from the kernel regime? Diagnostics of [WDK] (arXiv:2310.00137).

Definitions (``theory_notes/regime.md`` sections 1-3). For a network with Jacobian J(theta) on a probe
set and G = J J^T its empirical NTK Gram:

- kernel distance S(G_0, G_t) = 1 - <G_0, G_t>_F / (|G_0|_F |G_t|_F) (0 for a constant kernel);
- kernel velocity: S between consecutive checkpoints;
- alignment A(G, y) = y^T G y / (|G|_F |y|^2);
- relative weight change |theta_t - theta_0| / |theta_0|;
- lambda_min(G_0), and the Jacobian stability constant C' = max_t |J(theta_t) - J(theta_0)|_2 / sqrt(lambda_min(G_0))
  (the kernel picture of Zhang, Martens and Grosse needs C' <= 1/2);
- the gap between the trained network and the kernel-flow prediction on held-out inputs, and the gap to
  gradient descent on the linearised network with the same step (the discrete map: no discretisation floor,
  ``theory_notes/regime.md`` section 3).

|J_t - J_0|_2 never needs the Jacobian itself: it is sqrt(lambda_max(D)) with the P x P matrix
D = G_t - J_t J_0^T - J_0 J_t^T + G_0 of cross-network NTK Grams. So any model with
``ntk(X, Y=None, other=None)``, ``parameters()``, ``copy()``, ``__call__`` and ``train`` can be diagnosed
(``options``, e.g. the ``backend=`` and ``dtype=`` of an Elman RNN, go to every ``ntk``, ``__call__`` and ``train``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from . import checks
from .solvers.ode import LinearKernelFlow


def kernel_distance(G0, Gt) -> float:
    """1 - <G0, Gt>_F / (|G0|_F |Gt|_F)."""
    G0, Gt = np.asarray(G0, float), np.asarray(Gt, float)
    if G0.shape != Gt.shape:
        raise ValueError(f"Gram matrices must have the same shape, got {G0.shape} and {Gt.shape}")
    return float(1.0 - np.sum(G0 * Gt) / (np.linalg.norm(G0) * np.linalg.norm(Gt)))


def alignment(G, y) -> float:
    """y^T G y / (|G|_F |y|^2)."""
    y = np.asarray(y, float)
    return float(y @ G @ y / (np.linalg.norm(G) * (y @ y)))


def relative_change(params_t, params_0) -> float:
    """|theta_t - theta_0| / |theta_0| over lists of arrays."""
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(params_t, params_0))
    den = sum(float(np.sum(b**2)) for b in params_0)
    return float(np.sqrt(num / den))


def jacobian_change_norm(model_t, model_0, X, **options) -> float:
    """|J(theta_t) - J(theta_0)|_2 on X, from cross-network NTK Grams (no Jacobian formed)."""
    D = (model_t.ntk(X, **options) - model_t.ntk(X, other=model_0, **options) - model_0.ntk(X, other=model_t, **options)
         + model_0.ntk(X, **options))
    return float(np.sqrt(max(np.linalg.eigvalsh(0.5 * (D + D.T))[-1], 0.0)))


@dataclass
class RegimeDiagnostics:
    """Diagnostics at the checkpoints (training time t = lr * steps) of one training run."""

    times: np.ndarray
    kernel_distance: np.ndarray
    kernel_velocity: np.ndarray
    alignment: np.ndarray
    weight_change: np.ndarray
    jacobian_change: np.ndarray
    lambda_min0: float
    stability_constant: float
    prediction_gap: np.ndarray  # relative gap to the kernel flow on held-out inputs, per checkpoint
    discrete_gap: np.ndarray  # the same, to the kernel's GD map with the network's step (width alone)
    train_loss: np.ndarray

    def as_dict(self) -> dict:
        return asdict(self)


DIVERGENCE_FACTOR = 1e4  # a training loss this many times its initial value means GD diverged


def gd_stability(K, lr) -> float:
    """lr * lambda_max(K) / M: full-batch GD on the kernel flow f' = -(1/M) K (f - y) is stable below 2."""
    K = np.asarray(K, float)
    return float(lr * np.linalg.eigvalsh(K)[-1] / K.shape[0])


def track_training(model, X_train, y_train, X_heldout, *, lr, steps, checkpoints=5, K=None, K_cross=None,
                   kernels=True, options=None):
    """Train ``model`` (a copy; full-batch GD) and record the diagnostics at ``checkpoints`` times.

    ``kernels=False`` skips the Gram-based diagnostics (NaN in the result), which cost a backward pass per
    checkpoint, when only the prediction gaps are wanted (with ``K`` given, not even the initial Gram is formed).

    The kernel-flow prediction uses K (train x train) and K_cross (held-out x train), by default the
    network's own NTK at initialisation; pass the analytic RNTK for the infinite-width prediction. The
    prediction gap is max_x |f_t(x) - f^flow_t(x)| / max_{x,t} |f^flow_t(x) - f_0(x)| on the held-out set; the
    discrete gap is the same with the flow replaced by gradient descent on the linearised network with the
    network's step, which has no O(lr) discretisation floor.
    ``options``: keyword arguments of the model's ``ntk``, ``__call__`` and ``train`` (an Elman RNN's backend
    and dtype).
    """
    options = dict(options or {})
    y = np.asarray(y_train, float)
    M = len(X_train)
    net0 = model
    net = model.copy()
    G0 = net0.ntk(X_train, **options) if kernels or K is None else None  # M^2 T^2 n: skipped when not needed
    K = G0 if K is None else np.asarray(K, float)
    K_cross = net0.ntk(X_heldout, X_train, **options) if K_cross is None else np.asarray(K_cross, float)
    f0_train, f0_held = net0(X_train, **options), net0(X_heldout, **options)
    scale = model.width if getattr(model, "parameterisation", "ntk") == "mup" else 1
    stability = gd_stability(K, lr * scale)
    if stability >= 2:
        warnings.warn(f"track_training: lr = {lr:g} is beyond the stability limit {2 * lr / stability:.3g} = "
                      "2M / lambda_max(K) of gradient descent on the linearised network, whose predictions then "
                      "diverge: the discrete gap measures that divergence, not the network's distance from the "
                      "kernel regime", stacklevel=2)
    flow = LinearKernelFlow(K, np.full(M, 1.0 / M), y, 1.0, f0_train)
    gd = LinearKernelFlow(K, np.full(M, 1.0 / M), y, 1.0, f0_train, step=lr * scale)
    lam_min = float(np.linalg.eigvalsh(G0)[0]) if G0 is not None else np.nan
    per = max(1, int(steps) // int(checkpoints))
    times, dist, vel, align, wchange, jchange, losses, preds_net, preds_flow, preds_gd = ([] for _ in range(10))
    G_prev = G0
    done = 0
    while True:
        t = done * lr * scale
        times.append(t)
        wchange.append(relative_change(net.parameters(), net0.parameters()))
        if kernels:
            Gt = net.ntk(X_train, **options)
            dist.append(kernel_distance(G0, Gt))
            vel.append(kernel_distance(G_prev, Gt))
            align.append(alignment(Gt, y))
            jchange.append(jacobian_change_norm(net, net0, X_train, **options))
            G_prev = Gt
        else:
            dist.append(np.nan), vel.append(np.nan), align.append(np.nan), jchange.append(np.nan)
        losses.append(0.5 * float(np.mean((net(X_train, **options) - y) ** 2)))
        if not losses[-1] <= DIVERGENCE_FACTOR * max(losses[0], 1e-12):
            raise FloatingPointError(f"training diverged: the loss grew from {losses[0]:.3g} to {losses[-1]:.3g} by "
                                     f"step {done}; lr = {lr:g} is too large")
        preds_net.append(net(X_heldout, **options))
        preds_flow.append(flow.at([t], K_cross, f0_held)[0])
        preds_gd.append(gd.at([t], K_cross, f0_held)[0])
        if done >= steps:
            break
        n = min(per, steps - done)
        net.train(X_train, y, lr, n, record_every=n + 1, **options)
        done += n
    preds_net = np.array(preds_net)

    def gap(preds):
        preds = np.array(preds)
        return np.max(np.abs(preds_net - preds), axis=1) / max(np.max(np.abs(preds - f0_held)), 1e-300)

    return RegimeDiagnostics(np.array(times), np.array(dist), np.array(vel), np.array(align), np.array(wchange),
                             np.array(jchange), lam_min, float(np.max(jchange) / np.sqrt(max(lam_min, 1e-300))),
                             gap(preds_flow), gap(preds_gd), np.array(losses))


def ntk_gp(nngp, ntk, y, *, lr, steps):
    """The NTK-Gaussian-process prediction: the law of the linearised network's outputs after ``steps`` full-batch
    GD steps of size ``lr`` on (1/2M) sum_i (f(x_i) - y_i)^2, when f_0 ~ GP(0, NNGP) ([Lee et al. 2019]; the
    recurrent case in ``theory_notes/regime.md`` section 6).

    nngp, ntk : arrays (M + P, M + P)
        The NNGP and NTK Grams of the M training points followed by the P test points.
    y : array (M,)
        Training targets.

    With N = the GD operator of the training block (``solvers.ode.LinearKernelFlow`` with ``step=lr``) and
    A = Theta(test, train) N, the output on the test points is f_0(test) - A f_0(train) + A y, so it is Gaussian
    with mean A y and covariance K_tt - A K_rt - K_tr A^T + A K_rr A^T (r: train, t: test).
    Returns (mean (P,), covariance (P, P)).
    """
    y = checks.finite_array(y, "y", ndim=1)
    M = y.size
    nngp, ntk = (checks.finite_array(a, name, ndim=2) for a, name in ((nngp, "nngp"), (ntk, "ntk")))
    if nngp.shape != ntk.shape or nngp.shape[0] != nngp.shape[1] or nngp.shape[0] <= M:
        raise ValueError(f"nngp and ntk must be equal square Grams of the {M} training points and at least one test "
                         f"point, got shapes {nngp.shape} and {ntk.shape}")
    steps = checks.integer(steps, "steps", 0)
    lr = checks.positive(lr, "lr")
    gd = LinearKernelFlow(ntk[:M, :M], np.full(M, 1.0 / M), y, 1.0, step=lr)
    A = gd.cross_operator(lr * steps, ntk[M:, :M])
    K_rr, K_tr, K_tt = nngp[:M, :M], nngp[M:, :M], nngp[M:, M:]
    cov = K_tt - A @ K_tr.T - K_tr @ A.T + A @ K_rr @ A.T
    return A @ y, 0.5 * (cov + cov.T)
