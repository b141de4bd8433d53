"""Convergence study: wide diagonal RNNs against their kernel limit, as N and the number of steps grow.

For each width N and seed, a network with the symmetric initialisation is trained by online SGD on the
task for T N steps, recording f^N_t on fixed probe windows; the limit f_t is solved once. Reported
(``theory_notes/limit.md`` section 7):

- the error sup_{t <= T, probes} |f^N_t - f_t| per width and seed, and its fitted rate in N with a
  bootstrap 95% interval (the theory says -1/2), and the L2 error over the probes at each recorded time;
- the empirical NTK at initialisation against the limit kernel on the probes, and its rate;
- the memory state against the number of steps k (a geometric rate, compared with rho = beta sup|sigma'|).

The (width, seed) runs are independent tasks on the Dask runner of :mod:`meanfield.sweep`; each run's
seed is the study seed's child number (width index x seeds + seed index) by ``SeedSequence``, so the
results do not depend on the number of workers, and a finished run is on disk at once (resume).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

import numpy as np

from ..activations import CODES, SUP_DERIVATIVE
from ..convergence import fit_rate, memory_state_errors, trajectory_errors
from ..data import TASK_NAMES, make_task
from ..limit import LimitModel, limit_kernel
from ..report import pyplot, software_versions, write_json
from ..rnn import DiagonalRNN, train_online
from ..sweep import load_result, run_tasks

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A bad value in a study configuration; the message names the field."""


@dataclass(frozen=True)
class StudyConfig:
    """The parameters of a convergence study (the TOML sections flattened; see the default config)."""

    task: str = "delay1"
    task_options: dict = field(default_factory=dict)
    activation: str = "tanh"
    sigma_w: float = 1.0
    beta: float = 0.5
    alpha: float = 4.0
    horizon: float = 2.0
    n_records: int = 20
    window: int = 10
    order: tuple = (256, 24)
    n_probes: int = 16
    widths: tuple = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    seeds: int = 8
    seed: int = 2026
    memory_nodes: int = 4000
    memory_steps: int = 20
    memory_sequences: int = 8

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"config field '{name}': {why}")

        def positive_int(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                bad(name, f"must be a positive integer, got {value!r}")

        def positive_float(name, value):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                bad(name, f"must be a finite number > 0, got {value!r}")

        if self.task not in TASK_NAMES:
            bad("task.name", f"unknown task {self.task!r}; named tasks are {list(TASK_NAMES)}")
        try:
            make_task(self.task, **dict(self.task_options))
        except ValueError as err:
            bad("task", str(err))
        for name in ("alpha", "horizon", "sigma_w"):
            positive_float(name, getattr(self, name))
        if not (isinstance(self.beta, (int, float)) and np.isfinite(self.beta) and self.beta >= 0):
            bad("beta", f"must be a finite number >= 0, got {self.beta!r}")
        for name in ("n_records", "window", "n_probes", "seeds", "memory_nodes", "memory_steps",
                     "memory_sequences"):
            positive_int(name, getattr(self, name))
        if not isinstance(self.seed, int) or self.seed < 0:
            bad("seed", f"must be a non-negative integer, got {self.seed!r}")
        if len(self.order) != 2:
            bad("order", f"must be two positive integers, got {self.order!r}")
        for o in self.order:
            positive_int("order", o)
        if len(self.widths) < 2:
            bad("widths", "need at least two widths to fit a rate")
        for N in self.widths:
            positive_int("widths", N)
            if N % 2:
                bad("widths", f"must be even (symmetric initialisation), got {N}")
        if any(b <= a for a, b in zip(self.widths, self.widths[1:])):
            bad("widths", f"must be strictly increasing, got {list(self.widths)}")
        if self.seeds < 2:
            bad("seeds", "need at least two seeds for a confidence interval")
        if self.horizon * self.widths[0] < self.n_records:
            bad("n_records", f"horizon * smallest width = {self.horizon * self.widths[0]:g} steps is fewer "
                             f"than n_records = {self.n_records}")
        if self.activation not in CODES:
            bad("activation", f"must be one of {sorted(CODES)}, got {self.activation!r}")
        if self.beta * SUP_DERIVATIVE[self.activation] >= 1:
            bad("beta", f"beta * sup|sigma'| must be < 1 (a contraction), got beta = {self.beta}")

    @classmethod
    def from_toml(cls, path=None, quick=False) -> StudyConfig:
        """Read a config (default: the one shipped in the package); ``quick`` applies its [quick] table."""
        if path is None:
            text = resources.files("meanfield.studies").joinpath("convergence_default.toml").read_text()
        else:
            try:
                text = Path(path).read_text()
            except OSError as err:
                raise ConfigError(f"cannot read config {path}: {err}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config {path or 'default'} is not valid TOML: {err}") from None
        return cls.from_dict(raw, quick=quick)

    @classmethod
    def from_dict(cls, raw: dict, quick=False) -> StudyConfig:
        raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
        quick_table = raw.pop("quick", {})
        layout = {"task": {"name": "task"}, "model": {"activation": "activation", "sigma_w": "sigma_w",
                                                        "beta": "beta"},
                  "training": {"alpha": "alpha", "horizon": "horizon", "n_records": "n_records"},
                  "limit": {"window": "window", "order": "order"}, "probes": {"count": "n_probes"},
                  "sweep": {"widths": "widths", "seeds": "seeds", "seed": "seed"},
                  "memory": {"nodes": "memory_nodes", "steps": "memory_steps", "sequences": "memory_sequences"}}
        values = {}
        for section, table in raw.items():
            if section not in layout:
                raise ConfigError(f"config field '{section}': unknown section (known: {sorted(layout)} and quick)")
            if not isinstance(table, dict):
                raise ConfigError(f"config field '{section}': must be a table")
            for key, value in table.items():
                if section == "task" and key != "name":
                    values.setdefault("task_options", {})[key] = value
                elif key in layout[section]:
                    values[layout[section][key]] = value
                else:
                    raise ConfigError(f"config field '{section}.{key}': unknown key")
        if quick:
            names = {f.name for f in fields(cls)}
            for key, value in quick_table.items():
                if key not in names:
                    raise ConfigError(f"config field 'quick.{key}': unknown key")
                values[key] = value
        for key in ("widths", "order"):
            if key in values:
                if not isinstance(values[key], (list, tuple)):
                    raise ConfigError(f"config field '{key}': must be a list, got {values[key]!r}")
                values[key] = tuple(values[key])
        return cls(**values)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["order"], d["widths"] = list(self.order), list(self.widths)
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def make_task(self):
        return make_task(self.task, **dict(self.task_options))

    def probes(self, task) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2**31,)))
        return task.chain.sample_windows(self.window, self.n_probes, rng=rng).values


