"""Convergence study: wide diagonal RNNs against their kernel limit, as N and the number of steps grow.

The task is a shipped one (``[task] name``) or the user's own: a finite or Gaussian AR(1) chain
(``[task.chain]``) and a target written as an expression of the inputs (``[task] target``, parsed without eval
by :mod:`meanfield.expressions`), or from Python any :class:`meanfield.Task` (:func:`convergence_study`, the same
code path as the CLI). For each width N and seed, a network is trained by online SGD on the task for T N steps,
recording f^N_t on fixed probe windows; the limit f_t is solved once, on all windows of a small finite chain or
on a scrambled Sobol grid for an AR(1) chain, whose error is estimated (``theory_notes/limit.md`` section 8). With
the symmetric initialisation f_0 = 0; with the Gaussian one the limit starts from each network's own f^N_0 and
the moments over seeds are compared with the limit's Gaussian law (section 6). Reported (section 7):

- the error sup_{t <= T, probes} |f^N_t - f_t| per width and seed, and its fitted rate in N with a
  studentised 95% interval (the theory says -1/2), and the L2 error over the probes at each recorded time;
- the empirical NTK at initialisation against the limit kernel on the probes, and its rate;
- the memory state against the number of steps k (a geometric rate, compared with rho = beta sup|sigma'|).

The (width, seed) runs are independent tasks of :func:`meanfield.studies.framework.run_tasks`; each run's
seed is the study seed's child number (width index x seeds + seed index) by ``SeedSequence``, so the
results do not depend on the number of workers, and a finished run is on disk at once (resume). On the
JAX backend (``--backend jax``) a task is one width, all its seeds trained as one batch, with the same
per-seed seeds, so the two backends report the same numbers (to rounding).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..activations import ACTIVATIONS
from ..architectures.diagonal import Diagonal, LimitModel, train_online, train_seeds
from ..architectures.diagonal.fluctuations import SOURCE_ORDER, Fluctuations, fluctuations
from ..architectures.diagonal.limit import (
    NODE_BUDGET,
    SOBOL_REPLICATES,
    KernelResult,
    kernel_seconds,
    limit_grid,
    quadrature,
)
from ..architectures.diagonal.network import training_seconds
from ..backends import check_backend
from ..data import TASK_NAMES, GaussianAR1, MarkovChain, Task, chain_from_spec, make_task
from ..estimators import gaussian_moment_errors, memory_state_errors, trajectory_errors
from ..report import plain, pyplot, width_ticks
from ..stats import RateFit, fit_rate
from .framework import (
    CORES,
    RUN_SECONDS,
    Config,
    ConfigError,
    DiagnosisWarning,
    Section,
    StudyFolder,
    backend_workers,
    check_diagonal_sweep,
    check_scheduler,
    refuse_if_larger,
    register,
    reusable_result,
    run_key,
    run_tasks,
    save_result,
    spec,
    worker_threads,
    write_report,
)

INITS = ("symmetric", "gaussian")
SWEEP_FIELDS = ("config.sweep.widths", "config.sweep.seeds")  # not in a run's key: see StudyConfig.EXTENDABLE
QUADRATURE_RULES = ("auto", "trapezoid", "hermite", "sobol")


@dataclass(frozen=True)
class TaskSection(Section, name="task"):
    """Either a shipped task (``name``, with its options) or the user's own (``target`` and ``[task.chain]``)."""

    name: str | None = None  # a shipped task: parity2, delay1, ar1-sin
    target: str | None = None  # the user's own: Y_k as an expression of the inputs (meanfield.expressions)
    chain: dict | None = None  # [task.chain]: kind = "finite" (transition, states) or "gaussian-ar1" (A, Q)
    noise_std: float | None = None  # default 0.1 for a shipped task, 0 for a target
    stay: object = None  # parity2, delay1: stay probabilities (checked by make_task)
    a: object = None  # ar1-sin: AR coefficient (checked by make_task)
    function: str | None = None  # set by convergence_study for a Python function (name and fingerprint)

    def options(self) -> dict:
        return {k: v for k, v in (("noise_std", self.noise_std), ("stay", self.stay), ("a", self.a)) if v is not None}


@dataclass(frozen=True)
class ModelSection(Section, name="model"):
    activation: str = spec(checks.choice, options=[n for n, a in ACTIVATIONS.items() if a.bounded])
    sigma_w: float = spec(checks.positive)
    beta: float = spec(checks.real, minimum=0)
    init: str = spec(checks.choice, options=INITS, default="symmetric")


@dataclass(frozen=True)
class TrainingSection(Section, name="training"):
    alpha: float = spec(checks.positive)
    horizon: float = spec(checks.positive)
    n_records: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class LimitSection(Section, name="limit"):
    window: int = spec(checks.integer, minimum=2)
    order: tuple = spec(checks.integer_list, minimum=1, min_length=2)
    grid: int = spec(checks.integer, minimum=2, default=4096)
    rule: str = spec(checks.choice, options=QUADRATURE_RULES, default="auto")
    nodes: int = spec(checks.integer, minimum=2 * SOBOL_REPLICATES, default=NODE_BUDGET)


@dataclass(frozen=True)
class ProbesSection(Section, name="probes"):
    count: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class SweepSection(Section, name="sweep"):
    widths: tuple = spec(checks.integer_list, minimum=2, min_length=2, increasing=True)
    seeds: int = spec(checks.integer, minimum=2)
    seed: int = spec(checks.integer, minimum=0)


@dataclass(frozen=True)
class MemorySection(Section, name="memory"):
    nodes: int = spec(checks.integer, minimum=1)
    steps: int = spec(checks.integer, minimum=2)
    sequences: int = spec(checks.integer, minimum=2)


def _field_error(err: ValueError, prefix: str, fallback: str) -> ConfigError:
    """A ConfigError naming the field of a message "FIELD must ..." or "FIELD: ..." whose FIELD starts with prefix
    (else the field ``fallback``)."""
    text = str(err)
    field, _, rest = text.partition(": ") if text.split(" ")[0].endswith(":") else text.partition(" ")
    if not field.startswith(prefix):
        field, rest = fallback, text
    return ConfigError(f"config field '{field}': {rest}")


