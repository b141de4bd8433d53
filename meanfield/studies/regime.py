"""Regime study: how wide must an RNN be for its kernel limit to hold, and how does that grow with T?

Four parts, each a grid of independent runs of :func:`meanfield.studies.framework.run_tasks` (resume,
seeds from ``SeedSequence``):

- width x length (:mod:`.width_law`): for sigma_w below, at and above the edge of chaos, the gap between
  Elman RNNs and GD on their linearised limit (same step: no discretisation floor) against width and
  length; the crossing widths n*(T) of a few tolerances and their law n* ~ T^gamma;
- uncertainty (:mod:`.width_law`): ensembles of finite networks against the NTK-Gaussian process, and the
  calibration of both on held-out targets;
- parameterisation: the kernel distance S(G_0, G_T) after training against the width, in NTK
  parameterisation (O(n^{-1}): S is quadratic in the O(n^{-1/2}) kernel change) and in muP
  (readout 1/n, learning rate x n; O(1)).
- continual learning: train on task A (recall x_{-1}), then on task B (recall x_{-2}) on the same
  windows; forgetting = held-out loss on A after B minus after A, with early stopping and trained to
  (near) convergence, against the kernel-regime prediction: two exact linear flows in a row from the
  network's own f_0 (``theory_notes/regime.md`` section 5).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import checks
from ..activations import ACTIVATIONS
from ..architectures.elman import Elman
from ..backends import check_backend
from ..data import make_task
from ..diagnostics import gd_stability, track_training
from ..report import legend, pyplot, width_ticks
from ..solvers.ode import LinearKernelFlow
from ..stats import fit_rate, mean_interval
from . import width_law
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
from .width_law import UncertaintySection, WidthLengthSection

SECONDS_PER_FLOP = 1e-10  # BLAS on one core of this machine, for estimates
SECONDS_PER_STEP = 1e-4  # a GD step's fixed cost, whatever the size (116 us measured at n = 4, T = 3, M = 6)


@dataclass(frozen=True)
class ModelSection(Section, name="model"):
    activation: str = spec(checks.choice, options=tuple(ACTIVATIONS))
    sigma_w: float = spec(checks.real, minimum=0)
    sigma_u: float = spec(checks.real, minimum=0)
    sigma_b: float = spec(checks.real, minimum=0)

    def keywords(self) -> dict:
        """The Elman keywords but sigma_w (which the width-length and uncertainty parts set)."""
        return dict(activation=self.activation, sigma_u=self.sigma_u, sigma_b=self.sigma_b)

    def architecture(self) -> Elman:
        return Elman(**self.keywords(), sigma_w=self.sigma_w)


@dataclass(frozen=True)
class TrainingSection(Section, name="training"):
    lr: float = spec(checks.positive)
    steps: int = spec(checks.integer, minimum=1)
    checkpoints: int = spec(checks.integer, minimum=1)
    n_train: int = spec(checks.integer, minimum=2)
    n_heldout: int = spec(checks.integer, minimum=1)


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
    uncertainty: UncertaintySection
    parameterisation: ParameterisationSection
    continual: ContinualSection
    sweep: SeedSection

    def validate(self):
        for name, section in (("training", self.training), ("width_length", self.width_length)):
            if section.checkpoints > section.steps:
                raise ConfigError(f"config field '{name}.checkpoints': at most {name}.steps = {section.steps}, got "
                                  f"{section.checkpoints}")
        for name, section, least in (("width_length", self.width_length, 2), ("uncertainty", self.uncertainty, 1)):
            T = section.lengths[-1]
            if len(section.widths_at(T)) < least:
                raise ConfigError(f"config field '{name}.max_cost': fewer than {least} width{'s' * (least > 1)} of "
                                  f"{name}.widths with T n^2 <= {section.max_cost:g} at T = {T}, the longest of "
                                  f"{name}.lengths")

    def data(self, part) -> dict:
        """The arguments of :func:`.width_law.windows` for ``part``."""
        if part == "uncertainty":
            return dict(seed=self.sweep.seed, n_train=self.uncertainty.n_train, n_heldout=self.uncertainty.n_heldout,
                        stream=3)
        return dict(seed=self.sweep.seed, n_train=self.training.n_train, n_heldout=self.training.n_heldout, stream=1)

    def _nets(self):
        """(part, width, length, count, steps, sequences) of the networks the study trains, for the size and time
        estimates (the width-length part as if no sigma_w were abandoned)."""
        wl, u, p, c, t = self.width_length, self.uncertainty, self.parameterisation, self.continual, self.training
        M = t.n_train + t.n_heldout
        return ([("width_length", n, T, wl.seeds * len(wl.sigma_w), wl.steps, M) for T in wl.lengths
                 for n in wl.widths_at(T)]
                + [("uncertainty", n, T, u.members * len(u.sigma_w), u.steps, u.n_train + u.n_heldout)
                   for T in u.lengths for n in u.widths_at(T)]
                + [("parameterisation", n, p.length, 2 * p.seeds, t.steps, M) for n in p.widths]
                + [("continual", n, c.length, 2 * c.seeds, t.steps, M) for n in c.widths])

    def check_size(self, memory_bytes):
        for part, n, T, _, _, M in self._nets():  # weights, and the activations kept for backpropagation
            refuse_if_larger(f"{part}.widths", 32.0 * n * n, memory_bytes, f"an Elman RNN of width {n}")
            length = f"{part}.length" + ("s" if part in ("width_length", "uncertainty") else "")
            count = ("uncertainty" if part == "uncertainty" else "training") + ".n_train"
            refuse_if_larger(count if M >= T else length, 48.0 * M * T * n, memory_bytes,
                             f"backpropagation through {M} sequences of length {T} at width {n}")

    SIZE_FIELDS = ("width_length.widths", "width_length.lengths", "width_length.seeds", "width_length.steps",
                   "uncertainty.members", "training.steps", "training.n_train", "continual.converged_steps")

    def estimated_seconds(self):
        t, c = self.training, self.continual
        seconds = sum(count * ((steps + 2 * t.checkpoints) * (4 * M * T * n * n * SECONDS_PER_FLOP + SECONDS_PER_STEP)
                               + RUN_SECONDS) for _, n, T, count, steps, M in self._nets())
        return seconds + sum(4 * c.seeds * c.converged_steps * (6 * t.n_train * c.length * n * n * SECONDS_PER_FLOP
                                                                + SECONDS_PER_STEP) for n in c.widths)


def regime_run(model: dict, training: dict, data: dict, width: int, length: int, parameterisation: str, index: int,
               backend: str = "numba") -> dict:
    """One run of the parameterisation part: train an Elman RNN and record the diagnostics (training and empirical
    NTKs on ``backend``). ``model``, ``training``: the config's tables; ``data``: :meth:`RegimeConfig.data`."""
    X, y, X_held, _ = width_law.windows(length=length, **data)
    net = ModelSection(**model).architecture().network(
        width, 1, parameterisation, seed=np.random.SeedSequence(data["seed"], spawn_key=(index,)))
    start = time.perf_counter()
    t = TrainingSection(**training)
    d = track_training(net, X, y, X_held, lr=t.lr, steps=t.steps, checkpoints=t.checkpoints,
                       options=dict(backend=backend))
    return dict(**d.as_dict(), width=width, length=length, index=index, seconds=time.perf_counter() - start)


