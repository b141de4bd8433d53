"""The width-length law of Elman RNNs and [WDK]'s uncertainty claim: two parts of the regime study
(``theory_notes/regime.md`` sections 3, 6 and 7).

Width x length. For each sigma_w (below, at and above the edge of chaos) and each length T, Elman RNNs of a
grid of widths are trained by full-batch GD with step lr = lr_fraction M / lambda_max(Theta) (Theta: the RNTK
of the M training windows, so every setting trains at the same fraction of its stability limit). The gap is
the relative distance on held-out windows to GD on the linearised network with the RNTK and the same step
(:func:`meanfield.diagnostics.track_training`'s discrete gap: no discretisation floor), maximised over the
checkpoints. For each tolerance, the crossing width n*(T) is where the seed-mean gap falls below it: located
between two grid widths and solved on the power law of the widths around it ("measured"), or, past the grid,
read off the asymptotic law gap ~ n^-1/2 from the widest width ("extrapolated", a lower bound). Its 95% interval
resamples the seeds (bootstrap). Then n*(T) ~ C T^gamma and ~ C exp(kappa T), by least squares of log n*, each
with its bootstrap interval and residuals.

Lengths run in rounds, shortest first: a sigma_w whose gap at the widest width of a length is above
``abandon_above`` is not run at longer lengths, whose crossings are out of reach.

Uncertainty. An ensemble of ``members`` networks per (length, width), trained from independent
initialisations, against the NTK-Gaussian-process law of the infinite-width ensemble
(:func:`meanfield.diagnostics.ntk_gp`): the mean offset, the variance ratio and the GP's coverage of the
members (does the GP's uncertainty describe the finite ensemble?), and the calibration of both on the held-out
targets (coverage of the nominal interval, Gaussian negative log-likelihood).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, stats

from .. import checks
from ..architectures.elman import Elman
from ..data import make_task
from ..diagnostics import ntk_gp, track_training
from ..report import legend
from ..stats import fit_rate, mean_interval
from .framework import Section, spec

N_BOOT = 1000
LOCAL = 4.0  # a measured crossing is solved on the power law of the widths within this factor of it
FLAT = -0.05  # ... unless that power law is flatter than n^FLAT
# "the GP describes the ensemble": mean offset |mean_ens - mean_GP| / sd_GP at most OFFSET (with E members its floor
# under exact agreement is sqrt(2 / (pi E)), 0.14 for 32) and variance ratio ensemble / GP within a factor RATIO
OFFSET, RATIO = 0.25, 1.5


class _CostCap:
    def widths_at(self, T) -> tuple:
        """The grid widths run at length T: those with T n^2 <= max_cost."""
        return tuple(n for n in self.widths if T * n * n <= self.max_cost)


@dataclass(frozen=True)
class WidthLengthSection(_CostCap, Section, name="width_length"):
    sigma_w: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True, increasing=True)
    lengths: tuple = spec(checks.integer_list, minimum=2, min_length=2, increasing=True)
    widths: tuple = spec(checks.integer_list, minimum=1, min_length=2, increasing=True)
    max_cost: float = spec(checks.positive)  # T n^2 of the widest network run at length T
    seeds: int = spec(checks.integer, minimum=2)
    tolerances: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True, increasing=True)
    lr_fraction: float = spec(checks.real, minimum=0, maximum=1.9, exclusive_minimum=True)
    steps: int = spec(checks.integer, minimum=1)
    checkpoints: int = spec(checks.integer, minimum=1)
    abandon_above: float = spec(checks.positive)


@dataclass(frozen=True)
class UncertaintySection(_CostCap, Section, name="uncertainty"):
    sigma_w: tuple = spec(checks.real_list, minimum=0, exclusive_minimum=True, increasing=True)
    lengths: tuple = spec(checks.integer_list, minimum=2, increasing=True)
    widths: tuple = spec(checks.integer_list, minimum=1, min_length=2, increasing=True)
    max_cost: float = spec(checks.positive)
    members: int = spec(checks.integer, minimum=3)
    n_train: int = spec(checks.integer, minimum=2)
    n_heldout: int = spec(checks.integer, minimum=2)
    lr_fraction: float = spec(checks.real, minimum=0, maximum=1.9, exclusive_minimum=True)
    steps: int = spec(checks.integer, minimum=1)
    level: float = spec(checks.real, minimum=0, maximum=1, exclusive_minimum=True)


def windows(seed, length, n_train, n_heldout, stream):
    """Training windows, their targets and held-out windows of the delay1 chain (target: the previous input)."""
    task = make_task("delay1", noise_std=0.0)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream * 10**6 + length,)))
    ws = task.chain.sample_windows(length, n_train + n_heldout, rng=rng)
    X, y = list(ws.values), task.conditional_mean(ws)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def learning_rate(ntk_train, lr_fraction) -> float:
    """lr_fraction M / lambda_max: GD on the kernel flow is stable for lr_fraction < 2."""
    return float(lr_fraction * ntk_train.shape[0] / np.linalg.eigvalsh(ntk_train)[-1])


def order_parameter(arch: Elman, input_square=1.0) -> float:
    """chi_1 = sigma_w^2 E[phi'(g)^2] at the stationary variance q = sigma_w^2 E[phi(g)^2] + sigma_u^2 x^2 + sigma_b^2
    (inputs of square ``input_square``): below 1 two states driven by the same inputs converge (ordered), above 1
    they separate (chaotic). Adaptive quadrature over g ~ N(0, q), and Brent's method for q."""
    act, base = arch.act, arch.sigma_u**2 * input_square + arch.sigma_b**2

    def gaussian_mean(f, q):
        return integrate.quad(lambda z: f(math.sqrt(q) * z) * math.exp(-z * z / 2), -np.inf, np.inf,
                              epsabs=0, epsrel=1e-13)[0] / math.sqrt(2 * math.pi)

    def excess(q):
        return arch.sigma_w**2 * gaussian_mean(lambda g: act(g) ** 2, q) + base - q

    hi = base + arch.sigma_w**2 * (act.sup_value**2 if act.bounded else 1.0) + 1.0
    while excess(hi) > 0:  # unbounded activations: the variance may have no fixed point
        hi *= 2
        if hi > 1e12:
            raise ValueError(f"sigma_w = {arch.sigma_w:g}: the stationary variance of {act.name} diverges")
    lo = base if base > 0 else 1e-12  # without inputs q = 0 is a fixed point; the stable one may be above it
    q = optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=1e-15) if excess(lo) > 0 else base
    return float(arch.sigma_w**2 * gaussian_mean(lambda g: act.derivative(g) ** 2, q))


