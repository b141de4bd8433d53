"""Convergence study: wide diagonal RNNs against their kernel limit, as N and the number of steps grow.

For each width N and seed, a network with the symmetric initialisation is trained by online SGD on the
task for T N steps, recording f^N_t on fixed probe windows; the limit f_t is solved once. Reported
(``theory_notes/limit.md`` section 7):

- the error sup_{t <= T, probes} |f^N_t - f_t| per width and seed, and its fitted rate in N with a
  bootstrap 95% interval (the theory says -1/2), and the L2 error over the probes at each recorded time;
- the empirical NTK at initialisation against the limit kernel on the probes, and its rate;
- the memory state against the number of steps k (a geometric rate, compared with rho = beta sup|sigma'|).

The (width, seed) runs are independent tasks of :func:`meanfield.studies.framework.run_tasks`; each run's
seed is the study seed's child number (width index x seeds + seed index) by ``SeedSequence``, so the
results do not depend on the number of workers, and a finished run is on disk at once (resume). On the
JAX backend (``--backend jax``) a task is one width, all its seeds trained as one batch, with the same
per-seed seeds, so the two backends report the same numbers (to rounding).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..activations import ACTIVATIONS
from ..architectures.diagonal import Diagonal, train_online, train_seeds
from ..backends import check_backend
from ..data import TASK_NAMES, MarkovChain, make_task
from ..estimators import memory_state_errors, trajectory_errors
from ..report import pyplot
from ..stats import fit_rate
from .framework import (
    Config,
    ConfigError,
    Section,
    StudyFolder,
    backend_workers,
    check_diagonal_sweep,
    refuse_if_larger,
    register,
    run_tasks,
    spec,
    worker_threads,
    write_report,
)

NS_PER_UNIT_STEP = 3.0  # the simulator's speed on one core (benchmarks/bench_simulator.py), for estimates


@dataclass(frozen=True)
class TaskSection(Section, name="task"):
    name: str = spec(checks.choice, options=TASK_NAMES)
    noise_std: float = spec(checks.real, minimum=0)
    stay: object = None  # parity2, delay1: stay probabilities (checked by make_task)
    a: object = None  # ar1-sin: AR coefficient (checked by make_task)

    def options(self) -> dict:
        return {k: v for k, v in (("noise_std", self.noise_std), ("stay", self.stay), ("a", self.a)) if v is not None}


@dataclass(frozen=True)
class ModelSection(Section, name="model"):
    activation: str = spec(checks.choice, options=[n for n, a in ACTIVATIONS.items() if a.bounded])
    sigma_w: float = spec(checks.positive)
    beta: float = spec(checks.real, minimum=0)


@dataclass(frozen=True)
class TrainingSection(Section, name="training"):
    alpha: float = spec(checks.positive)
    horizon: float = spec(checks.positive)
    n_records: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class LimitSection(Section, name="limit"):
    window: int = spec(checks.integer, minimum=2)
    order: tuple = spec(checks.integer_list, minimum=1, min_length=2)


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


@dataclass(frozen=True)
class StudyConfig(Config):
    """The convergence study's configuration (``meanfield/studies/convergence_default.toml``)."""

    DEFAULT = "convergence_default.toml"
    task: TaskSection
    model: ModelSection
    training: TrainingSection
    limit: LimitSection
    probes: ProbesSection
    sweep: SweepSection
    memory: MemorySection

    def validate(self):
        try:
            self.make_task()
        except ValueError as err:  # "OPTION must ...": name the field task.OPTION
            option, _, rest = str(err).partition(" ")
            field = f"task.{option}" if option.split("[")[0] in ("stay", "a", "noise_std") else "task"
            raise ConfigError(f"config field '{field}': {rest if field != 'task' else err}") from None
        if len(self.limit.order) != 2:
            raise ConfigError(f"config field 'limit.order': must be two positive integers, got "
                              f"{list(self.limit.order)}")
        check_diagonal_sweep(self.sweep.widths, self.training.horizon, self.training.n_records, "sweep", "training")
        try:
            self.architecture()
        except ValueError as err:
            raise ConfigError(f"config field 'model.beta': {err}") from None

    def check_size(self, memory_bytes):
        task = self.make_task()
        d, n_probes = task.input_dim, self.probes.count
        N = self.sweep.widths[-1]
        refuse_if_larger("sweep.widths", 8.0 * N * (8 + 4 * d), memory_bytes, f"a network of width {N}")
        refuse_if_larger("probes.count", 16.0 * N * n_probes * (d + 2), memory_bytes,
                         f"the kernel of {n_probes} probes at width {N}")
        chain = task.chain
        grid = (chain.n_states ** self.limit.window if isinstance(chain, MarkovChain)
                and math.log(chain.n_states) * self.limit.window <= math.log(4096) else 4096)
        refuse_if_larger("limit.window", 8.0 * grid * (self.limit.window * d + 4 * grid), memory_bytes,
                         f"the limit on {grid} windows of length {self.limit.window}")
        n_w, n_b = self.limit.order
        if n_w**d * n_b > 2**24:
            raise ConfigError(f"config field 'limit.order': {n_w}^{d} x {n_b} quadrature nodes are more than 2^24")
        refuse_if_larger("memory.nodes", 8.0 * self.memory.nodes * (d + 4), memory_bytes,
                         f"{self.memory.nodes} memory-state nodes")
        refuse_if_larger("memory.steps", 16.0 * self.memory.nodes * self.memory.steps, memory_bytes,
                         f"{self.memory.steps} memory steps of {self.memory.nodes} nodes")
        refuse_if_larger("memory.steps", 8.0 * (200 + self.memory.steps) * d * (1 + self.memory.steps), memory_bytes,
                         f"{self.memory.steps} memory steps")

    def estimated_seconds(self):
        unit_steps = sum(self.sweep.seeds * self.training.horizon * N * N * (self.make_task().input_dim + 2)
                         for N in self.sweep.widths)
        return unit_steps * NS_PER_UNIT_STEP * 1e-9

    def architecture(self) -> Diagonal:
        return Diagonal(self.model.activation, self.model.sigma_w, self.model.beta, symmetric=True)

    def make_task(self):
        return make_task(self.task.name, **self.task.options())

    def probes_for(self, task) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence(self.sweep.seed, spawn_key=(2**31,)))
        return task.chain.sample_windows(self.limit.window, self.probes.count, rng=rng).values


