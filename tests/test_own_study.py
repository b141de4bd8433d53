"""The convergence study on a user's own chain and target: from TOML (CLI) and from Python, one code path."""

import json
import warnings

import numpy as np
import pytest

import meanfield
from meanfield.cli import main
from meanfield.studies.convergence import StudyConfig
from meanfield.studies.framework import ConfigError, DamagedRunWarning
from meanfield.testing import assert_converges_to_limit, assert_rate

FINITE_TOML = """
[task]
target = "sin(x0_0) * x1_1 + 0.5 * x2_0"
noise_std = 0.1

[task.chain]
kind = "finite"
transition = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
states = [[-1.0, 0.5], [0.0, 1.0], [1.0, -0.5]]

[limit]
window = 7          # all 3^7 = 2187 windows: an exact grid
nodes = 8192

[quick.sweep]
widths = [128, 256, 512, 1024, 2048]
seeds = 8

[quick.training]
n_records = 10
"""


def finite_chain():
    return meanfield.MarkovChain([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
                                 [[-1.0, 0.5], [0.0, 1.0], [1.0, -0.5]])


@pytest.fixture(scope="module")
def finite_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own_finite")
    (folder / "my_chain.toml").write_text(FINITE_TOML)
    out = folder / "out"
    assert main(["study", "--config", str(folder / "my_chain.toml"), "--quick", "--out", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    return out


def test_own_finite_chain_converges_at_rate_one_half(finite_study):
    report = json.loads((finite_study / "report.json").read_text())
    assert_rate(report["widths"], [report["errors"][str(N)]["sup_per_seed"] for N in report["widths"]], level=0.999)
    assert report["limit"]["grid"] == "exact" and report["limit"]["grid_error"] == 0.0
    assert report["task"]["target"] == "sin(x0_0) * x1_1 + 0.5 * x2_0"


def test_python_study_gives_the_report_of_the_cli(finite_study, tmp_path):
    """The task built in Python gives the CLI's configuration (so the folder guard accepts the CLI's folder and
    every run key matches its run files, which are reused), and the same report from them."""
    import shutil

    shutil.copytree(finite_study, tmp_path / "py")
    (tmp_path / "py" / "report.json").unlink()
    task = meanfield.Task.from_expression(finite_chain(), "sin(x0_0) * x1_1 + 0.5 * x2_0", noise_std=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedRunWarning)  # a run of another key would be recomputed, with a warning
        result = meanfield.convergence_study(task, widths=[128, 256, 512, 1024, 2048], n_records=10, window=7,
                                             nodes=8192, workers=0, progress=False, out=tmp_path / "py")
    assert result.report["seconds"]["sweep"] < 5  # read from disk, not simulated again
    cli = json.loads((finite_study / "report.json").read_text())
    py = json.loads((tmp_path / "py" / "report.json").read_text())
    assert py["config"] == cli["config"] and py["digest"] == cli["digest"]
    for key in ("errors", "rate", "kernel_errors", "kernel_rate", "memory_rate", "limit", "task"):
        assert py[key] == cli[key], key
    assert_converges_to_limit(result, level=0.999)
    assert_rate(result.widths, list(result.kernel_errors.values()), expected=-0.5, level=0.999)
    figures = result.plot()
    assert set(figures) == {"error_vs_width.png", "kernel_error_vs_width.png", "trajectories.png", "memory_state.png",
                            "fluctuations.png"}
    times, outputs, limit = result.trajectories(result.widths[-1])
    assert outputs.shape == limit.shape == (times.size, 16)


def test_shipped_ar1_study_has_no_grid_floor(tmp_path):
    """The 2-dimensional AR(1) chain of the second shipped config, quick: rate -1/2 and a grid error below a tenth
    of the error at the largest width (assert_converges_to_limit checks both)."""
    cfg = StudyConfig.load("ar1", quick=True)
    task = cfg.make_task()
    assert cfg.limit.grid == 2048 and task.input_dim == 2 and task.lags == 1
    result = meanfield.convergence_study(task, quick=True, window=cfg.limit.window, nodes=cfg.limit.nodes,
                                         grid=cfg.limit.grid, widths=cfg.sweep.widths, workers=0, progress=False)
    assert result.report["limit"]["grid"] == "sobol"
    assert_converges_to_limit(result, level=0.999)
    lim, largest = result.report["limit"], result.errors[cfg.sweep.widths[-1]].mean()
    assert lim["grid_error"] > 0 and lim["grid_error_ratio"] == pytest.approx(lim["grid_error"] / largest)
    r = result.rate  # a notebook shows a line, not the arrays
    assert repr(result) == (f"ConvergenceResult(widths {list(cfg.sweep.widths)}, {cfg.sweep.seeds} seeds, rate "
                            f"{r.slope:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] (theory -0.5))")


def test_assertions_fail_with_readable_messages():
    widths = [128, 512, 2048]
    flat = [np.full(4, 0.1) * f for f in (1.0, 1.01, 0.99)]
    with pytest.raises(AssertionError, match="contains 0"):
        assert_rate(widths, [e * np.array([1, 1.1, 0.9, 1.05]) for e in flat])
    steep = [2.0 * N**-1.0 * np.array([1, 1.1, 0.9, 1.05]) for N in widths]
    with pytest.raises(AssertionError, match="misses the expected -0.5"):
        assert_rate(widths, steep)
    assert assert_rate(widths, steep, expected=-1.0).covers(-1.0)


BAD_TARGETS = [
    ("__import__('os')", "__import__"),
    ("x0_0.real", "real"),
    ("y + x0_0", "'y'"),
    ("foo(x0_0)", "foo"),
    ("x9_0", "x9_0"),  # lag beyond the window length 7
    ("x0_2", "x0_2"),  # component beyond the input dimension 2
    ("log(x0_0)", "log(x0_0)"),  # not finite on the state -1
]


@pytest.mark.parametrize("target, token", BAD_TARGETS)
def test_bad_targets_are_refused_with_one_line(tmp_path, capsys, target, token):
    text = FINITE_TOML.replace('"sin(x0_0) * x1_1 + 0.5 * x2_0"', json.dumps(target))
    (tmp_path / "bad.toml").write_text(text)
    code = main(["study", "--config", str(tmp_path / "bad.toml"), "--quick", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "task.target" in err and token in err, err
    assert not (tmp_path / "out").exists()  # refused before any work


BAD_CHAINS = [
    ("[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.3]]", "task.chain.transition", "stochastic"),
    ("[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]", "task.chain.transition", "irreducible"),
    ("[[0.8, 0.2], [0.1, 0.9]]", "task.chain.states", "shape"),
]


def test_task_function_is_not_for_config_files(tmp_path):
    (tmp_path / "f.toml").write_text('[task]\nname = "delay1"\nfunction = "os.system"\n')
    with pytest.raises(ConfigError, match="got name and function"):  # the shipped name stays: two kinds of task
        StudyConfig.load(tmp_path / "f.toml")
    (tmp_path / "g.toml").write_text('[task]\ntarget = "x1"\nfunction = "os.system"\n[task.chain]\nkind = "finite"\n'
                                     'transition = [[0.9, 0.1], [0.1, 0.9]]\nstates = [-1.0, 1.0]\n')
    with pytest.raises(ConfigError, match="got target and function"):
        StudyConfig.load(tmp_path / "g.toml")


@pytest.mark.parametrize("transition, field, words", BAD_CHAINS)
def test_bad_chains_are_refused_naming_the_field(tmp_path, capsys, transition, field, words):
    text = FINITE_TOML.replace("[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]", transition)
    (tmp_path / "bad.toml").write_text(text)
    assert main(["study", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"'{field}'" in err and words in err and "\n" not in err, err


def test_ar1_chain_and_task_table_errors():
    base = StudyConfig.load("ar1").as_dict()
    cases = [
        (dict(chain=dict(kind="gaussian-ar1", A=[[1.2, 0.0], [0.0, 0.5]], Q=[[1.0, 0.0], [0.0, 1.0]])),
         "task.chain.A", "spectral radius"),
        (dict(chain=dict(kind="gaussian-ar1", A=[[0.5, 0.0], [0.0, 0.5]], Q=[[1.0, 2.0], [2.0, 1.0]])),
         "task.chain.Q", "positive definite"),
        (dict(chain=dict(kind="gaussian-ar1", A=[[0.5]], Q=[[1.0]], P=[[1.0]])), "task.chain.P", "not a key"),
        (dict(chain=dict(kind="hmm")), "task.chain.kind", "must be one of"),
        (dict(name="delay1"), "task", "either"),
        (dict(target=None), "task", "neither"),
    ]
    for change, field, words in cases:
        raw = json.loads(json.dumps(base))
        raw["task"].update(change)
        with pytest.raises(ConfigError, match=words) as info:
            StudyConfig.from_dict(raw)
        assert f"'{field}'" in str(info.value), str(info.value)


def test_a_replaced_task_is_described_by_its_new_values():
    import dataclasses

    task = meanfield.Task.from_expression(finite_chain(), "x1_0", noise_std=0.1)
    changed = dataclasses.replace(task, noise_std=0.5)  # the expression's spec no longer describes it
    assert "target" in task.description() and "function" in changed.description()
    assert changed.description()["noise_std"] == 0.5


def test_gaussian_initialisation_needs_no_even_widths_but_its_records():
    base = StudyConfig.load()
    assert base.replace(**{"model.init": "gaussian", "sweep.widths": [127, 255]}).sweep.widths == (127, 255)
    with pytest.raises(ConfigError, match="'training.n_records'"):
        base.replace(**{"model.init": "gaussian", "training.n_records": 10**6})
    with pytest.raises(ConfigError, match="'limit.grid'"):
        StudyConfig.load("ar1").replace(**{"limit.grid": 3000})


def test_python_function_targets_are_fingerprinted():
    chain = finite_chain()
    task = meanfield.Task(chain, lambda h: np.tanh(h[..., -1, 0]), lags=0, noise_std=0.1)
    other = meanfield.Task(chain, lambda h: np.tanh(1.01 * h[..., -1, 0]), lags=0, noise_std=0.1)
    assert task.description()["function"] != other.description()["function"]
    assert task.description() == meanfield.Task(chain, task.target, lags=0, noise_std=0.1).description()
    with pytest.raises(ValueError, match="task must be a meanfield Task"):
        meanfield.convergence_study(lambda h: h)


def test_qmc_grid_beats_sampling_on_a_gaussian_integral():
    """The Sobol window grid integrates E[sin(x_0 . 1) x_{-1, 0}] (closed form for the Gaussian window law) with an
    error far below the sampled grid's Monte Carlo error."""
    chain = meanfield.GaussianAR1([[0.5, 0.2], [-0.1, 0.4]], [[0.7, 0.1], [0.1, 0.8]])
    C = chain.window_covariance(3)
    d = 2
    # Y = x_0 . (1, 1) and Z = x_{-1, 0}: E[sin(Y) Z] = Cov(Y, Z) exp(-Var(Y) / 2)
    a = np.zeros(3 * d)
    a[2 * d:] = 1.0
    e = np.zeros(3 * d)
    e[d] = 1.0
    exact = (a @ C @ e) * np.exp(-(a @ C @ a) / 2)
    for seed in range(3):
        w = chain.qmc_windows(3, 4096, seed=seed).values
        qmc = np.mean(np.sin(w[:, 2].sum(axis=1)) * w[:, 1, 0])
        assert abs(qmc - exact) < 2e-3, (qmc, exact)  # MC standard error at 4096 points: about 1e-2
    np.testing.assert_allclose(np.cov(chain.qmc_windows(3, 8192, seed=0).values.reshape(8192, -1).T), C, atol=0.03)


def test_gaussian_initialisation_couples_the_limit_and_reports_the_moment_floor():
    task = meanfield.make_task("delay1")
    result = meanfield.convergence_study(task, init="gaussian", widths=[128, 256, 512, 1024], n_records=10,
                                         workers=0, progress=False)
    moments = result.report["moments"]
    assert set(moments) == {"128", "256", "512", "1024"}
    assert all(m["mean_se"] > 0 and m["var_se"] > 0 for m in moments.values())
    assert_converges_to_limit(result, level=0.999)  # coupled rate -1/2; moments within 5 Monte Carlo s.e.
    run = result.runs["N1024_s0"]
    np.testing.assert_allclose(run["limit"][0], run["f0_probes"], atol=1e-12)  # the limit starts at f^N_0


def test_jax_backend_gives_the_numba_errors_on_an_own_task():
    pytest.importorskip("jax")
    task = meanfield.Task.from_expression(finite_chain(), "sin(x0_0) * x1_1", noise_std=0.1)
    kw = dict(widths=[64, 128], seeds=2, horizon=1.0, n_records=4, window=5, nodes=1024, probes=4, workers=0,
              progress=False)
    numba, jax = (meanfield.convergence_study(task, backend=b, **kw) for b in ("numba", "jax"))
    for N in (64, 128):
        np.testing.assert_allclose(jax.errors[N], numba.errors[N], rtol=1e-9)


def test_limit_grid_rules():
    from meanfield.architectures.diagonal.limit import limit_grid

    chain = finite_chain()
    assert limit_grid(chain, 4, 4096, rule=True)[1] == "exact"  # 3^4 = 81 windows
    grid, rule = limit_grid(chain, 9, 1024, rule=True)  # 3^9 > 1024: a stationary sample
    assert rule == "sampled" and len(grid) == 1024
    ar = meanfield.GaussianAR1([[0.5]], [[0.75]])
    assert limit_grid(ar, 4, 512, rule=True)[1] == "sobol"
    with pytest.raises(ValueError, match="power of 2"):
        limit_grid(ar, 4, 1000)


def test_a_tensor_order_for_inputs_in_r2_is_refused_not_ignored():
    """For d >= 2 the default rule takes `nodes` Sobol points: an order would be silently unused, so it is refused
    (naming the field and the two ways out), from Python as from a config file; with rule='trapezoid' it is the
    rule's order."""
    chain = meanfield.MarkovChain([[0.9, 0.1], [0.2, 0.8]], [[-1.0, 0.5], [1.0, 0.0]])
    task = meanfield.Task.from_expression(chain, "tanh(x0_0 + x1_1)", noise_std=0.1)
    with pytest.raises(ConfigError, match=r"'limit.order'.*unused for inputs in R\^2.*set nodes.*rule = 'trapezoid'"):
        meanfield.convergence_study(task, order=(32, 12), progress=False)
    with pytest.raises(ConfigError, match="'limit.nodes'.*a power of 2"):
        meanfield.convergence_study(task, nodes=1000, progress=False)
    raw = StudyConfig.load("ar1").as_dict()
    raw["limit"]["order"] = [32, 12]
    with pytest.raises(ConfigError, match="'limit.order'.*unused for inputs in R\\^2"):
        StudyConfig.from_dict(raw)
    raw["limit"]["rule"] = "trapezoid"
    assert StudyConfig.from_dict(raw).quadrature().size == 32 * 32 * 12
