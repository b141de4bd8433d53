"""The N^-1/2 fluctuations of a wide diagonal RNN around its kernel limit.

Equations and their derivation: ``theory_notes/fluctuations.md``. With the symmetric initialisation,
G_t(x) = sqrt(N) (f^N_t(x) - f_t(x)) tends to the centred Gaussian process that solves

    dG_t = -alpha K Pi G_t dt + alpha Gamma Pi r_t dt + alpha dM_t,   G_0 = 0,   r_t = ybar - f_t,

where Gamma = lim sqrt(N) (K^N_0 - K) is the Gaussian fluctuation of the kernel at initialisation and M is
the martingale of the SGD steps, whose covariance rate is the long-run (Poisson-equation) covariance of
(Y_k - f_t(W_k)) K(., W_k) under the window chain. The three sources are independent:

- ``kernel``: the response to Gamma, computed node by node of a quadrature rule in (w, b) (section 3);
- ``chain``: the SGD noise from the chain's fluctuations of the history window (section 4), by the
  fundamental matrix of the window chain (all windows of a finite chain: exact) or by a truncated sum of lagged
  covariances along a long stationary path (a continuous chain or a sampled grid: a Monte Carlo estimate);
- ``noise``: the SGD noise from the target noise (closed form, section 4).

In the eigenbasis psi_i of the limit kernel on L^2(pi) the SGD part is an Ornstein-Uhlenbeck process with
rates alpha lambda_i, solved exactly for a covariance rate that is linear between the points of a time
grid (section 5).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from ... import checks
from ...data import MarkovChain
from ...solvers.ode import phi
from .limit import LimitModel, quadrature_nodes
from .network import as_windows, path_states_kernel, window_states_kernel

KERNEL_NODE_CHUNK = 512  # quadrature nodes per pass of the kernel source: bounds its (steps, probes, nodes) arrays
KERNEL_MODES = 1e-8  # the kernel source's response keeps all but this share of E_pi K(x, W)^2 at every probe
SOURCE_ORDER = ((64, 12), (4096,))  # the kernel source's default rule: trapezoid for d = 1, Sobol for d >= 2
PATH_BYTES = 2**27  # the memory states along a path, per pass over the nodes


@dataclass
class Fluctuations:
    """The predicted law of G_t(x) = sqrt(N) (f^N_t(x) - f_t(x)) on probes at record times.

    ``covariances[source]`` (T, P, T, P) is the covariance of G over (time, probe) pairs due to one source
    (``kernel``, ``chain``, ``noise``); they are independent, so :attr:`covariance` is their sum. For the Gaussian
    initialisation G is a mixture over draws of f_0: ``components`` holds the covariance given each draw, and
    the sources are averaged over the draws.
    """

    times: np.ndarray
    covariances: dict
    info: dict = field(default_factory=dict)
    components: list = field(default_factory=list)  # the total covariance given each draw of f_0 (a mixture)

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

    def sup_constant(self, samples: int = 50000, seed=0) -> tuple[float, float]:
        """C = E sup_{t, x} |G_t(x)| over the record times and probes, by sampling the Gaussian, with the
        Monte Carlo standard error: the prediction of sqrt(N) E sup |f^N - f|."""
        samples = checks.integer(samples, "samples", 2)
        rng = np.random.default_rng(seed)
        components = self.components or [self.covariance]
        sups = []
        for i, cov in enumerate(components):  # equal shares of the samples from each mixture component
            n = cov.shape[0] * cov.shape[1]
            lam, vec = np.linalg.eigh(cov.reshape(n, n))
            root = vec * np.sqrt(np.clip(lam, 0, None))
            count = samples // len(components) + (i < samples % len(components))
            sups += [np.max(np.abs(rng.standard_normal((min(4096, count - lo), n)) @ root.T), axis=1)
                     for lo in range(0, count, 4096)]
        sups = np.concatenate(sups)
        se = sups.std(ddof=1) / np.sqrt(sups.size)
        if len(components) > 1:  # the finite number of draws of f_0 adds the spread of the components' means
            means = [part.mean() for part in np.array_split(sups, len(components))]
            se = np.hypot(se, np.std(means, ddof=1) / np.sqrt(len(components)))
        return float(sups.mean()), float(se)

    def check(self, scaled, level=0.95, share=1e-3) -> dict:
        """How well the deviations sqrt(N)(f^N_t - f_t) of S independent networks, ``scaled`` (S, T, P), fit the
        predicted law.

        - ``z``: the whitened quadratic form Q = sum_s |Lambda^-1/2 V^T G_s|^2 over the k leading eigen-directions
          of the predicted covariance (eigenvalues above ``share`` of the largest) against its mean k S, in standard
          deviations: sqrt(2 k S) for one Gaussian; for a mixture over draws of f_0, from the components' moments,
          plus the spread that a finite number of draws leaves in the prediction itself. Every direction counts
          alike, so an error in a source that is small in the total still shows.
        - ``in_interval``: the share of (time, probe) pairs whose predicted variance lies in the ``level``
          chi-square interval of the variance over seeds (for a single Gaussian; the pairs are strongly
          correlated, so this share moves in blocks).
        """
        G = np.asarray(scaled, dtype=float)
        T, P = self.covariance.shape[:2]
        if G.ndim != 3 or G.shape[1:] != (T, P) or G.shape[0] < 2:
            raise ValueError(f"scaled must have shape (seeds >= 2, {T}, {P}), got {G.shape}")
        S, n = G.shape[0], T * P
        lam, vec = np.linalg.eigh(self.covariance.reshape(n, n))
        keep = lam > share * lam.max()
        whiten = vec[:, keep] / np.sqrt(lam[keep])
        k = int(keep.sum())
        Q = float(np.sum((G.reshape(S, n) @ whiten) ** 2))
        parts = [whiten.T @ c.reshape(n, n) @ whiten for c in (self.components or [self.covariance])]
        traces = np.array([np.trace(a) for a in parts])
        var_one = np.mean([2 * np.sum(a * a) for a in parts]) + np.var(traces)  # Var |z_s|^2 under the mixture
        sd = np.sqrt(S * var_one + (S**2 * np.var(traces, ddof=1) / len(parts) if len(parts) > 1 else 0.0))
        var = G[:, 1:].var(axis=0, ddof=1)
        pred = self.std()[1:] ** 2
        low, high = (S - 1) / stats.chi2.ppf(0.5 + level / 2, S - 1), (S - 1) / stats.chi2.ppf(0.5 - level / 2, S - 1)
        inside = (pred >= low * var) & (pred <= high * var)
        return dict(z=(Q - k * S) / sd, statistic=Q, expected=k * S, sd=sd, directions=k,
                    in_interval=float(inside.mean()))


def _uniform_times(times) -> tuple[np.ndarray, float]:
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.ndim != 1 or times.size < 2 or not np.all(np.isfinite(times)):
        raise ValueError(f"times must be at least two finite record times, got {times.tolist()}")
    if times[0] != 0:
        raise ValueError(f"times must start at 0 (G_0 = 0), got {times[0]!r}")
    dt = times[1] - times[0]
    if dt <= 0 or not np.allclose(np.diff(times), dt, rtol=1e-9, atol=0):
        raise ValueError("times must be equally spaced and increasing (the time grid of the integrals)")
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
    """The limit's eigenbasis, the time grid, and the limit's residual r_s on the grid for each initial function
    (one for the symmetric initialisation, one per NNGP draw for the Gaussian one)."""

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
        BV, lam = flow.eigenbasis
        order = np.argsort(lam)[::-1]
        self.lam, self.BV = lam[order], BV[:, order]  # columns pi^1/2 v_i: <psi_i, a>_pi = BV^T a
        self.pi = flow.weights
        self.b_p = limit.cross_kernel(self.probes) @ self.BV  # lambda_i psi_i(probe)
        # The kernel source's response sums over the modes lambda_i psi_i(x) phi_{t-s}(lambda_i) <psi_i, a>; the
        # discarded modes carry at most KERNEL_MODES of E_pi K(x, W)^2 at every probe (terms below 1e-4 |a|).
        self.kernel_modes = _leading_modes(self.b_p, KERNEL_MODES)
        self.b_phi = (self.b_p[None, :, :self.kernel_modes] * self.phi(self.s)[:, None, :self.kernel_modes]).reshape(
            self.s.size * self.b_p.shape[0], self.kernel_modes)  # (S P, r): lambda_i psi_i(x) phi_s(lambda_i)

    def set_initial(self, f0_grid: list):
        """r_s = ybar - f_s on the grid (S, M) and the coefficients <psi_i, ybar - f_0> for each initial function
        (None: f_0 = 0)."""
        flow, ybar = self.limit.flow, self.limit.ybar
        f0_grid = [np.zeros_like(ybar) if f0 is None else f0 for f0 in f0_grid]
        self.r_grid = [ybar - f0 - flow.coefficients(self.s, f0) @ flow.K for f0 in f0_grid]
        self.coef = [self.BV.T @ (ybar - f0) for f0 in f0_grid]

    def phi(self, tau):
        """phi_tau(lambda_i) for each tau, shape (len(tau), M)."""
        return phi(self.lam, np.atleast_1d(tau)[:, None], self.alpha)


def _kernel_responses(st: _Setup, a_grid: np.ndarray, a_probe: np.ndarray) -> np.ndarray:
    """delta f_t(probe) for the rank-one kernel perturbations a a^T (a: columns of a_grid (M, c) and
    a_probe (P, c)): alpha int_0^t <a, r_s>_pi [a(x) - sum_i lambda_i psi_i(x) phi_{t-s}(lambda_i) <psi_i, a>] ds,
    shape (initial functions, T, P, c) (section 3)."""
    ahat = st.BV[:, :st.kernel_modes].T @ a_grid  # (r, c)
    h = a_probe[None] - (st.b_phi @ ahat).reshape(st.s.size, *a_probe.shape)  # (S, P, c)
    out = np.zeros((len(st.r_grid), st.times.size) + a_probe.shape)
    for n, r_grid in enumerate(st.r_grid):
        c_s = (r_grid * st.pi) @ a_grid  # (S, c)
        for j in range(1, st.times.size):
            k = j * st.sub
            cw = c_s[:k + 1] * (_simpson(k) * st.step)[:, None]
            out[n, j] = st.alpha * np.einsum("kc,kpc->pc", cw, h[k::-1])
    return out


def _kernel_source(st: _Setup, order, rule, progress=False) -> tuple[list, int]:
    """Covariance (T, P, T, P) of the response to Gamma = lim sqrt(N)(K^N_0 - K) for each initial function:
    Cov_theta(L k_theta), twice it for symmetric pairs, with k_theta = S S' + c^2 (J^w.J^w' + J^b J^b') and
    E c^4 = 3 (section 3)."""
    arch, lim = st.limit.settings, st.limit
    d = lim.task.input_dim
    nodes = quadrature_nodes(d, arch.sigma_w, arch.beta, order, rule)
    X = np.concatenate([lim.grid.values, st.probes])
    M = len(lim.grid)
    T, P, n_init = st.times.size, st.probes.shape[0], len(st.r_grid)
    mean = np.zeros((n_init, T * P))
    second = np.zeros((n_init, T * P, T * P))
    for lo in tqdm(range(0, nodes.size, KERNEL_NODE_CHUNK), desc="fluctuations: kernel source", unit="chunk",
                   disable=not progress, leave=False):
        hi = min(nodes.size, lo + KERNEL_NODE_CHUNK)
        S, JW, Jb = window_states_kernel(X, np.ascontiguousarray(nodes.W[:, lo:hi]), nodes.b[lo:hi],
                                         arch.act.code, True)
        q = nodes.q[lo:hi]
        L_A = _kernel_responses(st, S[:M], S[M:]).reshape(n_init, T * P, -1)
        L_B = sum(_kernel_responses(st, F[:M], F[M:]) for F in [*JW.transpose(1, 0, 2), Jb])
        L_B = L_B.reshape(n_init, T * P, -1)
        for n in range(n_init):
            x = L_A[n] + L_B[n]
            mean[n] += x @ q
            second[n] += (x * q) @ x.T + 2 * (L_B[n] * q) @ L_B[n].T
    pairs = 2 if arch.symmetric else 1
    return [pairs * (sec - np.outer(m, m)).reshape(T, P, T, P) for m, sec in zip(mean, second)], nodes.size


def _window_chain_poisson(chain: MarkovChain, L: int, h: np.ndarray) -> np.ndarray:
    """u = sum_{j >= 0} P_W^j h for a pi-centred h (m^L, c) on all windows of length L in lexicographic order:
    L - 1 steps of the window chain, then the base chain's fundamental matrix on the last state (section 4)."""
    m = chain.n_states
    P = chain.P
    total = h.copy()
    cur = h
    for _ in range(L - 1):
        # (P_W h)(s_1..s_L) = sum_s' P(s_L, s') h(s_2..s_L, s'): it depends on s_2..s_L only
        nxt = np.einsum("aijc,ij->aic", cur.reshape(m ** (L - 2), m, m, -1), P).reshape(1, m ** (L - 1), -1)
        cur = np.broadcast_to(nxt, (m, m ** (L - 1), nxt.shape[-1])).reshape(m**L, -1)
        total += cur
    # cur = P_W^{L-1} h depends on the last state only: hhat(y) on windows ending in y.
    hhat = cur.reshape(m ** (L - 1), m, -1)[0]
    Z = np.linalg.inv(np.eye(m) - P + np.outer(np.ones(m), chain.stationary))
    tail = Z @ hhat - hhat  # sum_{k >= 1} P^k hhat (hhat is centred)
    return total + np.broadcast_to(tail[None], (m ** (L - 1), m, tail.shape[-1])).reshape(m**L, -1)