@dataclass(frozen=True)
class StudyConfig(Config):
    """The convergence study's configuration (``meanfield/studies/convergence_default.toml``)."""

    DEFAULT = "convergence_default.toml"
    SHIPPED = {"ar1": "convergence_ar1.toml"}
    REPLACING_KEYS = {"task": ("name", "target")}
    task: TaskSection
    model: ModelSection
    training: TrainingSection
    limit: LimitSection
    probes: ProbesSection
    sweep: SweepSection
    memory: MemorySection

    def validate(self):
        t = self.task
        given = [k for k in ("name", "target", "function") if getattr(t, k) is not None]
        if len(given) != 1:
            raise ConfigError("config field 'task': give either name = a shipped task "
                              f"({', '.join(TASK_NAMES)}) or target = an expression with a [task.chain] table, "
                              f"got {' and '.join(given) if given else 'neither'}")
        if t.name is not None and t.chain is not None:
            raise ConfigError("config field 'task.chain': a shipped task has its own chain; give target = ... "
                              "for your own task on this chain")
        if t.name is None and (t.stay is not None or t.a is not None):
            raise ConfigError(f"config field 'task.{'stay' if t.stay is not None else 'a'}': an option of the shipped "
                              f"tasks, not of a target")
        if t.name is None and t.chain is None:
            raise ConfigError("config field 'task.chain': missing (the chain of your target: a [task.chain] table)")
        if t.function is None:
            self.make_task()
        if len(self.limit.order) != 2:
            raise ConfigError(f"config field 'limit.order': must be two positive integers, got "
                              f"{list(self.limit.order)}")
        d = self.chain().input_dim
        if self.limit.rule == "auto" and d > 1 and list(self.limit.order) != self.default_dict()["limit"]["order"]:
            raise ConfigError(f"config field 'limit.order': a tensor rule's order, unused for inputs in R^{d} (the "
                              "default rule takes limit.nodes = a power of 2 scrambled Sobol points); set nodes, or "
                              "rule = 'trapezoid' with the order")
        check_diagonal_sweep(self.sweep.widths, self.training.horizon, self.training.n_records, "sweep", "training",
                             symmetric=self.model.init == "symmetric")
        if self.limit.grid & (self.limit.grid - 1) and isinstance(self.chain(), GaussianAR1):
            raise ConfigError(f"config field 'limit.grid': must be a power of 2 for the Sobol grid of a continuous "
                              f"chain, got {self.limit.grid}")
        try:
            self.architecture()
        except ValueError as err:
            raise ConfigError(f"config field 'model.beta': {err}") from None

    def chain(self):
        """The task's chain (built from [task.chain], or the shipped task's)."""
        if self.task.chain is not None:
            try:
                return chain_from_spec(self.task.chain, "task.chain")
            except ValueError as err:
                raise _field_error(err, "task.chain", "task.chain") from None
        return self.make_task().chain

    def check_size(self, memory_bytes):
        chain = self.chain()
        d, n_probes = chain.input_dim, self.probes.count
        N = self.sweep.widths[-1]
        refuse_if_larger("sweep.widths", 8.0 * N * (8 + 4 * d), memory_bytes, f"a network of width {N}")
        refuse_if_larger("probes.count", 16.0 * N * n_probes * (d + 2), memory_bytes,
                         f"the kernel of {n_probes} probes at width {N}")
        grid = self.grid_windows()
        field = "limit.window" if self.limit.window * d > 4 * grid else "limit.grid"
        refuse_if_larger(field, 8.0 * grid * (self.limit.window * d + 4 * grid), memory_bytes,
                         f"the limit on {grid} windows of length {self.limit.window}")
        try:
            self.quadrature()
        except ValueError as err:
            field = "limit.nodes" if self.rule() == "sobol" else "limit.order"
            raise ConfigError(f"config field '{field}': {err}") from None
        refuse_if_larger("memory.nodes", 8.0 * self.memory.nodes * (d + 4), memory_bytes,
                         f"{self.memory.nodes} memory-state nodes")
        refuse_if_larger("memory.steps", 16.0 * self.memory.nodes * self.memory.steps, memory_bytes,
                         f"{self.memory.steps} memory steps of {self.memory.nodes} nodes")
        refuse_if_larger("memory.steps", 8.0 * (200 + self.memory.steps) * d * (1 + self.memory.steps), memory_bytes,
                         f"{self.memory.steps} memory steps")

    def grid_windows(self) -> int:
        """The number of windows of the limit's grid: all m^L of a finite chain when they fit limit.grid."""
        chain, grid = self.chain(), self.limit.grid
        if isinstance(chain, MarkovChain) and math.log(chain.n_states) * self.limit.window <= math.log(grid):
            grid = chain.n_states ** self.limit.window
        return grid

    SIZE_FIELDS = ("sweep.widths", "sweep.seeds", "training.horizon", "limit.nodes", "limit.grid")
    EXTENDABLE = ("sweep.widths", "sweep.seeds")

    def estimated_phases(self) -> dict:
        """The estimated time on one core of each phase (seconds): the network runs (``sweep``), the limit's
        kernels (``limit``) and the fluctuation prediction (``fluctuations``); report.json sets them beside the
        measured ones."""
        d, M, L, P = self.chain().input_dim, self.grid_windows(), self.limit.window, self.probes.count
        sweep = self.sweep.seeds * sum(training_seconds(N, d, self.training.horizon) + RUN_SECONDS
                                       for N in self.sweep.widths)
        nodes = self.quadrature()
        extra = 0 if nodes.replicates > 1 else nodes.size // 2 ** (d + 1)  # the halved rule of the error estimate
        flows = 2 if nodes.replicates > 1 else 1  # the limit's flow, and the half rule's for the quadrature error
        limit = (kernel_seconds(nodes.size + extra, d, M, L, P) + kernel_seconds(nodes.size, d, P, L)
                 + flows * SECONDS_PER_EIGH * M**3)
        fluct = kernel_seconds(math.prod(SOURCE_ORDER[d > 1]), d, 0, L, M + P)  # the kernel source's features
        if not isinstance(self.chain(), MarkovChain) or M < self.chain().n_states ** L:  # the path's node pass
            fluct += nodes.size * (d + 2) * FLUCTUATION_PATH * SECONDS_PER_PATH_STEP
        else:  # the window chain's Poisson equation at every time step
            fluct += (8 * self.training.n_records + 1) * M * SECONDS_PER_EXACT_STEP
        if self.model.init == "gaussian":
            fluct += kernel_seconds(nodes.size, d, 0, L, M)
        return dict(sweep=sweep, limit=limit, fluctuations=fluct)

    def estimated_seconds(self):
        return sum(self.estimated_phases().values())

    def architecture(self) -> Diagonal:
        return Diagonal(self.model.activation, self.model.sigma_w, self.model.beta,
                        symmetric=self.model.init == "symmetric")

    def make_task(self) -> Task:
        """The task of the [task] table (a Python function's task cannot be rebuilt: convergence_study holds it)."""
        t = self.task
        if t.function is not None:
            raise ConfigError(f"config field 'task.function': {t.function} is a Python function; run it with "
                              f"meanfield.convergence_study(task, ...), which holds it")
        if t.name is not None:
            try:
                return make_task(t.name, **t.options())
            except ValueError as err:  # "stay must ...", "unknown task ..."
                option = str(err).split(" ")[0]
                named = option.split("[")[0] in ("stay", "a", "noise_std")
                raise _field_error(ValueError(f"task.{err}" if named else err), "task.", "task.name") from None
        chain = self.chain()
        try:
            return Task.from_expression(chain, t.target, 0.0 if t.noise_std is None else t.noise_std,
                                        window=self.limit.window, field="task.target")
        except ValueError as err:
            text = str(err)
            raise _field_error(ValueError(f"task.{text}" if text.startswith("noise_std") else text), "task.",
                               "task.target") from None

    def rule(self) -> str:
        """The quadrature rule in (w, b): "auto" is the trapezoidal tensor rule for scalar inputs, Sobol for d >= 2."""
        if self.limit.rule != "auto":
            return self.limit.rule
        return "trapezoid" if self.chain().input_dim == 1 else "sobol"

    def quadrature(self):
        """The limit's quadrature nodes (checked: a tensor rule of more than 2^24 nodes is refused)."""
        lim, arch = self.limit, self.architecture()
        return quadrature(self.chain().input_dim, arch.sigma_w, arch.beta, lim.order, lim.rule, lim.nodes)

    def limit_model(self, task: Task, *, kernel=None, progress=False) -> LimitModel:
        lim = self.limit
        return self.architecture().limit(task, lim.window, self.training.alpha, order=lim.order, rule=lim.rule,
                                         nodes=lim.nodes, max_grid=lim.grid, kernel=kernel, progress=progress)

    def probes_for(self, task) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence(self.sweep.seed, spawn_key=(2**31,)))
        return task.chain.sample_windows(self.limit.window, self.probes.count, rng=rng).values


def _model_and_data_seeds(cfg: StudyConfig, n_units: int, seed: int):
    """The network's and the data's seeds of run (N, s): they depend on N and s alone, so that a study with more
    widths or seeds reuses the runs it shares with a finished one."""
    return np.random.SeedSequence(cfg.sweep.seed, spawn_key=(n_units, seed)).spawn(2)