# -- runs (module level: they go to worker processes) -------------------------------------------------------

def width_length_run(model: dict, sigma_w, data: dict, lr_fraction, steps, checkpoints, width, length, seed_index,
                     backend="numba") -> dict:
    """One network of the width x length grid: its gaps to the RNTK's GD map (discrete) and flow, per checkpoint."""
    X, y, X_held, _ = windows(length=length, **data)
    arch = Elman(**model, sigma_w=sigma_w)
    K, K_cross = arch.kernel(X).ntk, arch.kernel(X_held, X).ntk
    lr = learning_rate(K, lr_fraction)
    net = arch.network(width, 1, seed=np.random.SeedSequence(data["seed"], spawn_key=(3, length, width, seed_index)))
    start = time.perf_counter()
    try:
        d = track_training(net, X, y, X_held, lr=lr, steps=steps, checkpoints=checkpoints, K=K, K_cross=K_cross,
                           kernels=False, options=dict(backend=backend))
    except FloatingPointError:  # a narrow network whose own NTK is far above the limit's: GD diverged
        return dict(discrete_gap=[np.inf], flow_gap=[np.inf], lr=lr, seconds=time.perf_counter() - start)
    return dict(discrete_gap=d.discrete_gap, flow_gap=d.prediction_gap, lr=lr, seconds=time.perf_counter() - start)


