"""Saddle-point equations for the representational kernels of Bayesian muP RNNs and DNNs ([BFHP]).

Derivation: ``theory_notes/feature_learning.md``. Network (:mod:`meanfield.architectures.mup.network`), t = 0..T:

    h_0 = U x_0,   h_t = W_t phi(h_{t-1}) + U x_t,   f_t = v . phi(h_t) / N   (W_t = W in the RNN),

prior U ~ N(0, g_u^2/d), W ~ N(0, g^2/N), v ~ N(0, g_v^2); posterior exp(-(beta N)/2 sum_R (y - f)^2) over
the supervised entries R = {(t, mu)}. ``beta`` here is the signal strength per unit (the sampler's
inverse temperature is N beta): it makes the data term O(N) like the prior, which is what lets the
kernels move at N = infinity (muP). Entries a = (t, mu) index n = (T + 1) P dimensional kernels. The
posterior concentrates on a stationary point (C, Chat) of

    S = - sum_ab Chat_ab C_ab + log Z_1(Chat, K[C]) - 1/2 y_R^T (g_v^2 C_RR + I / beta)^-1 y_R,
    Z_1 = E_{h ~ N(0, K)} exp(sum_ab Chat_ab phi(h_a) phi(h_b)),
    K[C]_{(t,mu),(s,nu)} = Kx + g^2 C_{(t-1,mu),(s-1,nu)}   (t, s >= 1; RNN: all t, s; DNN: t = s only),

with Kx = g_u^2 x_t^mu . x_s^nu / d. Stationarity gives the map solved here:

    C    = <phi phi^T>                                   (tilted single-site measure),
    Chat = g^2 shift^T(Khat) + g_v^2/2 [G^-1 y y^T G^-1]_R,   Khat = 1/2 K^-1 (<h h^T> - K) K^-1.

Weight sharing enters only through ``shift``: the DNN's average over independent W_t couples C only at
equal times, so its cross-time kernels stay at their input values; the RNN's keep all pairs (t, s).
For linear phi the single-site measure is Gaussian, N(0, (K^-1 - 2 Chat)^-1); otherwise its moments come
from a tensor quadrature rule (small n) or importance-weighted quasi-Monte Carlo (any n),
both on fixed nodes so that the map is a smooth deterministic function for the solvers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ... import checks
from ...activations import normal_rule
from ...solvers.self_consistent import solve_self_consistent
from ..settings import resolve
from .settings import MuP


def critical_signal_t2(y, k, *, g=1.0, g_v=1.0):
    """Closed-form critical signal strength of the linear RNN, T = 2, one sequence, endpoint supervision.

    k = g_u^2 |x_0|^2 / d is the input variance and kappa = g_v^2 g^4 k the prior variance of sqrt(N) f.
    The Z2-symmetric solution (no cross-time correlation) loses stability when the readout kernel has
    grown to 8 times its prior value, which happens at beta_c = 1 / (|y| sqrt(8 kappa) - 8 kappa); for
    y^2 <= 8 kappa there is no transition (returns inf). Derivation: feature_learning.md section 4.
    """
    kappa = g_v**2 * g**4 * k
    gap = abs(y) * math.sqrt(8 * kappa) - 8 * kappa
    return math.inf if gap <= 0 else 1.0 / gap


class SaddlePointError(RuntimeError):
    """No start of the saddle-point solver converged to a positive-definite kernel."""


@dataclass
class SaddleSolution:
    """One stationary point: kernels C and conjugates Chat (both (T+1, P, T+1, P)), its action (the
    posterior weight is exp(-N action); the smallest wins), residual, stability, the number of starts
    that reached it, and the effective-sample fraction of the QMC single-site average (1 otherwise)."""

    C: np.ndarray
    Chat: np.ndarray
    action: float
    residual: float
    spectral_radius: float | None
    starts: int
    effective_samples: float = 1.0


class KernelSaddle:
    """The saddle-point equations of one problem (inputs, supervised entries, network, signal strength).

    Parameters
    ----------
    X : array (P, T + 1, d)
        Input sequences x_0..x_T.
    y : array (T + 1, P)
        Targets; only the entries in ``readout`` are used.
    readout : bool array (T + 1, P)
        Supervised entries R. Endpoint supervision is ``readout[-1] = True`` only.
    beta : float
        Signal strength per unit (>= 0; 0 is the prior).
    single_site : {"auto", "trapezoid", "hermite", "qmc"}
        How nonlinear single-site averages are computed: a tensor rule with ``nodes`` points per dimension
        (the trapezoidal rule of ``meanfield.activations.normal_rule``, or Gauss-Hermite), or
        importance-weighted scrambled Sobol with ``nodes`` points. "auto" takes the trapezoid (80 nodes)
        for n <= 3 and QMC (2^15 points) above. Gauss-Hermite converges slowly here, as for the memory
        states: tanh of a variance-2 field is analytic only in a thin strip (feature_learning.md section 5).
    settings : MuP, or the keywords of :class:`MuP` (shared: RNN or DNN, activation, g, g_u, g_v)
    """

    def __init__(self, X, y, readout, *, beta, single_site="auto", nodes=None, seed=0, settings: MuP | None = None,
                 **hyperparameters):
        self.settings = s = resolve(MuP, settings, hyperparameters)
        X = checks.finite_array(X, "X", ndim=3)
        self.P, T1, self.d = X.shape
        self.T = T1 - 1
        readout = np.asarray(readout, dtype=bool)
        y = np.asarray(y, dtype=float)
        if readout.shape != (T1, self.P) or y.shape != (T1, self.P):
            raise ValueError(f"readout and y must have shape (T + 1, P) = {(T1, self.P)}, got {readout.shape} and "
                             f"{y.shape}")
        if not readout.any() or not np.all(np.isfinite(y[readout])):
            raise ValueError("readout must select at least one entry and y must be finite there")
        self.beta = checks.real(beta, "beta", 0)
        self.shared, self.activation, self._act = s.shared, s.activation, s.act
        self.g, self.g_u, self.g_v = s.g, s.g_u, s.g_v
        self.n = T1 * self.P
        self.R = np.flatnonzero(readout.ravel())  # entry a = t * P + mu
        self.y = y.ravel()[self.R]
        flat = X.transpose(1, 0, 2).reshape(self.n, self.d)
        self.Kx = self.g_u**2 * flat @ flat.T / self.d
        if np.linalg.eigvalsh(self.Kx[:self.P, :self.P]).min() <= 1e-12 * max(1.0, np.abs(self.Kx).max()):
            raise ValueError("X: the inputs x_0 of the P sequences must be linearly independent (P <= d), else the "
                             "pre-activation covariance K is singular")
        if self.activation != "linear":
            self._set_nodes(single_site, nodes, seed)

    # --- time shift: where weight sharing enters -------------------------------------------------
    def _blocks(self, A):
        return A.reshape(self.T + 1, self.P, self.T + 1, self.P)

    def _shift(self, C):
        """S(C)_{(t,mu),(s,nu)} = C_{(t-1,mu),(s-1,nu)} for t, s >= 1 (DNN: t = s only)."""
        out = np.zeros((self.T + 1, self.P, self.T + 1, self.P))
        Cb = self._blocks(C)
        if self.shared:
            out[1:, :, 1:, :] = Cb[:-1, :, :-1, :]
        else:
            for t in range(1, self.T + 1):
                out[t, :, t, :] = Cb[t - 1, :, t - 1, :]
        return out.reshape(self.n, self.n)

    def _shift_adjoint(self, Khat):
        out = np.zeros((self.T + 1, self.P, self.T + 1, self.P))
        Kb = self._blocks(Khat)
        if self.shared:
            out[:-1, :, :-1, :] = Kb[1:, :, 1:, :]
        else:
            for t in range(self.T):
                out[t, :, t, :] = Kb[t + 1, :, t + 1, :]
        return out.reshape(self.n, self.n)

    def prior_input_kernel(self, C):
        """K[C]: covariance of the pre-activations given the kernels of the previous step."""
        return self.Kx + self.g**2 * self._shift(C)

    # --- single-site averages ----------------------------------------------------------------------
    def _set_nodes(self, single_site, nodes, seed):
        rules = ("auto", "trapezoid", "hermite", "qmc")
        if single_site not in rules:
            raise ValueError(f"single_site must be one of {rules}, got {single_site!r}")
        if single_site == "auto":
            single_site = "trapezoid" if self.n <= 3 else "qmc"
        self.rule = single_site
        if single_site == "qmc":
            m = int(nodes or 2**15)
            u = stats.qmc.Sobol(self.n, scramble=True, seed=seed).random(m)
            self._z = special.ndtri(np.clip(u, 1e-16, 1 - 1e-16))
            self._logw = np.full(m, -math.log(m))
            return
        z1, w1 = normal_rule(int(nodes or 80), single_site)
        self._z = np.stack([gr.ravel() for gr in np.meshgrid(*([z1] * self.n), indexing="ij")], axis=1)
        self._logw = sum(gr.ravel() for gr in np.meshgrid(*([np.log(w1)] * self.n), indexing="ij"))

    def single_site(self, K, Chat):
        """Tilted single-site moments: <phi phi^T>, <h h^T>, log Z_1 and the effective-sample fraction."""
        if self.activation == "linear":
            A = np.linalg.inv(K) - 2 * Chat
            try:
                L = np.linalg.cholesky(A)
            except np.linalg.LinAlgError:
                raise np.linalg.LinAlgError("tilted single-site measure is not normalisable (K^-1 - 2 Chat not "
                                            "positive definite)") from None
            Li = np.linalg.inv(L)
            S = Li.T @ Li
            log_z = -np.sum(np.log(np.diag(L))) - 0.5 * np.linalg.slogdet(K)[1]
            return S, S, float(log_z), 1.0
        L = np.linalg.cholesky(K)
        h = self._z @ L.T
        a = self._act(h)
        psi = np.einsum("ka,ab,kb->k", a, Chat, a)
        lw = self._logw + psi
        log_z = special.logsumexp(lw)
        w = np.exp(lw - log_z)
        ess = 1.0 / (w.size * np.sum(w**2)) if self.rule == "qmc" else 1.0
        return (a.T * w) @ a, (h.T * w) @ h, float(log_z), float(ess)

    # --- the saddle-point map ----------------------------------------------------------------------
    def _data_terms(self, C):
        """The data term's gradient in C_RR and its value 1/2 y^T G^-1 y (both 0 at beta = 0)."""
        if self.beta == 0:
            return np.zeros((self.R.size, self.R.size)), 0.0
        r = np.linalg.solve(self.g_v**2 * C[np.ix_(self.R, self.R)] + np.eye(self.R.size) / self.beta, self.y)
        return 0.5 * self.g_v**2 * np.outer(r, r), 0.5 * float(self.y @ r)

    def _conjugate(self, C, M2):
        """Chat from the kernels C and the tilted pre-activation moments M2 (the C-stationarity equation)."""
        K = self.prior_input_kernel(C)
        Ki = np.linalg.inv(K)
        Chat = self.g**2 * self._shift_adjoint(0.5 * Ki @ (M2 - K) @ Ki)
        Chat[np.ix_(self.R, self.R)] += self._data_terms(C)[0]
        return 0.5 * (Chat + Chat.T), Ki

    def update(self, x):
        """One application of the saddle-point map to the solver's variable x.

        Linear phi: x = Lambda = C^-1 and the map is Lambda -> K[C]^-1 - 2 Chat(C) (the Gaussian tilt in its
        natural parameter; its fixed points are the stationary points, and unlike the map on C it is defined
        where K^-1 - 2 Chat is indefinite, so a solver's trial step cannot leave its domain). Otherwise
        x = (C, Chat) stacked (2, n, n) and the map is (C, Chat) -> (<phi phi^T>, Chat(<phi phi^T>, <h h^T>)).
        """
        if self.activation == "linear":
            C = np.linalg.inv(x)
            C = 0.5 * (C + C.T)
            Chat, Ki = self._conjugate(C, C)
            out = Ki - 2 * Chat
            return 0.5 * (out + out.T)
        C_new, M2, _, _ = self.single_site(self.prior_input_kernel(x[0]), x[1])
        return np.stack([C_new, self._conjugate(C_new, M2)[0]])

    def encode(self, C, Chat=None):
        """The solver's variable for kernels C (and conjugates Chat, default 0)."""
        if self.activation == "linear":
            return np.linalg.inv(C)
        return np.stack([C, np.zeros_like(C) if Chat is None else Chat])

    def start_from(self, solution):
        """The solver's variable at a :class:`SaddleSolution` (e.g. of a nearby beta, for continuation)."""
        return self.encode(solution.C.reshape(self.n, self.n), solution.Chat.reshape(self.n, self.n))

    def decode(self, x):
        """(C, Chat) from the solver's variable."""
        if self.activation != "linear":
            return x[0], x[1]
        C = np.linalg.inv(x)
        C = 0.5 * (C + C.T)
        return C, 0.5 * (np.linalg.inv(self.prior_input_kernel(C)) - x)

    def action(self, C, Chat):
        """The action at a stationary point: sum Chat C - log Z_1 + 1/2 y^T G^-1 y (per unit, minimised),
        and the effective-sample fraction of the single-site average there (1 unless QMC)."""
        _, _, log_z, ess = self.single_site(self.prior_input_kernel(C), Chat)
        return float(np.sum(Chat * C) - log_z + self._data_terms(C)[1]), ess

    def prior(self):
        """The NNGP kernels: the solution at beta = 0. With Chat = 0 the map only shifts information forward
        in time, so T + 1 sweeps from any start (here C = I) give it exactly."""
        C = np.eye(self.n)
        for _ in range(self.T + 1):
            C = self.single_site(self.prior_input_kernel(C), np.zeros((self.n, self.n)))[0]
        return C

    def starts(self, n_random=4, scale=0.5, seed=0):
        """The prior and prior kernels with random cross-time correlations of both signs (symmetry breaking)."""
        C0 = self.prior()
        rng = np.random.default_rng(seed)
        out = [self.encode(C0)]
        sd = np.sqrt(np.diag(C0))
        for _ in range(n_random):
            R = self._blocks(np.outer(sd, sd) * rng.uniform(-scale, scale, (self.n, self.n)))
            for t in range(self.T + 1):
                R[t, :, t, :] = 0.0
            R = R.reshape(self.n, self.n)
            C = C0 + 0.5 * (R + R.T)
            lam = np.linalg.eigvalsh(C).min()
            if lam <= 0:
                C += (1e-3 - lam) * np.eye(self.n)
            out.append(self.encode(C))
        return out

    def solve(self, starts=None, *, method="auto", damping=0.5, tol=1e-10, maxiter=3000, stability=True):
        """Stationary points from several starts, distinct ones sorted by action (the first is the posterior's).

        method: "anderson" (damped, accelerated iteration), "newton-krylov", or "auto": Anderson, then
        Newton-Krylov from the same starts if no Anderson run converged (large problems with a map whose
        Jacobian has eigenvalues far outside the unit disc). ``tol`` is relative to the largest entry of the
        starts (the linear variable C^-1 is large when C is ill-conditioned)."""
        maxiter = checks.integer(maxiter, "maxiter", 1)
        tol = checks.positive(tol, "tol")
        starts = self.starts() if starts is None else starts
        tol = tol * max(1.0, max(float(np.max(np.abs(x))) for x in starts))
        methods = ("anderson", "newton-krylov") if method == "auto" else (method,)
        messages = []
        for m in methods:
            res = solve_self_consistent(self.update, starts, method=m, damping=damping, tol=tol, maxiter=maxiter,
                                        stability=stability)
            messages += [f"{m}: {a['message']}" for a in res.attempts if not a["converged"]]
            sols = []
            for s in res.solutions:
                C, Chat = self.decode(s.x)
                if np.linalg.eigvalsh(C).min() <= 0:  # a root of the map that is no covariance: not a saddle point
                    continue
                action, ess = self.action(C, Chat)
                sols.append(SaddleSolution(self._blocks(C), self._blocks(Chat), action, s.residual, s.spectral_radius,
                                           s.starts, ess))
            if sols:
                return sorted(sols, key=lambda s: s.action)
        raise SaddlePointError(f"beta={self.beta:g}: no start converged to a positive-definite kernel (try solve_path, "
                               "which continues from smaller beta): " + "; ".join(messages[:2] + messages[-2:]))

    def predict(self, C):
        """Posterior-mean outputs f_bar (T + 1, P) at every entry: g_v^2 C_{., R} G^-1 y (Gaussian readout)."""
        C = np.asarray(C).reshape(self.n, self.n)
        if self.beta == 0:
            return np.zeros((self.T + 1, self.P))
        G = self.g_v**2 * C[np.ix_(self.R, self.R)] + np.eye(self.R.size) / self.beta
        return (self.g_v**2 * C[:, self.R] @ np.linalg.solve(G, self.y)).reshape(self.T + 1, self.P)


