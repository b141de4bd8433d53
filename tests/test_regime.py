import json

import numpy as np
import pytest
from scipy import stats

from meanfield.cli import main


@pytest.fixture(scope="module")
def quick_regime(tmp_path_factory):
    out = tmp_path_factory.mktemp("regime")
    assert main(["regime", "--quick", "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    return json.loads((out / "report.json").read_text()), out


def test_kernel_distance_falls_with_width_in_ntk_but_not_in_mup(quick_regime):
    report, _ = quick_regime
    ntk, mup = report["parameterisation"]["ntk"]["rate"], report["parameterisation"]["mup"]["rate"]
    assert ntk["ci_high"] < 0, ntk  # lazy: the kernel freezes as the width grows
    assert mup["ci_high"] > 0, mup  # muP: no decrease can be rejected
    # the rates differ: Welch's t on the difference of the two independent slopes, at 95%
    v_ntk, v_mup = ntk["se"] ** 2, mup["se"] ** 2
    dof = (v_ntk + v_mup) ** 2 / (v_ntk**2 / ntk["dof"] + v_mup**2 / mup["dof"])
    assert mup["slope"] - ntk["slope"] > stats.t.ppf(0.975, dof) * np.sqrt(v_ntk + v_mup), (mup, ntk)
    dist = report["parameterisation"]
    assert dist["mup"]["mean"][-1] > 10 * dist["ntk"]["mean"][-1]  # features move O(1) in muP


def test_gap_to_the_kernel_flow_shrinks_with_width(quick_regime):
    report, out = quick_regime
    for T, rate in report["gap_rates"].items():
        assert rate["ci_high"] < 0, (T, rate)
    assert (out / "regime.png").stat().st_size > 0 and "Width x length" in (out / "report.md").read_text()


def test_regime_config_validation(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    from importlib import resources

    text = resources.files("meanfield.studies").joinpath("regime_default.toml").read_text()
    bad.write_text(text.replace("lengths = [4, 16, 64]", "lengths = [16, 4]"))
    assert main(["regime", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "'width_length.lengths'" in capsys.readouterr().err
    for toml, field in (("[training]\nlr = 1000000.0\n", "training.lr"),  # diverged to 1e58 and reported
                        ("[training]\ncheckpoints = 0\n", "training.checkpoints"),  # was a ZeroDivisionError
                        ("[training]\nlr2 = 0.1\n", "training.lr2"),
                        ("[quick.width_length]\nlenghts = [4]\n", "quick.width_length.lenghts"),
                        ("[sweep]\nseed = true\n", "sweep.seed"),
                        ("[width_length]\nwidths = [64, 1000000000]\n", "width_length.widths")):
        bad.write_text(toml)
        assert main(["regime", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"'{field}'" in err, err
    assert not (tmp_path / "o").exists()


def test_quick_runs_are_never_reused_by_the_full_study(quick_regime, capsys):
    """The same --out for --quick and the full study: refused in one line (it used to mix the quick runs,
    200 steps, into the full report, 400 steps, since run files were named by width and seed only)."""
    _, out = quick_regime
    assert main(["regime", "--out", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another configuration" in err and "--overwrite" in err, err


def test_continual_learning_matches_the_kernel_regime_at_the_largest_width(quick_regime):
    report, _ = quick_regime
    cl = report["continual"]
    for regime in ("early", "converged"):
        widest = cl[regime]["rows"][-1]
        assert widest["ci_low"] <= widest["kernel_prediction"] <= widest["ci_high"], (regime, widest)
    # trained to convergence on B, the network forgets A much more than with early stopping
    assert cl["converged"]["rows"][-1]["mean"] > 5 * cl["early"]["rows"][-1]["mean"]


def test_backend_jax_runs_equal_the_numba_runs():
    """Training, empirical NTKs and diagnostics of one reduced run of each kind on --backend jax equal the
    NumPy ones (float64), and the backend is part of the run key."""
    pytest.importorskip("jax")
    import numpy as np

    from meanfield.studies.framework import discover
    from meanfield.studies.regime import RegimeConfig, _tasks, continual_run, regime_run

    assert discover()["regime"].backends
    cfg = RegimeConfig.load(quick=True).replace(**{"training.steps": 4, "training.checkpoints": 2,
                                                   "training.n_train": 4, "training.n_heldout": 2})
    assert all(t["backend"] == "jax" for t in _tasks(cfg, "jax")[0].values())
    config = cfg.as_dict()
    for run, kwargs in ((regime_run, dict(part="parameterisation", width=16, length=4, parameterisation="mup")),
                        (regime_run, dict(part="width_length", width=16, length=4, parameterisation="ntk")),
                        (continual_run, dict(width=16, steps=3))):
        ref, fast = (run(config, index=1, backend=b, **kwargs) for b in ("numba", "jax"))
        for key, value in ref.items():
            if key != "seconds":
                assert np.allclose(fast[key], value, rtol=1e-8, atol=1e-12, equal_nan=True), (run.__name__, key)
