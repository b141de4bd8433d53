"""Feature-learning study: representational kernels of Bayesian muP RNNs versus DNNs ([BFHP]).

``--task endpoint``:
- the phase transition of the linear chain with endpoint supervision: the solver's critical signal for
  T = 2 against the closed form, the critical signals for longer T, and the order parameter (RNN minus
  DNN cross-time correlation) over a scan of beta, with Langevin estimates across the T = 2 transition;
- theory against sampling for two sequences (linear and tanh) at several widths: deviations within
  error bars plus a 1/N term whose coefficient is measured.

``--task sequence``: inputs at every step, target y_t = w* . x_{t-1}, supervised at some steps; the
posterior-mean error at the other steps (theory and sampling) shows what weight sharing buys.

Sampling runs go through :func:`meanfield.studies.framework.run_tasks` (resume skips finished runs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import checks
from ..architectures.mup import MuP
from ..architectures.mup.network import endpoint_readout, langevin
from ..architectures.mup.theory import (
    critical_signal,
    critical_signal_t2,
    cross_time_correlation,
    posterior_solution,
    solve_path,
)
from ..backends import check_backend
from ..report import pyplot
from ..stats import chain_mean_se
from .framework import (
    RUN_SECONDS,
    Config,
    ConfigError,
    Section,
    SeedSection,
    StudyFolder,
    backend_workers,
    refuse_if_larger,
    register,
    run_tasks,
    spec,
    write_report,
)

TASKS = ("endpoint", "sequence")
# theory vs sampling: allowed |sampled - theory| = 4 se + ALLOWANCE_COEFFICIENT sqrt(C_aa C_bb) / N; the 1/N
# coefficient measured with long chains at N = 64 and 128 is at most 1.8 (theory_notes/feature_learning.md 6)
ALLOWANCE_COEFFICIENT = 4.0
MAX_CHAIN_SCALE = 4.0  # longest chain, relative to the configured n_steps, when the step has to be reduced
SECONDS_PER_FLOP = 1e-10  # BLAS on one core, for estimates
SECONDS_PER_LANGEVIN_STEP = 1.7e-4  # a sampler step's fixed cost (Python loop, small arrays), measured
SECONDS_PER_THEORY_SOLVE = 5.6e-5  # x (T + 1)^6: one saddle-point solve at depth T (0.88 s at T = 4), measured
CRITICAL_SOLVES = 12  # the solves of a critical point's bisection, about


@dataclass(frozen=True)
class StudySection(Section, name="study"):
    task: str = spec(checks.choice, options=TASKS)


@dataclass(frozen=True)
class ModelSection(Section, name="model"):
    g: float = spec(checks.positive)
    g_u: float = spec(checks.positive)
    g_v: float = spec(checks.positive)

    def architecture(self, shared, activation="linear", g=None) -> MuP:
        """The RNN (``shared``) or DNN; ``g``, if given, replaces both g and g_u (the agreement problems)."""
        g, g_u = (self.g, self.g_u) if g is None else (g, g)
        return MuP(shared=shared, activation=activation, g=g, g_u=g_u, g_v=self.g_v)


@dataclass(frozen=True)
class SamplerSection(Section, name="sampler"):
    step_size: float = spec(checks.real, minimum=0, maximum=1, exclusive_minimum=True)  # the prior step is exact < 2
    n_steps: int = spec(checks.integer, minimum=2)
    burn_in: int = spec(checks.integer, minimum=0)
    thin: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class EndpointSection(Section, name="endpoint"):
    target: float = spec(checks.real)
    depths: tuple = spec(checks.integer_list, minimum=2, increasing=True)
    beta_min: float = spec(checks.positive)
    beta_max: float = spec(checks.positive)
    n_beta: int = spec(checks.integer, minimum=2)
    transition_ratios: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True, increasing=True)
    transition_width: int = spec(checks.integer, minimum=2)
    widths: tuple = spec(checks.integer_list, minimum=2, increasing=True)


@dataclass(frozen=True)
class SequenceSection(Section, name="sequence"):
    patterns: int = spec(checks.integer, minimum=1)
    depth: int = spec(checks.integer, minimum=2)
    input_dim: int = spec(checks.integer, minimum=1)
    supervised: tuple = spec(checks.integer_list, minimum=1, increasing=True)
    betas: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True, increasing=True)
    sampled_betas: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True)
    width: int = spec(checks.integer, minimum=2)


@dataclass(frozen=True)
class FeatureLearningConfig(Config):
    """The feature-learning study's configuration (``meanfield/studies/featurelearning_default.toml``)."""

    DEFAULT = "featurelearning_default.toml"
    study: StudySection
    model: ModelSection
    sampler: SamplerSection
    endpoint: EndpointSection
    sequence: SequenceSection
    sweep: SeedSection

    def validate(self):
        s, e, q, m = self.sampler, self.endpoint, self.sequence, self.model
        if not s.n_steps > s.burn_in:
            raise ConfigError(f"config field 'sampler.burn_in': must be < n_steps = {s.n_steps}, got {s.burn_in}")
        if not e.beta_min < e.beta_max:
            raise ConfigError(f"config field 'endpoint.beta_max': must be > beta_min = {e.beta_min}, got {e.beta_max}")
        if e.target**2 <= 8 * m.g_v**2 * m.g**4:
            raise ConfigError("config field 'endpoint.target': need target^2 > 8 g_v^2 g^4, else the T = 2 chain "
                              "has no transition")
        if not set(q.supervised) < set(range(1, q.depth + 1)):
            raise ConfigError(f"config field 'sequence.supervised': a proper subset of the steps 1..depth, got "
                              f"{list(q.supervised)}")
        if q.patterns > q.input_dim:
            raise ConfigError("config field 'sequence.patterns': at most input_dim (the inputs x_0 must be "
                              "independent)")
        missing = sorted(set(q.sampled_betas) - set(q.betas))
        if missing:
            raise ConfigError(f"config field 'sequence.sampled_betas': each must be one of sequence.betas, got "
                              f"{missing}")

    def _samplers(self):
        """(field, width, depth, patterns, count) of the sampled networks, for size and time estimates."""
        e, q = self.endpoint, self.sequence
        if self.study.task == "endpoint":
            return ([("endpoint.widths", n, 2, 2, 2) for n in e.widths]
                    + [("endpoint.transition_width", e.transition_width, 2, 1, 2 * len(e.transition_ratios))])
        return [("sequence.width", q.width, q.depth, q.patterns, 2 * len(q.sampled_betas))]

    def check_size(self, memory_bytes):
        s = self.sampler
        for name, n, T, P, _ in self._samplers():
            refuse_if_larger(name, 48.0 * T * n * n, memory_bytes, f"a Langevin chain of width {n} and depth {T}")
            refuse_if_larger("sampler.n_steps", 8.0 * MAX_CHAIN_SCALE * s.n_steps / s.thin * ((T + 1) * P) ** 2,
                             memory_bytes, f"{s.n_steps} recorded steps of {((T + 1) * P) ** 2} kernel entries")

    SIZE_FIELDS = ("sampler.n_steps", "endpoint.widths", "sequence.width")

    def estimated_seconds(self):
        """The samplers (flops, plus a fixed cost per step: the sampler's Python loop and each run's own theory
        solve) and, for the endpoint task, the theory's scan over beta and its critical points; measured on one
        core with the quick config: 22 s of runs and 27 s of theory, estimated 26 s and 32 s."""
        steps = self.sampler.n_steps * MAX_CHAIN_SCALE
        runs = sum(count * (steps * (8 * T * P * n * n * SECONDS_PER_FLOP + SECONDS_PER_LANGEVIN_STEP) + RUN_SECONDS)
                   for _, n, T, P, count in self._samplers())
        if self.study.task != "endpoint":
            return runs
        e = self.endpoint
        solves = e.n_beta + CRITICAL_SOLVES  # per depth: the scan, and the bisection of its critical point
        return runs + solves * sum(SECONDS_PER_THEORY_SOLVE * (T + 1) ** 6 for T in e.depths)


