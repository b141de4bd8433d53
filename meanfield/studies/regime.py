"""Regime study: how wide must an RNN be for its kernel limit to hold, and how does that grow with T?

Two parts, each a grid of independent (width, length or parameterisation, seed) runs of
:func:`meanfield.studies.framework.run_tasks` (resume, seeds from ``SeedSequence`` by run index):

- width x length: Elman RNNs (NTK parameterisation) trained by full-batch GD on windows of length T;
  the relative gap between the network and the RNTK kernel-flow prediction on held-out windows
  (:func:`meanfield.diagnostics.track_training`). For each T, the smallest width whose gap stays
  below the tolerance (upper end of a 95% interval over seeds), and the exponent of that width in T.
- parameterisation: the kernel distance S(G_0, G_T) after training against the width, in NTK
  parameterisation (O(n^{-1}): S is quadratic in the O(n^{-1/2}) kernel change) and in muP
  (readout 1/n, learning rate x n; O(1)).
- continual learning: train on task A (recall x_{-1}), then on task B (recall x_{-2}) on the same
  windows; forgetting = held-out loss on A after B minus after A, with early stopping and trained to
  (near) convergence, against the kernel-regime prediction: two exact linear flows in a row from the
  network's own f_0 (``theory_notes/regime.md`` section 5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..activations import ACTIVATIONS
from ..architectures.elman import Elman
from ..backends import check_backend
from ..data import make_task
from ..diagnostics import gd_stability, track_training
from ..report import pyplot
from ..solvers.ode import LinearKernelFlow
from ..stats import fit_rate, mean_interval
from .framework import (
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

SECONDS_PER_FLOP = 1e-10  # BLAS on one core of this machine (the quick study: 105 s on 2 cores), for estimates


@dataclass(frozen=True)
class ModelSection(Section, name="model"):
    activation: str = spec(checks.choice, options=tuple(ACTIVATIONS))
    sigma_w: float = spec(checks.real, minimum=0)
    sigma_u: float = spec(checks.real, minimum=0)
    sigma_b: float = spec(checks.real, minimum=0)

    def architecture(self) -> Elman:
        return Elman(activation=self.activation, sigma_w=self.sigma_w, sigma_u=self.sigma_u, sigma_b=self.sigma_b)


@dataclass(frozen=True)
class TrainingSection(Section, name="training"):
    lr: float = spec(checks.positive)
    steps: int = spec(checks.integer, minimum=1)
    checkpoints: int = spec(checks.integer, minimum=1)
    n_train: int = spec(checks.integer, minimum=2)
    n_heldout: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class WidthLengthSection(Section, name="width_length"):
    widths: tuple = spec(checks.integer_list, minimum=1, min_length=2, increasing=True)
    lengths: tuple = spec(checks.integer_list, minimum=3, increasing=True)
    seeds: int = spec(checks.integer, minimum=2)
    tolerance: float = spec(checks.positive)


@dataclass(frozen=True)
class ParameterisationSection(Section, name="parameterisation"):
    widths: tuple = spec(checks.integer_list, minimum=1, min_length=2, increasing=True)
    length: int = spec(checks.integer, minimum=1)
    seeds: int = spec(checks.integer, minimum=2)


@dataclass(frozen=True)
class ContinualSection(Section, name="continual"):
    widths: tuple = spec(checks.integer_list, minimum=1, increasing=True)
    length: int = spec(checks.integer, minimum=3)
    seeds: int = spec(checks.integer, minimum=2)
    early_steps: int = spec(checks.integer, minimum=1)
    converged_steps: int = spec(checks.integer, minimum=1)


@dataclass(frozen=True)
class RegimeConfig(Config):
    """The regime study's configuration (``meanfield/studies/regime_default.toml``)."""

    DEFAULT = "regime_default.toml"
    model: ModelSection
    training: TrainingSection
    width_length: WidthLengthSection
    parameterisation: ParameterisationSection
    continual: ContinualSection
    sweep: SeedSection

    def validate(self):
        if self.training.checkpoints > self.training.steps:
            raise ConfigError(f"config field 'training.checkpoints': at most training.steps = {self.training.steps}, "
                              f"got {self.training.checkpoints}")

    def _nets(self):
        """(part, width, length, count) of the networks the study trains, for the size and time estimates."""
        wl, p, c = self.width_length, self.parameterisation, self.continual
        return ([("width_length", n, T, wl.seeds) for T in wl.lengths for n in wl.widths]
                + [("parameterisation", n, p.length, 2 * p.seeds) for n in p.widths]
                + [("continual", n, c.length, 2 * c.seeds) for n in c.widths])

    def check_size(self, memory_bytes):
        M = self.training.n_train + self.training.n_heldout
        for part, n, T, _ in self._nets():  # weights, and the activations kept for backpropagation
            refuse_if_larger(f"{part}.widths", 32.0 * n * n, memory_bytes, f"an Elman RNN of width {n}")
            length = f"{part}.length" + ("s" if part == "width_length" else "")
            refuse_if_larger("training.n_train" if M >= T else length, 48.0 * M * T * n, memory_bytes,
                             f"backpropagation through {M} sequences of length {T} at width {n}")

    def estimated_seconds(self):
        t = self.training
        flops = sum(count * (t.steps + 2 * t.checkpoints) * 6 * t.n_train * T * n * n
                    for _, n, T, count in self._nets())
        flops += sum(2 * self.continual.seeds * 2 * self.continual.converged_steps * 6 * t.n_train
                     * self.continual.length * n * n for n in self.continual.widths)
        return flops * SECONDS_PER_FLOP