def simulate_run(config: dict, n_units: int, index: int, threads: int = 1) -> dict:
    """One (width, seed) task: empirical NTK at initialisation and a training trajectory on the probes."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    cfg = StudyConfig(**{**config, "order": tuple(config["order"]), "widths": tuple(config["widths"])})
    task = cfg.make_task()
    probes = cfg.probes(task)
    model_seed, data_seed = np.random.SeedSequence(cfg.seed, spawn_key=(index,)).spawn(2)
    model = DiagonalRNN(n_units, task.input_dim, cfg.activation, cfg.sigma_w, cfg.beta, symmetric=True,
                        seed=model_seed)
    ntk0 = model.ntk(probes)
    t0 = time.perf_counter()
    res = train_online(model, task, cfg.horizon, cfg.alpha, probes, cfg.n_records, seed=data_seed,
                       progress=False)
    return dict(n_units=n_units, index=index, times=res.times, outputs=res.outputs, losses=res.losses,
                ntk0=ntk0, seconds=time.perf_counter() - t0)


def _check_out_dir(out: Path, cfg: StudyConfig):
    """Refuse to mix runs of different configurations in one folder."""
    marker = out / "study.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if old.get("digest") != cfg.digest():
            raise ConfigError(f"config: {out} holds runs of a different configuration "
                              f"(digest {old.get('digest')} != {cfg.digest()}); use another --out")
    else:
        write_json(marker, dict(digest=cfg.digest(), config=cfg.as_dict()))


def run_study(cfg: StudyConfig, out, *, workers=None, scheduler=None, progress=True) -> Path:
    """Run (or resume) the study into ``out``; return the path of report.md."""
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_out_dir(out, cfg)
    task = cfg.make_task()
    probes = cfg.probes(task)

    n_workers = workers if workers is not None else os.cpu_count()
    threads = max(1, (os.cpu_count() or 1) // max(1, n_workers)) if scheduler is None else 1
    tasks = {f"N{N}_s{s}": dict(config=cfg.as_dict(), n_units=N, index=i * cfg.seeds + s, threads=threads)
             for i, N in enumerate(cfg.widths) for s in range(cfg.seeds)}
    sweep_start = time.perf_counter()
    paths = run_tasks(simulate_run, tasks, out / "runs", workers=workers, scheduler=scheduler,
                      progress=progress, desc="runs")
    sweep_seconds = time.perf_counter() - sweep_start

    limit_start = time.perf_counter()
    lim = LimitModel(task, cfg.activation, cfg.sigma_w, cfg.beta, cfg.window, cfg.alpha, cfg.order)
    K_probes = limit_kernel(probes, activation=cfg.activation, sigma_w=cfg.sigma_w, beta=cfg.beta, order=cfg.order,
                            kind="ntk", error_estimate=False).ntk
    runs = {name: load_result(path) for name, path in paths.items()}
    limit_cache = {}
    for run in runs.values():  # the limit at each run's own record times (t = k/N, rounded steps)
        key = run["times"].tobytes()
        if key not in limit_cache:
            limit_cache[key] = lim.predict(run["times"], probes)
        run["limit"] = limit_cache[key]
    limit_seconds = time.perf_counter() - limit_start

    sup_err = {N: [] for N in cfg.widths}
    l2_err = {N: [] for N in cfg.widths}
    ker_err = {N: [] for N in cfg.widths}
    for run in runs.values():
        N = int(run["n_units"])
        sup, l2 = trajectory_errors(run["outputs"], run["limit"])
        sup_err[N].append(sup)
        l2_err[N].append(l2)
        ker_err[N].append(np.linalg.norm(run["ntk0"] - K_probes) / np.linalg.norm(K_probes))
    widths = np.array(cfg.widths)
    rate = fit_rate(widths, [sup_err[N] for N in cfg.widths], seed=cfg.seed)
    kernel_rate = fit_rate(widths, [ker_err[N] for N in cfg.widths], seed=cfg.seed)

    rho = lim.rho
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(2**31 + 1,)))
    W = cfg.sigma_w * rng.standard_normal((task.input_dim, cfg.memory_nodes))
    b = rng.uniform(-cfg.beta, cfg.beta, cfg.memory_nodes)
    mem = memory_state_errors(task.chain, W, b, cfg.activation, cfg.memory_steps, cfg.memory_sequences, seed=rng)
    steps = np.arange(1, cfg.memory_steps + 1)
    memory_rate = fit_rate(steps, list(mem.T), scale="linear", seed=cfg.seed)

    times_lim = np.linspace(0, cfg.horizon, 41)
    grid_loss = 0.5 * (lim.flow.on_grid(times_lim) - lim.ybar) ** 2 @ lim.grid.weights
    report = dict(
        study="convergence", config=cfg.as_dict(), digest=cfg.digest(), versions=software_versions(),
        widths=cfg.widths, seeds=cfg.seeds,
        errors={str(N): dict(sup_per_seed=sup_err[N], mean=float(np.mean(sup_err[N])),
                             std=float(np.std(sup_err[N], ddof=1)),
                             l2_by_time_mean=np.mean(l2_err[N], axis=0)) for N in cfg.widths},
        rate=rate.as_dict(),
        kernel_errors={str(N): dict(per_seed=ker_err[N], mean=float(np.mean(ker_err[N]))) for N in cfg.widths},
        kernel_rate=kernel_rate.as_dict(),
        memory_rate=dict(**memory_rate.as_dict(), rate=float(np.exp(memory_rate.slope)),
                         rate_ci=[float(np.exp(memory_rate.ci_low)), float(np.exp(memory_rate.ci_high))],
                         rho=rho, mean_error_by_step=mem.mean(axis=0)),
        limit=dict(grid_windows=len(lim.grid), kernel_quadrature_error=lim.kernel_error,
                   truncation_bound=lim.truncation_bound, loss_initial=float(grid_loss[0]),
                   loss_at_horizon=float(grid_loss[-1]), loss_ratio=float(grid_loss[-1] / grid_loss[0])),
        seconds=dict(sweep=sweep_seconds, limit=limit_seconds, total=time.perf_counter() - start))
    _figures(out, cfg, runs, sup_err, rate, ker_err, kernel_rate, mem, memory_rate, rho, times_lim, grid_loss,
             len(lim.grid))
    report["seconds"]["total"] = time.perf_counter() - start
    write_json(out / "report.json", report)
    (out / "report.md").write_text(_markdown(report, cfg))
    return out / "report.md"


def _figures(out, cfg, runs, sup_err, rate, ker_err, kernel_rate, mem, memory_rate, rho, times_lim, grid_loss,
             n_grid):
    plt = pyplot()
    widths = np.array(cfg.widths, dtype=float)
    xs = np.geomspace(widths[0], widths[-1], 100)
    subtitle = f"{cfg.task}, alpha = {cfg.alpha:g}, T = {cfg.horizon:g}, {cfg.seeds} seeds per width"

    for name, errs, fit, ylabel in (
            ("error_vs_width.png", sup_err, rate, "sup over t <= T and probes of |f^N_t - f_t|"),
            ("kernel_error_vs_width.png", ker_err, kernel_rate, "|NTK_N(init) - K|_F / |K|_F on the probes")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for N in cfg.widths:
            ax.scatter(np.full(len(errs[N]), N), errs[N], s=10, color="0.6", zorder=2)
        ax.plot(widths, [np.mean(errs[N]) for N in cfg.widths], "o", color="C0", label="mean over seeds", zorder=3)
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
    shown = [cfg.widths[0], cfg.widths[len(cfg.widths) // 2], cfg.widths[-1]]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(shown)))
    for p, ls in zip(range(min(3, cfg.n_probes)), ("-", "--", "-.")):
        run0 = runs[f"N{cfg.widths[-1]}_s0"]
        axes[0].plot(run0["times"], run0["limit"][:, p], color="k", lw=2.2, ls=ls,
                     label="limit f_t" if p == 0 else None)
        for color, N in zip(colors, shown):
            run = runs[f"N{N}_s0"]
            axes[0].plot(run["times"], run["outputs"][:, p], color=color, lw=1, ls=ls,
                         label=f"N = {N} (seed 0)" if p == 0 else None)
    axes[0].set(xlabel="training time t = k/N", ylabel="output on probe window",
                title=f"f^N_t against f_t on 3 probes ({cfg.task})")
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
           title=f"memory state: {cfg.memory_nodes} nodes, {cfg.memory_sequences} sequences")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "memory_state.png", dpi=120)
    plt.close(fig)


def _markdown(report, cfg) -> str:
    r, kr, mr, lim = report["rate"], report["kernel_rate"], report["memory_rate"], report["limit"]
    lines = [
        f"# Convergence study: {cfg.task}",
        "",
        f"Diagonal RNNs (tanh, sigma_w = {cfg.sigma_w:g}, beta = {cfg.beta:g}, symmetric initialisation) of widths "
        f"{list(cfg.widths)}, {cfg.seeds} seeds each, trained by online SGD with learning rate alpha/N, "
        f"alpha = {cfg.alpha:g}, for training time T = {cfg.horizon:g} (T N steps), compared with the kernel limit "
        f"on {cfg.n_probes} probe windows of length {cfg.window}.",
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
        f"- Wall time: {report['seconds']['total']:.1f} s (sweep {report['seconds']['sweep']:.1f} s, "
        f"limit {report['seconds']['limit']:.1f} s).",
        "",
        "| N | mean sup error | std over seeds | kernel error |",
        "|---|---|---|---|",
    ]
    for N in cfg.widths:
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
              f"Configuration digest {report['digest']}; full numbers in report.json; runs in runs/.", ""]
    return "\n".join(lines)