def uncertainty_run(model: dict, sigma_w, data: dict, lr_fraction, steps, width, length, member,
                    backend="numba") -> dict:
    """One member of an ensemble: its outputs on the held-out windows after training."""
    X, y, X_held, _ = windows(length=length, **data)
    arch = Elman(**model, sigma_w=sigma_w)
    lr = learning_rate(arch.kernel(X).ntk, lr_fraction)
    net = arch.network(width, 1, seed=np.random.SeedSequence(data["seed"], spawn_key=(4, length, width, member)))
    net.train(X, y, lr, steps, record_every=steps + 1, backend=backend)
    return dict(outputs=net(X_held, backend=backend), lr=lr)


# -- the crossing widths and their law -----------------------------------------------------------------------

def crossing(widths, means, tolerance):
    """(n*, status): the width where the gap ``means`` (one per width, falling) crosses ``tolerance``.

    "measured": the first crossing from above, located between two grid widths, then solved on the power law
    fitted (least squares in log-log) to the widths within a factor LOCAL of it, which averages the noise of
    neighbouring widths (log-log interpolation if that fit is flatter than n^FLAT);
    "extrapolated": past the widest width, with the asymptotic law gap ~ n^-1/2 from there (n* = n (gap/tol)^2:
    a lower bound while the measured slope is shallower than -1/2);
    "below the grid": under the tolerance at the smallest width, the same law from there.
    """
    logn, logm, logt = np.log(widths), np.log(means), math.log(tolerance)
    below = np.flatnonzero(logm < logt)
    if below.size and below[0] > 0:
        i = below[0]
        frac = (logm[i - 1] - logt) / (logm[i - 1] - logm[i])
        located = logn[i - 1] + frac * (logn[i] - logn[i - 1])
        near = np.abs(logn - located) <= math.log(LOCAL)
        slope, intercept = np.polyfit(logn[near], logm[near], 1)
        return float(np.exp((logt - intercept) / slope if slope < FLAT else located)), "measured"
    i, status = (0, "below the grid") if below.size else (-1, "extrapolated")
    return float(np.exp(logn[i] + 2 * (logm[i] - logt))), status


def crossings(widths, gaps, tolerance, rng, n_boot=N_BOOT) -> dict:
    """The crossing of the seed-mean gap (gaps: one array of per-seed gaps per width) with its bootstrap replicates
    (seeds resampled within each width) and 95% interval."""
    means = np.array([np.mean(g) for g in gaps])
    point, status = crossing(widths, means, tolerance)
    boot = np.stack([np.asarray(g)[rng.integers(0, len(g), (n_boot, len(g)))].mean(axis=1) for g in gaps], axis=1)
    reps = [crossing(widths, b, tolerance) for b in boot]
    values = np.array([w for w, _ in reps])
    return dict(width=point, status=status, ci=[float(q) for q in np.quantile(values, [0.025, 0.975])],
                measured_share=float(np.mean([st == "measured" for _, st in reps])), replicates=values)


def growth_law(lengths, cells, scale="log") -> dict | None:
    """n*(T) ~ C T^slope (``scale="log"``) or C exp(slope T) (``"linear"``): least squares of log n* over the lengths
    whose crossing is not None, the percentile interval of the slopes of the bootstrap replicates, and the RMS of
    the log residuals (to compare the two forms); None below 3 lengths."""
    use = [(T, c) for T, c in zip(lengths, cells) if c["width"] is not None]
    if len(use) < 3:
        return None
    x = np.array([T for T, _ in use], float)
    x = np.log(x) if scale == "log" else x
    logn = np.log([c["width"] for _, c in use])
    slope, intercept = np.polyfit(x, logn, 1)
    slopes = np.polyfit(x, np.log(np.stack([c["replicates"] for _, c in use], axis=1)).T, 1)[0]
    return dict(slope=float(slope), ci=[float(q) for q in np.quantile(slopes, [0.025, 0.975])],
                constant=float(np.exp(intercept)), lengths=[int(T) for T, _ in use],
                rms=float(np.sqrt(np.mean((logn - slope * x - intercept) ** 2))))