def _windows(cfg: RegimeConfig, T):
    """Train and held-out windows of length T from the delay1 chain, with their targets."""
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.sweep.seed, spawn_key=(10**6 + T,)))
    ws = task.chain.sample_windows(T, cfg.training.n_train + cfg.training.n_heldout, rng=rng)
    X = list(ws.values)
    y = task.conditional_mean(ws)
    n = cfg.training.n_train
    return X[:n], y[:n], X[n:]


def regime_run(config: dict, part: str, width: int, length: int, parameterisation: str, index: int,
               backend: str = "numba") -> dict:
    """One run: train an Elman RNN and record the diagnostics (training and empirical NTKs on ``backend``)."""
    cfg = RegimeConfig.from_dict(config)
    X, y, X_held = _windows(cfg, length)
    arch = cfg.model.architecture()
    net = arch.network(width, 1, parameterisation, seed=np.random.SeedSequence(cfg.sweep.seed, spawn_key=(index,)))
    K = K_cross = None
    if part == "width_length":  # the infinite-width prediction
        K, K_cross = arch.kernel(X).ntk, arch.kernel(X_held, X).ntk
    start = time.perf_counter()
    t = cfg.training
    d = track_training(net, X, y, X_held, lr=t.lr, steps=t.steps, checkpoints=t.checkpoints, K=K, K_cross=K_cross,
                       kernels=part == "parameterisation", options=dict(backend=backend))
    return dict(**d.as_dict(), width=width, length=length, index=index, seconds=time.perf_counter() - start)


def continual_run(config: dict, width: int, steps: int, index: int, backend: str = "numba") -> dict:
    """Task A then task B on the same windows: measured and kernel-predicted forgetting of A."""
    cfg = RegimeConfig.from_dict(config)
    T, n, lr = cfg.continual.length, cfg.training.n_train, cfg.training.lr
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.sweep.seed, spawn_key=(2 * 10**6 + T,)))
    values = task.chain.sample_windows(T, n + cfg.training.n_heldout, rng=rng).values
    y_a, y_b = values[:, -2, 0], values[:, -3, 0]  # recall x_{-1}, then x_{-2}
    X, X_held = list(values[:n]), list(values[n:])
    arch = cfg.model.architecture()
    net = arch.network(width, 1, seed=np.random.SeedSequence(cfg.sweep.seed, spawn_key=(index,)))
    f0_train, f0_held = net(X, backend=backend), net(X_held, backend=backend)

    def loss_a(f_held):
        return 0.5 * float(np.mean((f_held - y_a[n:]) ** 2))

    net.train(X, y_a[:n], lr, steps, record_every=steps + 1, backend=backend)
    after_a = loss_a(net(X_held, backend=backend))
    net.train(X, y_b[:n], lr, steps, record_every=steps + 1, backend=backend)
    after_b = loss_a(net(X_held, backend=backend))
    # kernel regime: the flow for A, then the flow for B started where A ended (RNTK, own f_0)
    K, K_cross = arch.kernel(X).ntk, arch.kernel(X_held, X).ntk
    t = lr * steps
    w = np.full(n, 1.0 / n)
    flow_a = LinearKernelFlow(K, w, y_a[:n], 1.0, f0_train)
    fa_train, fa_held = flow_a.on_grid([t])[0], flow_a.at([t], K_cross, f0_held)[0]
    fb_held = LinearKernelFlow(K, w, y_b[:n], 1.0, fa_train).at([t], K_cross, fa_held)[0]
    return dict(width=width, steps=steps, index=index, loss_a_after_a=after_a, loss_a_after_b=after_b,
                forgetting=after_b - after_a, kernel_forgetting=loss_a(fb_held) - loss_a(fa_held))