def continual_run(model: dict, training: dict, seed, width: int, length: int, steps: int, index: int,
                  backend: str = "numba") -> dict:
    """Task A then task B on the same windows: measured and kernel-predicted forgetting of A."""
    tr = TrainingSection(**training)
    T, n, lr = length, tr.n_train, tr.lr
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2 * 10**6 + T,)))
    values = task.chain.sample_windows(T, n + tr.n_heldout, rng=rng).values
    y_a, y_b = values[:, -2, 0], values[:, -3, 0]  # recall x_{-1}, then x_{-2}
    X, X_held = list(values[:n]), list(values[n:])
    arch = ModelSection(**model).architecture()
    net = arch.network(width, 1, seed=np.random.SeedSequence(seed, spawn_key=(index,)))
    f0_train, f0_held = net(X, backend=backend), net(X_held, backend=backend)

    def loss_a(f_held):
        return 0.5 * float(np.mean((f_held - y_a[n:]) ** 2))

    net.train(X, y_a[:n], lr, steps, record_every=steps + 1, backend=backend)
    after_a = loss_a(net(X_held, backend=backend))
    net.train(X, y_b[:n], lr, steps, record_every=steps + 1, backend=backend)
    after_b = loss_a(net(X_held, backend=backend))
    # kernel regime: GD on the linearised network for A, then for B from where A ended (RNTK, own f_0, same step)
    K, K_cross = arch.kernel(X).ntk, arch.kernel(X_held, X).ntk
    t = lr * steps
    w = np.full(n, 1.0 / n)
    flow_a = LinearKernelFlow(K, w, y_a[:n], 1.0, f0_train, step=lr)
    fa_train, fa_held = flow_a.on_grid([t])[0], flow_a.at([t], K_cross, f0_held)[0]
    fb_held = LinearKernelFlow(K, w, y_b[:n], 1.0, fa_train, step=lr).at([t], K_cross, fa_held)[0]
    return dict(width=width, steps=steps, index=index, loss_a_after_a=after_a, loss_a_after_b=after_b,
                forgetting=after_b - after_a, kernel_forgetting=loss_a(fb_held) - loss_a(fa_held))