def analyse_width_length(section: WidthLengthSection, runs: dict, ran: dict, seed) -> dict:
    """Per sigma_w: per length the gap rows, the gap's slope in n and the crossings; per tolerance n*(T) as a power
    and as an exponential of T. A width where some network diverged (its own NTK far above the limit's) is left
    out of the fits and listed."""
    rng = np.random.default_rng(seed)
    out = {}
    for sw in section.sigma_w:
        per_length = {}
        for T in ran[sw]:
            cells = {n: [runs[wl_name(sw, T, n, s)] for s in range(section.seeds)] for n in section.widths_at(T)}
            diverged = [n for n, cell in cells.items() if not all(np.all(np.isfinite(r["discrete_gap"])) for r in cell)]
            widths = [n for n in cells if n not in diverged]
            gaps = [np.array([float(np.max(r["discrete_gap"])) for r in cells[n]]) for n in widths]
            flow = [np.array([float(np.max(r["flow_gap"])) for r in cells[n]]) for n in widths]
            rows = []
            for n, g, f in zip(widths, gaps, flow):
                mean, lo, hi = mean_interval(g, seed=seed)
                rows.append(dict(width=n, gaps=g.tolist(), mean=mean, ci_low=lo, ci_high=hi,
                                 flow_gap=float(np.mean(f))))
            enough = len(widths) >= 2
            per_length[T] = dict(rows=rows, lr=float(cells[widths[0] if widths else diverged[0]][0]["lr"]),
                                 diverged_widths=diverged,
                                 slope=fit_rate(widths, gaps).as_dict() if enough else None,
                                 flow_slope=fit_rate(widths, flow).as_dict() if enough else None,
                                 crossings={tol: crossings(widths, gaps, tol, rng) if enough else None
                                            for tol in section.tolerances})
        laws = {}
        lengths = [T for T in per_length if per_length[T]["slope"] is not None]
        for tol in section.tolerances:
            cells = [per_length[T]["crossings"][tol] for T in lengths]
            measured = [c if c["status"] == "measured" else dict(c, width=None) for c in cells]
            laws[tol] = dict(measured=growth_law(lengths, measured), all=growth_law(lengths, cells),
                             exponential=growth_law(lengths, cells, scale="linear"))
        out[sw] = dict(lengths=per_length, laws=laws)
    return out


def wl_name(sigma_w, T, n, s) -> str:
    return f"wl_w{sigma_w:g}_T{T}_n{n}_s{s}"


def u_name(sigma_w, T, n, m) -> str:
    return f"u_w{sigma_w:g}_T{T}_n{n}_m{m}"


# -- uncertainty ------------------------------------------------------------------------------------------------

def _gaussian_scores(y, mean, var, z):
    """Per point: inside the central interval mean +- z sd (0/1), and the Gaussian negative log-likelihood."""
    var = np.maximum(var, 1e-300)
    return np.abs(y - mean) <= z * np.sqrt(var), 0.5 * np.log(2 * np.pi * var) + 0.5 * (y - mean) ** 2 / var


def _interval(replicates):
    return [float(q) for q in np.quantile(replicates, [0.025, 0.975])]