def fluctuations(limit: LimitModel, probes, times, *, order=None, rule=None, substeps=8, modes=1e-4,
                 chain_rule="auto", path_windows=2**15, initial_draws=32, seed=0, progress=False) -> Fluctuations:
    """Predicted law of G_t = sqrt(N)(f^N_t - f_t) on ``probes`` at the equally spaced record ``times`` (from 0),
    split into its three sources (``theory_notes/fluctuations.md``).

    For the symmetric initialisation G is a centred Gaussian. For the Gaussian one (``limit.settings.symmetric``
    false) f_t is the limit started from the network's own f^N_0, G given f_0 is a centred Gaussian, and G is a
    mixture over ``initial_draws`` draws of f_0 from the NNGP (section 7).

    ``order``, ``rule``: the quadrature in (w, b) for the kernel's fluctuation, a fourth moment for which a
    coarser rule than the limit's suffices (default: trapezoid (64, 12) for scalar inputs, 4096 scrambled Sobol
    points otherwise; an ``order`` without ``rule`` uses the limit's rule). ``substeps``: time steps per record
    interval (even). ``modes``: the SGD-noise part keeps the leading modes of the limit kernel until the discarded
    ones carry at most this share of E_pi K(x, W)^2 at every probe (the OU gain of a slow mode is at most
    2 alpha lambda_1 t times a fast one's, so their share of the variance is at most that factor larger).
    ``chain_rule``: "exact" (the window chain's fundamental matrix; the limit must be on all windows of a finite
    chain), "path" (a truncated lag sum on a stationary path of ``path_windows`` windows, a
    Monte Carlo estimate), or "auto" (exact when possible). ``seed``: the path and the NNGP draws. ``progress``:
    bars over the quadrature nodes and the time steps.
    """
    if not isinstance(limit, LimitModel):
        raise ValueError(f"limit must be a LimitModel, got {type(limit).__name__}")
    if chain_rule not in ("auto", "exact", "path"):
        raise ValueError(f"chain_rule must be 'auto', 'exact' or 'path', got {chain_rule!r}")
    if chain_rule == "exact" and limit.grid_rule != "exact":
        raise ValueError("chain_rule='exact' needs the limit on all windows of a finite chain")
    path_windows = checks.integer(path_windows, "path_windows", 256)
    initial_draws = checks.integer(initial_draws, "initial_draws", 1)
    substeps = checks.integer(substeps, "substeps", 2)
    if not (0 < modes < 1):
        raise ValueError(f"modes must be in (0, 1), got {modes!r}")
    st = _Setup(limit, probes, times, substeps)
    method = ("exact" if limit.grid_rule == "exact" else "path") if chain_rule == "auto" else chain_rule
    r = min(_leading_modes(st.b_p, modes), int(np.sum(st.lam > 0)))  # psi_i = (lambda_i psi_i) / lambda_i
    draws = 0 if limit.settings.symmetric else initial_draws
    info = dict(modes=r, chain_method=method, substeps=substeps, initial_draws=draws)
    path = None
    if method == "path":
        path = _stationary_path(limit, path_windows, seed)
        lags, capped = _lags(limit.task.chain, limit.window, path_windows)
        if capped:
            warnings.warn(f"fluctuations: the chain decorrelates slowly; lags capped at {lags} = path_windows / 16, "
                          f"so the chain part is underestimated: raise path_windows", stacklevel=2)
        info.update(path_windows=path_windows, lags=lags, lags_capped=capped,
                    chain_variance_rel_error=float(np.sqrt(2 * (2 * lags + 1) / (path_windows - lags))))
    along = _node_pass(st, r, path, draws, seed, progress)
    st.set_initial(list(along["f0_grid"].T) if draws else [None])
    d = limit.task.input_dim
    if order is None:
        order = SOURCE_ORDER[d > 1]
        rule = rule or ("trapezoid" if d == 1 else "sobol")
    kernel, info["nodes"] = _kernel_source(st, order, rule or limit.quadrature.rule, progress)
    chain, noise = _sgd_sources(st, r, method, along, info.get("lags"), progress)
    components = [k + c + noise for k, c in zip(kernel, chain)]
    return Fluctuations(st.times, dict(kernel=np.mean(kernel, axis=0), chain=np.mean(chain, axis=0), noise=noise),
                        info, components)