def check_learning_rate(cfg: RegimeConfig):
    """Refuse (before any run) a learning rate at which GD on the RNTK flow is unstable: lr lambda_max / M < 2."""
    for T in sorted({cfg.parameterisation.length, cfg.continual.length}):  # the other parts scale lr to lambda_max
        X = width_law.windows(length=T, **cfg.data("training"))[0]
        ratio = gd_stability(cfg.model.architecture().kernel(X).ntk, cfg.training.lr)
        if ratio >= 2:
            raise ConfigError(f"config field 'training.lr': gradient descent is unstable at lr = {cfg.training.lr:g} "
                              f"(lr lambda_max(K) / n_train = {ratio:.3g} >= 2 at length {T}); use lr < "
                              f"{2 * cfg.training.lr / ratio:.3g}")


PARAMETERISATION_SEEDS, CONTINUAL_SEEDS = 10**5, 2 * 10**5  # bases of the run indices: no part's grid moves another's


def _tasks(cfg: RegimeConfig, backend):
    """The parameterisation and continual-learning runs. Each run's key holds only what it depends on."""
    model, training = dataclasses.asdict(cfg.model), dataclasses.asdict(cfg.training)
    pa, co = cfg.parameterisation, cfg.continual
    tasks, index = {}, PARAMETERISATION_SEEDS
    for param in ("ntk", "mup"):
        for n in pa.widths:
            for s in range(pa.seeds):
                tasks[f"p_{param}_n{n}_s{s}"] = dict(model=model, training=training, data=cfg.data("training"),
                                                      width=n, length=pa.length, parameterisation=param, index=index,
                                                      backend=backend)
                index += 1
    continual, index = {}, CONTINUAL_SEEDS
    for regime, steps in (("early", co.early_steps), ("converged", co.converged_steps)):
        for n in co.widths:
            for s in range(co.seeds):
                continual[f"cl_{regime}_n{n}_s{s}"] = dict(model=model, training=training, seed=cfg.sweep.seed,
                                                           width=n, length=co.length, steps=steps, index=index,
                                                           backend=backend)
                index += 1
    return tasks, continual


def _width_length_tasks(cfg: RegimeConfig, T, sigma_ws, backend):
    """The runs of length T for the sigma_w still in play. Each run's key holds only what it depends on."""
    wl = cfg.width_length
    common = dict(model=cfg.model.keywords(), data=cfg.data("width_length"), lr_fraction=wl.lr_fraction,
                  steps=wl.steps, checkpoints=wl.checkpoints, length=T, backend=backend)
    return {width_law.wl_name(sw, T, n, s): dict(common, sigma_w=sw, width=n, seed_index=s)
            for sw in sigma_ws for n in wl.widths_at(T) for s in range(wl.seeds)}


def _uncertainty_tasks(cfg: RegimeConfig, backend):
    u = cfg.uncertainty
    common = dict(model=cfg.model.keywords(), data=cfg.data("uncertainty"),
                  lr_fraction=u.lr_fraction, steps=u.steps, backend=backend)
    return {width_law.u_name(sw, T, n, m): dict(common, sigma_w=sw, width=n, length=T, member=m)
            for sw in u.sigma_w for T in u.lengths for n in u.widths_at(T) for m in range(u.members)}