def _initial_outputs(cfg: StudyConfig, task: Task, models, probes) -> dict:
    """For the Gaussian initialisation: f^N_0 on the probes and on the limit's grid (the coupling of
    ``theory_notes/limit.md`` section 6), stacked over ``models``."""
    if cfg.model.init == "symmetric":
        return {}
    grid = limit_grid(task.chain, cfg.limit.window, cfg.limit.grid).values
    return dict(f0_probes=np.stack([m(probes) for m in models]), f0_grid=np.stack([m(grid) for m in models]))


def simulate_run(config: dict, n_units: int, seed: int, threads: int = 1, task: Task | None = None) -> dict:
    """One (width, seed) task on the Numba backend: empirical NTK at initialisation and a training trajectory
    (``task``: the task object when it cannot be rebuilt from ``config``; the config holds its fingerprint)."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    cfg = StudyConfig.from_dict(config)
    task = task or cfg.make_task()
    probes = cfg.probes_for(task)
    model_seed, data_seed = _model_and_data_seeds(cfg, n_units, seed)
    model = cfg.architecture().network(n_units, task.input_dim, seed=model_seed)
    ntk0 = model.ntk(probes)
    initial = {k: v[0] for k, v in _initial_outputs(cfg, task, [model], probes).items()}
    t0 = time.perf_counter()
    res = train_online(model, task, cfg.training.horizon, cfg.training.alpha, probes, cfg.training.n_records,
                       seed=data_seed, progress=False, allow_long=True)  # the study's estimate was checked
    return dict(n_units=n_units, seed=seed, times=res.times, outputs=res.outputs, losses=res.losses,
                ntk0=ntk0, seconds=time.perf_counter() - t0, **initial)


def simulate_width(config: dict, n_units: int, backend: str = "jax", progress: bool = False,
                   task: Task | None = None) -> dict:
    """All seeds of one width in one task (the JAX backend trains them as one batch): the arrays of
    :func:`simulate_run` with a leading seed axis, seed s seeded as run (N, s)."""
    cfg = StudyConfig.from_dict(config)
    task = task or cfg.make_task()
    probes = cfg.probes_for(task)
    seeds = [_model_and_data_seeds(cfg, n_units, s) for s in range(cfg.sweep.seeds)]
    models = [cfg.architecture().network(n_units, task.input_dim, seed=model_seed) for model_seed, _ in seeds]
    ntk0 = np.stack([model.ntk(probes) for model in models])
    initial = _initial_outputs(cfg, task, models, probes)
    t0 = time.perf_counter()
    results = train_seeds(models, task, cfg.training.horizon, cfg.training.alpha, probes, cfg.training.n_records,
                          seeds=[data_seed for _, data_seed in seeds], progress=progress, backend=backend,
                          allow_long=True)  # the study's estimate was checked
    return dict(n_units=n_units, times=results[0].times,
                outputs=np.stack([r.outputs for r in results]), losses=np.stack([r.losses for r in results]),
                ntk0=ntk0, seconds=time.perf_counter() - t0, **initial)


def _simulate(cfg: StudyConfig, task: Task, runs_dir, workers, scheduler, progress, backend) -> dict:
    """{f"N{N}_s{s}": run} for every width and seed: one task per run on Numba (parallel over workers), one
    task per width on JAX (the seeds of a width are one batch on the device; see backend_workers)."""
    sw = cfg.sweep
    if backend == "numba":
        threads = worker_threads(workers, scheduler)
        tasks = {f"N{N}_s{s}": dict(config=cfg.as_dict(), n_units=N, seed=s, threads=threads, task=task)
                 for N in sw.widths for s in range(sw.seeds)}
        return run_tasks(simulate_run, tasks, runs_dir, workers=workers, scheduler=scheduler, progress=progress,
                         unkeyed=("threads", "task", *SWEEP_FIELDS))
    tasks = {f"N{N}_{backend}": dict(config=cfg.as_dict(), n_units=N, backend=backend, progress=progress, task=task)
             for N in sw.widths}  # a width's batch depends on the number of seeds
    widths = run_tasks(simulate_width, tasks, runs_dir, workers=backend_workers(backend, workers, scheduler),
                       scheduler=scheduler, progress=progress, unkeyed=("progress", "task", SWEEP_FIELDS[0]))
    per_seed = ("outputs", "losses", "ntk0", "f0_probes", "f0_grid")
    return {f"N{N}_s{s}": dict(n_units=N, times=run["times"], **{k: run[k][s] for k in per_seed if k in run})
            for N, run in zip(sw.widths, widths.values()) for s in range(sw.seeds)}


@dataclass(repr=False)
class ConvergenceResult:
    """What a convergence study found: the report (``report``, the content of report.json), the fitted rates
    (``rate``: sup_t |f^N_t - f_t| against N; ``kernel_rate``; ``memory_rate``, in the number of steps), the
    per-seed errors by width (``errors``, ``kernel_errors``), and the runs with their limit (``runs``: times,
    outputs and limit on the probes for each f"N{N}_s{seed}"). :meth:`plot` draws the figures and
    :meth:`write` writes report.json, report.md and the figures, as ``meanfield study`` does."""

    config: StudyConfig
    report: dict
    runs: dict
    rate: RateFit
    kernel_rate: RateFit
    memory_rate: RateFit
    memory: np.ndarray
    grid_loss: tuple
    fluctuations: Fluctuations | None = None

    @property
    def widths(self) -> tuple:
        return self.config.sweep.widths

    def __repr__(self) -> str:
        r = self.rate
        return (f"ConvergenceResult(widths {list(self.widths)}, {self.config.sweep.seeds} seeds, rate {r.slope:.3f} "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}] (theory -0.5))")

    def summary(self) -> str:
        """What the study found, in a few lines: the verdict on the rate and the causes that undermine it."""
        v = self.report["verdict"]
        return "\n".join([f"{_task_title(self.config)}, widths {list(self.widths)}, {self.config.sweep.seeds} seeds: "
                          f"{v['sentence']}", *(f"- {d['text']}" for d in v["diagnoses"])])

    @property
    def errors(self) -> dict:
        return {N: np.array(self.report["errors"][str(N)]["sup_per_seed"]) for N in self.widths}

    @property
    def kernel_errors(self) -> dict:
        return {N: np.array(self.report["kernel_errors"][str(N)]["per_seed"]) for N in self.widths}

    def trajectories(self, width: int, seed: int = 0):
        """(times, f^N_t on the probes, f_t on the probes) of one run."""
        run = self.runs[f"N{width}_s{seed}"]
        return run["times"], run["outputs"], run["limit"]

    def plot(self) -> dict:
        """The study's figures, {file name: matplotlib Figure}."""
        return _figures(self)

    def write(self, out, *, overwrite=False) -> Path:
        """Write report.json, report.md and the figures into ``out`` (checked as the CLI's --out); returns
        the path of report.md."""
        with StudyFolder(out, "convergence", self.config, overwrite=overwrite) as folder:
            return self._write(folder)

    def _write(self, folder: StudyFolder) -> Path:
        start = time.perf_counter()
        for name, fig in self.plot().items():
            fig.savefig(folder.path / name, dpi=120)
            pyplot().close(fig)
        return write_report(folder, self.report, _markdown(self.report, self.config),
                            start - self.report["seconds"]["total"])


