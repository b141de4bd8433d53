"""Bad inputs to the Python API are refused before any work, by an error that names the argument.

Each case was found by benchmarks/probe_inputs.py, where it gave a traceback, an error that did not name
the argument, or nothing at all."""

import numpy as np
import pytest

from meanfield import DiagonalRNN, ElmanRNN, LimitModel, MarkovChain, MuPNetwork, make_task, train_online
from meanfield.architectures.mup import KernelSaddle
from meanfield.stats import fit_rate
from meanfield.studies import framework
from meanfield.studies.convergence import StudyConfig

WINDOWS = np.ones((2, 3, 1))


def elman_train(**kw):
    net = ElmanRNN(4, 1, seed=0)
    return net.train([np.ones((3, 1))], np.zeros(1), **{"lr": 0.1, "steps": 2, **kw})


def saddle_solve(**kw):
    X = np.zeros((1, 3, 1))
    X[0, 0, 0] = 1.0
    y = np.zeros((3, 1))
    y[-1] = 4.0
    return KernelSaddle(X, y, y != 0, beta=1.0).solve(**kw)


CASES = [
    ("n_units", lambda: DiagonalRNN(10**12)),  # was a MemoryError traceback
    ("seed", lambda: DiagonalRNN(4, seed=-1)),
    ("sigma_w", lambda: DiagonalRNN(4, sigma_w="1")),  # was accepted
    ("sigma_w", lambda: DiagonalRNN(4, sigma_w=True)),  # was accepted
    ("task", lambda: train_online(DiagonalRNN(4), "delay1", 1.0, 1.0, WINDOWS)),  # was an AttributeError
    ("seed", lambda: train_online(DiagonalRNN(4), make_task("delay1"), 1.0, 1.0, WINDOWS, n_records=2, seed="abc")),
    ("P", lambda: MarkovChain([[0.5, 0.5], [1.0]], [-1.0, 1.0])),
    ("stay", lambda: make_task("delay1", stay=1.5)),
    ("stay", lambda: make_task("delay1", stay="high")),
    ("stay", lambda: make_task("delay1", stay=[0.5, 0.5])),  # was a TypeError from float()
    ("a", lambda: make_task("ar1-sin", a=1.5)),
    ("task", lambda: LimitModel("delay1", window=3)),  # was an AttributeError
    ("order", lambda: LimitModel(make_task("delay1"), window=3, order="ab")),
    ("order", lambda: LimitModel(make_task("delay1"), window=3, order=(10**6, 24))),
    ("window", lambda: LimitModel(make_task("delay1"), window=10**6, order=(16, 4))),  # was a MemoryError
    ("width", lambda: ElmanRNN(10**6, 1)),  # was a MemoryError
    ("steps", lambda: elman_train(steps=-1)),  # was accepted
    ("steps", lambda: elman_train(steps=2.5)),  # was accepted
    ("record_every", lambda: elman_train(record_every=0)),  # was a ZeroDivisionError
    ("lr", lambda: elman_train(lr="fast")),
    ("width", lambda: MuPNetwork(10**8, 1, 2)),  # was a MemoryError
    ("maxiter", lambda: saddle_solve(maxiter=0)),  # was buried in a SaddlePointError
    ("errors_per_seed", lambda: fit_rate([1, 2], [[1.0], [0.5]])),  # one seed: no spread, no interval
    ("level", lambda: fit_rate([1, 2], [[1.0, 1.1], [0.5, 0.6]], level=1.0)),
    ("TABLE.KEY", lambda: StudyConfig.load(overrides={"seed": 1})),
    ("nosuch", lambda: StudyConfig.load().replace(**{"nosuch.k": 1})),  # was a KeyError
]


@pytest.mark.parametrize("name, call", CASES, ids=[f"{i}-{n}" for i, (n, _) in enumerate(CASES)])
def test_bad_input_is_refused_naming_the_argument(name, call):
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        call()


def test_the_run_framework_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="run names"):
        framework.run_tasks(lambda: {}, {"a/b": {}}, tmp_path, workers=0, progress=False)
    with pytest.raises(TypeError, match="must return a dict"):
        framework.run_tasks(lambda: None, {"a": {}}, tmp_path, workers=0, progress=False)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError, match="x.npy.*not an .npz"):
        framework.load_result(tmp_path / "x.npy")