# --- problems (rebuilt identically in the workers) -----------------------------------------------
def transition_problem(T, target):
    """One sequence with x_0 = 1 (d = 1) and nothing after; target at t = T."""
    X = np.zeros((1, T + 1, 1))
    X[0, 0, 0] = 1.0
    y = np.zeros((T + 1, 1))
    y[-1] = target
    return X, y, endpoint_readout(T, 1)


def agreement_problem(activation):
    """Two sequences with inputs at t = 0 only, T = 2, endpoint targets (bounded ones for tanh)."""
    X = np.zeros((2, 3, 2))
    X[:, 0] = np.array([[1.0, 0.3], [-0.2, 1.0]]) * math.sqrt(2)
    y = np.zeros((3, 2))
    y[-1] = (1.5, -1.0) if activation == "linear" else (0.6, -0.4)
    beta, g = (1.0, 1.0) if activation == "linear" else (3.0, 1.5)
    return X, y, endpoint_readout(2, 2), beta, g


def sequence_problem(q, seed):
    """Inputs x_t ~ N(0, I_d) at every step, y_t = w* . x_{t-1} (|w*| = 1), readout at the supervised steps."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(99,)))
    P, T, d = q.patterns, q.depth, q.input_dim
    X = rng.normal(size=(P, T + 1, d))
    w = rng.normal(size=d)
    y = np.zeros((T + 1, P))
    y[1:] = (X[:, :-1] @ (w / np.linalg.norm(w))).T
    readout = np.zeros((T + 1, P), dtype=bool)
    readout[list(q.supervised)] = True
    test = np.zeros_like(readout)
    test[1:] = ~readout[1:]
    return X, y, readout, test


def _relative_error(f, y, mask):
    return float(np.mean((f - y)[mask] ** 2) / np.mean(y[mask] ** 2))


# --- one sampling run ------------------------------------------------------------------------------
def sample_run(config, problem, shared, width, beta, index, activation="linear", g=None, backend="numba"):
    """Langevin samples of one posterior; returns mean kernels, outputs and order parameter with errors.
    ``g``, if given, replaces both g and g_u of the config (the agreement problems set their own); ``backend``:
    the sampler's (:func:`~meanfield.architectures.mup.network.langevin`)."""
    cfg = FeatureLearningConfig.from_dict(config)
    s, arch = cfg.sampler, cfg.model.architecture(shared, activation, g)
    if problem == "transition":
        X, y, readout = transition_problem(2, cfg.endpoint.target)
    elif problem == "agreement":
        X, y, readout, _, _ = agreement_problem(activation)
    else:
        X, y, readout, _ = sequence_problem(cfg.sequence, cfg.sweep.seed)
    theory = posterior_solution(lambda b: arch.theory(X, y, readout, b), beta, stability=False).C
    step = langevin_step(s.step_size, beta, arch.g_v, theory, readout)
    seeds = np.random.SeedSequence(cfg.sweep.seed, spawn_key=(index,)).spawn(2)
    net = arch.network(width, X.shape[2], X.shape[1] - 1, seed=seeds[0])
    # a smaller step covers less time: lengthen the chain by the same factor, up to MAX_CHAIN_SCALE
    scale = min(MAX_CHAIN_SCALE, s.step_size / step)
    start = time.perf_counter()
    smp = langevin(net, X, y, readout, beta=beta, step_size=step, n_steps=round(s.n_steps * scale),
                   burn_in=round(s.burn_in * scale), thin=max(1, round(s.thin * scale)), seed=seeds[1], backend=backend)
    C, C_se = smp.kernel_estimate()
    order = np.array([cross_time_correlation(c) for c in smp.kernels])
    return dict(kernel=C, kernel_se=C_se, outputs=smp.outputs.mean(axis=0), outputs_se=chain_mean_se(smp.outputs),
                order=order.mean(), order_se=chain_mean_se(order),
                seconds=time.perf_counter() - start, width=width, beta=beta, shared=shared, step_size=step,
                burn_in_z=smp.burn_in_z())


