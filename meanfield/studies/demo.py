"""Simulator demo: train diagonal RNNs of a few widths on a task and plot f^N_t on probe windows.

It shows what the simulator does in a few seconds: outputs that start at 0 (symmetric
initialisation) and, as N grows, trajectories that become smooth and seed-independent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checks
from ..architectures.diagonal import Diagonal, train_online
from ..architectures.diagonal.network import training_seconds
from ..data import TASK_NAMES, make_task
from ..report import pyplot
from .framework import (
    RUN_SECONDS,
    Config,
    Section,
    StudyFolder,
    check_diagonal_sweep,
    refuse_if_larger,
    register,
    run_tasks,
    spec,
    write_report,
)


@dataclass(frozen=True)
class DemoSection(Section, name="demo"):
    task: str = spec(checks.choice, options=TASK_NAMES)
    widths: tuple = spec(checks.integer_list, minimum=2, increasing=True)
    alpha: float = spec(checks.positive)
    horizon: float = spec(checks.positive)
    window: int = spec(checks.integer, minimum=2, maximum=16)
    probes: int = spec(checks.integer, minimum=1, maximum=64)
    n_records: int = spec(checks.integer, minimum=1)
    seed: int = spec(checks.integer, minimum=0)


@dataclass(frozen=True)
class DemoConfig(Config):
    """The demo's settings (``meanfield/studies/demo_default.toml``; the CLI's options override them)."""

    DEFAULT = "demo_default.toml"
    demo: DemoSection

    def validate(self):
        d = self.demo
        check_diagonal_sweep(d.widths, d.horizon, d.n_records, "demo", "demo")

    def check_size(self, memory_bytes):
        refuse_if_larger("demo.widths", 8.0 * 16 * self.demo.widths[-1], memory_bytes,
                         f"a network of width {self.demo.widths[-1]}")

    SIZE_FIELDS = ("demo.widths", "demo.horizon")

    def estimated_seconds(self):
        d = make_task(self.demo.task).input_dim
        return sum(training_seconds(N, d, self.demo.horizon) + RUN_SECONDS for N in self.demo.widths)


def _arguments(parser):
    parser.add_argument("--task", choices=TASK_NAMES, help="named task (default: parity2)")
    parser.add_argument("--alpha", type=float, help="learning-rate constant alpha (rate alpha/N; default 5)")
    parser.add_argument("--horizon", type=float, help="training time T (T*N steps; default 2)")
    parser.add_argument("--seed", type=int)


def _overrides(args):
    return {f"demo.{k}": getattr(args, k) for k in ("task", "alpha", "horizon", "seed") if getattr(args, k) is not None}


def demo_run(config: dict, width: int, index: int) -> dict:
    """Train one width; the outputs on the probes at the record times."""
    d = DemoConfig.from_dict(config).demo
    task = make_task(d.task)
    probes = task.chain.sample_windows(d.window, d.probes, rng=d.seed)
    model = Diagonal().network(width, task.input_dim, seed=[d.seed, index])
    res = train_online(model, task, d.horizon, d.alpha, probes, n_records=d.n_records, seed=[d.seed, index, 1],
                       progress=False, allow_long=True)  # the study's estimate was checked
    return dict(times=res.times, outputs=res.outputs, losses=res.losses, steps=res.steps)


@register("demo", "train a few widths and plot their outputs (a quick look at the simulator)", config=DemoConfig,
          arguments=_arguments, overrides=_overrides)
def run_demo(cfg: DemoConfig, out, *, progress=True, overwrite=False) -> Path:
    start = time.perf_counter()
    d = cfg.demo
    task_name, widths, alpha, horizon, seed = d.task, d.widths, d.alpha, d.horizon, d.seed
    task = make_task(task_name)
    probes = task.chain.sample_windows(d.window, d.probes, rng=seed)
    targets = task.conditional_mean(probes)
    with StudyFolder(out, "demo", cfg, overwrite=overwrite) as folder:
        tasks = {f"N{N}": dict(config=cfg.as_dict(), width=N, index=i) for i, N in enumerate(widths)}
        runs = run_tasks(demo_run, tasks, folder.runs, workers=0, progress=progress, desc="widths")
        results = {N: runs[f"N{N}"] for N in widths}
        loss = {N: 0.5 * np.mean((r["outputs"] - targets) ** 2, axis=1) for N, r in results.items()}
        out = folder.path
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        colors = plt.cm.viridis(np.linspace(0, 0.85, len(widths)))
        for color, (N, res) in zip(colors, results.items()):
            for p in range(probes.values.shape[0]):
                axes[0].plot(res["times"], res["outputs"][:, p], color=color, lw=1,
                             label=f"N = {N}" if p == 0 else None)
            axes[1].plot(res["times"], loss[N], color=color, label=f"N = {N}")
        for y in targets:
            axes[0].axhline(y, color="grey", lw=0.5, ls=":")
        axes[0].set(xlabel="training time t = k/N", ylabel="f^N_t(probe)",
                    title=f"{task_name}: outputs on {len(targets)} probe windows (dotted: ybar)")
        axes[1].set(xlabel="training time t = k/N", ylabel="probe loss", title=f"alpha = {alpha}, seed = {seed}")
        axes[0].legend()
        axes[1].legend()
        fig.tight_layout()
        fig.savefig(out / "demo.png", dpi=120)
        plt.close(fig)

        report = dict(study="demo", config=cfg.as_dict(),
                      final_probe_loss={str(N): float(v[-1]) for N, v in loss.items()})
        lines = [f"# Simulator demo ({task_name})", "",
                 f"Diagonal RNNs of widths {list(widths)} trained by online SGD (alpha = {alpha}, horizon T = "
                 f"{horizon},"
                 f" seed {seed}); outputs on {len(targets)} probe windows of length {d.window}.", "",
                 "![outputs and probe loss](demo.png)", "", "| N | probe loss at T |", "|---|---|"]
        lines += [f"| {N} | {v[-1]:.4f} |" for N, v in loss.items()]
        return write_report(folder, report, "\n".join(lines) + "\n", start)