@pytest.mark.parametrize("study, tables, field", [
    ("study", "[sweep]\nseeds = 10000000\n", "sweep.seeds"),  # was 'about 2.0 h', then 30 MB/s of memory
    ("study", "[sweep]\nwidths = [1024, 2097152]\n", "sweep.widths"),
    ("study", "[training]\nhorizon = 1e9\n", "training.horizon"),
    ("regime", "[training]\nsteps = 1000000000\n", "training.steps"),
    ("demo", "[demo]\nhorizon = 1e9\n", "demo.horizon"),
])
def test_requests_estimated_beyond_a_day_are_refused_before_any_work(tmp_path, capsys, monkeypatch, study, tables,
                                                                    field):
    from meanfield import cli

    monkeypatch.setattr(framework, "CORES", 1)  # the estimates are per core: the same answer on any machine
    config = tmp_path / "config.toml"
    config.write_text(tables)
    out = tmp_path / "out"
    assert cli.main([study, "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and "--allow-long" in err[0] and "more than the limit of" in err[0]
    assert not out.exists()
    loaded = cli.discover()[study].config.load(config)
    loaded.check_time(allow_long=True)  # asked for explicitly: allowed
    with pytest.raises(ValueError, match="allow_long must be true or false"):
        loaded.check_time(allow_long="yes")


def test_a_training_estimated_beyond_a_day_is_refused_unless_asked_for():
    from meanfield.architectures.diagonal.network import _checked_training
    from meanfield.checks import LONG_REQUEST_SECONDS

    task = make_task("delay1")
    with pytest.raises(ValueError, match=r"horizon, with the model's n_units: .* about 112 days .*allow_long=True"):
        train_online(DiagonalRNN(1024), task, 1e9, 1.0, WINDOWS, progress=False)

    def day(N):  # the largest horizon allowed at width N: 250 ns a step, 3 ns per unit and (input_dim + 2)
        return LONG_REQUEST_SECONDS / (N * (250 + N * 3 * 3) * 1e-9)

    _checked_training(DiagonalRNN(1024), task, day(1024) * 0.999, 1.0, WINDOWS, 20, None)
    with pytest.raises(ValueError, match="horizon"):
        _checked_training(DiagonalRNN(1024), task, day(1024) * 1.001, 1.0, WINDOWS, 20, None)
    _checked_training(DiagonalRNN(1024), task, day(1024) * 1.001, 1.0, WINDOWS, 20, None, allow_long=True)
    from meanfield.architectures.diagonal import train_seeds

    with pytest.raises(ValueError, match="models' n_units"):  # four seeds of a quarter-day each, or mixed widths
        train_seeds([DiagonalRNN(1024)] * 4, task, day(1024) * 0.2501, 1.0, WINDOWS, progress=False)
    with pytest.raises(ValueError, match="models' n_units"):
        train_seeds([DiagonalRNN(64), DiagonalRNN(4096)], task, day(4096) * 1.001, 1.0, WINDOWS, progress=False)


def test_a_missing_extra_is_one_line_with_its_install_command():
    import subprocess
    import sys

    code = ("import sys; sys.modules['aeon'] = None\n"  # what an environment without aeon sees
            "try:\n    import meanfield.timeseries\nexcept ImportError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "meanfield.timeseries needs the optional extra [data]: pip install -e '.[data]' (missing: aeon)"


def test_durations_in_words_switch_unit_at_two_of_the_next():
    from meanfield.checks import duration

    assert [duration(s) for s in (119, 120, 7199, 7200, 2 * 86400 - 1, 2 * 86400)] == [
        "119 s", "2 min", "120 min", "2.0 h", "48.0 h", "2 days"]


def test_available_memory_is_read_in_bytes():
    from pathlib import Path

    from meanfield.checks import available_memory

    have = available_memory()
    assert 2**27 < have < 2**50  # between 128 MiB and 1 PiB: bytes, not kB or MB
    line = next((x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable:")), None)
    if line is not None:  # Linux: MemAvailable in kB, within what other processes change meanwhile
        assert abs(have - int(line.split()[1]) * 1024) < 2**30