def _typical_max_z(run):
    """sqrt(2 ln M): the typical largest |z| of M independent standard normals, M = kernel entries + 1 (the
    number of series the burn-in z of a run is the maximum over)."""
    return math.sqrt(2 * math.log(run["kernel"].size + 1))


def langevin_step(step_size, beta, g_v, C, readout):
    """The Langevin step: ``step_size``, reduced so that eta * beta g_v^2 lambda_max(C_RR) <= 1/4. In prior units
    the data term's curvature is about beta g_v^2 lambda_max(C_RR) (the readout direction), and explicit
    steps of a stiffer drift are unstable (eta lambda > 2) or biased; the prior part is exact at any step."""
    idx = np.flatnonzero(np.asarray(readout).ravel())
    C = np.asarray(C).reshape(readout.size, readout.size)[np.ix_(idx, idx)]
    stiffness = beta * g_v**2 * float(np.linalg.eigvalsh(C)[-1])
    return float(min(step_size, 0.25 / stiffness)) if stiffness > 0 else float(step_size)


def _tasks(cfg: FeatureLearningConfig, beta_c, backend):
    tasks, index = {}, 0
    e, q = cfg.endpoint, cfg.sequence
    if cfg.study.task == "endpoint":
        for act in ("linear", "tanh"):
            _, _, _, beta, g = agreement_problem(act)
            for n in e.widths:
                tasks[f"agree_{act}_n{n}"] = dict(problem="agreement", shared=True, width=n, beta=beta,
                                                  activation=act, g=g, index=index)
                index += 1
        for r in e.transition_ratios:
            for net in ("rnn", "dnn"):
                tasks[f"transition_{net}_r{r:g}"] = dict(problem="transition", shared=net == "rnn",
                                                         width=e.transition_width, beta=r * beta_c, index=index)
                index += 1
    else:
        for b in q.sampled_betas:
            for net in ("rnn", "dnn"):
                tasks[f"sequence_{net}_b{b:g}"] = dict(problem="sequence", shared=net == "rnn", width=q.width,
                                                       beta=b, index=index)
                index += 1
    config = cfg.as_dict()
    return {k: dict(config=config, backend=backend, **v) for k, v in tasks.items()}


