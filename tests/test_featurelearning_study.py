import json

import numpy as np
import pytest

from meanfield.cli import main
from meanfield.studies.featurelearning import FeatureLearningConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SMALL = """
[study]
task = "endpoint"
[model]
g = 1.0
g_u = 1.0
g_v = 1.0
[sampler]
step_size = 0.05
n_steps = 2000
burn_in = 400
thin = 5
[endpoint]
target = 4.0
depths = [2, 3]
beta_min = 0.1
beta_max = 2.0
n_beta = 10
transition_ratios = [0.5, 3.0]
transition_width = 128
widths = [64, 128]
[sequence]
patterns = 6
depth = 5
input_dim = 8
supervised = [1, 2, 3]
betas = [0.3, 3.0]
sampled_betas = [3.0]
width = 64
[sweep]
seed = 11
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("fl")
    (root / "small.toml").write_text(SMALL)
    out = {}
    for task in ("endpoint", "sequence"):
        assert main(["featurelearning", "--task", task, "--config", str(root / "small.toml"), "--out",
                     str(root / task), "--workers", "0", "--no-progress"]) == 0  # in-process: no Dask start-up
        out[task] = json.loads((root / task / "report.json").read_text()), root / task
    return out


def test_endpoint_report(reports):
    report, out = reports["endpoint"]
    c = report["critical_t2"]
    assert c["kind"] == "continuous" and abs(c["relative_error"]) < 1e-6
    assert max(max(s["order_dnn"]) for s in report["scan"].values()) < 1e-9
    rnn, dnn = report["transition"]["rnn"], report["transition"]["dnn"]
    assert rnn[0]["theory"] < 1e-9 < 0.2 < rnn[1]["theory"]  # 0.5 beta_c: symmetric; 3 beta_c: broken
    # sampled at N = 128: the RNN breaks the symmetry, the DNN does not
    assert rnn[1]["sampled"] - 3 * rnn[1]["sampled_se"] > dnn[1]["sampled"] + 3 * dnn[1]["sampled_se"]
    for act in ("linear", "tanh"):
        assert all(r["max_over_allowance"] < 1 for r in report["agreement"][act]["rows"])
    assert (out / "endpoint.png").stat().st_size > 0 and "Phase transition" in (out / "report.md").read_text()


def test_sequence_report(reports):
    """Weight sharing generalises to unsupervised steps (theory and sampling); the DNN does not."""
    report, out = reports["sequence"]
    rnn, dnn = report["sequence"]["rnn"][-1], report["sequence"]["dnn"][-1]
    assert rnn["train_error"] < 0.01 and dnn["train_error"] < 0.01
    assert rnn["test_error"] < 0.4 < 0.9 < dnn["test_error"]
    assert rnn["sampled_test_error"] < 0.4 < 0.9 < dnn["sampled_test_error"]
    assert (out / "sequence.png").stat().st_size > 0


def test_featurelearning_config_validation(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL.replace("supervised = [1, 2, 3]", "supervised = [1, 2, 3, 4, 5]"))
    assert main(["featurelearning", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "'sequence.supervised'" in capsys.readouterr().err
    bad.write_text(SMALL.replace("target = 4.0", "target = 2.0"))
    with pytest.raises(ValueError, match="'endpoint.target'"):
        FeatureLearningConfig.load(bad)
    for old, new, field in (("n_steps = 2000", "n_steps = 2000\nnsteps = 2", "sampler.nsteps"),
                            ("seed = 11", "seed = true", "sweep.seed"),
                            ("width = 64", "width = 100000000", "sequence.width")):
        bad.write_text(SMALL.replace(old, new))
        assert main(["featurelearning", "--task", "sequence", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"'{field}'" in err, err


def test_an_output_folder_holds_one_configuration(reports, tmp_path, capsys):
    _, out = reports["endpoint"]
    other = tmp_path / "other.toml"
    other.write_text(SMALL.replace("n_steps = 2000", "n_steps = 2001"))
    assert main(["featurelearning", "--config", str(other), "--out", str(out), "--workers", "0"]) == 2
    assert "another configuration" in capsys.readouterr().err
    # the two tasks into one folder: they used to overwrite each other's report
    assert main(["featurelearning", "--task", "sequence", "--config", str(out.parent / "small.toml"), "--out",
                 str(out), "--workers", "0"]) == 2
    assert "another configuration" in capsys.readouterr().err



def test_backend_jax_samples_and_never_reuses_the_other_backends_runs(tmp_path):
    """The study's runs on --backend jax (a reduced agreement run through the framework); the same run on numba
    in the same folder is recomputed (the backend is part of each run's key), not read back."""
    pytest.importorskip("jax")
    from meanfield.studies.featurelearning import sample_run
    from meanfield.studies.framework import DamagedRunWarning, discover, run_tasks

    assert discover()["featurelearning"].backends
    cfg = FeatureLearningConfig.from_dict(tomllib.loads(SMALL)).replace(**{"sampler.n_steps": 400,
                                                                           "sampler.burn_in": 100})
    task = dict(config=cfg.as_dict(), problem="agreement", shared=True, width=16, beta=1.0, index=0, g=1.0)
    runs = {"jax": run_tasks(sample_run, {"agree": dict(task, backend="jax")}, tmp_path, workers=0,
                             progress=False)["agree"]}
    with pytest.warns(DamagedRunWarning, match="belongs to another run"):
        runs["numba"] = run_tasks(sample_run, {"agree": dict(task, backend="numba")}, tmp_path, workers=0,
                                  progress=False)["agree"]
    assert runs["jax"]["kernel"].shape == (3, 2, 3, 2) and np.all(np.isfinite(runs["jax"]["kernel"]))
    assert not np.array_equal(runs["jax"]["kernel"], runs["numba"]["kernel"])


def test_the_time_estimate_counts_the_sampler_steps_and_the_theory_scan():
    """By hand from the constants: each run's steps (flops and the fixed cost per step) and, for the endpoint task,
    (n_beta + CRITICAL_SOLVES) solves per depth at SECONDS_PER_THEORY_SOLVE (T + 1)^6."""
    from meanfield.studies import featurelearning as fl

    cfg = FeatureLearningConfig.load(None, quick=True)
    steps = cfg.sampler.n_steps * fl.MAX_CHAIN_SCALE
    runs = sum(c * (steps * (8 * T * P * n * n * fl.SECONDS_PER_FLOP + fl.SECONDS_PER_LANGEVIN_STEP) + fl.RUN_SECONDS)
               for _, n, T, P, c in cfg._samplers())
    e = cfg.endpoint
    theory = (e.n_beta + fl.CRITICAL_SOLVES) * fl.SECONDS_PER_THEORY_SOLVE * sum((T + 1) ** 6 for T in e.depths)
    assert cfg.estimated_seconds() == pytest.approx(runs + theory, rel=1e-12)
    sequence = cfg.replace(**{"study.task": "sequence"})
    assert sequence.estimated_seconds() == pytest.approx(sum(
        c * (steps * (8 * T * P * n * n * fl.SECONDS_PER_FLOP + fl.SECONDS_PER_LANGEVIN_STEP) + fl.RUN_SECONDS)
        for _, n, T, P, c in sequence._samplers()), rel=1e-12)
