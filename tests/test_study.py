import json
import shutil

import numpy as np
import pytest
from scipy import stats

from meanfield.cli import main
from meanfield.studies.convergence import StudyConfig
from meanfield.studies.framework import ConfigError, DamagedRunWarning
from meanfield.testing import assert_rate


def stable(report):
    """The report without what legitimately changes between runs (timings, software)."""
    return {k: v for k, v in report.items() if k not in ("seconds", "versions", "wall_seconds", "reused")}


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    assert main(["study", "--quick", "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    return out


def test_quick_study_recovers_the_n_to_the_minus_half_rate(quick_study):
    report = json.loads((quick_study / "report.json").read_text())
    rate = report["rate"]
    assert rate["ci_low"] < rate["slope"] < rate["ci_high"] and rate["level"] == 0.95
    errors = [report["errors"][str(N)]["sup_per_seed"] for N in report["widths"]]
    assert_rate(report["widths"], errors, expected=-0.5, level=0.999)  # the calibrated interval, at a test's level
    assert report["memory_rate"]["rate_ci"][1] < report["memory_rate"]["rho"]
    # The predicted constant of the fluctuation theory against sqrt(N) x mean error pooled over N >= 1024 (the runs
    # are independent across widths; the pooled standard error is derived from the seeds).
    fl = report["fluctuations"]
    large = [fl["widths"][str(N)] for N in report["widths"] if N >= 1024]
    measured = np.mean([w["measured"] for w in large])
    se = np.hypot(np.sqrt(sum(w["se"] ** 2 for w in large)) / len(large), fl["predicted_constant_se"])
    assert abs(measured - fl["predicted_constant"]) < stats.norm.ppf(0.9995) * se, (measured, fl["predicted_constant"])
    assert report["limit"]["loss_ratio"] < 0.5  # learning is visible in the chosen setting
    # the report's derived numbers by their definitions
    largest, S = np.array(errors[-1]), len(errors[-1])
    assert report["limit"]["grid_error_ratio"] == pytest.approx(report["limit"]["grid_error"] / largest.mean())
    for N, e in zip(report["widths"], errors):
        scaled = np.sqrt(N) * np.array(e)
        w = fl["widths"][str(N)]
        assert w["measured"] == pytest.approx(scaled.mean()) and w["se"] == pytest.approx(scaled.std(ddof=1) / S**0.5)
        assert len(report["errors"][str(N)]["l2_by_time_mean"]) == report["config"]["training"]["n_records"] + 1
    assert report["verdict"]["status"] == "consistent" and report["verdict"]["diagnoses"] == []
    for name in ("report.md", "error_vs_width.png", "trajectories.png", "kernel_error_vs_width.png",
                 "memory_state.png", "fluctuations.png"):
        assert (quick_study / name).stat().st_size > 0, name
    cfg = StudyConfig.load(quick=True)
    assert len(list((quick_study / "runs").glob("N*.npz"))) == len(cfg.sweep.widths) * cfg.sweep.seeds


def test_resumed_study_gives_the_same_report(quick_study):
    before = json.loads((quick_study / "report.json").read_text())
    runs = sorted((quick_study / "runs").glob("N*.npz"))
    for path in runs[::2]:
        path.unlink()
    # rerun without Dask (in this process): the seeds do not depend on the workers either
    assert main(["study", "--quick", "--out", str(quick_study), "--workers", "0", "--no-progress"]) == 0
    after = json.loads((quick_study / "report.json").read_text())
    assert stable(after) == stable(before)


def test_a_rerun_reuses_the_saved_limit_and_prediction_and_recomputes_a_damaged_one(quick_study, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(quick_study, folder)
    before = json.loads((folder / "report.json").read_text())
    assert main(["study", "--quick", "--out", str(folder), "--workers", "0", "--no-progress"]) == 0
    after = json.loads((folder / "report.json").read_text())
    assert after["reused"] == dict(limit=True, fluctuations=True) and stable(after) == stable(before)
    assert "limit: reused from" in capsys.readouterr().err
    (folder / "runs" / "limit.npz").write_bytes(b"damaged")
    with pytest.warns(DamagedRunWarning, match="limit.npz is unreadable"):
        assert main(["study", "--quick", "--out", str(folder), "--workers", "0", "--no-progress"]) == 0
    again = json.loads((folder / "report.json").read_text())
    assert again["reused"] == dict(limit=False, fluctuations=True) and stable(again) == stable(before)


def test_a_study_with_fewer_or_more_widths_and_seeds_reuses_the_finished_runs(quick_study, tmp_path, capsys):
    """Runs are seeded by (N, seed) alone: a study on a subset of widths and seeds reuses every run, with the
    same per-seed errors; one with another width adds only its runs."""
    folder = tmp_path / "copy"
    shutil.copytree(quick_study, folder)
    full = json.loads((folder / "report.json").read_text())
    cfg = tmp_path / "subset.toml"
    cfg.write_text("[training]\nn_records = 10\n[sweep]\nwidths = [256, 512, 1024]\nseeds = 4\n")
    assert main(["study", "--config", str(cfg), "--out", str(folder), "--workers", "0", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "its finished runs are reused" in err and "runs: 12 of 12 runs reused" in err
    subset = json.loads((folder / "report.json").read_text())
    assert subset["reused"] == dict(limit=True, fluctuations=True)
    for N in ("256", "512", "1024"):
        assert subset["errors"][N]["sup_per_seed"] == full["errors"][N]["sup_per_seed"][:4]
    cfg.write_text("[training]\nn_records = 10\n[sweep]\nwidths = [128, 256]\nseeds = 4\n")
    assert main(["study", "--config", str(cfg), "--out", str(folder), "--workers", "0", "--no-progress"]) == 0
    assert "runs: 4 of 8 runs reused" in capsys.readouterr().err


def test_jax_backend_gives_the_numba_report_and_resumes(quick_study, tmp_path):
    """One task per width on JAX (all seeds batched), same seeds: the same report to rounding; resume works."""
    pytest.importorskip("jax")
    assert main(["study", "--quick", "--out", str(tmp_path), "--backend", "jax", "--no-progress"]) == 0
    numba, jax = (json.loads((path / "report.json").read_text()) for path in (quick_study, tmp_path))
    assert jax["backend"] == "jax" and numba["backend"] == "numba"
    for N, errors in numba["errors"].items():
        np.testing.assert_allclose(jax["errors"][N]["sup_per_seed"], errors["sup_per_seed"], rtol=1e-9)
        np.testing.assert_allclose(jax["kernel_errors"][N]["per_seed"], numba["kernel_errors"][N]["per_seed"],
                                   rtol=1e-12)
    for key in ("slope", "ci_low", "ci_high"):
        assert jax["rate"][key] == pytest.approx(numba["rate"][key], abs=1e-9)
    runs = sorted((tmp_path / "runs").glob("N*.npz"))
    assert [p.name for p in runs] == sorted(f"N{N}_jax.npz" for N in numba["widths"])
    runs[0].unlink()
    kept = {p: p.stat().st_mtime_ns for p in runs[1:]}
    assert main(["study", "--quick", "--out", str(tmp_path), "--backend", "jax", "--no-progress"]) == 0
    assert stable(json.loads((tmp_path / "report.json").read_text())) == stable(jax)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items()) and runs[0].exists()


def test_a_folder_of_another_configuration_is_refused(quick_study, tmp_path, capsys):
    cfg = tmp_path / "other.toml"
    cfg.write_text('[training]\nalpha = 3.0\n[sweep]\nwidths = [64, 128]\nseeds = 2\n')
    assert main(["study", "--config", str(cfg), "--out", str(quick_study), "--no-progress"]) == 2
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.parametrize("toml, field", [
    ('[sweep]\nwidths = [128, -256]\n', "sweep.widths[1]"),
    ('[task]\nname = "parity9"\n', "task.name"),
    ('[training]\nalpha = 0.0\n', "training.alpha"),
    ('[training]\nalpha = -1.0\n', "training.alpha"),
    ('[sweep]\nwidths = [512, 256, 1024]\n', "sweep.widths"),
    ('[model]\nbeta = 1.5\n', "model.beta"),
    ('[sweep]\nspeed = 3\n', "sweep.speed"),
    ('[swep]\nseeds = 3\n', "swep"),
    ('[quick.sweep]\nwidth = [64, 128]\n', "quick.sweep.width"),  # a misspelled [quick] key, even without --quick
    ('[model]\nactivation = "relu"\n', "model.activation"),  # was a KeyError traceback (two activation tables)
    ('[sweep]\nseed = true\n', "sweep.seed"),
    ('[sweep]\nseeds = 2.0\n', "sweep.seeds"),
    ('[training]\nn_records = 0\n', "training.n_records"),
    ('[training]\nalpha = "fast"\n', "training.alpha"),
    ('[memory]\nnodes = 10000000000\n', "memory.nodes"),  # would exhaust the memory
    ('[limit]\norder = [1000000, 24]\n', "limit.order"),  # failed only after the whole sweep
    ('[limit]\nwindow = 1000000\n', "limit.window"),
    ('[sweep]\nwidths = [1000000000000, 2000000000000]\n', "sweep.widths"),
    ('[training\nalpha = 1\n', "bad.toml"),  # not TOML
])
def test_bad_config_values_are_refused_before_any_work(tmp_path, capsys, toml, field):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    assert main(["study", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (f"'{field}'" in err or field == "bad.toml" and field in err), err
    assert not out.exists()


def test_default_config_is_valid_and_quick_is_smaller():
    full, quick = StudyConfig.load(), StudyConfig.load(quick=True)
    assert full.sweep.widths == tuple(2**k for k in range(7, 15)) and full.sweep.seeds == 8
    assert max(quick.sweep.widths) < max(full.sweep.widths)
    with pytest.raises(ConfigError, match="'sweep.seeds'"):
        full.replace(**{"sweep.seeds": 1})
    assert full.replace(**{"training.alpha": 3.0}).training.alpha == 3.0


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    for study in ("study", "regime", "featurelearning", "demo", "rntk"):
        assert main([study, "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / study)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "missing.toml" in err and "No such file" in err, err
        assert not (tmp_path / study).exists()


def test_study_runs_on_an_existing_dask_scheduler(tmp_path):
    """--scheduler: the runs go to a cluster the user started; results equal the in-process ones."""
    from dask.distributed import LocalCluster

    cfg = tmp_path / "tiny.toml"
    cfg.write_text('[sweep]\nwidths = [64, 128]\nseeds = 2\n[training]\nn_records = 4\n[limit]\nwindow = 6\n'
                   '[memory]\nnodes = 200\nsequences = 2\n')
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert main(["study", "--config", str(cfg), "--out", str(tmp_path / "remote"), "--scheduler",
                     cluster.scheduler_address, "--no-progress"]) == 0
    assert main(["study", "--config", str(cfg), "--out", str(tmp_path / "local"), "--workers", "0",
                 "--no-progress"]) == 0
    remote = json.loads((tmp_path / "remote" / "report.json").read_text())
    local = json.loads((tmp_path / "local" / "report.json").read_text())
    assert stable(remote) == stable(local)


def test_the_estimate_counts_the_limit_and_the_prediction_by_their_models(quick_study):
    """estimated_phases by hand (kernel_seconds of the grid with the halving rule's extra nodes, the probes' kernels,
    the exact chain's Poisson steps), and report.json sets them, per core, beside the measured seconds."""
    from meanfield.architectures.diagonal.limit import kernel_seconds
    from meanfield.studies import convergence as cv
    from meanfield.studies.framework import CORES

    cfg = StudyConfig.load(None, quick=True)
    d, M, L, P = 1, 2**cfg.limit.window, cfg.limit.window, cfg.probes.count
    n_w, n_b = cfg.limit.order
    nodes = n_w * n_b + (n_w // 2) * (n_b // 2)
    phases = cfg.estimated_phases()
    assert phases["limit"] == pytest.approx(kernel_seconds(nodes, d, M, L, P) + kernel_seconds(n_w * n_b, d, P, L)
                                            + cv.SECONDS_PER_EIGH * M**3)  # one flow: a tensor rule has no half
    assert phases["fluctuations"] == pytest.approx(kernel_seconds(64 * 12, d, 0, L, M + P)
                                                   + (8 * cfg.training.n_records + 1) * M * cv.SECONDS_PER_EXACT_STEP)
    assert cfg.estimated_seconds() == pytest.approx(sum(phases.values()))
    report = json.loads((quick_study / "report.json").read_text())
    assert report["seconds"]["estimated"] == pytest.approx({k: v / CORES for k, v in phases.items()})
    assert kernel_seconds(10, 2, 3, 4) == pytest.approx(10 * 4 * 3 * (3 * 2.4e-11 + 4 * 7e-10))
    assert kernel_seconds(10, 2, 3, 4, probes=5) == pytest.approx(10 * 4 * 3 * (3 * 2.4e-11 + 4 * 7e-10)
                                                                  + 10 * 4 * (3 + 5) * 4 * 1.8e-9)