# --- the study -------------------------------------------------------------------------------------
def _arguments(parser):
    parser.add_argument("--task", choices=TASKS, default=None,
                        help="endpoint: phase transition and theory vs sampling; sequence: supervised subset of "
                             "steps (default: the config's study.task)")


@register("featurelearning", "Bayesian muP RNN vs DNN: saddle-point kernels against Langevin sampling (phase "
          "transition; generalisation across time)", config=FeatureLearningConfig, parallel=True,
          arguments=_arguments, overrides=lambda args: {"study.task": args.task} if args.task else {},
          default_out=lambda args: f"results/featurelearning-{args.task or 'endpoint'}", backends=True)
def run_featurelearning(cfg: FeatureLearningConfig, out, *, workers=None, scheduler=None, progress=True,
                        overwrite=False, backend="numba") -> Path:
    """Run (or resume) the study for the config's ``study.task`` into ``out``; return the path of report.md.

    ``backend="jax"`` samples with the JAX Langevin sampler (each run's key holds the backend, so runs of the
    other backend are recomputed, not reused); its runs go one after the other in this process (the device is
    the parallel part) unless a ``scheduler`` is given."""
    start = time.perf_counter()
    backend = check_backend(backend)
    workers = backend_workers(backend, workers, scheduler)
    task = cfg.study.task
    with StudyFolder(out, "featurelearning", cfg, overwrite=overwrite) as folder:
        m = cfg.model
        beta_c = critical_signal_t2(cfg.endpoint.target, m.g_u**2, g=m.g, g_v=m.g_v)
        runs = run_tasks(sample_run, _tasks(cfg, beta_c, backend), folder.runs, workers=workers, scheduler=scheduler,
                         progress=progress, desc=f"{task} sampling")
        if task == "endpoint":
            report = dict(task=task, **_endpoint(cfg, beta_c, runs, progress))
        else:
            report = dict(task=task, **_sequence(cfg, runs))
        report.update(study="featurelearning", config=cfg.as_dict(), seconds=time.perf_counter() - start)
        _figures(folder.path, report)
        return write_report(folder, report, _markdown(report), start)