def solve_path(problem, betas, *, n_random=4, seed=0, **solve_kw):
    """Solutions along increasing signal strengths, by continuation in both directions.

    Upwards, each beta starts from the previous solution and from the usual prior-based starts; then
    downwards, each beta starts from the next one's best solution. The downward pass follows a branch
    that appeared abruptly back to where it stops existing, so a first-order transition is located
    where the branches' actions cross, not where random starts first hit the new branch.
    ``problem(beta)`` returns a :class:`KernelSaddle`; returns the distinct solutions per beta, by action.
    """
    betas = np.asarray(betas, dtype=float)
    if np.any(np.diff(betas) <= 0):
        raise ValueError(f"betas must be increasing, got {betas}")
    problems = [problem(b) for b in betas]
    out, prev = [], None
    for ks in problems:
        starts = ks.starts(n_random=n_random, seed=seed)
        out.append(ks.solve(starts + ([ks.start_from(prev)] if prev is not None else []), **solve_kw))
        prev = out[-1][0]
    for i in range(len(problems) - 2, -1, -1):
        ks = problems[i]
        try:
            extra = ks.solve([ks.start_from(out[i + 1][0])], **solve_kw)
        except SaddlePointError:  # the branch ends between the two betas
            continue
        merged = list(out[i])
        for sol in extra:
            if all(np.max(np.abs(sol.C - old.C)) > 1e-6 * max(1.0, np.max(np.abs(sol.C))) for old in merged):
                merged.append(sol)
        out[i] = sorted(merged, key=lambda sol: sol.action)
    return out


