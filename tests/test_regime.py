import json

import numpy as np
import pytest
from scipy import stats

from meanfield.cli import main


@pytest.fixture(scope="module")
def quick_regime(tmp_path_factory):
    out = tmp_path_factory.mktemp("regime")
    # in-process: half the CPU time of two Dask workers (their start-up and imports), and the same runs
    assert main(["regime", "--quick", "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    return json.loads((out / "report.json").read_text()), out


def test_kernel_distance_falls_with_width_in_ntk_but_not_in_mup(quick_regime):
    report, _ = quick_regime
    ntk, mup = report["parameterisation"]["ntk"]["rate"], report["parameterisation"]["mup"]["rate"]
    assert ntk["ci_high"] < 0, ntk  # lazy: the kernel freezes as the width grows
    assert mup["ci_low"] > -1, mup  # muP: S does not fall like the NTK's 1/n (it tends to a constant)
    # the rates differ: Welch's t on the difference of the two independent slopes, at 95%
    v_ntk, v_mup = ntk["se"] ** 2, mup["se"] ** 2
    dof = (v_ntk + v_mup) ** 2 / (v_ntk**2 / ntk["dof"] + v_mup**2 / mup["dof"])
    assert mup["slope"] - ntk["slope"] > stats.t.ppf(0.975, dof) * np.sqrt(v_ntk + v_mup), (mup, ntk)
    dist = report["parameterisation"]
    assert dist["mup"]["mean"][-1] > 10 * dist["ntk"]["mean"][-1]  # features move O(1) in muP


def test_floor_free_gap_falls_like_inverse_sqrt_width(quick_regime):
    """Against GD on the linearised network with the same step, the gap falls at every length and sigma_w; at
    T = 4 (the asymptotic regime at these widths) its slope's 95% interval holds -1/2, and the continuous flow,
    which carries the O(lr) discretisation error, stays further away at the widest width."""
    report, out = quick_regime
    for sw, v in report["width_length"].items():
        for T, c in v["lengths"].items():
            assert c["slope"]["ci_high"] < 0, (sw, T, c["slope"])
        short = v["lengths"]["4"]
        assert short["slope"]["ci_low"] < -0.5 < short["slope"]["ci_high"], (sw, short["slope"])
        assert short["rows"][-1]["flow_gap"] > short["rows"][-1]["mean"], (sw, short["rows"][-1])
    assert "The width-length law" in (out / "report.md").read_text()
    assert all((out / name).stat().st_size > 0 for name in ("width_length.png", "uncertainty.png", "regime.png"))


def test_crossing_widths_grow_with_length_at_the_edge_of_chaos(quick_regime):
    """At chi_1 = 1 the crossing of the 0.2 tolerance moves out with T (each interval above the previous point)."""
    report, _ = quick_regime
    assert abs(report["chi_1"]["1.65"] - 1) < 0.01 and report["chi_1"]["1.0"] < 0.5
    cells = [c["crossings"]["0.2"] for c in report["width_length"]["1.65"]["lengths"].values()]
    assert cells[0]["status"] == "measured"
    for before, after in zip(cells, cells[1:]):
        assert after["ci"][0] > before["width"], (before, after)


def test_the_ntk_gp_describes_the_widest_ensembles(quick_regime):
    """At the widest width the GP's nominal interval holds the members' outputs at its level (95% bootstrap over
    members), and the ensemble mean is closer to the GP mean than at the narrowest width."""
    report, _ = quick_regime
    for sw, per_length in report["uncertainty"].items():
        for T, v in per_length.items():
            narrow, wide = v["rows"][0], v["rows"][-1]
            lo, hi = wide["gp_covers_members_ci"]
            assert lo <= 0.9 <= hi, (sw, T, wide)
            assert wide["mean_offset"] < narrow["mean_offset"], (sw, T)


def test_regime_config_validation(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    from importlib import resources

    text = resources.files("meanfield.studies").joinpath("regime_default.toml").read_text()
    bad.write_text(text.replace("lengths = [4, 8, 16, 32, 64, 128, 256]", "lengths = [16, 4]"))
    assert main(["regime", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "'width_length.lengths'" in capsys.readouterr().err
    for toml, field in (("[width_length]\nmax_cost = 100.0\n", "width_length.max_cost"),  # no width left
                        ("[width_length]\nlr_fraction = 2.0\n", "width_length.lr_fraction"),  # unstable GD
                        ("[uncertainty]\nsigma_w = 1.0\n", "uncertainty.sigma_w"),  # a list
                        ("[width_length]\ncheckpoints = 9\n", "width_length.checkpoints"),
                        ("[training]\nlr = 1000000.0\n", "training.lr"),  # diverged to 1e58 and reported
                        ("[training]\ncheckpoints = 0\n", "training.checkpoints"),  # was a ZeroDivisionError
                        ("[training]\nlr2 = 0.1\n", "training.lr2"),
                        ("[quick.width_length]\nlenghts = [4]\n", "quick.width_length.lenghts"),
                        ("[sweep]\nseed = true\n", "sweep.seed"),
                        ("[width_length]\nwidths = [64, 1000000000]\nmax_cost = 1e30\n", "width_length.widths")):
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
    # trained to convergence on B, the network forgets A: most of its loss (about 0.5), far above early stopping
    early, converged = cl["early"]["rows"][-1], cl["converged"]["rows"][-1]
    assert converged["ci_low"] > 0.4 and converged["ci_low"] > early["ci_high"] + 0.3, (early, converged)


def test_backend_jax_runs_equal_the_numba_runs():
    """Training, empirical NTKs, diagnostics and gaps of reduced runs on --backend jax equal the NumPy ones
    (float64), and the backend is part of every run's key."""
    pytest.importorskip("jax")
    import numpy as np

    from meanfield.studies.framework import discover
    from meanfield.studies.regime import (
        RegimeConfig,
        _tasks,
        _uncertainty_tasks,
        _width_length_tasks,
        continual_run,
        regime_run,
    )
    from meanfield.studies.width_law import width_length_run

    assert discover()["regime"].backends
    cfg = RegimeConfig.load(quick=True).replace(**{"training.steps": 4, "training.checkpoints": 2,
                                                   "training.n_train": 4, "training.n_heldout": 2})
    param, continual = (next(iter(t.values())) for t in _tasks(cfg, "jax"))
    wl = next(iter(_width_length_tasks(cfg, 4, [1.65], "jax").values()))
    assert all(t["backend"] == "jax" for t in (param, continual, wl, *_uncertainty_tasks(cfg, "jax").values()))
    for run, kwargs in ((regime_run, dict(param, width=16, length=4, parameterisation="mup")),
                        (continual_run, dict(continual, width=16, steps=3)),
                        (width_length_run, dict(wl, steps=3, checkpoints=3))):  # the members: as continual_run
        kwargs.pop("backend", None)
        ref, fast = (run(backend=b, **kwargs) for b in ("numba", "jax"))
        for key, value in ref.items():
            if key != "seconds":
                assert np.allclose(fast[key], value, rtol=1e-8, atol=1e-12, equal_nan=True), (run.__name__, key)