def analyse_uncertainty(section: UncertaintySection, model: dict, data: dict, outputs: dict, seed) -> dict:
    """outputs[(sigma_w, T, n)]: (members, P) held-out outputs. Per sigma_w and length: the GP's calibration, per
    width the ensemble's and its agreement with the GP, and the width from which the GP describes the ensemble
    (mean offset <= OFFSET and variance ratio within a factor RATIO there and at every wider width).
    Intervals: bootstrap over held-out windows (calibration), over members (agreement), over both (ensemble)."""
    rng = np.random.default_rng(seed)
    z = float(stats.norm.ppf(0.5 + section.level / 2))
    out = {}
    for sw in section.sigma_w:
        arch = Elman(**model, sigma_w=sw)
        out[sw] = {}
        for T in section.lengths:
            X, y, X_held, y_held = windows(length=T, **data)
            kp = arch.kernel(X + X_held)
            lr = learning_rate(kp.ntk[:len(X), :len(X)], section.lr_fraction)
            mu, cov = ntk_gp(kp.nngp, kp.ntk, y, lr=lr, steps=section.steps)
            var = np.diag(cov)
            P = len(y_held)
            points = rng.integers(0, P, (N_BOOT, P))
            gp_in, gp_nll = _gaussian_scores(y_held, mu, var, z)
            rows = []
            for n in section.widths_at(T):
                F = outputs[(sw, T, n)]  # (members, P)
                finite = np.all(np.isfinite(F), axis=1)
                F = F[finite]
                E = len(F)
                members = rng.integers(0, E, (N_BOOT, E))
                boot_m = F[members]  # (N_BOOT, E, P)
                ens_in, ens_nll = _gaussian_scores(y_held, F.mean(axis=0), F.var(axis=0, ddof=1), z)
                boot_in, _ = _gaussian_scores(y_held[points], np.take_along_axis(boot_m.mean(axis=1), points, 1),
                                              np.take_along_axis(boot_m.var(axis=1, ddof=1), points, 1), z)
                inside = np.abs(F - mu) <= z * np.sqrt(var)  # each member's output inside the GP's interval
                rows.append(dict(width=n, members=E, diverged=int(np.sum(~finite)),
                                 ensemble_coverage=float(ens_in.mean()),
                                 ensemble_coverage_ci=_interval(boot_in.mean(axis=1)),
                                 ensemble_nll=float(ens_nll.mean()),
                                 gp_covers_members=float(inside.mean()),
                                 gp_covers_members_ci=_interval(inside[members].mean(axis=(1, 2))),
                                 variance_ratio=float(F.var(axis=0, ddof=1).mean() / var.mean()),
                                 variance_ratio_ci=_interval(boot_m.var(axis=1, ddof=1).mean(axis=1) / var.mean()),
                                 mean_offset=float(np.mean(np.abs(F.mean(axis=0) - mu) / np.sqrt(var)))))
            agree = [r["mean_offset"] <= OFFSET and 1 / RATIO <= r["variance_ratio"] <= RATIO for r in rows]
            first = next((i for i in range(len(rows)) if all(agree[i:])), None)
            out[sw][T] = dict(gp_coverage=float(gp_in.mean()), gp_coverage_ci=_interval(gp_in[points].mean(axis=1)),
                              gp_nll=float(gp_nll.mean()), gp_nll_ci=_interval(gp_nll[points].mean(axis=1)),
                              gp_sd=float(np.sqrt(var.mean())), lr=lr, rows=rows,
                              width_described=rows[first]["width"] if first is not None else None)
    return out


# -- figures and text ----------------------------------------------------------------------------------------