def _endpoint(cfg, beta_c, runs, progress=False):
    e = cfg.endpoint
    target = e.target

    def problem(T, shared):
        X, y, R = transition_problem(T, target)
        return lambda b: cfg.model.architecture(shared).theory(X, y, R, b)

    # the T = 2 critical point from the solver, and the scan of the order parameter for each T
    found, kind, evaluations = critical_signal(problem(2, True), 0.5 * beta_c, 2 * beta_c)
    betas = np.geomspace(e.beta_min, e.beta_max, e.n_beta)
    scan, critical = {}, {}
    for T in tqdm(e.depths, desc="theory: scan over beta", unit="depth", disable=not progress, leave=False):
        path = solve_path(problem(T, True), betas, stability=False)
        rnn = [s[0] for s in path]
        dnn = [s[0] for s in solve_path(problem(T, False), betas, n_random=0, stability=False)]
        m_rnn = np.array([cross_time_correlation(s.C) for s in rnn])
        m_dnn = np.array([cross_time_correlation(s.C) for s in dnn])
        scan[str(T)] = dict(beta=betas, order_rnn=m_rnn, order_dnn=m_dnn, order=m_rnn - m_dnn,
                            readout_kernel=np.array([s.C[-1, 0, -1, 0] for s in rnn]))
        on = np.flatnonzero(m_rnn > 1e-3)
        if on.size and on[0] > 0:
            b, k, _ = critical_signal(problem(T, True), betas[on[0] - 1], betas[on[0]],
                                      hints=path[on[0] - 1] + path[on[0]])
            critical[str(T)] = dict(beta=b, kind=k)
        else:
            critical[str(T)] = None
    transition = {}
    for net in ("rnn", "dnn"):
        rows = []
        for r in e.transition_ratios:
            run = runs[f"transition_{net}_r{r:g}"]
            theory = problem(2, net == "rnn")(r * beta_c).solve(stability=False)[0]
            rows.append(dict(ratio=r, beta=r * beta_c, sampled=run["order"], sampled_se=run["order_se"],
                             theory=cross_time_correlation(theory.C), burn_in_z=run["burn_in_z"],
                             burn_in_reference=_typical_max_z(run)))
        transition[net] = rows
    return dict(critical_t2=dict(closed_form=beta_c, solver=found, kind=kind, relative_error=found / beta_c - 1,
                                 solver_evaluations=evaluations),
                critical=critical, scan=scan, transition=transition,
                transition_width=e.transition_width, agreement=_agreement(cfg, runs))


def _agreement(cfg, runs):
    """Theory against sampled kernels per activation and width: z-scores and the 1/N coefficient."""
    out = {}
    widths = cfg.endpoint.widths
    for act in ("linear", "tanh"):
        X, y, R, beta, g = agreement_problem(act)
        ks = cfg.model.architecture(True, act, g).theory(X, y, R, beta)
        sol = ks.solve(stability=False)[0]
        C = sol.C
        d = np.sqrt(np.einsum("apap->ap", C))
        scale = d[:, :, None, None] * d[None, None]
        rows = []
        for n in widths:
            run = runs[f"agree_{act}_n{n}"]
            dev = np.abs(run["kernel"] - C) / scale
            allowance = 4 * run["kernel_se"] + ALLOWANCE_COEFFICIENT * scale / n
            rows.append(dict(width=n, max_z=float(np.max(np.abs(run["kernel"] - C) / run["kernel_se"])),
                             max_scaled_deviation=float(dev.max()), coefficient=float(n * dev.max()),
                             max_over_allowance=float(np.max(np.abs(run["kernel"] - C) / allowance)),
                             max_scaled_se=float(np.max(run["kernel_se"] / scale)), burn_in_z=run["burn_in_z"],
                             burn_in_reference=_typical_max_z(run),
                             output_theory=ks.predict(C)[-1], output_sampled=run["outputs"][-1]))
        largest = runs[f"agree_{act}_n{widths[-1]}"]
        out[act] = dict(theory=C, prior=ks.prior().reshape(C.shape), rows=rows, sampled_largest=largest["kernel"],
                        se_largest=largest["kernel_se"], theory_effective_samples=sol.effective_samples)
    return out


