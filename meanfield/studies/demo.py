"""Simulator demo: train diagonal RNNs of a few widths on a task and plot f^N_t on probe windows.

It shows what the simulator does in a few seconds: outputs that start at 0 (symmetric
initialisation) and, as N grows, trajectories that become smooth and seed-independent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import make_task
from ..report import pyplot, software_versions, write_json
from ..rnn import DiagonalRNN, train_online


def run_demo(out, task_name="parity2", widths=(256, 1024, 4096), alpha=5.0, horizon=2.0, window=6,
             n_records=40, seed=0, progress=True) -> Path:
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    task = make_task(task_name)
    probes = task.chain.sample_windows(window, 4, rng=seed)
    targets = task.conditional_mean(probes)
    results = {}
    for i, N in enumerate(widths):
        model = DiagonalRNN(N, task.input_dim, seed=[seed, i])
        res = train_online(model, task, horizon, alpha, probes, n_records=n_records, seed=[seed, i, 1],
                           progress=progress)
        res.save(out / "runs" / f"N{N}.npz")
        results[N] = res

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(widths)))
    for color, (N, res) in zip(colors, results.items()):
        for p in range(probes.values.shape[0]):
            axes[0].plot(res.times, res.outputs[:, p], color=color, lw=1, label=f"N = {N}" if p == 0 else None)
        axes[1].plot(res.times, res.probe_loss(targets), color=color, label=f"N = {N}")
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

    report = dict(study="demo", config=dict(task=task_name, widths=list(widths), alpha=alpha, horizon=horizon,
                                            window=window, n_records=n_records, seed=seed),
                  versions=software_versions(),
                  final_probe_loss={str(N): float(r.probe_loss(targets)[-1]) for N, r in results.items()})
    write_json(out / "report.json", report)
    lines = [f"# Simulator demo ({task_name})", "",
             f"Diagonal RNNs of widths {list(widths)} trained by online SGD (alpha = {alpha}, horizon T = {horizon},"
             f" seed {seed}); outputs on {len(targets)} probe windows of length {window}.", "",
             "![outputs and probe loss](demo.png)", "", "| N | probe loss at T |", "|---|---|"]
    lines += [f"| {N} | {r.probe_loss(targets)[-1]:.4f} |" for N, r in results.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