def check_learning_rate(cfg: RegimeConfig):
    """Refuse (before any run) a learning rate at which GD on the RNTK flow is unstable: lr lambda_max / M < 2."""
    for T in sorted({*cfg.width_length.lengths, cfg.parameterisation.length, cfg.continual.length}):
        X, _, _ = _windows(cfg, T)
        ratio = gd_stability(cfg.model.architecture().kernel(X).ntk, cfg.training.lr)
        if ratio >= 2:
            raise ConfigError(f"config field 'training.lr': gradient descent is unstable at lr = {cfg.training.lr:g} "
                              f"(lr lambda_max(K) / n_train = {ratio:.3g} >= 2 at length {T}); use lr < "
                              f"{2 * cfg.training.lr / ratio:.3g}")


def _tasks(cfg: RegimeConfig, backend):
    config = cfg.as_dict()
    wl, pa, co = cfg.width_length, cfg.parameterisation, cfg.continual
    tasks = {}
    index = 0
    for T in wl.lengths:
        for n in wl.widths:
            for s in range(wl.seeds):
                tasks[f"wl_T{T}_n{n}_s{s}"] = dict(config=config, part="width_length", width=n, length=T,
                                                    parameterisation="ntk", index=index, backend=backend)
                index += 1
    for param in ("ntk", "mup"):
        for n in pa.widths:
            for s in range(pa.seeds):
                tasks[f"p_{param}_n{n}_s{s}"] = dict(config=config, part="parameterisation", width=n,
                                                      length=pa.length, parameterisation=param, index=index,
                                                      backend=backend)
                index += 1
    continual = {}
    for regime, steps in (("early", co.early_steps), ("converged", co.converged_steps)):
        for n in co.widths:
            for s in range(co.seeds):
                continual[f"cl_{regime}_n{n}_s{s}"] = dict(config=config, width=n, steps=steps, index=index,
                                                           backend=backend)
                index += 1
    return tasks, continual


def _exponent(lengths, smallest):
    """Least-squares slope of log(smallest width) on log(T) over the lengths where one was found."""
    found = [(T, w) for T, w in zip(lengths, smallest) if w is not None]
    if len(found) < 2:
        return None
    return float(np.polyfit(np.log([T for T, _ in found]), np.log([w for _, w in found]), 1)[0])


def _width_exponent(cfg: RegimeConfig, table, n_boot=1000):
    """Exponent of the smallest width in T, with a bootstrap interval over the seeds.

    The point estimate uses each T's smallest width whose 95% upper bound is under the tolerance. Each
    bootstrap replicate resamples the seeds of every (T, width) cell and takes the smallest width whose
    resampled mean is under the tolerance.
    """
    lengths, tolerance = cfg.width_length.lengths, cfg.width_length.tolerance
    point = _exponent(lengths, [table[T]["smallest_width"] for T in lengths])
    rng = np.random.default_rng(cfg.sweep.seed)
    reps = []
    for _ in range(n_boot):
        smallest = []
        for T in lengths:
            ok = [r["width"] for r in table[T]["rows"] if np.mean(rng.choice(r["gaps"], len(r["gaps"]))) < tolerance]
            smallest.append(ok[0] if ok else None)
        e = _exponent(lengths, smallest)
        if e is not None:
            reps.append(e)
    interval = [float(q) for q in np.quantile(reps, [0.025, 0.975])] if len(reps) > n_boot // 2 else None
    return dict(exponent=point, ci=interval, replicates_with_estimate=len(reps))


@register("regime", "distance of finite Elman RNNs from the kernel regime (width x length, NTK vs muP)",
          config=RegimeConfig, parallel=True, backends=True)