def _sequence(cfg, runs):
    q = cfg.sequence
    X, y, R, test = sequence_problem(q, cfg.sweep.seed)
    rows = {}
    for net in ("rnn", "dnn"):
        def problem(b, shared=net == "rnn"):
            return cfg.model.architecture(shared).theory(X, y, R, b)

        sols = [s[0] for s in solve_path(problem, q.betas, n_random=0, stability=False)]
        prior = problem(0.0).prior()
        r = []
        for b, s in zip(q.betas, sols):
            f, f0 = problem(b).predict(s.C), problem(b).predict(prior)
            row = dict(beta=b, train_error=_relative_error(f, y, R), test_error=_relative_error(f, y, test),
                       test_error_prior_kernel=_relative_error(f0, y, test))
            if f"sequence_{net}_b{b:g}" in runs:
                run = runs[f"sequence_{net}_b{b:g}"]
                row.update(sampled_test_error=_relative_error(run["outputs"], y, test),
                           sampled_train_error=_relative_error(run["outputs"], y, R),
                           max_output_deviation=float(np.max(np.abs(run["outputs"] - f))),
                           max_output_se=float(np.max(run["outputs_se"])), burn_in_z=run["burn_in_z"],
                           burn_in_reference=_typical_max_z(run))
            r.append(row)
        rows[net] = r
    return dict(sequence=rows, supervised=q.supervised, width=q.width)


