"""The N^-1/2 fluctuations of a wide diagonal RNN around its kernel limit.

Equations and their derivation: ``theory_notes/fluctuations.md``. With the symmetric initialisation,
G_t(x) = sqrt(N) (f^N_t(x) - f_t(x)) tends to the centred Gaussian process that solves

    dG_t = -alpha K Pi G_t dt + alpha Gamma Pi r_t dt + alpha dM_t,   G_0 = 0,   r_t = ybar - f_t,

where Gamma = lim sqrt(N) (K^N_0 - K) is the Gaussian fluctuation of the kernel at initialisation and M is
the martingale of the SGD steps, whose covariance rate is the long-run (Poisson-equation) covariance of
(Y_k - f_t(W_k)) K(., W_k) under the window chain. The three sources are independent:

- ``kernel``: the response to Gamma, computed node by node of a quadrature rule in (w, b) (section 3);
- ``chain``: the SGD noise from the chain's fluctuations of the history window (section 4), by the
  fundamental matrix of the window chain (all windows of a finite chain: exact) or by batch means on a
  long stationary path (a continuous chain or a sampled grid: a Monte Carlo estimate);
- ``noise``: the SGD noise from the target noise (closed form, section 4).

In the eigenbasis psi_i of the limit kernel on L^2(pi) the SGD part is an Ornstein-Uhlenbeck process with
rates alpha lambda_i, solved exactly for a covariance rate that is linear between the points of a time
grid (section 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import checks
from ...data import MarkovChain
from .limit import NODE_CHUNK, LimitModel, quadrature_nodes
from .network import as_windows, path_states_kernel, window_states_kernel

SOURCES = ("kernel", "chain", "noise")


@dataclass
class Fluctuations:
    """The predicted law of G_t(x) = sqrt(N) (f^N_t(x) - f_t(x)) on probes at record times.

    ``covariances[source]`` (T, P, T, P) is the covariance of G over (time, probe) pairs due to one source
    (``kernel``, ``chain``, ``noise``); they are independent, so :attr:`covariance` is their sum.
    """

    times: np.ndarray
    covariances: dict
    info: dict = field(default_factory=dict)

    @property
    def covariance(self) -> np.ndarray:
        return sum(self.covariances.values())

    def std(self, source: str | None = None) -> np.ndarray:
        """Standard deviation of G_t(x) (T, P), in total or from one source."""
        cov = self.covariance if source is None else self.covariances[source]
        T, P = cov.shape[:2]
        return np.sqrt(np.clip(cov.reshape(T * P, T * P).diagonal(), 0, None)).reshape(T, P)

    def shares(self) -> dict:
        """Each source's share of the summed variance over probes and times."""
        total = {s: float(np.sum(self.std(s) ** 2)) for s in self.covariances}
        whole = sum(total.values())
        return {s: v / whole for s, v in total.items()}

    def sup_constant(self, samples: int = 20000, seed=0) -> tuple[float, float]:
        """C = E sup_{t, x} |G_t(x)| over the record times and probes, by sampling the Gaussian, with the
        Monte Carlo standard error: the prediction of sqrt(N) E sup |f^N - f|."""
        samples = checks.integer(samples, "samples", 2)
        cov = self.covariance
        n = cov.shape[0] * cov.shape[1]
        lam, vec = np.linalg.eigh(cov.reshape(n, n))
        root = vec * np.sqrt(np.clip(lam, 0, None))
        rng = np.random.default_rng(seed)
        sups = np.concatenate([np.max(np.abs(rng.standard_normal((min(4096, samples - lo), n)) @ root.T), axis=1)
                               for lo in range(0, samples, 4096)])
        return float(sups.mean()), float(sups.std(ddof=1) / np.sqrt(samples))


def _uniform_times(times) -> tuple[np.ndarray, float]:
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.ndim != 1 or times.size < 2 or times[0] != 0 or not np.all(np.isfinite(times)):
        raise ValueError("times must be equally spaced record times starting at 0 (at least two)")
    dt = times[1] - times[0]
    if dt <= 0 or not np.allclose(np.diff(times), dt, rtol=1e-9, atol=0):
        raise ValueError("times must be equally spaced record times starting at 0 (at least two)")
    return times, float(dt)