def _study(cfg: StudyConfig, task: Task, runs_dir, *, workers, scheduler, progress, backend) -> ConvergenceResult:
    start = time.perf_counter()
    probes = cfg.probes_for(task)
    arch, tr, sw = cfg.architecture(), cfg.training, cfg.sweep
    limit_start = time.perf_counter()
    lim, K_cross, K_probes, quadrature_error, limit_reused = _limit(cfg, task, probes, Path(runs_dir), progress)
    limit_seconds = time.perf_counter() - limit_start

    sweep_start = time.perf_counter()
    runs = _simulate(cfg, task, runs_dir, workers, scheduler, progress, backend)
    sweep_seconds = time.perf_counter() - sweep_start

    limit_start = time.perf_counter()
    for run in runs.values():  # the limit at each run's own record times (t = k/N, rounded steps)
        f0 = {} if cfg.model.init == "symmetric" else dict(f0_cross=run["f0_probes"], f0=run["f0_grid"])
        run["limit"] = lim.flow.at(run["times"], K_cross, **f0)
    record_times = runs[f"N{sw.widths[-1]}_s0"]["times"]
    grid_error = lim.grid_error(record_times, probes, K_cross)
    limit_seconds += time.perf_counter() - limit_start

    sup_err = {N: [] for N in sw.widths}
    l2_err = {N: [] for N in sw.widths}
    ker_err = {N: [] for N in sw.widths}
    for run in runs.values():
        N = int(run["n_units"])
        sup, l2 = trajectory_errors(run["outputs"], run["limit"])
        sup_err[N].append(sup)
        l2_err[N].append(l2)
        ker_err[N].append(np.linalg.norm(run["ntk0"] - K_probes) / np.linalg.norm(K_probes))
    widths = np.array(sw.widths)
    rate = fit_rate(widths, [sup_err[N] for N in sw.widths])
    kernel_rate = fit_rate(widths, [ker_err[N] for N in sw.widths])

    mc = cfg.memory
    rng = np.random.default_rng(np.random.SeedSequence(sw.seed, spawn_key=(2**31 + 1,)))
    W, b = arch.sample_hidden(rng, mc.nodes, task.input_dim)
    mem = memory_state_errors(task.chain, W, b, arch.activation, mc.steps, mc.sequences, seed=rng)
    memory_rate = fit_rate(np.arange(1, mc.steps + 1), list(mem.T), scale="linear")

    times_lim = np.linspace(0, tr.horizon, 41)
    grid_loss = 0.5 * (lim.flow.on_grid(times_lim) - lim.ybar) ** 2 @ lim.grid.weights
    largest = float(np.mean(sup_err[sw.widths[-1]]))
    report = dict(
        study="convergence", config=cfg.as_dict(), task=task.description(), widths=sw.widths, seeds=sw.seeds,
        errors={str(N): dict(sup_per_seed=sup_err[N], mean=float(np.mean(sup_err[N])),
                             std=float(np.std(sup_err[N], ddof=1)),
                             l2_by_time_mean=np.mean(l2_err[N], axis=0)) for N in sw.widths},
        rate=rate.as_dict(),
        kernel_errors={str(N): dict(per_seed=ker_err[N], mean=float(np.mean(ker_err[N]))) for N in sw.widths},
        kernel_rate=kernel_rate.as_dict(),
        memory_rate=dict(**memory_rate.as_dict(), rate=float(np.exp(memory_rate.slope)),
                         rate_ci=[float(np.exp(memory_rate.ci_low)), float(np.exp(memory_rate.ci_high))],
                         rho=lim.rho, mean_error_by_step=mem.mean(axis=0)),
        limit=dict(grid_windows=len(lim.grid), grid=lim.grid_rule,
                   grid_error=grid_error, grid_error_ratio=grid_error / largest,
                   quadrature_error=quadrature_error,
                   kernel_quadrature_error=lim.kernel_error, kernel_scale=float(np.max(np.abs(lim.K))),
                   quadrature=dict(rule=lim.quadrature.rule, nodes=lim.quadrature.size,
                                   order=list(lim.quadrature.order), replicates=lim.quadrature.replicates,
                                   error_method=lim.grid_kernel.error_method),
                   truncation_bound=lim.truncation_bound,
                   loss_initial=float(grid_loss[0]), loss_at_horizon=float(grid_loss[-1]),
                   loss_ratio=float(grid_loss[-1] / grid_loss[0])),
        warnings=[], backend=backend, seconds=dict(sweep=sweep_seconds, limit=limit_seconds))
    if cfg.model.init == "gaussian":
        report["moments"] = _moments(cfg, lim, runs, probes)
    fl_start = time.perf_counter()
    try:  # the prediction must not cost a finished sweep its report
        fl, fl_reused = _fluctuations(cfg, lim, probes, Path(runs_dir), progress)
        report["fluctuations"] = _fluctuation_report(cfg, fl, runs, sup_err, lim.truncation_bound)
    except (ValueError, MemoryError, np.linalg.LinAlgError) as err:
        fl, fl_reused = None, False
        report["warnings"].append(f"no fluctuation prediction: {err}")
        warnings.warn(report["warnings"][-1], stacklevel=3)
    report["seconds"]["fluctuations"] = time.perf_counter() - fl_start
    report["reused"] = dict(limit=limit_reused, fluctuations=fl_reused)
    report["verdict"] = verdict(report)
    for diagnosis in report["verdict"]["diagnoses"]:
        report["warnings"].append(diagnosis["text"])
        warnings.warn(diagnosis["text"], DiagnosisWarning, stacklevel=3)
    report["seconds"]["total"] = time.perf_counter() - start
    report["seconds"]["estimated"] = {k: v / CORES for k, v in cfg.estimated_phases().items()}
    result = ConvergenceResult(cfg, report, runs, rate, kernel_rate, memory_rate, mem, (times_lim, grid_loss), fl)
    report["summary"] = result.summary()
    return result


LIMIT_FILE, FLUCTUATIONS_FILE = "limit.npz", "fluctuations.npz"
SOURCES = ("kernel", "chain", "noise")  # of the predicted fluctuations
LIMIT_CONTENTS = ("K", "nngp", "K_cross", "K_probes", "quadrature_error")  # in the key: a file without one is redone
FLUCTUATION_PATH = 2**14  # windows of the stationary path of a continuous chain's (or sampled grid's) prediction
SECONDS_PER_PATH_STEP = 4.7e-9  # a node's states along the path: per node, feature, step (one core, measured)
SECONDS_PER_EIGH = 1.6e-10  # x M^3: the eigendecomposition of a flow on M grid windows (one core, measured)
SECONDS_PER_EXACT_STEP = 1.5e-6  # the exact chain part: per time step (8 per record) and grid window (measured)
LIMIT_UNKEYED = (*SWEEP_FIELDS, "config.memory")  # the limit and the prediction do not depend on these


def _limit(cfg: StudyConfig, task: Task, probes, folder: Path, progress):
    """The limit model with its kernels on the probes (K(probes, grid), K(probes, probes)) and its quadrature error
    carried to the outputs (:meth:`LimitModel.quadrature_error` at the record times; None for a tensor rule), from
    ``folder``'s limit.npz when it holds them for these settings, else computed and saved there; and whether it
    was reused."""
    key = run_key(_limit, dict(config=cfg.as_dict(), task=task.description(), contents=LIMIT_CONTENTS), LIMIT_UNKEYED)
    path = folder / LIMIT_FILE
    saved = reusable_result(path, key, stacklevel=3)
    if saved is not None:
        err = {k: None if np.isnan(saved[k]) else float(saved[k]) for k in ("error", "nngp_error")}
        kernel = KernelResult(saved["K"], saved["nngp"], err["error"], err["nngp_error"], int(saved["nodes"]),
                              str(saved["rule"]), tuple(saved["order"]), str(saved["error_method"]) or None)
        print(f"limit: reused from {path}", file=sys.stderr)
        lim = cfg.limit_model(task, kernel=kernel)
        K_cross = lim.cross_kernel(probes, known=KernelResult(saved["K_cross"], None, None, None, kernel.nodes,
                                                              kernel.rule, kernel.order))
        q_err = None if np.isnan(saved["quadrature_error"]) else float(saved["quadrature_error"])
        return lim, K_cross, saved["K_probes"], q_err, True
    lim = cfg.limit_model(task, progress=progress)
    K_cross, K_probes = lim.cross_kernel(probes), lim.kernel(probes, kind="ntk").ntk
    q_err = lim.quadrature_error(np.linspace(0, cfg.training.horizon, cfg.training.n_records + 1), probes)
    kern = lim.grid_kernel
    folder.mkdir(parents=True, exist_ok=True)
    save_result(path, dict(K=kern.ntk, nngp=kern.nngp, error=np.nan if kern.error is None else kern.error,
                           nngp_error=np.nan if kern.nngp_error is None else kern.nngp_error, nodes=kern.nodes,
                           rule=kern.rule, order=np.array(kern.order), error_method=kern.error_method or "",
                           K_cross=K_cross, K_probes=K_probes, quadrature_error=np.nan if q_err is None else q_err),
                key)
    return lim, K_cross, K_probes, q_err, False


