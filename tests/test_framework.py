"""The study framework: run files that are verified, keyed and written safely; the folder guard and lock."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from meanfield import checks
from meanfield.cli import main
from meanfield.studies.framework import (
    Config,
    ConfigError,
    DamagedRunWarning,
    Section,
    StudyFolder,
    discover,
    load_result,
    run_key,
    run_tasks,
    spec,
)


@dataclass(frozen=True)
class KSection(Section, name="s"):
    k: int = spec(checks.integer, minimum=0)


@dataclass(frozen=True)
class TinyConfig(Config):
    s: KSection


def config(k=1):
    return TinyConfig(s=KSection(k=k))


def square(x, threads=1):
    return dict(x=x, y=np.arange(4.0) * x)


def tasks(n=4, scale=1.0):
    return {f"t{i}": dict(x=float(i) * scale) for i in range(n)}


def test_runs_are_kept_and_resumed(tmp_path):
    first = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    again = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")} == stamps  # nothing recomputed
    for name in first:
        np.testing.assert_array_equal(first[name]["y"], again[name]["y"])
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_run_file_is_named_and_recomputed(tmp_path, damage):
    """A truncated or empty file used to count as finished, and every later rerun crashed with BadZipFile."""
    run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    path = tmp_path / "t2.npz"
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"x" * len(data)}[damage])
    with pytest.warns(DamagedRunWarning, match="t2.npz"):
        out = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    np.testing.assert_array_equal(out["t2"]["y"], np.arange(4.0) * 2)
    load_result(path, run_key(square, dict(x=2.0)))  # a valid file again


def test_a_run_file_of_another_run_is_not_used(tmp_path):
    """A valid file copied from another run used to be read as this run's (7 seeds at one width, 9 at another)."""
    run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    (tmp_path / "t3.npz").write_bytes((tmp_path / "t1.npz").read_bytes())
    with pytest.warns(DamagedRunWarning, match="belongs to another run"):
        out = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    assert out["t3"]["x"] == 3.0


def test_a_changed_setting_never_reuses_a_run(tmp_path):
    run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    with pytest.warns(DamagedRunWarning):
        out = run_tasks(square, tasks(scale=2.0), tmp_path, workers=0, progress=False)
    assert [out[f"t{i}"]["x"] for i in range(4)] == [0.0, 2.0, 4.0, 6.0]
    # arguments that cannot change a result (a thread count) are left out of the key
    unkeyed = ("threads",)
    assert run_key(square, dict(x=1.0, threads=1), unkeyed) == run_key(square, dict(x=1.0, threads=2), unkeyed)
    assert run_key(square, dict(x=1.0)) != run_key(square, dict(x=1.0 + 1e-15))


def test_the_folder_guard_refuses_another_configuration(tmp_path):
    with StudyFolder(tmp_path, "a", config(1)) as folder:
        run_tasks(square, tasks(), folder.runs, workers=0, progress=False)
    with pytest.raises(ConfigError, match="another configuration.*--overwrite"):
        with StudyFolder(tmp_path, "a", config(2)):
            pass
    with StudyFolder(tmp_path, "a", config(2), overwrite=True) as folder:
        assert not folder.runs.exists()
    assert json.loads((tmp_path / "study.json").read_text())["identity"]["config"] == {"s": {"k": 2}}


def test_a_config_section_checks_its_fields():
    with pytest.raises(ConfigError, match="'s.k': must be an integer >= 0, got -1"):
        config(-1)
    with pytest.raises(ConfigError, match="'s.k': must be an integer >= 0, got True"):
        config(True)


def test_runs_without_a_marker_are_refused(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "N128_s0.npz").write_bytes(b"old")
    with pytest.raises(ConfigError, match="unknown configuration"):
        with StudyFolder(tmp_path, "a", config()):
            pass


def test_two_runs_into_one_folder_are_refused_while_the_first_holds_it(tmp_path):
    """Both used to run every task, and one crashed on the other's temporary file."""
    with StudyFolder(tmp_path, "a", config()):
        with pytest.raises(ConfigError, match="in use by another meanfield run"):
            with StudyFolder(tmp_path, "a", config()):
                pass
    with StudyFolder(tmp_path, "a", config()):  # released on exit
        pass


def test_an_output_folder_that_cannot_be_written_is_refused_before_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not writable" in err, err


def test_every_study_is_registered_with_a_valid_default_and_quick_config():
    studies = discover()
    assert set(studies) == {"study", "regime", "featurelearning", "rntk", "demo"}
    for study in studies.values():
        full, quick = study.config.load(), study.config.load(quick=True)
        assert full.digest() != quick.digest(), study.name
        full.check_size(24 * 2**30)


def test_demo_runs_and_reports_its_numbers(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--task", "delay1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["demo"]["task"] == "delay1"
    losses = report["final_probe_loss"]
    assert set(losses) == {"64", "256"}
    # the probe loss after training is below the loss of f = 0 (the symmetric start) on the same probes
    from meanfield.data import make_task

    task = make_task("delay1")
    probes = task.chain.sample_windows(6, 4, rng=0)
    start = 0.5 * float(np.mean(task.conditional_mean(probes) ** 2))
    assert all(0 < v < start for v in losses.values()), (losses, start)
    assert (out / "demo.png").stat().st_size > 0


def test_a_second_process_is_refused_while_the_first_holds_the_folder(tmp_path, capsys):
    """Two studies started at once into one folder used to both run every task (and one crashed on the
    other's temporary file)."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from meanfield.studies.demo import DemoConfig\n"
        "from meanfield.studies.framework import StudyFolder\n"
        f"with StudyFolder({str(tmp_path)!r}, 'demo', DemoConfig.load(quick=True)):\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        start = time.perf_counter()
        assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 2
        assert time.perf_counter() - start < 30
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"in use by another meanfield run (pid {holder.pid})" in err, err
        assert not (tmp_path / "runs").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_long_request_says_how_long_before_it_starts(tmp_path, capsys):
    class Slow(TinyConfig):
        def estimated_seconds(self):
            return 3 * 3600.0 * max(1, __import__("os").cpu_count() or 1)

    with StudyFolder(tmp_path, "a", Slow(s=KSection(k=1))):
        pass
    assert "estimated wall time about 3.0 h" in capsys.readouterr().err