def _simpson(n_intervals: int) -> np.ndarray:
    """Simpson weights (in units of the step) for an even number of intervals."""
    w = np.ones(n_intervals + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w / 3.0


def _exp_weights(x: np.ndarray, step: float):
    """For kappa step = x: int_0^step exp(-kappa u) (u / step) du and int_0^step exp(-kappa u) (1 - u / step) du,
    the weights of the left and right end values of a linear integrand in the exponential integrator."""
    small = x < 1e-4
    xs = np.where(small, 1.0, x)
    left = np.where(small, 0.5 - x / 3 + x**2 / 8, -(np.expm1(-xs) + xs * np.exp(-xs)) / xs**2)
    whole = np.where(small, 1 - x / 2 + x**2 / 6, -np.expm1(-xs) / xs)
    return step * left, step * (whole - left)


class _Setup:
    """The limit's eigenbasis and the time grid shared by the three sources."""

    def __init__(self, limit: LimitModel, probes, times, substeps):
        flow = limit.flow
        self.limit, self.alpha = limit, flow.alpha
        self.probes = as_windows(probes, limit.task.input_dim, "probes")
        self.times, dt = _uniform_times(times)
        if substeps % 2:
            raise ValueError(f"substeps must be even (Simpson's rule), got {substeps}")
        self.sub = substeps
        self.step = dt / substeps
        self.s = np.arange(substeps * (self.times.size - 1) + 1) * self.step
        order = np.argsort(flow.eigenvalues)[::-1]
        self.lam = flow.eigenvalues[order]
        self.BV = flow._B[:, None] * flow._V[:, order]  # columns: pi^1/2 v_i, so <psi_i, a>_pi = BV^T a
        self.pi = flow.weights
        self.K_pg = limit.cross_kernel(self.probes)
        self.b_p = self.K_pg @ self.BV  # lambda_i psi_i(probe)
        self.r_grid = limit.ybar - flow.on_grid(self.s)  # r_s on the grid (S, M)
        self.ybar_hat = self.BV.T @ limit.ybar
        # The kernel source's response sums over the modes lambda_i psi_i(x) phi_{t-s}(lambda_i) <psi_i, a>; the
        # discarded modes carry at most 1e-10 of E_pi K(x, W)^2 at every probe (their terms are below 1e-5 |a|).
        self.kernel_modes = _leading_modes(self.b_p, 1e-10)
        self.b_phi = (self.b_p[None, :, :self.kernel_modes] * self.phi(self.s)[:, None, :self.kernel_modes]).reshape(
            self.s.size * self.b_p.shape[0], self.kernel_modes)  # (S P, r): lambda_i psi_i(x) phi_s(lambda_i)

    def phi(self, tau):
        """(1 - exp(-alpha lambda tau)) / lambda (alpha tau at lambda = 0), shape (len(tau), M)."""
        tau = np.atleast_1d(tau)[:, None]
        lam = np.where(self.lam > 0, self.lam, 1.0)
        return np.where(self.lam > 0, -np.expm1(-self.alpha * self.lam * tau) / lam, self.alpha * tau)


def _kernel_responses(st: _Setup, a_grid: np.ndarray, a_probe: np.ndarray) -> np.ndarray:
    """delta f_t(probe) for the rank-one kernel perturbations a a^T (a: columns of a_grid (M, c) and
    a_probe (P, c)): alpha int_0^t <a, r_s>_pi [a(x) - sum_i lambda_i psi_i(x) phi_{t-s}(lambda_i) <psi_i, a>] ds,
    shape (T, P, c) (section 3)."""
    r = st.kernel_modes
    ahat = st.BV[:, :r].T @ a_grid  # (r, c)
    c_s = (st.r_grid * st.pi) @ a_grid  # (S, c)
    h = a_probe[None] - (st.b_phi @ ahat).reshape(st.s.size, *a_probe.shape)  # (S, P, c)
    out = np.zeros((st.times.size,) + a_probe.shape)
    for j in range(1, st.times.size):
        k = j * st.sub
        cw = c_s[:k + 1] * (_simpson(k) * st.step)[:, None]
        out[j] = st.alpha * np.einsum("kc,kpc->pc", cw, h[k::-1])
    return out


def _kernel_source(st: _Setup, order, rule) -> tuple[np.ndarray, int]:
    """Covariance (T, P, T, P) of the response to Gamma = lim sqrt(N)(K^N_0 - K) (symmetric pairs):
    2 Cov_theta(L k_theta) with k_theta = S S' + c^2 (J^w.J^w' + J^b J^b') and E c^4 = 3 (section 3)."""
    arch, lim = st.limit.settings, st.limit
    d = lim.task.input_dim
    nodes = quadrature_nodes(d, arch.sigma_w, arch.beta, order, rule)
    X = np.concatenate([lim.grid.values, st.probes])
    M = len(lim.grid)
    T, P = st.times.size, st.probes.shape[0]
    mean = np.zeros(T * P)
    second = np.zeros((T * P, T * P))
    for lo in range(0, nodes.size, NODE_CHUNK // 4):
        hi = min(nodes.size, lo + NODE_CHUNK // 4)
        S, JW, Jb = window_states_kernel(X, np.ascontiguousarray(nodes.W[:, lo:hi]), nodes.b[lo:hi],
                                         arch.act.code, True)
        q = nodes.q[lo:hi]
        L_A = _kernel_responses(st, S[:M], S[M:]).reshape(T * P, -1)
        L_B = sum(_kernel_responses(st, F[:M], F[M:]) for F in [JW[:, j] for j in range(d)] + [Jb])
        L_B = L_B.reshape(T * P, -1)
        x = L_A + L_B
        mean += x @ q
        second += (x * q) @ x.T + 2 * (L_B * q) @ L_B.T
    cov = 2 * (second - np.outer(mean, mean))
    return cov.reshape(T, P, T, P), nodes.size


def _window_chain_poisson(chain: MarkovChain, L: int, h: np.ndarray) -> np.ndarray:
    """u = sum_{j >= 0} P_W^j h for a pi-centred h (m^L, c) on all windows of length L in lexicographic order:
    L - 1 steps of the window chain, then the base chain's fundamental matrix on the last state (section 4)."""
    m = chain.n_states
    P = chain.P
    total = h.copy()
    cur = h
    for _ in range(L - 1):
        shifted = cur.reshape(m ** (L - 2), m, m, -1) if L >= 2 else cur
        nxt = np.einsum("aijc,ij->aic", shifted, P).reshape(1, m ** (L - 1), -1)  # depends on s_2..s_L
        cur = np.broadcast_to(nxt, (m, m ** (L - 1), nxt.shape[-1])).reshape(m**L, -1)
        total += cur
    # cur = P_W^{L-1} h depends on the last state only: hhat(y) on windows ending in y.
    hhat = cur.reshape(m ** (L - 1), m, -1)[0]
    Z = np.linalg.inv(np.eye(m) - P + np.outer(np.ones(m), chain.stationary))
    tail = Z @ hhat - hhat  # sum_{k >= 1} P^k hhat (hhat is centred)
    return total + np.broadcast_to(tail[None], (m ** (L - 1), m, tail.shape[-1])).reshape(m**L, -1)


def fluctuations(limit: LimitModel, probes, times, *, order=None, rule=None, substeps=8, modes=1e-4,
                 chain_rule="auto", path_windows=2**15, seed=0) -> Fluctuations:
    """Predicted covariance of G_t = sqrt(N)(f^N_t - f_t) on ``probes`` at the equally spaced record ``times``
    (from 0) for the symmetric initialisation, split into its three sources (``theory_notes/fluctuations.md``).

    ``order``, ``rule``: the quadrature in (w, b) for the kernel's fluctuation, a fourth moment for which a
    coarser rule than the limit's suffices (default: trapezoid (64, 12) for scalar inputs, 4096 scrambled Sobol
    points otherwise). ``substeps``: time steps per record interval (even). ``modes``: the SGD-noise part keeps
    the leading modes of the limit kernel until the discarded ones carry at most this share of E_pi K(x, W)^2 at
    every probe. ``chain_rule``: "exact" (the window chain's fundamental matrix; the limit must be on all
    windows of a finite chain), "path" (a truncated lag sum on a stationary path of ``path_windows`` windows, a
    Monte Carlo estimate), or "auto" (exact when possible).
    """
    if chain_rule not in ("auto", "exact", "path"):
        raise ValueError(f"chain_rule must be 'auto', 'exact' or 'path', got {chain_rule!r}")
    path_windows = checks.integer(path_windows, "path_windows", 256)
    if not (0 < modes < 1):
        raise ValueError(f"modes must be in (0, 1), got {modes!r}")
    if not isinstance(limit, LimitModel):
        raise ValueError(f"limit must be a LimitModel, got {type(limit).__name__}")
    if not limit.settings.symmetric:
        raise ValueError("fluctuations: the prediction is derived for the symmetric initialisation")
    substeps = checks.integer(substeps, "substeps", 2)
    st = _Setup(limit, probes, times, substeps)
    if order is None:
        order, rule = ((64, 12), rule or "trapezoid") if limit.task.input_dim == 1 else ((4096,), "sobol")
    cov_kernel, n_nodes = _kernel_source(st, order, rule or limit.rule)
    cov_chain, cov_noise, info = _sgd_sources(st, modes, chain_rule, path_windows, seed)
    info.update(nodes=n_nodes, substeps=substeps)
    return Fluctuations(st.times, dict(kernel=cov_kernel, chain=cov_chain, noise=cov_noise), info)


def _sgd_sources(st: _Setup, modes, method, path_windows, seed):
    lim = st.limit
    task = lim.task
    r = _leading_modes(st.b_p, modes)
    keep = np.arange(st.lam.size) < r
    lam, BV, b_p = st.lam[keep], st.BV[:, keep], st.b_p[:, keep]
    a = st.alpha
    T = st.times.size
    # Target noise (closed form, every mode): Var a~_i(t) = alpha^2 sigma^2 t (1 - e^{-x}) / x, x = 2 alpha lambda t.
    sigma2 = task.noise_std**2
    noise_var = np.array([a * a * sigma2 * t * _expm1_ratio(2 * a * st.lam * t) for t in st.times])  # (T, M)
    # Chain part: Q_s = long-run Cov[r_s psi_i, r_s psi_j] on the time grid; P_{s+step} by the exponential integrator.
    if method == "auto":
        method = "exact" if lim.grid_rule == "exact" else "path"
    if method == "exact":
        if lim.grid_rule != "exact":
            raise ValueError("chain_rule='exact' needs the limit on all windows of a finite chain")
        psi_grid = np.where(st.pi[:, None] > 0, BV / np.where(st.pi > 0, st.pi, 1.0)[:, None], 0.0)

        def long_run(k):
            h = st.r_grid[k][:, None] * psi_grid
            h = h - st.pi @ h
            u = _window_chain_poisson(task.chain, lim.window, h)
            hu = (h * st.pi[:, None]).T @ u
            return hu + hu.T - (h * st.pi[:, None]).T @ h
    else:
        b_path, ybar_path = _path_modes(st, keep, path_windows, seed)
        psi_path = b_path / lam
        # f_s on the path from all modes kept; the discarded ones' share of f_s is below the mode tolerance.
        coef = st.ybar_hat[keep]
        lags = _lags(task.chain, lim.window, path_windows)
        n = path_windows - lags

        def long_run(k):
            f = b_path @ (st.phi(st.s[k])[0, keep] * coef)
            h = (ybar_path - f)[:, None] * psi_path
            h -= h.mean(axis=0)
            csum = np.concatenate([np.zeros((1, r)), np.cumsum(h, axis=0)])
            u = csum[lags + 1:lags + 1 + n] - csum[:n]  # sum_{j=0}^{lags} h(W_{k+j}), the truncated Poisson solution
            hu = h[:n].T @ u / n
            return hu + hu.T - h[:n].T @ h[:n] / n
    kappa = a * (lam[:, None] + lam[None, :])
    decay = np.exp(-kappa * st.step)
    w_left, w_right = _exp_weights(kappa * st.step, st.step)
    Pcov = np.zeros((r, r))
    at_records = [Pcov]
    Q_prev = long_run(0)
    for k in range(1, st.s.size):
        Q = long_run(k)
        Pcov = decay * Pcov + a * a * (w_left * Q_prev + w_right * Q)
        Q_prev = Q
        if k % st.sub == 0:
            at_records.append(Pcov)
    P = b_p.shape[0]
    chain = np.zeros((T, P, T, P))
    noise = np.zeros((T, P, T, P))
    for j in range(T):
        for k in range(j + 1):
            e = np.exp(-a * lam * (st.times[j] - st.times[k]))
            block = (b_p * e) @ at_records[k] @ b_p.T
            chain[j, :, k, :], chain[k, :, j, :] = block, block.T
            e_all = np.exp(-a * st.lam * (st.times[j] - st.times[k]))
            nb = (st.b_p * (e_all * noise_var[k])) @ st.b_p.T
            noise[j, :, k, :], noise[k, :, j, :] = nb, nb.T
    return chain, noise, dict(modes=r, chain_method=method)


def _leading_modes(b_p, share) -> int:
    """The number of leading modes after which the discarded ones carry at most ``share`` of
    E_pi K(x, W)^2 = sum_i (lambda_i psi_i(x))^2 at every probe x."""
    energy = b_p**2
    tail = np.cumsum(energy[:, ::-1], axis=1)[:, ::-1] / np.maximum(energy.sum(axis=1, keepdims=True), 1e-300)
    return max(1, int(np.argmax(np.append(np.max(tail, axis=0) <= share, True))))


def _lags(chain, window: int, n_windows: int) -> int:
    """Lags of the truncated long-run covariance: the window's length plus the chain's decorrelation to 1e-3,
    at most a sixteenth of the path."""
    if isinstance(chain, MarkovChain):
        rate = chain.mixing
    else:
        rate = float(np.max(np.abs(np.linalg.eigvals(chain.A))))
    decorrelate = 0 if rate < 1e-12 else int(np.ceil(np.log(1e-3) / np.log(rate)))
    return int(min(window + decorrelate, n_windows // 16))


def _expm1_ratio(x):
    """(1 - e^{-x}) / x, 1 at x = 0."""
    xs = np.where(x > 0, x, 1.0)
    return np.where(x > 0, -np.expm1(-xs) / xs, 1.0)


def _path_modes(st: _Setup, keep, n_windows, seed):
    """lambda_i psi_i(W) = K(W, grid) pi^1/2 v_i for the kept modes, and ybar(W), at the histories W along one
    stationary path of the chain, with the limit's own quadrature nodes (section 4). The memory states run along
    the path (the whole history, after a burn-in of one window length)."""
    lim = st.limit
    chain, L = lim.task.chain, lim.window
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    path = np.ascontiguousarray(chain.values(chain.simulate(n_windows + L - 1, rng)), dtype=float)
    if path.ndim == 1:
        path = path[:, None]
    arch = lim.settings
    nodes = quadrature_nodes(lim.task.input_dim, arch.sigma_w, arch.beta, lim.order, lim.rule)
    BV = st.BV[:, keep]
    b = np.zeros((n_windows, BV.shape[1]))
    chunk = 512
    d = path.shape[1]
    buffers = np.empty((d + 2, path.shape[0], chunk))  # S, J^w (d), J^b along the path
    for lo in range(0, nodes.size, chunk):
        W, bb = np.ascontiguousarray(nodes.W[:, lo:lo + chunk]), nodes.b[lo:lo + chunk]
        sq = np.sqrt(nodes.q[lo:lo + chunk])
        S, JW, Jb = window_states_kernel(lim.grid.values, W, bb, arch.act.code, True)
        U = [(F * sq[None, :] ** 2).T @ BV for F in [S, *JW.transpose(1, 0, 2), Jb]]
        out = buffers[:, :, :bb.size]
        path_states_kernel(path, W, bb, arch.act.code, out[0], out[1:d + 1], out[d + 1])
        for F, u in zip(out, U):
            b += F[L - 1:] @ u
    windows = np.lib.stride_tricks.sliding_window_view(path, L, axis=0).transpose(0, 2, 1)
    return b, lim.task.conditional_mean(windows)