def _fluctuations(cfg: StudyConfig, lim: LimitModel, probes, folder: Path, progress):
    """The predicted fluctuations at the record times, from ``folder``'s fluctuations.npz when it holds them
    for these settings, else computed and saved there; and whether they were reused."""
    key = run_key(_fluctuations, dict(config=cfg.as_dict(), task=lim.task.description()), LIMIT_UNKEYED)
    path = folder / FLUCTUATIONS_FILE
    saved = reusable_result(path, key, stacklevel=3)
    if saved is not None:
        print(f"fluctuation prediction: reused from {path}", file=sys.stderr)
        return Fluctuations(saved["times"], {k: saved[k] for k in SOURCES}, json.loads(saved["info"]),
                            list(saved["components"])), True
    tr = cfg.training
    # A path of 2^14 histories (continuous chains) leaves about 7% Monte Carlo error on the chain part's
    # variance, below the error of the 8-seed measurement it is compared with.
    fl = fluctuations(lim, probes, np.linspace(0, tr.horizon, tr.n_records + 1), path_windows=FLUCTUATION_PATH,
                      seed=cfg.sweep.seed, progress=progress)
    save_result(path, dict(times=fl.times, **fl.covariances, info=json.dumps(plain(fl.info)),
                           components=np.array(fl.components)), key)
    return fl, False


THEORY_RATE = -0.5
LEARNS_NOTHING = 0.95  # a limit whose loss at T is above this share of its initial loss learns (almost) nothing
MINOR_SHARE = 0.1  # a limit error above this share of the finite-width error at the largest width undermines it
TARGET_HALF_WIDTH = 0.2  # the seeds suggested for an interval that resolves the rate: +- this much


def verdict(report: dict) -> dict:
    """The conclusion of a convergence report, in words, with the causes that undermine it.

    ``status``: "consistent" (the interval of the rate holds -1/2 and excludes 0), "no trend established" (it holds
    both), or "misses" (it excludes -1/2, holding 0 or not). ``diagnoses``: a list of {kind, text} for what can be
    found from the report:

    - ``pre-asymptotic``: the rate misses -1/2 and excludes 0, but the refit without the smallest widths holds it
      (with, per width, the lack of fit z of log mean error against the -1/2 law through the widths kept), or the
      fluctuation theory's whitened z singles out the smallest widths while the wider ones fit it; widths to run
      instead (``not pre-asymptotic`` when neither holds);
    - ``too few seeds``: no trend established; the seeds that would narrow the interval to +- TARGET_HALF_WIDTH;
    - ``learns nothing``: the limit's loss at T is above LEARNS_NOTHING of its initial loss (a target orthogonal
      to the kernel's span, such as an even target for an odd network);
    - ``limit error``: the grid error or the quadrature error (carried to the outputs for a Sobol rule, the
      kernel's for a tensor rule) above MINOR_SHARE of the mean error
      at the largest width;
    - ``Monte Carlo floor`` (Gaussian initialisation): the mean over seeds at the largest width is within two
      Monte Carlo standard errors of the limit's mean, the floor that no width goes below.
    """
    rate, widths = report["rate"], [int(N) for N in report["widths"]]
    lo, hi, slope = rate["ci_low"], rate["ci_high"], rate["slope"]
    interval = f"{slope:.3f} [{lo:.3f}, {hi:.3f}]"
    holds_theory, holds_zero = lo <= THEORY_RATE <= hi, lo <= 0 <= hi
    if holds_theory and holds_zero:
        status = "no trend established"
        sentence = f"no trend established: the rate {interval} holds both -1/2 and no decrease at all"
    elif holds_theory:
        status = "consistent"
        sentence = f"consistent with the theory: the rate {interval} holds -1/2"
    else:
        status = "misses"
        sentence = (f"misses the theory: the rate {interval} excludes -1/2"
                    + (" and holds no decrease at all" if holds_zero else ""))
    diagnoses, suggested = [], None
    errors = [np.asarray(report["errors"][str(N)]["sup_per_seed"], float) for N in widths]
    if status == "misses" and not holds_zero:  # no decrease at all is no approach that larger widths would show
        text, kept = _pre_asymptotic(widths, errors, rate["level"], report.get("fluctuations"))
        if kept is None:
            diagnoses.append(dict(kind="not pre-asymptotic", text=text))
        else:
            suggested = sorted(set(widths[kept:]) | {2 * widths[-1], 4 * widths[-1]})
            diagnoses.append(dict(kind="pre-asymptotic", text=f"{text}; run widths {suggested}"))
    if status == "no trend established":
        seeds = int(report["seeds"])
        needed = int(math.ceil(seeds * ((hi - lo) / 2 / TARGET_HALF_WIDTH) ** 2))
        diagnoses.append(dict(kind="too few seeds", text=(
            f"with {seeds} seeds per width the interval is {hi - lo:.2f} wide; about {needed} seeds would narrow it "
            f"to +-{TARGET_HALF_WIDTH:g}")))
    lim = report["limit"]
    if lim["loss_ratio"] > LEARNS_NOTHING:
        diagnoses.append(dict(kind="learns nothing", text=(
            f"the limit learns almost nothing: its loss at T is {lim['loss_ratio']:.3f} of the initial loss, so the "
            "target is (nearly) orthogonal to the kernel's span (an even target and an odd activation do this); "
            "the errors measure the networks' noise, not the approach to a learned function")))
    largest = float(np.mean(errors[-1]))
    nodes_field = "limit.nodes" if lim["quadrature"]["rule"] == "sobol" else "limit.order"
    in_outputs = lim.get("quadrature_error")
    quadrature = (("quadrature error in the outputs", in_outputs) if in_outputs is not None
                  else ("kernel quadrature error estimate", lim["kernel_quadrature_error"]))
    for name, value, fix in (("grid error", lim["grid_error"], "limit.grid"), (*quadrature, nodes_field)):
        if value is not None and value > MINOR_SHARE * largest:
            diagnoses.append(dict(kind="limit error", text=(
                f"the limit's {name} {value:.2g} is more than {MINOR_SHARE:g} of the mean error at the largest width "
                f"({largest:.2g}): the limit is not resolved finely enough for this comparison; raise {fix}")))
    moments = report.get("moments")
    if moments:
        m = moments[str(widths[-1])]
        if m["mean_error"] < 2 * m["mean_se"]:
            diagnoses.append(dict(kind="Monte Carlo floor", text=(
                f"at N = {widths[-1]} the mean over seeds is {m['mean_error']:.2g} from the limit's mean, within two "
                f"Monte Carlo standard errors (2 x {m['mean_se']:.2g}) of {report['seeds']} seeds: more seeds, not "
                "more width, would sharpen it")))
    return dict(status=status, sentence=sentence, diagnoses=diagnoses, suggested_widths=suggested)


