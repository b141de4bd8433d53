"""The study framework: run files that are verified, keyed and written safely; the folder guard and lock."""

import argparse
import contextlib
import errno
import json
import os
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from meanfield import checks
from meanfield.cli import main
from meanfield.report import atomic_file
from meanfield.studies.framework import (
    Config,
    ConfigError,
    DamagedRunWarning,
    Section,
    SeedSection,
    StudyFolder,
    backend_workers,
    check_scheduler,
    discover,
    load_result,
    run_key,
    run_tasks,
    spec,
    without,
    worker_threads,
    write_report,
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


def test_runs_are_kept_and_resumed(tmp_path, capsys):
    first = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    assert capsys.readouterr().err == ""
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    again = run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    assert capsys.readouterr().err == f"runs: 4 of 4 runs reused from {tmp_path}\n"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")} == stamps  # nothing recomputed
    for name in first:
        np.testing.assert_array_equal(first[name]["y"], again[name]["y"])
    assert not list(tmp_path.glob(".*")), "temporary files left behind"
    run_tasks(square, tasks(6), tmp_path, workers=0, progress=False)  # two more: the four finished are reused
    assert capsys.readouterr().err == f"runs: 4 of 6 runs reused from {tmp_path}\n"


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


def test_dotted_unkeyed_fields_leave_only_those_nested_keys_out_of_a_run_key():
    config = dict(sweep=dict(widths=[1, 2], seeds=2, seed=7), model=dict(beta=0.5))
    assert without(dict(config=config, n=3), ["config.sweep.widths", "config.sweep.seeds", "missing.key"]) == dict(
        config=dict(sweep=dict(seed=7), model=dict(beta=0.5)), n=3)
    assert config["sweep"]["widths"] == [1, 2]  # a copy: the argument is untouched
    unkeyed = ("config.sweep.widths",)
    other = dict(config, sweep=dict(config["sweep"], widths=[1, 2, 4]))
    assert run_key(square, dict(config=config), unkeyed) == run_key(square, dict(config=other), unkeyed)
    reseeded = dict(config, sweep=dict(config["sweep"], seed=8))
    assert run_key(square, dict(config=config), unkeyed) != run_key(square, dict(config=reseeded), unkeyed)


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


@pytest.mark.parametrize("damage", ["missing", "empty", "garbage", "no digest"])
def test_a_missing_or_damaged_study_json_is_rebuilt_and_the_runs_are_kept(tmp_path, damage):
    """It was refused as "runs of an unknown configuration" (use --overwrite), which discarded every valid run: the
    run keys are enough to keep the runs of this configuration and recompute the others."""
    with StudyFolder(tmp_path, "a", config()) as folder:
        run_tasks(square, tasks(), folder.runs, workers=0, progress=False)
    (tmp_path / "runs" / "t3.npz").write_bytes((tmp_path / "runs" / "t1.npz").read_bytes())  # another run's file
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("t[012].npz")}
    marker = tmp_path / "study.json"
    if damage == "missing":
        marker.unlink()
    else:
        marker.write_text({"empty": "", "garbage": "{not json", "no digest": "[1]"}[damage])
    state = "missing" if damage == "missing" else "unreadable"
    with pytest.warns(UserWarning, match=f"study.json was {state}: rebuilt it"):
        with StudyFolder(tmp_path, "a", config()) as folder:
            with pytest.warns(DamagedRunWarning, match="t3.npz belongs to another run"):
                out = run_tasks(square, tasks(), folder.runs, workers=0, progress=False)
    assert json.loads(marker.read_text())["digest"] == folder.digest
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("t[012].npz")} == stamps
    assert out["t3"]["x"] == 3.0


def killed_write(path):
    """What a run killed while writing ``path`` leaves: atomic_file's temporary file, never renamed."""
    writing = atomic_file(path, "wb")
    writing.__enter__().write(b"partial")
    return writing  # to be kept: collecting it would remove the file, as an interrupted (not killed) write does


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(tmp_path):
    """They were ignored but never removed (one .npz worth of disk for each killed run)."""
    with StudyFolder(tmp_path, "a", config()) as folder:
        run_tasks(square, tasks(), folder.runs, workers=0, progress=False)
        writes = [killed_write(folder.runs / "t1.npz"), killed_write(tmp_path / "report.json")]
        stale = list(tmp_path.glob(".report.json-*")) + list(folder.runs.glob(".t1.npz-*"))
        assert len(stale) == 2
        with pytest.raises(ConfigError, match="in use"):  # not removed while a live run may be writing them
            with StudyFolder(tmp_path, "a", config()):
                pass
        assert all(p.exists() for p in stale)
    mine = [tmp_path / name for name in (".notes", ".notes-2024", "notes-abcd1234", ".Notes-ABCD1234",
                                         ".env-template", ".config-defaults", ".notes-20240101")]
    mine.append(tmp_path / "runs" / "keep.txt")
    for p in mine:
        p.write_text("mine")
    with StudyFolder(tmp_path, "a", config()):
        assert not any(p.exists() for p in stale)
        assert all(p.read_text() == "mine" for p in mine)
    del writes  # only now: collecting them would have removed their files