def run_regime(cfg: RegimeConfig, out, *, workers=None, scheduler=None, progress=True, overwrite=False,
               backend="numba") -> Path:
    """Run (or resume) the regime study into ``out``; return the path of report.md.

    ``backend="jax"`` trains the networks and computes their empirical NTKs with JAX (each run's key holds the
    backend, so runs of the other backend are recomputed, not reused); its runs go one after the other in this
    process (the device is the parallel part) unless a ``scheduler`` is given."""
    start = time.perf_counter()
    backend = check_backend(backend)
    workers = backend_workers(backend, workers, scheduler)
    check_learning_rate(cfg)
    with StudyFolder(out, "regime", cfg, overwrite=overwrite) as folder:
        tasks, continual = _tasks(cfg, backend)
        runs = run_tasks(regime_run, tasks, folder.runs, workers=workers, scheduler=scheduler, progress=progress,
                         desc="regime runs")
        runs.update(run_tasks(continual_run, continual, folder.runs, workers=workers, scheduler=scheduler,
                              progress=progress, desc="continual runs"))
        wl, pa, co, seed = cfg.width_length, cfg.parameterisation, cfg.continual, cfg.sweep.seed

        # width x length: the gap (max over checkpoints) per seed; smallest width under the tolerance
        table = {}
        for T in wl.lengths:
            rows = []
            for n in wl.widths:
                gaps = [float(np.max(runs[f"wl_T{T}_n{n}_s{s}"]["prediction_gap"])) for s in range(wl.seeds)]
                mean, lo, hi = mean_interval(gaps, seed=seed)
                rows.append(dict(width=n, gaps=gaps, mean=mean, ci_low=lo, ci_high=hi))
            ok = [r["width"] for r in rows if r["ci_high"] < wl.tolerance]
            table[T] = dict(rows=rows, smallest_width=ok[0] if ok else None)
        exponent = _width_exponent(cfg, table)
        gap_rates = {T: fit_rate(wl.widths, [r["gaps"] for r in table[T]["rows"]]).as_dict()
                     for T in wl.lengths}

        # parameterisation: kernel distance after training against the width
        param = {}
        for p in ("ntk", "mup"):
            cells = [[runs[f"p_{p}_n{n}_s{s}"] for s in range(pa.seeds)] for n in pa.widths]
            dists = [[float(r["kernel_distance"][-1]) for r in cell] for cell in cells]
            dists_pos = [np.maximum(d, 1e-300) for d in dists]
            param[p] = dict(widths=pa.widths, distance=dists, mean=[float(np.mean(d)) for d in dists],
                            rate=fit_rate(pa.widths, dists_pos).as_dict(),
                            weight_change=[float(np.mean([r["weight_change"][-1] for r in cell])) for cell in cells],
                            stability_constant=[float(np.mean([r["stability_constant"] for r in cell]))
                                                for cell in cells])

        forgetting = {}
        for regime, steps in (("early", co.early_steps), ("converged", co.converged_steps)):
            rows = []
            for n in co.widths:
                rs = [runs[f"cl_{regime}_n{n}_s{s}"] for s in range(co.seeds)]
                mean, lo, hi = mean_interval([r["forgetting"] for r in rs], seed=seed)
                rows.append(dict(width=n, forgetting=[r["forgetting"] for r in rs], mean=mean, ci_low=lo, ci_high=hi,
                                 kernel_prediction=float(np.mean([r["kernel_forgetting"] for r in rs])),
                                 loss_a_after_a=float(np.mean([r["loss_a_after_a"] for r in rs]))))
            forgetting[regime] = dict(steps=steps, rows=rows)

        report = dict(study="regime", config=cfg.as_dict(), width_length={str(T): v for T, v in table.items()},
                      exponent=exponent, gap_rates={str(T): r for T, r in gap_rates.items()}, parameterisation=param,
                      continual=forgetting, seconds=time.perf_counter() - start)
        _figures(folder.path, cfg, table, param, forgetting)
        return write_report(folder, report, _markdown(report, cfg), start)