def _sgd_sources(st: _Setup, r: int, method: str, along: dict, lags, progress=False):
    """The chain part (T, P, T, P) for each initial function, and the target-noise part (sections 4 and 5)."""
    lim = st.limit
    task = lim.task
    lam, b_p = st.lam[:r], st.b_p[:, :r]
    a = st.alpha
    T, P = st.times.size, st.probes.shape[0]
    # Target noise (closed form, every mode): Var a_i(t) = alpha^2 sigma^2 int_0^t e^{-2 alpha lambda s} ds.
    noise_var = a * task.noise_std**2 * phi(2 * st.lam, st.times[:, None], a)  # (T, M)
    noise = np.zeros((T, P, T, P))
    for j in range(T):
        for k in range(j + 1):
            block = (st.b_p * (np.exp(-a * st.lam * (st.times[j] - st.times[k])) * noise_var[k])) @ st.b_p.T
            noise[j, :, k, :], noise[k, :, j, :] = block, block.T
    if method == "exact":
        psi_grid = np.where(st.pi[:, None] > 0, st.BV[:, :r] / np.where(st.pi > 0, st.pi, 1.0)[:, None], 0.0)

        def long_run(n, k):
            h = st.r_grid[n][k][:, None] * psi_grid
            h = h - st.pi @ h
            u = _window_chain_poisson(task.chain, lim.window, h)
            hu = (h * st.pi[:, None]).T @ u
            return hu + hu.T - (h * st.pi[:, None]).T @ h
    else:
        b_path, ybar_path = along["b_path"], along["ybar_path"]
        psi_path = b_path / lam
        m = b_path.shape[0] - lags

        def long_run(n, k):
            # f_s on the path from the kept modes; the discarded ones' share is below the mode tolerance.
            f = b_path @ (st.phi(st.s[k])[0, :r] * st.coef[n][:r])
            if "f0_path" in along:
                f += along["f0_path"][:, n]
            h = (ybar_path - f)[:, None] * psi_path
            h -= h.mean(axis=0)
            csum = np.concatenate([np.zeros((1, r)), np.cumsum(h, axis=0)])
            u = csum[lags + 1:lags + 1 + m] - csum[:m]  # sum_{j=0}^{lags} h(W_{k+j}): the truncated Poisson solution
            hu = h[:m].T @ u / m
            return hu + hu.T - h[:m].T @ h[:m] / m
    kappa = a * (lam[:, None] + lam[None, :])
    decay = np.exp(-kappa * st.step)
    w_left, w_right = _exp_weights(kappa * st.step, st.step)
    chains = []
    bar = tqdm(total=len(st.r_grid) * st.s.size, desc="fluctuations: SGD noise", unit="step", disable=not progress,
               leave=False)
    for n in range(len(st.r_grid)):
        Pcov = np.zeros((r, r))
        at_records = [Pcov]
        Q_prev = long_run(n, 0)
        bar.update()
        for k in range(1, st.s.size):
            bar.update()
            Q = long_run(n, k)
            Pcov = decay * Pcov + a * a * (w_left * Q_prev + w_right * Q)
            Q_prev = Q
            if k % st.sub == 0:
                at_records.append(Pcov)
        chain = np.zeros((T, P, T, P))
        for j in range(T):
            for k in range(j + 1):
                block = (b_p * np.exp(-a * lam * (st.times[j] - st.times[k]))) @ at_records[k] @ b_p.T
                chain[j, :, k, :], chain[k, :, j, :] = block, block.T
        chains.append(chain)
    bar.close()
    return chains, noise