# --- outputs -------------------------------------------------------------------------------------------
def _figures(out, report):
    plt = pyplot()
    if report["task"] == "endpoint":
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
        ax = axes[0]
        for T, s in report["scan"].items():
            ax.plot(s["beta"], s["order"], label=f"theory T = {T}")
        for net, marker in (("rnn", "o"), ("dnn", "s")):
            rows = report["transition"][net]
            ax.errorbar([r["beta"] for r in rows], [r["sampled"] for r in rows], [2 * r["sampled_se"] for r in rows],
                        fmt=marker, label=f"{net.upper()} sampled, T = 2, N = {report['transition_width']}")
        ax.axvline(report["critical_t2"]["closed_form"], color="k", ls=":", label="closed-form beta_c (T = 2)")
        ax.set(xscale="log", xlabel="signal strength beta", ylabel="cross-time correlation, RNN - DNN",
               title="Phase diagram (endpoint supervision, linear)")
        ax.legend(fontsize=7)
        for ax, act in zip(axes[1:], ("linear", "tanh")):
            a = report["agreement"][act]
            th, sm, se = (np.ravel(a[k]) for k in ("theory", "sampled_largest", "se_largest"))
            ax.errorbar(th, sm, 2 * se, fmt="o", ms=3, label=f"sampled, N = {a['rows'][-1]['width']}")
            ax.plot(th, np.ravel(a["prior"]), "x", label="prior (NNGP)")
            lim = [min(th.min(), sm.min()), max(th.max(), sm.max())]
            ax.plot(lim, lim, "k-", lw=0.8)
            ax.set(xlabel="theory C (N = infinity)", ylabel="sampled C", title=f"Kernels, RNN, {act}")
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "endpoint.png", dpi=120)
    else:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for net, color in (("rnn", "C0"), ("dnn", "C1")):
            rows = report["sequence"][net]
            ax.plot([r["beta"] for r in rows], [r["test_error"] for r in rows], "-", color=color,
                    label=f"{net.upper()} theory")
            ax.plot([r["beta"] for r in rows], [r["test_error_prior_kernel"] for r in rows], ":", color=color,
                    label=f"{net.upper()} with its prior kernel (no feature learning)")
            s = [r for r in rows if "sampled_test_error" in r]
            ax.plot([r["beta"] for r in s], [r["sampled_test_error"] for r in s], "o", color=color,
                    label=f"{net.upper()} sampled, N = {report['width']}")
        ax.set(xscale="log", xlabel="signal strength beta", ylabel="relative error at unsupervised steps",
               title="Generalisation across time (y_t = w* . x_{t-1})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "sequence.png", dpi=120)
    plt.close("all")


def _markdown(report) -> str:
    lines = [f"# Feature learning, RNN versus DNN: {report['task']} task", ""]
    if report["task"] == "endpoint":
        c = report["critical_t2"]
        lines += ["## Phase transition (linear chain, one sequence, endpoint supervision)", "",
                  f"- T = 2 critical signal: closed form {c['closed_form']:.8g}, solver {c['solver']:.8g} "
                  f"(relative error {c['relative_error']:.1e}, {c['kind']}, {c['solver_evaluations']} solves).",
                  "- Solver critical signal by depth: " + ", ".join(
                      f"T = {T}: {b['beta']:.5g} ({b['kind']})" if b is not None else f"T = {T}: none in the scan"
                      for T, b in report["critical"].items()) + ". A discontinuous transition is located where "
                  "the symmetric and the broken branch have equal action (the posterior switches branch there).",
                  "- The DNN's cross-time correlation is 0 at every beta (max over the scan: "
                  f"{max(max(s['order_dnn']) for s in report['scan'].values()):.1e}).", "",
                  "| beta / beta_c | RNN theory | RNN sampled | DNN theory | DNN sampled | max burn-in z |",
                  "|---|---|---|---|---|---|"]
        for r, d in zip(report["transition"]["rnn"], report["transition"]["dnn"]):
            lines.append(f"| {r['ratio']:g} | {r['theory']:.3f} | {r['sampled']:.3f} +- {r['sampled_se']:.3f} | "
                         f"{d['theory']:.3f} | {d['sampled']:.3f} +- {d['sampled_se']:.3f} | "
                         f"{max(r['burn_in_z'], d['burn_in_z']):.1f} |")
        lines += ["", f"Sampled at N = {report['transition_width']}; the sampled order parameter is the mean of "
                  "|correlation| over samples, so it is O(N^-1/2) above 0 where the theory is 0. Burn-in z: the "
                  "largest Geweke z over the data term and the M kernel entries (first 10% against last 50%); for a "
                  "chain in equilibrium it is typically about sqrt(2 ln M) = "
                  f"{report['transition']['rnn'][0]['burn_in_reference']:.1f} here.", "",
                  "## Theory against sampling (two sequences, T = 2, RNN)", "",
                  "| activation | N | max abs z | max abs deviation / sqrt(C_aa C_bb) | N x that | max se / scale | "
                  "max deviation / allowance | burn-in z (typical max) |", "|---|---|---|---|---|---|---|---|"]
        for act, a in report["agreement"].items():
            for r in a["rows"]:
                lines.append(f"| {act} | {r['width']} | {r['max_z']:.1f} | {r['max_scaled_deviation']:.4f} | "
                             f"{r['coefficient']:.2f} | {r['max_scaled_se']:.4f} | {r['max_over_allowance']:.2f} | "
                             f"{r['burn_in_z']:.1f} ({r['burn_in_reference']:.1f}) |")
        lines += ["", f"Allowance: 4 standard errors + {ALLOWANCE_COEFFICIENT:g} sqrt(C_aa C_bb) / N (the measured 1/N "
                  "coefficient is below 2); a ratio below 1 means agreement. Where the standard error is as large as "
                  "the deviation, the sampling error dominates the 1/N term.", "", "![endpoint](endpoint.png)"]
    else:
        lines += [f"Supervised steps {report['supervised']}; error = mean squared error / mean y^2 at the other "
                  f"steps t >= 1; sampled at N = {report['width']}.", "",
                  "| beta | net | train (theory) | test (theory) | test, prior kernel | test (sampled) | "
                  "max abs f sampled - f theory (se) | burn-in z (typical max) |", "|---|---|---|---|---|---|---|---|"]
        for net, rows in report["sequence"].items():
            for r in rows:
                sampled = (f"{r['sampled_test_error']:.3f} | {r['max_output_deviation']:.3f} ({r['max_output_se']:.3f})"
                           f" | {r['burn_in_z']:.1f} ({r['burn_in_reference']:.1f})" if "sampled_test_error" in r
                           else " | |")
                lines.append(f"| {r['beta']:g} | {net.upper()} | {r['train_error']:.3f} | {r['test_error']:.3f} | "
                             f"{r['test_error_prior_kernel']:.3f} | {sampled} |")
        lines += ["", "Burn-in z: the largest Geweke z (first 10% against last 50% of the chain) over the data term "
                  "and the M kernel entries; in brackets sqrt(2 ln M), the typical largest of M independent "
                  "standard normals, i.e. what a chain in equilibrium shows.", "", "![sequence](sequence.png)"]
    lines += ["", f"Wall time {report['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