def figure_width_length(plt, path, section: WidthLengthSection, result, chis):
    sws = list(result)
    fig, axes = plt.subplots(1, len(sws) + 1, figsize=(5 * (len(sws) + 1), 4.3), squeeze=False)
    axes = axes[0]
    for ax, sw in zip(axes, sws):
        for T, v in result[sw]["lengths"].items():
            if v["slope"] is None:
                continue
            w = np.array([r["width"] for r in v["rows"]])
            m = np.array([r["mean"] for r in v["rows"]])
            lo, hi = np.array([r["ci_low"] for r in v["rows"]]), np.array([r["ci_high"] for r in v["rows"]])
            ax.errorbar(w, m, yerr=[m - lo, hi - m], marker="o", ms=3, capsize=2,
                        label=f"T = {T}: slope {v['slope']['slope']:.2f}")
        for tol in section.tolerances:
            ax.axhline(tol, color="k", ls=":", lw=0.8)
        w = np.array(section.widths, float)
        ax.plot(w, 0.5 * (w / w[0]) ** -0.5, "k--", lw=0.8, label="n^-1/2")
        ax.set_xscale("log", base=2)
        ax.set(yscale="log", xlabel="width n", ylabel="gap to the RNTK's GD map",
               title=f"sigma_w = {sw:g} (chi_1 = {chis[sw]:.2f}), {section.seeds} seeds, 95% CI")
        legend(ax, fontsize=7)
    ax = axes[-1]
    markers = "os^vD"
    for (sw, color) in zip(sws, ("C0", "C1", "C3", "C2", "C4")):
        for tol, mk in zip(section.tolerances, markers):
            for T, v in result[sw]["lengths"].items():
                c = v["crossings"][tol]
                if c is None:
                    continue
                ax.errorbar([T], [c["width"]], yerr=[[c["width"] - c["ci"][0]], [c["ci"][1] - c["width"]]], marker=mk,
                            color=color, capsize=2, mfc=color if c["status"] == "measured" else "none")
            for kind, ls in (("measured", "-"), ("all", ":")):
                law = result[sw]["laws"][tol][kind]
                if law is not None:
                    Ts = np.array(law["lengths"], float)
                    ax.plot(Ts, law["constant"] * Ts ** law["slope"], color=color, lw=0.8, ls=ls,
                            label=f"sigma_w {sw:g}, tol {tol:g}, {kind}: gamma {law['slope']:.2f}")
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel="length T", ylabel="crossing width n*(T)",
           title="n*(T): filled measured, open extrapolated (n^-1/2)")
    legend(ax, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def figure_uncertainty(plt, path, section: UncertaintySection, result):
    fig, axes = plt.subplots(len(result), 3, figsize=(16, 4.3 * len(result)), squeeze=False)
    for row, (sw, per_length) in zip(axes, result.items()):
        for (T, v), color in zip(per_length.items(), ("C0", "C1", "C2", "C3", "C4", "C5")):
            w = [r["width"] for r in v["rows"]]
            c = np.array([r["gp_covers_members"] for r in v["rows"]])
            lo, hi = np.array([[r["gp_covers_members_ci"][i] for r in v["rows"]] for i in (0, 1)])
            row[0].errorbar(w, c, yerr=[c - lo, hi - c], marker="o", capsize=3, color=color, label=f"T = {T}")
            row[1].plot(w, [r["ensemble_coverage"] for r in v["rows"]], "o-", color=color, label=f"ensemble, T = {T}")
            row[1].axhline(v["gp_coverage"], color=color, ls="--", lw=0.8)
            row[2].plot(w, [r["ensemble_nll"] for r in v["rows"]], "o-", color=color, label=f"ensemble, T = {T}")
            row[2].axhline(v["gp_nll"], color=color, ls="--", lw=0.8)
        row[0].axhline(section.level, color="k", ls=":")
        row[0].set(xlabel="width n", ylabel=f"members inside the GP's {section.level:.0%} interval",
                   title=f"sigma_w = {sw:g}: does the NTK-GP describe {section.members} members? (95% CI)")
        row[1].axhline(section.level, color="k", ls=":")
        row[1].set(xlabel="width n", ylabel=f"coverage of held-out targets ({section.level:.0%} nominal)",
                   title="calibration (dashed: NTK-GP)")
        row[2].set(xlabel="width n", ylabel="Gaussian NLL of held-out targets",
                   title="NLL (dashed: NTK-GP)")
        for ax in row:
            ax.set_xscale("log", base=2)
            legend(ax, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_width_length(section: WidthLengthSection, result, chis, abandoned) -> list:
    lines = ["## The width-length law", "",
             f"Gap = max over {section.checkpoints} checkpoints of |f_net - f_lin| / max |f_lin - f_0| on held-out "
             f"windows, f_lin = GD on the linearised network with the RNTK and the same step (lr = "
             f"{section.lr_fraction} M / lambda_max); {section.steps} steps, {section.seeds} seeds. Crossing widths "
             "n* with 95% bootstrap intervals; (x) = extrapolated past the widest width, (<) = below the narrowest, "
             "both with the asymptotic law gap ~ n^-1/2.", ""]
    for sw, v in result.items():
        lines += [f"### sigma_w = {sw:g} (chi_1 = {chis[sw]:.3f})", "",
                  "| T | widths | gap slope in n [95%] | flow-gap slope | "
                  + " | ".join(f"n* at {tol:g}" for tol in section.tolerances) + " |",
                  "|---|---|---|---|" + "---|" * len(section.tolerances)]
        diverged = []
        for T, c in v["lengths"].items():
            s, f = c["slope"], c["flow_slope"]
            if s is None:
                lines.append(f"| {T} | fewer than 2 widths without divergence | | |" + " |" * len(section.tolerances))
                continue
            cells = []
            for tol in section.tolerances:
                x = c["crossings"][tol]
                flag = "" if x["status"] == "measured" else " (x)" if x["status"] == "extrapolated" else " (<)"
                cells.append(f"{x['width']:.0f} [{x['ci'][0]:.0f}, {x['ci'][1]:.0f}]{flag}")
            lines.append(f"| {T} | {c['rows'][0]['width']}..{c['rows'][-1]['width']} | {s['slope']:.2f} "
                         f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}] | {f['slope']:.2f} | " + " | ".join(cells) + " |")
            if c["diverged_widths"]:
                diverged.append(f"T = {T}: n = {', '.join(map(str, c['diverged_widths']))}")
        if diverged:
            lines.append(f"\nGD diverged for some seeds (left out): {'; '.join(diverged)}.")
        if sw in abandoned:
            lines.append(f"\nNot run beyond T = {abandoned[sw]}: the gap at the widest width was above "
                         f"{section.abandon_above:g}.")
        lines.append("")
        for tol, law in v["laws"].items():
            parts = []
            for kind, name, what in (("measured", "measured crossings", "gamma"), ("all", "all", "gamma"),
                                     ("exponential", "all, as C exp(kappa T)", "kappa")):
                fit = law[kind]
                if fit is None:
                    parts.append(f"{name}: fewer than 3 lengths")
                else:
                    parts.append(f"{name} (T = {fit['lengths'][0]}..{fit['lengths'][-1]}): {what} {fit['slope']:.3g} "
                                 f"[{fit['ci'][0]:.3g}, {fit['ci'][1]:.3g}], log-RMS {fit['rms']:.2f}")
            lines.append(f"- tolerance {tol:g}: " + "; ".join(parts))
        lines.append("")
    return lines


def markdown_uncertainty(section: UncertaintySection, result) -> list:
    lines = ["## Uncertainty: ensembles against the NTK-Gaussian process", "",
             f"{section.members} networks per cell, {section.steps} GD steps (lr = {section.lr_fraction} M / "
             f"lambda_max) on {section.n_train} windows; {section.n_heldout} held-out windows. Nominal level "
             f"{section.level:.0%}.", "",
             "| sigma_w | T | width | GP covers members [95%] | variance ratio ens/GP [95%] | mean offset / GP sd | "
             "coverage ens [95%] | coverage GP [95%] | NLL ens (GP) |", "|---|---|---|---|---|---|---|---|---|"]
    for sw, per_length in result.items():
        for T, v in per_length.items():
            for r in v["rows"]:
                lo, hi = r["gp_covers_members_ci"]
                a, b = r["variance_ratio_ci"]
                c, g = r["ensemble_coverage_ci"], v["gp_coverage_ci"]
                lines.append(f"| {sw:g} | {T} | {r['width']} | {r['gp_covers_members']:.3f} [{lo:.3f}, {hi:.3f}] | "
                             f"{r['variance_ratio']:.2f} [{a:.2f}, {b:.2f}] | {r['mean_offset']:.3f} | "
                             f"{r['ensemble_coverage']:.3f} [{c[0]:.2f}, {c[1]:.2f}] | "
                             f"{v['gp_coverage']:.3f} [{g[0]:.2f}, {g[1]:.2f}] | "
                             f"{r['ensemble_nll']:.3f} ({v['gp_nll']:.3f}) |")
    lines.append("")
    for sw, per_length in result.items():
        for T, v in per_length.items():
            lines.append(f"- sigma_w = {sw:g}, T = {T}: the GP describes the ensemble (mean offset <= {OFFSET:g} GP sd "
                         f"and variance ratio within a factor {RATIO:g}, from this width on) from n = "
                         f"{v['width_described'] or 'none of these'}")
    lines.append("")
    return lines