@register("regime", "distance of finite Elman RNNs from the kernel regime (width-length law, uncertainty, NTK vs "
          "muP, forgetting)", config=RegimeConfig, parallel=True, backends=True)
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
    options = dict(workers=workers, scheduler=scheduler, progress=progress)
    with StudyFolder(out, "regime", cfg, overwrite=overwrite) as folder:
        wl, u, pa, co, seed = cfg.width_length, cfg.uncertainty, cfg.parameterisation, cfg.continual, cfg.sweep.seed

        # width x length, in rounds of lengths: a sigma_w whose gap stays above abandon_above is dropped
        runs, in_play, ran, abandoned = {}, list(wl.sigma_w), {sw: [] for sw in wl.sigma_w}, {}
        for T in wl.lengths:
            if not in_play:
                break
            runs.update(run_tasks(width_law.width_length_run, _width_length_tasks(cfg, T, in_play, backend),
                                  folder.runs, desc=f"width x length, T = {T}", **options))
            for sw in list(in_play):
                ran[sw].append(T)
                widest = wl.widths_at(T)[-1]
                if T < wl.lengths[-1] and np.mean([np.max(runs[width_law.wl_name(sw, T, widest, s)]["discrete_gap"])
                                                   for s in range(wl.seeds)]) > wl.abandon_above:
                    in_play.remove(sw)
                    abandoned[sw] = T
        chis = {sw: width_law.order_parameter(replace(cfg.model.architecture(), sigma_w=sw)) for sw in wl.sigma_w}
        law = width_law.analyse_width_length(wl, runs, ran, seed)

        members = run_tasks(width_law.uncertainty_run, _uncertainty_tasks(cfg, backend), folder.runs,
                            desc="uncertainty ensembles", **options)
        outputs = {(sw, T, n): np.stack([members[width_law.u_name(sw, T, n, m)]["outputs"] for m in range(u.members)])
                   for sw in u.sigma_w for T in u.lengths for n in u.widths_at(T)}
        uncertainty = width_law.analyse_uncertainty(u, cfg.model.keywords(), cfg.data("uncertainty"), outputs, seed)

        tasks, continual = _tasks(cfg, backend)
        runs = run_tasks(regime_run, tasks, folder.runs, desc="parameterisation runs", **options)
        runs.update(run_tasks(continual_run, continual, folder.runs, desc="continual runs", **options))

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

        for v in law.values():  # the replicates served the intervals; the report keeps the intervals
            for c in v["lengths"].values():
                for x in c["crossings"].values():
                    x.pop("replicates")
        report = dict(study="regime", config=cfg.as_dict(), chi_1=chis, width_length=law, abandoned=abandoned,
                      uncertainty=uncertainty, parameterisation=param, continual=forgetting,
                      seconds=time.perf_counter() - start)
        plt = pyplot()
        width_law.figure_width_length(plt, folder.path / "width_length.png", wl, law, chis)
        width_law.figure_uncertainty(plt, folder.path / "uncertainty.png", u, uncertainty)
        _figures(plt, folder.path, cfg, param, forgetting)
        return write_report(folder, report, _markdown(report, cfg, chis, abandoned), start)


def _figures(plt, out, cfg, param, forgetting):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for p, style in (("ntk", "o-"), ("mup", "s--")):
        axes[0].plot(param[p]["widths"], param[p]["mean"], style,
                     label=f"{p}: slope {param[p]['rate']['slope']:.2f} "
                           f"[{param[p]['rate']['ci_low']:.2f}, {param[p]['rate']['ci_high']:.2f}]")
    axes[0].set(xscale="log", yscale="log", xlabel="width n", ylabel="kernel distance S(G_0, G_T)",
                title=f"NTK vs muP (T = {cfg.parameterisation.length}, {cfg.parameterisation.seeds} seeds)")
    width_ticks(axes[0], param["ntk"]["widths"])
    legend(axes[0], fontsize=8)
    for (regime, v), color in zip(forgetting.items(), ("C0", "C3")):
        w = [r["width"] for r in v["rows"]]
        m = np.array([r["mean"] for r in v["rows"]])
        lo, hi = np.array([r["ci_low"] for r in v["rows"]]), np.array([r["ci_high"] for r in v["rows"]])
        axes[1].errorbar(w, m, yerr=[m - lo, hi - m], marker="o", capsize=3, color=color,
                         label=f"{regime} ({v['steps']} steps per task)")
        axes[1].plot(w, [r["kernel_prediction"] for r in v["rows"]], ls=":", color=color,
                     label=f"{regime}: kernel-regime prediction")
    axes[1].set(xscale="log", xlabel="width n", ylabel="forgetting of A (held-out loss after B - after A)",
                title=f"continual learning, T = {cfg.continual.length}, {cfg.continual.seeds} seeds, 95% CI")
    widths = sorted({r["width"] for v in forgetting.values() for r in v["rows"]})
    if widths:
        width_ticks(axes[1], widths)
    legend(axes[1], fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "regime.png", dpi=120)
    plt.close(fig)


def _markdown(report, cfg, chis, abandoned) -> str:
    lines = ["# Regime study: distance of Elman RNNs from the kernel regime", "",
             "![width-length law](width_length.png)", ""]
    lines += width_law.markdown_width_length(cfg.width_length, report["width_length"], chis, abandoned)
    lines += ["![uncertainty](uncertainty.png)", ""]
    lines += width_law.markdown_uncertainty(cfg.uncertainty, report["uncertainty"])
    lines += [f"Parameterisation and continual parts: full-batch GD (lr {cfg.training.lr}, {cfg.training.steps} "
              f"steps) on {cfg.training.n_train} windows of the delay1 chain.", "", "## NTK versus muP", ""]
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