def no_space(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, capsys):
    """The message named no file (the temporary file's write failed, and that has no name in the error)."""
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as err:
        run_tasks(square, tasks(), tmp_path, workers=0, progress=False)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "t0.npz")
    assert not list(tmp_path.iterdir()), "temporary file left behind"
    assert main(["demo", "--quick", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"meanfield demo: error: {os.strerror(errno.ENOSPC)}: {tmp_path / 'out' / 'study.json'}", line


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_get_the_mode_of_a_plain_open(tmp_path, umask, mode):
    """They were 0600 whatever the umask (mkstemp's mode, kept by the rename)."""
    code = "import sys; from meanfield.report import write_text; write_text(sys.argv[1], 'x')"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.txt")], umask=umask, check=True)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == mode


@pytest.mark.parametrize("address", ["nonsense", "tcp://host:notaport", "tcp://host", "tcp://host:70000",
                                     "nope://host:8786"])
def test_a_bad_scheduler_address_is_refused_before_any_work(tmp_path, capsys, address):
    """It was only refused when the runs started (after the limit of the study was built)."""
    with pytest.raises(SystemExit) as exit:
        main(["study", "--quick", "--scheduler", address, "--out", str(tmp_path / "out")])
    assert exit.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument --scheduler: not a Dask scheduler address (tcp://HOST:PORT): {address!r}" in line, line
    with pytest.raises(ValueError, match="not a Dask scheduler address"):
        run_tasks(square, tasks(), tmp_path / "runs", scheduler=address, progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    for good in ("tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://[::1]:8786", "ws://host:8786"):
        assert check_scheduler(good) == good


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


def test_a_long_request_says_how_long_before_it_starts_and_beyond_a_day_is_refused(tmp_path, capsys, monkeypatch):
    from meanfield.studies import framework

    monkeypatch.setattr(framework, "CORES", 2)  # the estimate is per core: wall time = estimate / cores

    class Slow(TinyConfig):
        seconds = 6 * 3600.0
        SIZE_FIELDS = ("s.k",)

        def estimated_seconds(self):
            return self.seconds

    with StudyFolder(tmp_path, "a", Slow(s=KSection(k=1))):
        pass
    assert "estimated wall time about 3.0 h" in capsys.readouterr().err
    Slow.seconds = 1000.0  # 500 s on 2 cores: under LONG_RUN_SECONDS, nothing said
    with StudyFolder(tmp_path, "a", Slow(s=KSection(k=1))):
        pass
    assert "estimated" not in capsys.readouterr().err
    Slow.seconds = 1.9 * 86400  # 0.95 day on 2 cores: allowed
    Slow(s=KSection(k=1)).check_time()
    Slow.seconds = 2.1 * 86400
    with pytest.raises(ConfigError, match=r"config fields s\.k: .* about 25\.2 h .*--allow-long"):
        Slow(s=KSection(k=1)).check_time()
    Slow(s=KSection(k=1)).check_time(allow_long=True)


def where_it_ran(x):
    """The process and the Dask worker's thread count (0 outside Dask) of a run."""
    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except ValueError:
        threads = 0
    return dict(pid=os.getpid(), threads=threads, x=x)


def test_runs_go_in_process_with_no_workers_and_to_one_single_threaded_worker_with_one(tmp_path):
    local = run_tasks(where_it_ran, tasks(3), tmp_path / "a", workers=0, progress=False)
    assert {r["pid"] for r in local.values()} == {os.getpid()} and {r["threads"] for r in local.values()} == {0}
    remote = run_tasks(where_it_ran, tasks(3), tmp_path / "b", workers=1, progress=False)
    pids = {r["pid"] for r in remote.values()}
    assert len(pids) == 1 and os.getpid() not in pids and {r["threads"] for r in remote.values()} == {1}


def test_workers_and_threads_of_each_backend(monkeypatch):
    assert backend_workers("jax", 3, None) == 0 and backend_workers("jax", 3, "tcp://h:1") == 3
    assert backend_workers("numba", 3, None) == 3 and backend_workers("numba", None, None) is None
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert [worker_threads(w, None) for w in (None, 0, 1, 2, 3, 16)] == [1, 8, 8, 4, 2, 1]
    assert worker_threads(2, "tcp://h:1") == 1
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert worker_threads(None, None) == 1


def test_the_report_records_its_wall_time_and_seed_zero_is_a_seed(tmp_path):
    import time

    assert SeedSection(seed=0).seed == 0
    with StudyFolder(tmp_path, "tiny", config()) as folder:
        started = time.perf_counter() - 5.0
        write_report(folder, dict(answer=1), "# tiny\n", started)
        elapsed = time.perf_counter() - started
    report = json.loads((tmp_path / "report.json").read_text())
    assert 5.0 <= report["wall_seconds"] <= elapsed and report["answer"] == 1 and report["study"] == "tiny"
    assert (tmp_path / "report.md").read_text() == "# tiny\n"


def test_writing_figures_leaves_the_matplotlib_backend_alone(tmp_path):
    """A notebook's inline backend must survive a study's figures (they were drawn after matplotlib.use('Agg'))."""
    code = ("import matplotlib; matplotlib.use('svg'); from meanfield.cli import main; "
            f"assert main(['demo', '--quick', '--out', {str(tmp_path)!r}, '--no-progress']) == 0; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "svg" and any(tmp_path.glob("*.png"))


def test_version_and_the_shipped_configs_as_templates(tmp_path, capsys):
    import meanfield

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"meanfield {meanfield.__version__}"
    assert main(["configs"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    studies = discover()
    assert set(studies) | {f"{s}-{n}" for s, st in studies.items() for n in st.config.SHIPPED} == set(listed)
    for name in ("regime", "study-ar1"):
        assert main(["configs", name]) == 0
        template = tmp_path / f"{name}.toml"
        template.write_text(capsys.readouterr().out)
        study, _, shipped = name.partition("-")
        config = studies[study].config
        assert config.load(template) == config.load(shipped or None)  # the template is the config it prints
    assert main(["configs", "nope"]) == 2 and "NAME must be one of" in capsys.readouterr().err


def test_the_help_names_the_default_output_folder_of_each_study():
    from meanfield.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, study in discover().items():
        default = study.default_out(argparse.Namespace(task=None)) if study.default_out else f"results/{name}"
        out = next(a for a in sub.choices[name]._actions if a.dest == "out")
        assert f"(default: {default})" in out.help, (name, out.help)


def test_quick_on_a_user_file_without_quick_tables_takes_the_shipped_ones(tmp_path):
    from meanfield.studies.convergence import StudyConfig

    user = tmp_path / "mine.toml"
    user.write_text("[training]\nalpha = 3.0\n")
    with pytest.warns(UserWarning, match=r"mine\.toml has no \[quick\] tables; the shipped ones apply"):
        quick = StudyConfig.load(user, quick=True)
    shipped = StudyConfig.load(None, quick=True)
    assert quick.sweep == shipped.sweep and quick.training.alpha == 3.0 and quick.sweep != StudyConfig.load().sweep
    user.write_text("[training]\nalpha = 3.0\n\n[quick.sweep]\nseeds = 3\n")  # its own quick tables win
    assert StudyConfig.load(user, quick=True).sweep.seeds == 3


def test_a_panel_without_labelled_artists_gets_no_legend_and_no_warning():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from meanfield.report import legend

    fig, (empty, labelled) = plt.subplots(1, 2)
    empty.plot([0, 1], [0, 1])
    labelled.plot([0, 1], [1, 0], label="line")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        legend(empty)
        legend(labelled, fontsize=7)
    assert empty.get_legend() is None and labelled.get_legend().get_texts()[0].get_text() == "line"
    plt.close(fig)


def test_a_local_cluster_says_nothing_about_a_busy_dashboard_port(tmp_path, capsys):
    """Dask hosts an HTTP server even without a dashboard; on its default port 8787, taken here, it warned
    "Port 8787 is already in use" through every study. The cluster now takes a free port."""
    import socket

    busy = socket.socket()
    with contextlib.suppress(OSError):  # already taken by something else: the same situation
        busy.bind(("127.0.0.1", 8787))
        busy.listen()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = run_tasks(square, tasks(2), tmp_path, workers=1, progress=False)
    finally:
        busy.close()
    assert out["t1"]["x"] == 1.0
    said = " ".join(str(w.message) for w in caught) + " ".join(capsys.readouterr())
    assert "8787" not in said and "already in use" not in said