def _pre_asymptotic(widths, errors, level, fl):
    """(text, k): whether the smallest widths explain a rate that misses -1/2, and the index k of the first width
    to keep (None if they do not). Two tests: the refit without the k smallest widths holds -1/2 (and excludes 0);
    or, with the fluctuation prediction, the whitened statistic z of the k smallest widths is beyond +-2 while
    every wider width fits the predicted law."""
    theory = ""
    first_fit = None
    if fl:
        z = [fl["widths"][str(N)]["z"] for N in widths]
        theory = "; against the fluctuation theory, z = " + ", ".join(f"{v:+.1f}" for v in z)
        fits = [abs(v) <= 2 for v in z]
        first_fit = next((k for k in range(1, len(widths)) if all(fits[k:]) and not any(fits[:k])), None)
    for k in range(1, len(widths) - 1):  # at least two widths left
        refit = fit_rate(widths[k:], errors[k:], level=level)
        if refit.covers(THEORY_RATE) and not refit.covers(0.0):
            z = ", ".join(f"{v:+.1f}" for v in _lack_of_fit(widths, errors, k))
            return (f"the smallest widths are pre-asymptotic: without N < {widths[k]} the rate is {refit.slope:.3f} "
                    f"[{refit.ci_low:.3f}, {refit.ci_high:.3f}], consistent with -1/2 (lack of fit per width against "
                    f"the -1/2 law through the widths kept, z = {z}{theory})"), k
    if first_fit is not None:
        return (f"the smallest widths are pre-asymptotic: N < {widths[first_fit]} do not fit the predicted N^-1/2 "
                f"law and the wider ones do{theory} (|z| <= 2 fits); too few widths remain above them to refit the "
                "rate"), first_fit
    return ("no subset of the largest widths gives a rate consistent with -1/2, and the fluctuation theory does not "
            f"single out the smallest widths{theory}: dropping small widths does not explain the miss"), None


def _lack_of_fit(widths, errors, k) -> list:
    """z per width of log mean error against the -1/2 law log m = c - log(N) / 2, c fitted (inverse-variance
    weights w_j = 1 / v_j, W their sum) on the widths from index k; v_j the delta-method variance of log m_j as in
    :func:`fit_rate`."""
    logm = np.array([math.log(e.mean()) for e in errors])
    var = np.array([e.var(ddof=1) / (e.size * e.mean() ** 2) for e in errors])
    shifted = logm - THEORY_RATE * np.log(widths)
    w = 1 / var[k:]
    c = float(w @ shifted[k:] / w.sum())
    kept = np.arange(len(widths)) >= k  # a kept width is part of c: Var(s_j - c) = v_j - 1/W; a dropped one adds it
    return list((shifted - c) / np.sqrt(var + np.where(kept, -1, 1) / w.sum()))


def scaled_deviations(runs: dict, width: int, seeds: int) -> np.ndarray:
    """sqrt(N) (f^N_t - f_t) on the probes for each seed of one width, shape (seeds, T, P)."""
    return np.stack([np.sqrt(width) * (runs[f"N{width}_s{s}"]["outputs"] - runs[f"N{width}_s{s}"]["limit"])
                     for s in range(seeds)])


def _fluctuation_report(cfg: StudyConfig, fl: Fluctuations, runs: dict, sup_err: dict, truncation: float) -> dict:
    """The predicted constant C (with its Monte Carlo standard error) against sqrt(N) x the mean sup error per
    width, and per width the fit of the deviations over seeds to the predicted law (:meth:`Fluctuations.check`:
    the whitened statistic in standard deviations, and the share of (time, probe) pairs whose predicted variance
    lies in the 95% interval of the seeds' variance). ``truncation_at_largest``: sqrt(N) rho^L at the largest width,
    the bound on the windows' truncation in units of G, which the theory needs small (``theory_notes/
    fluctuations.md`` section 2)."""
    C, C_se = fl.sup_constant(seed=cfg.sweep.seed)
    S = cfg.sweep.seeds
    widths = {}
    for N in cfg.sweep.widths:
        scaled = np.sqrt(N) * np.asarray(sup_err[N])
        check = fl.check(scaled_deviations(runs, N, S))
        widths[str(N)] = dict(measured=float(scaled.mean()), se=float(scaled.std(ddof=1) / np.sqrt(S)),
                              ratio=float(scaled.mean() / C), z=check["z"], std_in_interval=check["in_interval"])
    return dict(predicted_constant=C, predicted_constant_se=C_se, shares=fl.shares(), settings=fl.info,
                predicted_std=fl.std(), widths=widths,
                truncation_at_largest=float(np.sqrt(cfg.sweep.widths[-1]) * truncation))


def _moments(cfg, lim, runs, probes) -> dict:
    """Gaussian initialisation: mean and variance over seeds of f^N_t against the limit's Gaussian law, with the
    Monte Carlo standard errors of S seeds (the floor under these errors at any width). The law is computed once,
    at the record times of all widths together (its kernels do not depend on the width)."""
    times = [runs[f"N{N}_s0"]["times"] for N in cfg.sweep.widths]
    mean, cov = lim.predict_gaussian(np.concatenate(times), probes)
    out, start = {}, 0
    for N, t in zip(cfg.sweep.widths, times):
        outputs = np.stack([runs[f"N{N}_s{s}"]["outputs"] for s in range(cfg.sweep.seeds)])
        part = slice(start, start + t.size)
        out[str(N)] = gaussian_moment_errors(outputs, mean[part], cov[part])
        start += t.size
    return out




