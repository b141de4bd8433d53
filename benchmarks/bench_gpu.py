"""The JAX backend's hot paths against the Numba/NumPy path on the same machine, in one run.

Run: ``.venv/bin/python benchmarks/bench_gpu.py [--small] [--only simulator rntk mup_elman study] [--out FILE]``
(needs ``pip install -e '.[jax]'``; on a GPU machine JAX's default device is the GPU). ``--small`` shrinks
every case for a smoke test on a CPU. Each row gives the JAX time, the Numba/NumPy time on all CPU cores
measured in the same run (or extrapolated, and then marked), their ratio, the issue's goal, and the largest
difference between the two results. Writes the rows, the devices and the software versions as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gpu_common import best_of, row  # noqa: E402

from meanfield import Diagonal, make_task  # noqa: E402
from meanfield.architectures.diagonal import train_seeds  # noqa: E402
from meanfield.report import software_versions  # noqa: E402


def _simulator(N, n_seeds, steps, backend, dtype="float64"):
    """A training run of ``steps`` steps of ``n_seeds`` networks of width N (delay1, tanh); returns a callable."""
    task = make_task("delay1", noise_std=0.1)
    probes = task.chain.sample_windows(10, 16, rng=np.random.default_rng(0)).values
    models = [Diagonal("tanh", 1.0, 0.5).network(N, 1, seed=s) for s in range(n_seeds)]
    horizon = steps / N

    def run():
        res = train_seeds(models, task, horizon, 4.0, probes, 1, seeds=list(range(n_seeds)), progress=False,
                          backend=backend, dtype=dtype)
        return np.stack([r.outputs for r in res])

    return run


def simulator_cases(args):
    rows = []
    for N, n_seeds, goal in ((2**20, 1, "<= 0.08 ns, >= 20x Numba"), (2**14, 8, "<= 0.1 ns")):
        if args.small:
            N //= 64
        jax_steps = max(64, 2**32 // (N * n_seeds)) if not args.small else 256
        cpu_steps = max(16, 2**29 // N) if not args.small else 256
        print(f"simulator N = {N} x {n_seeds} seeds: {jax_steps} steps on jax, {cpu_steps} per seed on numba",
              flush=True)
        jax_s, out = best_of(_simulator(N, n_seeds, jax_steps, "jax"), repeats=2)
        f32_s, out32 = best_of(_simulator(N, n_seeds, jax_steps, "jax", "float32"), repeats=2)
        cpu_s, _ = best_of(_simulator(N, 1, cpu_steps, "numba"), repeats=1, warmup=1)
        jax_unit, cpu_unit = jax_s / (N * n_seeds * jax_steps), cpu_s / (N * cpu_steps)
        check = _simulator(N, 1, min(jax_steps, cpu_steps), "numba")()
        same = _simulator(N, 1, min(jax_steps, cpu_steps), "jax")()
        rows.append(row(f"diagonal RNN online SGD, N = {N}, {n_seeds} seed(s), f64", jax_unit, cpu_unit,
                        units=1, unit="unit-step", goal=goal, max_difference=float(np.max(np.abs(check - same))),
                        cpu_note="Numba, one seed, all cores"))
        rows.append(row("same, f32 (difference: to the f64 run)", f32_s / (N * n_seeds * jax_steps), cpu_unit,
                        units=1, unit="unit-step", max_difference=float(np.max(np.abs(out32 - out)))))
    return rows


def study_cases(args):
    """The convergence study's sweep on the JAX backend (the default config with other widths), timed whole."""
    import tempfile

    from meanfield.studies.convergence import StudyConfig, run_study

    top = 10 if args.small else args.study_top
    widths = [2**k for k in range(7, top + 1)]
    cfg = StudyConfig.load().replace(**{"sweep.widths": widths, "sweep.seeds": 8})
    print(f"convergence study on jax, widths 2^7..2^{top}, 8 seeds", flush=True)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run_study(cfg, out, progress=False, backend="jax")
        seconds = time.perf_counter() - t0
        report = json.loads((Path(out) / "report.json").read_text())
    unit_steps = sum(8 * cfg.training.horizon * N * N for N in widths)
    extrapolated = seconds + 8 * cfg.training.horizon * (2**40 + 2**38) * report["seconds"]["sweep"] / unit_steps
    return [row(f"convergence study, widths 2^7..2^{top}, 8 seeds (whole study)", seconds, None,
                goal="< 5 min (2^7..2^18)", slope=report["rate"]["slope"],
                interval=[report["rate"]["ci_low"], report["rate"]["ci_high"]],
                sweep_s=report["seconds"]["sweep"], limit_s=report["seconds"]["limit"],
                extrapolated_to_2_20_s=extrapolated if top == 18 else None)]


CASES = {"simulator": simulator_cases, "study": study_cases}
MODULES = {"rntk": "gpu_rntk", "mup_elman": "gpu_mup_elman"}  # cases(args) in benchmarks/<module>.py


def _format(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="small sizes (a smoke test on a CPU)")
    parser.add_argument("--only", nargs="+", choices=[*CASES, *MODULES], default=None)
    parser.add_argument("--study-top", type=int, default=18, help="largest width 2^k of the study case")
    parser.add_argument("--out", type=Path, default=Path("results/bench_gpu.json"))
    args = parser.parse_args(argv)
    import jax

    devices = [str(d) for d in jax.devices()]
    print(f"jax devices: {devices}; numba threads: {numba.config.NUMBA_NUM_THREADS}", flush=True)
    print(json.dumps(software_versions()), flush=True)
    rows = []
    for name in args.only or [*CASES, *MODULES]:
        t0 = time.perf_counter()
        cases = CASES[name] if name in CASES else importlib.import_module(MODULES[name]).cases
        try:
            new = cases(args)
        except Exception as err:  # one broken case must not cost the others' device time
            print(f"case {name} failed: {type(err).__name__}: {err}", flush=True)
            new = [dict(work=name, error=f"{type(err).__name__}: {err}")]
        rows += new
        for r in new:
            print(json.dumps(r), flush=True)
        print(f"-- {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print("\n| work | JAX | CPU path | ratio | goal | max difference |\n|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['work']} | failed: {r['error']} | | | | |")
            continue
        if r.get("per_unit_jax_ns") is not None:
            jax_t = f"{r['per_unit_jax_ns']:.3g} ns/{r['unit']}"
            cpu_t = "-" if r["per_unit_cpu_ns"] is None else f"{r['per_unit_cpu_ns']:.3g} ns/{r['unit']}"
        else:
            jax_t = f"{1e3 * r['jax_s']:.3g} ms"
            cpu_t = "-" if r["cpu_s"] is None else f"{1e3 * r['cpu_s']:.3g} ms"
        print(f"| {r['work']} | {jax_t} | {cpu_t} | {_format(r['ratio'])} | {r.get('goal') or '-'} | "
              f"{_format(r.get('max_difference'), 2)} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(devices=devices, numba_threads=numba.config.NUMBA_NUM_THREADS,
                                        versions=software_versions(), small=args.small, rows=rows),
                                   indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