def _figures(out, cfg, table, param, forgetting):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.3))
    for T, v in table.items():
        w = [r["width"] for r in v["rows"]]
        m = np.array([r["mean"] for r in v["rows"]])
        lo, hi = np.array([r["ci_low"] for r in v["rows"]]), np.array([r["ci_high"] for r in v["rows"]])
        axes[0].errorbar(w, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=f"T = {T}")
    axes[0].axhline(cfg.width_length.tolerance, color="k", ls=":", label=f"tolerance {cfg.width_length.tolerance}")
    axes[0].set(xscale="log", yscale="log", xlabel="width n",
                ylabel="max_t gap to the RNTK flow / its movement",
                title=f"Elman RNN ({cfg.model.activation}) vs kernel flow, {cfg.width_length.seeds} seeds, 95% CI")
    axes[0].legend(fontsize=8)
    for p, style in (("ntk", "o-"), ("mup", "s--")):
        axes[1].plot(param[p]["widths"], param[p]["mean"], style,
                     label=f"{p}: slope {param[p]['rate']['slope']:.2f} "
                           f"[{param[p]['rate']['ci_low']:.2f}, {param[p]['rate']['ci_high']:.2f}]")
    axes[1].set(xscale="log", yscale="log", xlabel="width n", ylabel="kernel distance S(G_0, G_T)",
                title=f"NTK vs muP (T = {cfg.parameterisation.length}, {cfg.parameterisation.seeds} seeds)")
    axes[1].legend(fontsize=8)
    for (regime, v), color in zip(forgetting.items(), ("C0", "C3")):
        w = [r["width"] for r in v["rows"]]
        m = np.array([r["mean"] for r in v["rows"]])
        lo, hi = np.array([r["ci_low"] for r in v["rows"]]), np.array([r["ci_high"] for r in v["rows"]])
        axes[2].errorbar(w, m, yerr=[m - lo, hi - m], marker="o", capsize=3, color=color,
                         label=f"{regime} ({v['steps']} steps per task)")
        axes[2].plot(w, [r["kernel_prediction"] for r in v["rows"]], ls=":", color=color,
                     label=f"{regime}: kernel-regime prediction")
    axes[2].set(xscale="log", xlabel="width n", ylabel="forgetting of A (held-out loss after B - after A)",
                title=f"continual learning, T = {cfg.continual.length}, {cfg.continual.seeds} seeds, 95% CI")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "regime.png", dpi=120)
    plt.close(fig)


def _markdown(report, cfg) -> str:
    lines = ["# Regime study: distance of Elman RNNs from the kernel regime", "",
             f"Full-batch GD (lr {cfg.training.lr}, {cfg.training.steps} steps) on {cfg.training.n_train} windows "
             f"of the delay1 chain; gap = max over checkpoints of |f_net - f_flow| / max |f_flow - f_0| on "
             f"{cfg.training.n_heldout} held-out "
             f"windows, f_flow from the RNTK kernel flow.", "",
             "## Width x length", "", "| T | " + " | ".join(f"n={n}" for n in cfg.width_length.widths)
             + " | smallest width with gap < " + f"{cfg.width_length.tolerance} |",
             "|---|" + "---|" * (len(cfg.width_length.widths) + 1)]
    for T, v in report["width_length"].items():
        cells = [f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" for r in v["rows"]]
        lines.append(f"| {T} | " + " | ".join(cells) + f" | {v['smallest_width'] or 'none'} |")
    exp = report["exponent"]
    if exp["exponent"] is None:
        text = "Fitted exponent: fewer than two lengths reached the tolerance at these widths."
    else:
        ci = f" (95% bootstrap interval [{exp['ci'][0]:.2f}, {exp['ci'][1]:.2f}])" if exp["ci"] else ""
        text = f"Fitted exponent of the smallest width in T: {exp['exponent']:.2f}{ci}."
    lines += ["", text, "", "## NTK versus muP", ""]
    for p, v in report["parameterisation"].items():
        r = v["rate"]
        lines.append(f"- {p}: kernel distance slope in n {r['slope']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]; "
                     f"mean distances {', '.join(f'{m:.3g}' for m in v['mean'])}")
    lines += ["", "## Continual learning (task A: recall x_{-1}; then task B: recall x_{-2})", "",
              "| regime | " + " | ".join(f"n={n}" for n in cfg.continual.widths) + " |",
              "|---|" + "---|" * len(cfg.continual.widths)]
    for regime, v in report["continual"].items():
        cells = [f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] (kernel {r['kernel_prediction']:.3f})"
                 for r in v["rows"]]
        lines.append(f"| {regime} ({v['steps']} steps) | " + " | ".join(cells) + " |")
    lines += ["", "![regime](regime.png)", ""]
    return "\n".join(lines)