def _model_and_data_seeds(cfg: StudyConfig, index: int):
    return np.random.SeedSequence(cfg.sweep.seed, spawn_key=(index,)).spawn(2)


def simulate_run(config: dict, n_units: int, index: int, threads: int = 1) -> dict:
    """One (width, seed) task on the Numba backend: empirical NTK at initialisation and a training trajectory."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    cfg = StudyConfig.from_dict(config)
    task = cfg.make_task()
    probes = cfg.probes_for(task)
    model_seed, data_seed = _model_and_data_seeds(cfg, index)
    model = cfg.architecture().network(n_units, task.input_dim, seed=model_seed)
    ntk0 = model.ntk(probes)
    t0 = time.perf_counter()
    res = train_online(model, task, cfg.training.horizon, cfg.training.alpha, probes, cfg.training.n_records,
                       seed=data_seed, progress=False)
    return dict(n_units=n_units, index=index, times=res.times, outputs=res.outputs, losses=res.losses,
                ntk0=ntk0, seconds=time.perf_counter() - t0)


def simulate_width(config: dict, n_units: int, first_index: int, backend: str = "jax", progress: bool = False) -> dict:
    """All seeds of one width in one task (the JAX backend trains them as one batch): the arrays of
    :func:`simulate_run` with a leading seed axis; seed s uses the seeds of run index first_index + s."""
    cfg = StudyConfig.from_dict(config)
    task = cfg.make_task()
    probes = cfg.probes_for(task)
    seeds = [_model_and_data_seeds(cfg, first_index + s) for s in range(cfg.sweep.seeds)]
    models = [cfg.architecture().network(n_units, task.input_dim, seed=model_seed) for model_seed, _ in seeds]
    ntk0 = np.stack([model.ntk(probes) for model in models])
    t0 = time.perf_counter()
    results = train_seeds(models, task, cfg.training.horizon, cfg.training.alpha, probes, cfg.training.n_records,
                          seeds=[data_seed for _, data_seed in seeds], progress=progress, backend=backend)
    return dict(n_units=n_units, first_index=first_index, times=results[0].times,
                outputs=np.stack([r.outputs for r in results]), losses=np.stack([r.losses for r in results]),
                ntk0=ntk0, seconds=time.perf_counter() - t0)


def _simulate(cfg: StudyConfig, folder: StudyFolder, workers, scheduler, progress, backend) -> dict:
    """{f"N{N}_s{s}": run} for every width and seed: one task per run on Numba (parallel over workers), one
    task per width on JAX (the seeds of a width are one batch on the device; see backend_workers)."""
    sw = cfg.sweep
    if backend == "numba":
        threads = worker_threads(workers, scheduler)
        tasks = {f"N{N}_s{s}": dict(config=cfg.as_dict(), n_units=N, index=i * sw.seeds + s, threads=threads)
                 for i, N in enumerate(sw.widths) for s in range(sw.seeds)}
        return run_tasks(simulate_run, tasks, folder.runs, workers=workers, scheduler=scheduler, progress=progress,
                         unkeyed=("threads",))
    tasks = {f"N{N}_{backend}": dict(config=cfg.as_dict(), n_units=N, first_index=i * sw.seeds, backend=backend,
                                     progress=progress) for i, N in enumerate(sw.widths)}
    widths = run_tasks(simulate_width, tasks, folder.runs, workers=backend_workers(backend, workers, scheduler),
                       scheduler=scheduler, progress=progress, unkeyed=("progress",))
    return {f"N{N}_s{s}": dict(n_units=N, times=run["times"], outputs=run["outputs"][s], losses=run["losses"][s],
                               ntk0=run["ntk0"][s])
            for N, run in zip(sw.widths, widths.values()) for s in range(sw.seeds)}


@register("study", "convergence study of wide RNNs against their limit (report + plots)", config=StudyConfig,
          parallel=True, backends=True)
def run_study(cfg: StudyConfig, out, *, workers=None, scheduler=None, progress=True, overwrite=False,
              backend="numba") -> Path:
    """Run (or resume) the study into ``out``; return the path of report.md.

    backend "jax" trains all seeds of a width as one batch, one width after the other in this process unless
    ``scheduler`` is given."""
    backend = check_backend(backend)
    start = time.perf_counter()
    with StudyFolder(out, "convergence", cfg, overwrite=overwrite) as folder:
        task = cfg.make_task()
        probes = cfg.probes_for(task)
        arch, tr, sw = cfg.architecture(), cfg.training, cfg.sweep
        limit_start = time.perf_counter()
        lim = arch.limit(task, cfg.limit.window, tr.alpha, order=cfg.limit.order)
        K_probes = arch.kernel(probes, order=cfg.limit.order, kind="ntk", error_estimate=False).ntk
        limit_seconds = time.perf_counter() - limit_start

        sweep_start = time.perf_counter()
        runs = _simulate(cfg, folder, workers, scheduler, progress, backend)
        sweep_seconds = time.perf_counter() - sweep_start

        limit_start = time.perf_counter()
        limit_cache = {}
        for run in runs.values():  # the limit at each run's own record times (t = k/N, rounded steps)
            key = run["times"].tobytes()
            if key not in limit_cache:
                limit_cache[key] = lim.predict(run["times"], probes)
            run["limit"] = limit_cache[key]
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
        rate = fit_rate(widths, [sup_err[N] for N in sw.widths], seed=sw.seed)
        kernel_rate = fit_rate(widths, [ker_err[N] for N in sw.widths], seed=sw.seed)

        rho = lim.rho
        mc = cfg.memory
        rng = np.random.default_rng(np.random.SeedSequence(sw.seed, spawn_key=(2**31 + 1,)))
        W, b = arch.sample_hidden(rng, mc.nodes, task.input_dim)
        mem = memory_state_errors(task.chain, W, b, arch.activation, mc.steps, mc.sequences, seed=rng)
        steps = np.arange(1, mc.steps + 1)
        memory_rate = fit_rate(steps, list(mem.T), scale="linear", seed=sw.seed)

        times_lim = np.linspace(0, tr.horizon, 41)
        grid_loss = 0.5 * (lim.flow.on_grid(times_lim) - lim.ybar) ** 2 @ lim.grid.weights
        report = dict(
            study="convergence", config=cfg.as_dict(), widths=sw.widths, seeds=sw.seeds,
            errors={str(N): dict(sup_per_seed=sup_err[N], mean=float(np.mean(sup_err[N])),
                                 std=float(np.std(sup_err[N], ddof=1)),
                                 l2_by_time_mean=np.mean(l2_err[N], axis=0)) for N in sw.widths},
            rate=rate.as_dict(),
            kernel_errors={str(N): dict(per_seed=ker_err[N], mean=float(np.mean(ker_err[N]))) for N in sw.widths},
            kernel_rate=kernel_rate.as_dict(),
            memory_rate=dict(**memory_rate.as_dict(), rate=float(np.exp(memory_rate.slope)),
                             rate_ci=[float(np.exp(memory_rate.ci_low)), float(np.exp(memory_rate.ci_high))],
                             rho=rho, mean_error_by_step=mem.mean(axis=0)),
            limit=dict(grid_windows=len(lim.grid), kernel_quadrature_error=lim.kernel_error,
                       truncation_bound=lim.truncation_bound, loss_initial=float(grid_loss[0]),
                       loss_at_horizon=float(grid_loss[-1]), loss_ratio=float(grid_loss[-1] / grid_loss[0])),
            backend=backend, seconds=dict(sweep=sweep_seconds, limit=limit_seconds))
        _figures(folder.path, cfg, runs, sup_err, rate, ker_err, kernel_rate, mem, memory_rate, rho, times_lim,
                 grid_loss, len(lim.grid))
        report["seconds"]["total"] = time.perf_counter() - start
        return write_report(folder, report, _markdown(report, cfg), start)


def _figures(out, cfg, runs, sup_err, rate, ker_err, kernel_rate, mem, memory_rate, rho, times_lim, grid_loss,
             n_grid):
    plt = pyplot()
    widths = np.array(cfg.sweep.widths, dtype=float)
    xs = np.geomspace(widths[0], widths[-1], 100)
    subtitle = (f"{cfg.task.name}, alpha = {cfg.training.alpha:g}, T = {cfg.training.horizon:g}, "
                f"{cfg.sweep.seeds} seeds per width")

    for name, errs, fit, ylabel in (
            ("error_vs_width.png", sup_err, rate, "sup over t <= T and probes of |f^N_t - f_t|"),
            ("kernel_error_vs_width.png", ker_err, kernel_rate, "|NTK_N(init) - K|_F / |K|_F on the probes")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for N in cfg.sweep.widths:
            ax.scatter(np.full(len(errs[N]), N), errs[N], s=10, color="0.6", zorder=2)
        ax.plot(widths, [np.mean(errs[N]) for N in cfg.sweep.widths], "o", color="C0", label="mean over seeds",
                zorder=3)
        lo, hi = fit.band(xs)
        ax.fill_between(xs, lo, hi, color="C1", alpha=0.25, label="95% bootstrap band")
        ax.plot(xs, fit.predict(xs), color="C1",
                label=f"fit: slope {fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}]")
        ax.plot(xs, fit.predict(widths[0]) * (xs / widths[0]) ** -0.5, "k:", lw=1, label="slope -1/2")
        ax.set(xscale="log", yscale="log", xlabel="width N", ylabel=ylabel, title=subtitle)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    shown = [cfg.sweep.widths[0], cfg.sweep.widths[len(cfg.sweep.widths) // 2], cfg.sweep.widths[-1]]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(shown)))
    for p, ls in zip(range(min(3, cfg.probes.count)), ("-", "--", "-.")):
        run0 = runs[f"N{cfg.sweep.widths[-1]}_s0"]
        axes[0].plot(run0["times"], run0["limit"][:, p], color="k", lw=2.2, ls=ls,
                     label="limit f_t" if p == 0 else None)
        for color, N in zip(colors, shown):
            run = runs[f"N{N}_s0"]
            axes[0].plot(run["times"], run["outputs"][:, p], color=color, lw=1, ls=ls,
                         label=f"N = {N} (seed 0)" if p == 0 else None)
    axes[0].set(xlabel="training time t = k/N", ylabel="output on probe window",
                title=f"f^N_t against f_t on 3 probes ({cfg.task.name})")
    axes[0].legend(fontsize=8)
    axes[1].plot(times_lim, grid_loss / grid_loss[0], color="k")
    axes[1].set(xlabel="training time t", ylabel="limit loss / initial loss",
                title=f"limit loss on the {n_grid} grid windows",
                ylim=(0, 1.05))
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
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
    fig.savefig(out / "memory_state.png", dpi=120)
    plt.close(fig)


def _markdown(report, cfg) -> str:
    r, kr, mr, lim = report["rate"], report["kernel_rate"], report["memory_rate"], report["limit"]
    lines = [
        f"# Convergence study: {cfg.task.name}",
        "",
        f"Diagonal RNNs ({cfg.model.activation}, sigma_w = {cfg.model.sigma_w:g}, beta = {cfg.model.beta:g}, symmetric "
        f"initialisation) of widths {list(cfg.sweep.widths)}, {cfg.sweep.seeds} seeds each, trained by online SGD with "
        f"learning rate alpha/N, alpha = {cfg.training.alpha:g}, for training time T = {cfg.training.horizon:g} (T N "
        f"steps), compared with the kernel limit on {cfg.probes.count} probe windows of length {cfg.limit.window}.",
        "",
        "## Results",
        "",
        f"- **Rate in N** of sup_t |f^N_t - f_t|: slope **{r['slope']:.3f}**, 95% interval "
        f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] (theory: -0.5).",
        f"- **Kernel at initialisation** (empirical NTK vs limit kernel): slope {kr['slope']:.3f}, "
        f"95% interval [{kr['ci_low']:.3f}, {kr['ci_high']:.3f}].",
        f"- **Memory state** in the number of steps: geometric rate {mr['rate']:.3f} per step "
        f"(95% interval [{mr['rate_ci'][0]:.3f}, {mr['rate_ci'][1]:.3f}]), bound rho = {mr['rho']:.3f}.",
        f"- **Limit**: {lim['grid_windows']} grid windows, quadrature error estimate "
        f"{lim['kernel_quadrature_error']:.2g}, truncation bound rho^L = {lim['truncation_bound']:.2g}; "
        f"loss at T / initial loss = {lim['loss_ratio']:.3f}.",
        f"- Wall time: {report['seconds']['total']:.1f} s (sweep {report['seconds']['sweep']:.1f} s on the "
        f"{report['backend']} backend, "
        f"limit {report['seconds']['limit']:.1f} s).",
        "",
        "| N | mean sup error | std over seeds | kernel error |",
        "|---|---|---|---|",
    ]
    for N in cfg.sweep.widths:
        e, k = report["errors"][str(N)], report["kernel_errors"][str(N)]
        lines.append(f"| {N} | {e['mean']:.4g} | {e['std']:.2g} | {k['mean']:.4g} |")
    lines += ["", "## Figures", "",
              "Error against width (grey: seeds; blue: mean; orange: fit with its bootstrap band):", "",
              "![error vs width](error_vs_width.png)", "",
              "Trajectories on three probes for three widths (seed 0) and the limit; right: the limit's loss:", "",
              "![trajectories](trajectories.png)", "",
              "Empirical NTK at initialisation against the limit kernel:", "",
              "![kernel error](kernel_error_vs_width.png)", "",
              "Memory state against the number of steps, with the contraction bound:", "",
              "![memory state](memory_state.png)", "",
              "Full numbers and the configuration in report.json; runs in runs/.", ""]
    return "\n".join(lines)
