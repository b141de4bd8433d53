"""Regime study: how wide must an RNN be for its kernel limit to hold, and how does that grow with T?

Two parts, each a grid of independent (width, length or parameterisation, seed) runs on the Dask
runner of :mod:`meanfield.sweep` (resume, seeds from ``SeedSequence`` by run index):

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
from importlib import resources
from pathlib import Path

import numpy as np

from solvers.ode import LinearKernelFlow

from ..convergence import fit_rate
from ..data import make_task
from ..diagnostics import track_training
from ..elman import ElmanRNN
from ..kernels import rntk
from ..report import pyplot, software_versions, write_json
from ..sweep import load_result, run_tasks
from .convergence import ConfigError, tomllib


def load_config(path=None, quick=False) -> dict:
    """The regime config as a flat dict (default: the shipped one), validated."""
    text = (resources.files("meanfield.studies").joinpath("regime_default.toml").read_text() if path is None
            else Path(path).read_text())
    try:
        raw = tomllib.loads(text)
        cfg = {**raw["model"], **raw["training"], "seed": raw["sweep"]["seed"],
               "wl_widths": raw["width_length"]["widths"], "lengths": raw["width_length"]["lengths"],
               "wl_seeds": raw["width_length"]["seeds"], "tolerance": raw["width_length"]["tolerance"],
               "p_widths": raw["parameterisation"]["widths"], "p_length": raw["parameterisation"]["length"],
               "p_seeds": raw["parameterisation"]["seeds"], "c_widths": raw["continual"]["widths"],
               "c_length": raw["continual"]["length"], "c_seeds": raw["continual"]["seeds"],
               "early_steps": raw["continual"]["early_steps"], "converged_steps": raw["continual"]["converged_steps"]}
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config {path or 'default'} is not valid TOML: {err}") from None
    except KeyError as err:
        raise ConfigError(f"config field {err}: missing (see the shipped regime_default.toml)") from None
    if quick:
        q = raw.get("quick", {})
        cfg.update(wl_widths=q.get("width_length_widths", cfg["wl_widths"]), lengths=q.get("lengths", cfg["lengths"]),
                   p_widths=q.get("parameterisation_widths", cfg["p_widths"]),
                   c_widths=q.get("continual_widths", cfg["c_widths"]),
                   converged_steps=q.get("converged_steps", cfg["converged_steps"]),
                   wl_seeds=q.get("seeds", cfg["wl_seeds"]), p_seeds=q.get("seeds", cfg["p_seeds"]),
                   c_seeds=q.get("seeds", cfg["c_seeds"]))
    for key in ("wl_widths", "p_widths", "c_widths", "lengths"):
        values = cfg[key]
        if not values or any((not isinstance(v, int)) or v < 1 for v in values) or any(
                b <= a for a, b in zip(values, values[1:])):
            raise ConfigError(f"config field '{key}': must be increasing positive integers, got {values!r}")
    for key in ("lr", "tolerance"):
        if not (isinstance(cfg[key], (int, float)) and cfg[key] > 0):
            raise ConfigError(f"config field '{key}': must be > 0, got {cfg[key]!r}")
    return cfg


def _windows(cfg, T):
    """Train and held-out windows of length T from the delay1 chain, with their targets."""
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(cfg["seed"], spawn_key=(10**6 + T,)))
    ws = task.chain.sample_windows(T, cfg["n_train"] + cfg["n_heldout"], rng=rng)
    X = list(ws.values)
    y = task.conditional_mean(ws)
    n = cfg["n_train"]
    return X[:n], y[:n], X[n:]


def regime_run(config: dict, part: str, width: int, length: int, parameterisation: str, index: int) -> dict:
    """One run: train an Elman RNN and record the diagnostics."""
    X, y, X_held = _windows(config, length)
    kw = dict(activation=config["activation"], sigma_w=config["sigma_w"], sigma_u=config["sigma_u"],
              sigma_b=config["sigma_b"])
    net = ElmanRNN(width, 1, parameterisation=parameterisation, seed=np.random.SeedSequence(config["seed"],
                                                                                           spawn_key=(index,)), **kw)
    K = K_cross = None
    if part == "width_length":  # the infinite-width prediction
        K, K_cross = rntk(X, **kw), rntk(X_held, X, **kw)
    start = time.perf_counter()
    d = track_training(net, X, y, X_held, lr=config["lr"], steps=config["steps"],
                       checkpoints=config["checkpoints"], K=K, K_cross=K_cross, kernels=part == "parameterisation")
    return dict(**d.as_dict(), width=width, length=length, index=index, seconds=time.perf_counter() - start)


def continual_run(config: dict, width: int, steps: int, index: int) -> dict:
    """Task A then task B on the same windows: measured and kernel-predicted forgetting of A."""
    T = config["c_length"]
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(config["seed"], spawn_key=(2 * 10**6 + T,)))
    values = task.chain.sample_windows(T, config["n_train"] + config["n_heldout"], rng=rng).values
    n = config["n_train"]
    y_a, y_b = values[:, -2, 0], values[:, -3, 0]  # recall x_{-1}, then x_{-2}
    X, X_held = list(values[:n]), list(values[n:])
    kw = dict(activation=config["activation"], sigma_w=config["sigma_w"], sigma_u=config["sigma_u"],
              sigma_b=config["sigma_b"])
    net = ElmanRNN(width, 1, seed=np.random.SeedSequence(config["seed"], spawn_key=(index,)), **kw)
    f0_train, f0_held = net(X), net(X_held)

    def loss_a(f_held):
        return 0.5 * float(np.mean((f_held - y_a[n:]) ** 2))

    net.train(X, y_a[:n], config["lr"], steps, record_every=steps + 1)
    after_a = loss_a(net(X_held))
    net.train(X, y_b[:n], config["lr"], steps, record_every=steps + 1)
    after_b = loss_a(net(X_held))
    # kernel regime: the flow for A, then the flow for B started where A ended (RNTK, own f_0)
    K, K_cross = rntk(X, **kw), rntk(X_held, X, **kw)
    t = config["lr"] * steps
    w = np.full(n, 1.0 / n)
    flow_a = LinearKernelFlow(K, w, y_a[:n], 1.0, f0_train)
    fa_train, fa_held = flow_a.on_grid([t])[0], flow_a.at([t], K_cross, f0_held)[0]
    fb_held = LinearKernelFlow(K, w, y_b[:n], 1.0, fa_train).at([t], K_cross, fa_held)[0]
    return dict(width=width, steps=steps, index=index, loss_a_after_a=after_a, loss_a_after_b=after_b,
                forgetting=after_b - after_a, kernel_forgetting=loss_a(fb_held) - loss_a(fa_held))


def _tasks(cfg):
    tasks = {}
    index = 0
    for T in cfg["lengths"]:
        for n in cfg["wl_widths"]:
            for s in range(cfg["wl_seeds"]):
                tasks[f"wl_T{T}_n{n}_s{s}"] = dict(config=cfg, part="width_length", width=n, length=T,
                                                    parameterisation="ntk", index=index)
                index += 1
    for param in ("ntk", "mup"):
        for n in cfg["p_widths"]:
            for s in range(cfg["p_seeds"]):
                tasks[f"p_{param}_n{n}_s{s}"] = dict(config=cfg, part="parameterisation", width=n,
                                                      length=cfg["p_length"], parameterisation=param, index=index)
                index += 1
    continual = {}
    for regime in ("early", "converged"):
        for n in cfg["c_widths"]:
            for s in range(cfg["c_seeds"]):
                continual[f"cl_{regime}_n{n}_s{s}"] = dict(config=cfg, width=n, steps=cfg[f"{regime}_steps"],
                                                           index=index)
                index += 1
    return tasks, continual


def _interval(values, level=0.95, n_boot=2000, seed=0):
    """Mean and percentile bootstrap interval of the mean."""
    values = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(values.mean()), float(lo), float(hi)


def _exponent(lengths, smallest):
    """Least-squares slope of log(smallest width) on log(T) over the lengths where one was found."""
    found = [(T, w) for T, w in zip(lengths, smallest) if w is not None]
    if len(found) < 2:
        return None
    return float(np.polyfit(np.log([T for T, _ in found]), np.log([w for _, w in found]), 1)[0])


def _width_exponent(cfg, table, n_boot=1000):
    """Exponent of the smallest width in T, with a bootstrap interval over the seeds.

    The point estimate uses each T's smallest width whose 95% upper bound is under the tolerance. Each
    bootstrap replicate resamples the seeds of every (T, width) cell and takes the smallest width whose
    resampled mean is under the tolerance.
    """
    point = _exponent(cfg["lengths"], [table[T]["smallest_width"] for T in cfg["lengths"]])
    rng = np.random.default_rng(cfg["seed"])
    reps = []
    for _ in range(n_boot):
        smallest = []
        for T in cfg["lengths"]:
            ok = [r["width"] for r in table[T]["rows"]
                  if np.mean(rng.choice(r["gaps"], len(r["gaps"]))) < cfg["tolerance"]]
            smallest.append(ok[0] if ok else None)
        e = _exponent(cfg["lengths"], smallest)
        if e is not None:
            reps.append(e)
    interval = [float(q) for q in np.quantile(reps, [0.025, 0.975])] if len(reps) > n_boot // 2 else None
    return dict(exponent=point, ci=interval, replicates_with_estimate=len(reps))


def run_regime(cfg: dict, out, *, workers=None, scheduler=None, progress=True) -> Path:
    """Run (or resume) the regime study into ``out``; return the path of report.md."""
    start = time.perf_counter()
    out = Path(out)
    tasks, continual = _tasks(cfg)
    paths = run_tasks(regime_run, tasks, out / "runs", workers=workers, scheduler=scheduler,
                      progress=progress, desc="regime runs")
    paths.update(run_tasks(continual_run, continual, out / "runs", workers=workers, scheduler=scheduler,
                           progress=progress, desc="continual runs"))
    runs = {name: load_result(p) for name, p in paths.items()}

    # width x length: the gap (max over checkpoints) per seed; smallest width under the tolerance
    table = {}
    for T in cfg["lengths"]:
        rows = []
        for n in cfg["wl_widths"]:
            gaps = [float(np.max(runs[f"wl_T{T}_n{n}_s{s}"]["prediction_gap"])) for s in range(cfg["wl_seeds"])]
            mean, lo, hi = _interval(gaps, seed=cfg["seed"])
            rows.append(dict(width=n, gaps=gaps, mean=mean, ci_low=lo, ci_high=hi))
        ok = [r["width"] for r in rows if r["ci_high"] < cfg["tolerance"]]
        table[T] = dict(rows=rows, smallest_width=ok[0] if ok else None)
    exponent = _width_exponent(cfg, table)
    gap_rates = {T: fit_rate(cfg["wl_widths"], [r["gaps"] for r in table[T]["rows"]], seed=cfg["seed"]).as_dict()
                 for T in cfg["lengths"]}

    # parameterisation: kernel distance after training against the width
    param = {}
    for p in ("ntk", "mup"):
        dists = [[float(runs[f"p_{p}_n{n}_s{s}"]["kernel_distance"][-1]) for s in range(cfg["p_seeds"])]
                 for n in cfg["p_widths"]]
        dists_pos = [np.maximum(d, 1e-300) for d in dists]
        param[p] = dict(widths=cfg["p_widths"], distance=dists, mean=[float(np.mean(d)) for d in dists],
                        rate=fit_rate(cfg["p_widths"], dists_pos, seed=cfg["seed"]).as_dict(),
                        weight_change=[float(np.mean([runs[f"p_{p}_n{n}_s{s}"]["weight_change"][-1]
                                                      for s in range(cfg["p_seeds"])])) for n in cfg["p_widths"]],
                        stability_constant=[float(np.mean([runs[f"p_{p}_n{n}_s{s}"]["stability_constant"]
                                                           for s in range(cfg["p_seeds"])])) for n in cfg["p_widths"]])

    forgetting = {}
    for regime in ("early", "converged"):
        rows = []
        for n in cfg["c_widths"]:
            rs = [runs[f"cl_{regime}_n{n}_s{s}"] for s in range(cfg["c_seeds"])]
            mean, lo, hi = _interval([r["forgetting"] for r in rs], seed=cfg["seed"])
            rows.append(dict(width=n, forgetting=[r["forgetting"] for r in rs], mean=mean, ci_low=lo, ci_high=hi,
                             kernel_prediction=float(np.mean([r["kernel_forgetting"] for r in rs])),
                             loss_a_after_a=float(np.mean([r["loss_a_after_a"] for r in rs]))))
        forgetting[regime] = dict(steps=cfg[f"{regime}_steps"], rows=rows)

    report = dict(study="regime", config=cfg, versions=software_versions(),
                  width_length={str(T): v for T, v in table.items()}, exponent=exponent,
                  gap_rates={str(T): r for T, r in gap_rates.items()}, parameterisation=param,
                  continual=forgetting, seconds=time.perf_counter() - start)
    _figures(out, cfg, table, param, forgetting)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(_markdown(report, cfg))
    return out / "report.md"


def _figures(out, cfg, table, param, forgetting):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.3))
    for T, v in table.items():
        w = [r["width"] for r in v["rows"]]
        m = np.array([r["mean"] for r in v["rows"]])
        lo, hi = np.array([r["ci_low"] for r in v["rows"]]), np.array([r["ci_high"] for r in v["rows"]])
        axes[0].errorbar(w, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=f"T = {T}")
    axes[0].axhline(cfg["tolerance"], color="k", ls=":", label=f"tolerance {cfg['tolerance']}")
    axes[0].set(xscale="log", yscale="log", xlabel="width n",
                ylabel="max_t gap to the RNTK flow / its movement",
                title=f"Elman RNN ({cfg['activation']}) vs kernel flow, {cfg['wl_seeds']} seeds, 95% CI")
    axes[0].legend(fontsize=8)
    for p, style in (("ntk", "o-"), ("mup", "s--")):
        axes[1].plot(param[p]["widths"], param[p]["mean"], style,
                     label=f"{p}: slope {param[p]['rate']['slope']:.2f} "
                           f"[{param[p]['rate']['ci_low']:.2f}, {param[p]['rate']['ci_high']:.2f}]")
    axes[1].set(xscale="log", yscale="log", xlabel="width n", ylabel="kernel distance S(G_0, G_T)",
                title=f"NTK vs muP (T = {cfg['p_length']}, {cfg['p_seeds']} seeds)")
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
                title=f"continual learning, T = {cfg['c_length']}, {cfg['c_seeds']} seeds, 95% CI")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "regime.png", dpi=120)
    plt.close(fig)


def _markdown(report, cfg) -> str:
    lines = ["# Regime study: distance of Elman RNNs from the kernel regime", "",
             f"Full-batch GD (lr {cfg['lr']}, {cfg['steps']} steps) on {cfg['n_train']} windows of the delay1 chain; "
             f"gap = max over checkpoints of |f_net - f_flow| / max |f_flow - f_0| on {cfg['n_heldout']} held-out "
             f"windows, f_flow from the RNTK kernel flow.", "",
             "## Width x length", "", "| T | " + " | ".join(f"n={n}" for n in cfg["wl_widths"])
             + " | smallest width with gap < " + f"{cfg['tolerance']} |",
             "|---|" + "---|" * (len(cfg["wl_widths"]) + 1)]
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
              "| regime | " + " | ".join(f"n={n}" for n in cfg["c_widths"]) + " |",
              "|---|" + "---|" * len(cfg["c_widths"])]
    for regime, v in report["continual"].items():
        cells = [f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] (kernel {r['kernel_prediction']:.3f})"
                 for r in v["rows"]]
        lines.append(f"| {regime} ({v['steps']} steps) | " + " | ".join(cells) + " |")
    lines += ["", "![regime](regime.png)", ""]
    return "\n".join(lines)