def _leading_modes(b_p, share) -> int:
    """The number of leading modes after which the discarded ones carry at most ``share`` of
    E_pi K(x, W)^2 = sum_i (lambda_i psi_i(x))^2 at every probe x."""
    energy = b_p**2
    tail = np.cumsum(energy[:, ::-1], axis=1)[:, ::-1] / np.maximum(energy.sum(axis=1, keepdims=True), 1e-300)
    return max(1, int(np.argmax(np.append(np.max(tail, axis=0) <= share, True))))


def _lags(chain, window: int, n_windows: int) -> tuple[int, bool]:
    """Lags of the truncated long-run covariance: the window's length plus the chain's decorrelation to 1e-3, at
    most a sixteenth of the path; and whether that cap was hit."""
    if isinstance(chain, MarkovChain):
        rate = chain.mixing
    else:
        rate = float(np.max(np.abs(np.linalg.eigvals(chain.A))))
    decorrelate = 0 if rate < 1e-12 else int(np.ceil(np.log(1e-3) / np.log(rate)))
    wanted = window + decorrelate
    return int(min(wanted, n_windows // 16)), wanted > n_windows // 16


def _stationary_path(limit: LimitModel, n_windows: int, seed) -> np.ndarray:
    """n_windows + L - 1 consecutive inputs (n, d) of the stationary chain."""
    chain = limit.task.chain
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    path = np.asarray(chain.values(chain.simulate(n_windows + limit.window - 1, rng)), dtype=float)
    return np.ascontiguousarray(path[:, None] if path.ndim == 1 else path)


def _node_pass(st: _Setup, r: int, path, draws: int, seed, progress=False) -> dict:
    """One pass over the limit's quadrature nodes, for what the path and the Gaussian initialisation need:

    - with a ``path``: lambda_i psi_i(W) = K(W, grid) pi^1/2 v_i for the r leading modes (``b_path``) and ybar
      (``ybar_path``) at the histories W along the path, the memory states running along it (the whole history,
      after a burn-in of one window length);
    - with ``draws``: that many draws of the NNGP f_0 = sum_n sqrt(q_n) zeta_n S_n, zeta_n ~ N(0, 1), on the grid
      (``f0_grid`` (M, draws)) and along the path (``f0_path``): their covariance is the quadrature's NNGP.
    """
    lim = st.limit
    if path is None and not draws:
        return {}
    arch, L, d = lim.settings, lim.window, lim.task.input_dim
    nodes = lim.quadrature
    zeta = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(8,))).standard_normal((nodes.size, draws))
    out = dict(f0_grid=np.zeros((len(lim.grid), draws))) if draws else {}
    chunk = 512
    if path is not None:
        chunk = int(np.clip(PATH_BYTES // (8 * (d + 2) * path.shape[0]), 16, 512))  # PATH_BYTES, or 16 nodes
        n = path.shape[0] - L + 1
        out.update(b_path=np.zeros((n, r)), ybar_path=lim.task.conditional_mean(
            np.lib.stride_tricks.sliding_window_view(path, L, axis=0).transpose(0, 2, 1)))
        if draws:
            out["f0_path"] = np.zeros((n, draws))
        buffers = np.empty((d + 2, path.shape[0], chunk))  # S, J^w (d), J^b along the path
    BV = st.BV[:, :r]
    for lo in tqdm(range(0, nodes.size, chunk), desc="fluctuations: limit nodes", unit="chunk", disable=not progress,
                   leave=False):
        W, b = np.ascontiguousarray(nodes.W[:, lo:lo + chunk]), nodes.b[lo:lo + chunk]
        q = nodes.q[lo:lo + chunk]
        S, JW, Jb = window_states_kernel(lim.grid.values, W, b, arch.act.code, path is not None)
        if draws:
            out["f0_grid"] += S @ (np.sqrt(q)[:, None] * zeta[lo:lo + chunk])
        if path is None:
            continue
        U = [(F * q).T @ BV for F in [S, *JW.transpose(1, 0, 2), Jb]]  # sum_n q_n F_n(grid) pi^1/2 v_i
        along = buffers[:, :, :b.size]
        path_states_kernel(path, W, b, arch.act.code, along[0], along[1:d + 1], along[d + 1])
        for F, u in zip(along, U):
            out["b_path"] += F[L - 1:] @ u
        if draws:
            out["f0_path"] += along[0][L - 1:] @ (np.sqrt(q)[:, None] * zeta[lo:lo + chunk])
    return out