def convergence_study(task: Task, *, activation=None, sigma_w=None, beta=None, init=None, alpha=None, horizon=None,
                      n_records=None, widths=None, seeds=None, seed=None, window=None, order=None, nodes=None,
                      rule=None, grid=None, probes=None, quick=False, out=None, overwrite=False, workers=0,
                      scheduler=None, backend="numba", progress=True, allow_long=False) -> ConvergenceResult:
    """The convergence study of wide diagonal RNNs on ``task`` (any :class:`meanfield.Task`), as ``meanfield
    study`` runs it from a config file: one code path, the same report.

    Settings left at None take the shipped defaults (``meanfield/studies/convergence_default.toml``; with
    ``quick``, its quick grid): the model (activation, sigma_w, beta, init = "symmetric" | "gaussian"),
    training (alpha, horizon, n_records), the sweep (widths, seeds, seed), the limit (window; the quadrature in
    (w, b): ``rule`` "auto" takes the trapezoidal rule of ``order`` = (n_w, n_b) for scalar inputs and ``nodes``
    scrambled Sobol points, a power of 2, for inputs in R^d, d >= 2; grid = windows of a continuous chain's Sobol
    grid) and the number of probes. With ``out``, the runs are kept
    there (an interrupted study resumes) and the report is written there; ``workers=0`` runs in this process.
    A study estimated at more than a day on this machine is refused before any work unless ``allow_long``.

    Examples
    --------
    >>> import meanfield
    >>> chain = meanfield.MarkovChain([[0.8, 0.2], [0.2, 0.8]], [-1.0, 1.0])
    >>> task = meanfield.Task.from_expression(chain, "x1", noise_std=0.1)
    >>> result = meanfield.convergence_study(task, widths=[64, 128], seeds=2, horizon=0.5,
    ...                                      window=6, order=(64, 12), progress=False)  # doctest: +SKIP
    >>> result.rate.slope  # doctest: +SKIP
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a meanfield Task (see meanfield.Task.from_expression), got "
                         f"{type(task).__name__}")
    if scheduler is not None:
        check_scheduler(scheduler)
    raw = StudyConfig.default_dict()
    quick_tables = raw.pop("quick", {})
    if quick:
        for table, values in quick_tables.items():
            raw[table].update(values)
    raw["task"] = task.description()
    given = dict(model=dict(activation=activation, sigma_w=sigma_w, beta=beta, init=init),
                 training=dict(alpha=alpha, horizon=horizon, n_records=n_records),
                 sweep=dict(widths=widths, seeds=seeds, seed=seed),
                 limit=dict(window=window, order=order, nodes=nodes, rule=rule, grid=grid),
                 probes=dict(count=probes))
    for table, values in given.items():
        raw[table].update({k: list(v) if isinstance(v, (tuple, np.ndarray)) else v
                           for k, v in values.items() if v is not None})
    cfg = StudyConfig.from_dict(raw)
    cfg.check_size(checks.available_memory())
    cfg.check_time(allow_long)
    if task.lags + 1 > cfg.limit.window:
        raise ConfigError(f"config field 'limit.window': must be at least lags + 1 = {task.lags + 1} for this task, "
                          f"got {cfg.limit.window}")
    return _run(cfg, task, out, overwrite=overwrite, workers=workers, scheduler=scheduler, progress=progress,
                backend=backend)


def _run(cfg, task, out, *, overwrite, workers, scheduler, progress, backend) -> ConvergenceResult:
    backend = check_backend(backend)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="meanfield-study-") as tmp:
            return _study(cfg, task, Path(tmp) / "runs", workers=workers, scheduler=scheduler, progress=progress,
                          backend=backend)
    with StudyFolder(out, "convergence", cfg, overwrite=overwrite) as folder:
        result = _study(cfg, task, folder.runs, workers=workers, scheduler=scheduler, progress=progress,
                        backend=backend)
        result._write(folder)
        return result


@register("study", "convergence study of wide RNNs against their limit (report + plots)", config=StudyConfig,
          parallel=True, backends=True)
def run_study(cfg: StudyConfig, out, *, workers=None, scheduler=None, progress=True, overwrite=False,
              backend="numba") -> Path:
    """Run (or resume) the study into ``out``; return the path of report.md.

    backend "jax" trains all seeds of a width as one batch, one width after the other in this process unless
    ``scheduler`` is given."""
    _run(cfg, cfg.make_task(), out, overwrite=overwrite, workers=workers, scheduler=scheduler, progress=progress,
         backend=backend)
    return Path(out) / "report.md"


def _figures(result: ConvergenceResult) -> dict:
    plt = pyplot()
    cfg, report, runs = result.config, result.report, result.runs
    widths = np.array(cfg.sweep.widths, dtype=float)
    xs = np.geomspace(widths[0], widths[-1], 100)
    subtitle = (f"{_task_title(cfg)}\nalpha = {cfg.training.alpha:g}, T = {cfg.training.horizon:g}, "
                f"{cfg.sweep.seeds} seeds per width")
    figures = {}
    for name, errs, fit, ylabel in (
            ("error_vs_width.png", result.errors, result.rate, "sup over t <= T and probes of |f^N_t - f_t|"),
            ("kernel_error_vs_width.png", result.kernel_errors, result.kernel_rate,
             "|NTK_N(init) - K|_F / |K|_F on the probes")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for N in cfg.sweep.widths:
            ax.scatter(np.full(len(errs[N]), N), errs[N], s=10, color="0.6", zorder=2)
        ax.plot(widths, [np.mean(errs[N]) for N in cfg.sweep.widths], "o", color="C0", label="mean over seeds",
                zorder=3)
        lo, hi = fit.band(xs)
        ax.fill_between(xs, lo, hi, color="C1", alpha=0.25, label=f"{fit.level:.0%} band")
        ax.plot(xs, fit.predict(xs), color="C1",
                label=f"fit: slope {fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}]")
        ax.plot(xs, fit.predict(widths[0]) * (xs / widths[0]) ** -0.5, "k:", lw=1, label="slope -1/2")
        if name == "error_vs_width.png" and report["limit"]["grid_error"] > 0:
            ax.axhline(report["limit"]["grid_error"], color="C3", ls="--", lw=1,
                       label=f"grid error of the limit ({report['limit']['grid_windows']} windows)")
        ax.set(xscale="log", yscale="log", xlabel="width N", ylabel=ylabel)
        width_ticks(ax, cfg.sweep.widths)
        ax.set_title(subtitle, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figures[name] = fig

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    shown = [cfg.sweep.widths[0], cfg.sweep.widths[len(cfg.sweep.widths) // 2], cfg.sweep.widths[-1]]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(shown)))
    own_limits = cfg.model.init == "gaussian"  # each run has its own limit, started from its own f^N_0
    styles = ("-", "--", "-.")[:min(3, cfg.probes.count)]
    for p, ls in enumerate(styles):
        if not own_limits:
            run0 = runs[f"N{cfg.sweep.widths[-1]}_s0"]
            axes[0].plot(run0["times"], run0["limit"][:, p], color="k", lw=2.2, ls=ls)
        for color, N in zip(colors, shown):
            run = runs[f"N{N}_s0"]
            axes[0].plot(run["times"], run["outputs"][:, p], color=color, lw=1, ls=ls)
            if own_limits:
                axes[0].plot(run["times"], run["limit"][:, p], color=color, lw=2.6, ls=ls, alpha=0.35)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="k", lw=2.2, label="limit f_t")] if not own_limits else [
        Line2D([], [], color="0.5", lw=2.6, alpha=0.35, label="each run's own limit f_t (from its f^N_0)")]
    handles += [Line2D([], [], color=c, lw=1, label=f"N = {N} (seed 0)") for c, N in zip(colors, shown)]
    handles += [Line2D([], [], color="0.3", lw=1, ls=ls, label=f"probe {p}") for p, ls in enumerate(styles)]
    axes[0].set(xlabel="training time t = k/N", ylabel="output on probe window",
                title=f"f^N_t against f_t on {len(styles)} probes\n{_task_title(cfg)}")
    axes[0].legend(handles=handles, fontsize=7, ncol=2)
    times_lim, grid_loss = result.grid_loss
    axes[1].plot(times_lim, grid_loss / grid_loss[0], color="k")
    axes[1].set(xlabel="training time t", ylabel="limit loss / initial loss",
                title=f"limit loss on the {report['limit']['grid_windows']} grid windows", ylim=(0, 1.05))
    fig.tight_layout()
    figures["trajectories.png"] = fig

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    mem, memory_rate, rho = result.memory, result.memory_rate, report["memory_rate"]["rho"]
    k = np.arange(1, mem.shape[1] + 1)
    ax.semilogy(k, mem.T, color="0.7", lw=0.8)
    ax.semilogy(k, mem.mean(axis=0), "o", color="C0", label="mean over sequences")
    ax.semilogy(k, memory_rate.predict(k), color="C1",
                label=f"fit: rate {np.exp(memory_rate.slope):.3f} per step")
    ax.semilogy(k, rho**k, "k:", label=f"bound rho^k, rho = {rho:.3f}")
    ax.set(xlabel="steps k", ylabel="mean over nodes of |S_k - S(theta; history)|",
           title=f"memory state: {cfg.memory.nodes} nodes, {cfg.memory.sequences} sequences")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures["memory_state.png"] = fig
    if result.fluctuations is not None:
        figures["fluctuations.png"] = _fluctuation_figure(result, subtitle)
    return figures


def _fluctuation_figure(result: ConvergenceResult, subtitle: str):
    """Left: the fan of sqrt(N) (f^N_t - f_t) across seeds at the largest width on the probe of largest predicted
    spread, with the predicted +-2 standard deviation band. Right: sqrt(N) x mean sup error per width against C."""
    plt = pyplot()
    cfg, fl, report = result.config, result.fluctuations, result.report["fluctuations"]
    N = cfg.sweep.widths[-1]
    scaled = scaled_deviations(result.runs, N, cfg.sweep.seeds)
    std = fl.std()
    p = int(np.argmax(std[-1]))
    times = result.runs[f"N{N}_s0"]["times"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].fill_between(fl.times, -2 * std[:, p], 2 * std[:, p], color="C1", alpha=0.3,
                         label="predicted +-2 std")
    for s in range(cfg.sweep.seeds):
        axes[0].plot(times, scaled[s, :, p], color="0.35", lw=0.8, label="seeds" if s == 0 else None)
    axes[0].set(xlabel="training time t", ylabel="sqrt(N) (f^N_t - f_t)", title=f"N = {N}, probe {p}")
    axes[0].legend(fontsize=8)
    widths = np.array(cfg.sweep.widths)
    measured = np.array([report["widths"][str(n)]["measured"] for n in widths])
    se = np.array([report["widths"][str(n)]["se"] for n in widths])
    axes[1].errorbar(widths, measured, yerr=2 * se, fmt="o", color="C0", capsize=3,
                     label="sqrt(N) x mean sup error (+-2 s.e.)")
    C = report["predicted_constant"]
    axes[1].axhline(C, color="C1", label=f"predicted C = {C:.3f}")
    axes[1].set(xscale="log", xlabel="width N", ylabel="sqrt(N) E sup |f^N - f|", ylim=(0, None))
    width_ticks(axes[1], widths)
    axes[1].set_title(subtitle, fontsize=9)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _quadrature_words(lim: dict) -> str:
    """The limit kernel's rule and its error estimate, said with what the estimate means."""
    q = lim["quadrature"]
    if q["rule"] == "sobol":
        rule = f"{q['nodes']} scrambled Sobol nodes in (w, b) ({q['replicates']} independent scramblings)"
        meaning = "95% half-width from the scramblings' spread"
    else:
        rule = f"the {q['rule']} tensor rule of {q['nodes']} nodes (order {q['order']})"
        meaning = "the change when the order is halved, an overestimate"
    outputs = ("" if lim.get("quadrature_error") is None else
               f"; in the outputs {lim['quadrature_error']:.2g} (the limit of the first half of the scramblings "
               "against the whole, an overestimate)")
    return (f"kernel by {rule}, quadrature error {lim['kernel_quadrature_error']:.2g} in the kernel's entries "
            f"(largest |K| {lim['kernel_scale']:.2g}; {meaning}){outputs}")