def posterior_solution(problem, beta, *, ramp=6, n_random=2, **solve_kw):
    """The posterior's solution (lowest action) at ``beta``, by continuation along beta / 10^k, k = ramp - 1..0."""
    return solve_path(problem, beta * np.logspace(1 - ramp, 0, ramp), n_random=n_random, **solve_kw)[-1][0]


def cross_time_correlation(C):
    """Order parameter: the mean over t of |r_t|, r_t = sum_mu C_{t,t+1}^{mu mu} / sqrt(sum_mu C_{t,t}^{mu mu}
    sum_mu C_{t+1,t+1}^{mu mu}) (the correlation of consecutive representations), for C of shape (T+1, P, T+1, P)."""
    C = np.asarray(C)
    diag = np.einsum("tptp->t", C)
    lag = np.array([np.trace(C[t, :, t + 1, :]) for t in range(C.shape[0] - 1)])
    return float(np.mean(np.abs(lag) / np.sqrt(diag[:-1] * diag[1:])))


def critical_signal(problem, lo, hi, *, threshold=1e-3, rtol=1e-5, order=cross_time_correlation, hints=(),
                    **solve_kw):
    """Critical signal strength of a symmetry-breaking transition, from the solver alone.

    ``problem(beta)`` returns a :class:`KernelSaddle`. The order parameter of the posterior's solution (lowest
    action, so a first-order transition is located where the two branches' actions cross) must be below
    ``threshold`` at ``lo`` and above it at ``hi``. Bisection brackets the onset to ``rtol``. If the
    transition is continuous (a pitchfork: m^2 grows linearly in beta - beta_c), the line through m^2 at
    the upper end and at one point beyond is extrapolated to m^2 = 0; if that lands outside the bracket,
    the order parameter jumped and the transition is discontinuous (first order): the bracket's midpoint.
    ``hints``: solutions (e.g. from :func:`solve_path` at the bracket's ends) used as extra starts, since
    random starts can miss a branch. Returns (beta_c, kind, evaluations) with kind "continuous" or
    "discontinuous".
    """
    near = dict(enumerate(hints))  # extra starts: the hints, then the solutions at the bracket's ends

    def m(beta):
        ks = problem(beta)
        starts = ks.starts() + [ks.start_from(sol) for sol in near.values()]
        sols = ks.solve(starts, stability=False, **solve_kw)
        return order(sols[0].C), sols

    m_hi, sols = m(hi)
    near["hi"] = sols[0]
    m_lo, sols = m(lo)  # also started from the upper end's solution: a lower-action branch there is found
    near["lo"] = sols[0]
    if not m_lo < threshold < m_hi:
        raise ValueError(f"the order parameter must cross threshold={threshold} between lo={lo} and hi={hi}")
    evaluations = 2
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        value, sols = m(mid)
        if value >= threshold:
            hi, near["hi"] = mid, sols[0]
        else:
            lo, near["lo"] = mid, sols[0]
        evaluations += 1
    b2 = hi + 50 * rtol * hi
    m1, m2 = m(hi)[0] ** 2, m(b2)[0] ** 2
    estimate = hi - m1 * (b2 - hi) / (m2 - m1) if m2 > m1 else -math.inf
    if lo - (hi - lo) <= estimate <= hi:
        return estimate, "continuous", evaluations + 2
    return 0.5 * (lo + hi), "discontinuous", evaluations + 2