def _task_title(cfg) -> str:
    t = cfg.task
    if t.name is not None:
        return t.name
    kind = (t.chain or {}).get("kind", "chain")
    return f"{t.target if t.target is not None else t.function.split(' ')[0]} on a {kind} chain"


def _markdown(report, cfg) -> str:
    r, kr, mr, lim = report["rate"], report["kernel_rate"], report["memory_rate"], report["limit"]
    init = cfg.model.init
    lines = [
        f"# Convergence study: {_task_title(cfg)}",
        "",
        f"**Verdict**: {report['verdict']['sentence']}.",
        *(f"- **{d['kind'].capitalize()}**: {d['text']}." for d in report["verdict"]["diagnoses"]),
        "",
        f"Diagonal RNNs ({cfg.model.activation}, sigma_w = {cfg.model.sigma_w:g}, beta = {cfg.model.beta:g}, {init} "
        f"initialisation) of widths {list(cfg.sweep.widths)}, {cfg.sweep.seeds} seeds each, trained by online SGD with "
        f"learning rate alpha/N, alpha = {cfg.training.alpha:g}, for training time T = {cfg.training.horizon:g} (T N "
        f"steps), compared with the kernel limit on {cfg.probes.count} probe windows of length {cfg.limit.window}"
        + (" (the limit started from each network's own f^N_0: theory_notes/limit.md section 6)." if init == "gaussian"
           else "."),
        "",
        "## Results",
        "",
        f"- **Rate in N** of sup_t |f^N_t - f_t|: slope **{r['slope']:.3f}**, {r['level']:.0%} interval "
        f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] (theory: -0.5; studentised interval, {r['dof']:.0f} degrees of "
        f"freedom).",
        f"- **Kernel at initialisation** (empirical NTK vs limit kernel): slope {kr['slope']:.3f}, "
        f"{kr['level']:.0%} interval [{kr['ci_low']:.3f}, {kr['ci_high']:.3f}].",
        f"- **Memory state** in the number of steps: geometric rate {mr['rate']:.3f} per step "
        f"(95% interval [{mr['rate_ci'][0]:.3f}, {mr['rate_ci'][1]:.3f}]), bound rho = {mr['rho']:.3f}.",
        f"- **Limit**: {lim['grid_windows']} grid windows ({lim['grid']}), grid error {lim['grid_error']:.2g} "
        f"({lim['grid_error_ratio']:.2g} of the mean error at the largest width); {_quadrature_words(lim)}; "
        f"truncation bound rho^L = {lim['truncation_bound']:.2g}; "
        f"loss at T / initial loss = {lim['loss_ratio']:.3f}.",
        f"- Wall time: {report['seconds']['total']:.1f} s (sweep {report['seconds']['sweep']:.1f} s on the "
        f"{report['backend']} backend, limit {report['seconds']['limit']:.1f} s).",
    ]
    fl = report.get("fluctuations")
    if fl:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in fl["shares"].items())
        largest = [(N, fl["widths"][str(N)]) for N in cfg.sweep.widths[-2:]]
        lines.insert(-1, f"- **Predicted constant** (the N^-1/2 fluctuation theory, theory_notes/fluctuations.md): "
                     f"E sup |f^N - f| = C N^-1/2 with C = **{fl['predicted_constant']:.3f}** (Monte Carlo s.e. "
                     f"{fl['predicted_constant_se']:.1g}; variance from the sources: {shares}). Measured sqrt(N) x "
                     "mean error: " + "; ".join(f"{w['measured']:.3f} +- {w['se']:.2f} at N = {N} (ratio "
                                                f"{w['ratio']:.2f})" for N, w in largest) + ". Per width below: z, the "
                     "whitened sum of squares of sqrt(N)(f^N - f) over the seeds against the prediction in standard "
                     "deviations (|z| < 2 for a fit), and the share of single (time, probe) variances inside their "
                     "95% interval (strongly correlated pairs: it moves in blocks).")
    diagnosed = {d["text"] for d in report["verdict"]["diagnoses"]}
    lines += [f"- **Warning**: {w}." for w in report["warnings"] if w not in diagnosed]
    lines += ["", "| N | mean sup error | std over seeds | kernel error | sqrt(N) x mean error / predicted C | "
              "fit to the predicted law (z) | predicted variances in the 95% interval |",
              "|---|---|---|---|---|---|---|"]
    for N in cfg.sweep.widths:
        e, k = report["errors"][str(N)], report["kernel_errors"][str(N)]
        w = fl["widths"][str(N)] if fl else None
        extra = f"{w['ratio']:.2f} | {w['z']:+.1f} | {w['std_in_interval']:.0%}" if w else "- | - | -"
        lines.append(f"| {N} | {e['mean']:.4g} | {e['std']:.2g} | {k['mean']:.4g} | {extra} |")
    if "moments" in report:
        lines += ["", "Moments over seeds against the limit's Gaussian law (sup over times and probes); the Monte "
                  f"Carlo standard errors of {cfg.sweep.seeds} seeds are the floor under these errors at any width:",
                  "", "| N | mean error | its MC s.e. | variance error | its MC s.e. |", "|---|---|---|---|---|"]
        for N, m in report["moments"].items():
            lines.append(f"| {N} | {m['mean_error']:.3g} | {m['mean_se']:.3g} | {m['var_error']:.3g} | "
                         f"{m['var_se']:.3g} |")
    lines += ["", "## Figures", "",
              "Error against width (grey: seeds; blue: mean; orange: fit with its band):", "",
              "![error vs width](error_vs_width.png)", "",
              "Trajectories on three probes for three widths (seed 0) and the limit; right: the limit's loss:", "",
              "![trajectories](trajectories.png)", "",
              "Empirical NTK at initialisation against the limit kernel:", "",
              "![kernel error](kernel_error_vs_width.png)", "",
              "Memory state against the number of steps, with the contraction bound:", "",
              "![memory state](memory_state.png)", ""]
    if fl:
        lines += ["sqrt(N) (f^N_t - f_t) across seeds against the predicted band, and sqrt(N) x mean error against the "
                  "predicted constant:", "", "![fluctuations](fluctuations.png)", ""]
    lines += ["Full numbers and the configuration in report.json; runs in runs/.", ""]
    return "\n".join(lines)
