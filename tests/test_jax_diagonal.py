"""The JAX backend of the diagonal-RNN simulator against the Numba path (float64 on the CPU)."""

import numpy as np
import pytest

pytest.importorskip("jax")

from meanfield import Diagonal, make_task  # noqa: E402
from meanfield.architectures.diagonal import train_online, train_seeds  # noqa: E402

HORIZON, ALPHA, RECORDS = 2.0, 4.0, 6


def _runs(task_name, settings, n_units=128, n_seeds=3, **task_options):
    task = make_task(task_name, **task_options)
    probes = task.chain.sample_windows(6, 5, rng=np.random.default_rng(1)).values
    models = [settings.network(n_units, task.input_dim, seed=s) for s in range(n_seeds)]
    seeds = [100 + s for s in range(n_seeds)]
    return task, probes, models, seeds


@pytest.mark.parametrize("task_name, settings", [
    ("delay1", Diagonal("tanh", 1.0, 0.5)),
    ("ar1-sin", Diagonal("erf", 1.3, 0.4)),
    ("parity2", Diagonal("tanh", 0.8, 0.6, symmetric=False)),
])
def test_jax_batch_equals_numba_run_by_run(task_name, settings):
    task, probes, models, seeds = _runs(task_name, settings)
    ref = [train_online(m, task, HORIZON, ALPHA, probes, RECORDS, seed=s, progress=False)
           for m, s in zip(models, seeds)]
    out = train_seeds(models, task, HORIZON, ALPHA, probes, RECORDS, seeds=seeds, progress=False, backend="jax")
    for a, b in zip(ref, out):
        assert np.array_equal(a.steps, b.steps)
        np.testing.assert_allclose(b.outputs, a.outputs, rtol=0, atol=1e-10)
        np.testing.assert_allclose(b.losses, a.losses, rtol=1e-10)
        for name in ("c", "w", "b"):
            np.testing.assert_allclose(getattr(b.model, name), getattr(a.model, name), rtol=0, atol=1e-10)
        assert b.config["backend"] == "jax" and a.config["backend"] == "numba"
    # learning happened, so the comparison is not of two untrained networks
    assert np.max(np.abs(ref[0].outputs[-1] - ref[0].outputs[0])) > 1e-2
    if settings.symmetric:  # the halves cancel exactly, as on the Numba path
        assert np.all(out[0].outputs[0] == 0.0)


def test_train_online_on_jax_is_the_batch_of_one():
    task, probes, models, seeds = _runs("delay1", Diagonal("tanh", 1.0, 0.5), n_seeds=1)
    one = train_online(models[0], task, HORIZON, ALPHA, probes, RECORDS, seed=seeds[0], progress=False,
                       backend="jax")
    batch = train_seeds(models, task, HORIZON, ALPHA, probes, RECORDS, seeds=seeds, progress=False, backend="jax")
    assert np.array_equal(one.outputs, batch[0].outputs)


def test_float32_error_is_what_its_precision_allows():
    """float32 rounding (eps = 6e-8) grows along T N = 256 steps of training: measured about 1e-6."""
    task, probes, models, seeds = _runs("delay1", Diagonal("tanh", 1.0, 0.5))
    f64 = train_seeds(models, task, HORIZON, ALPHA, probes, RECORDS, seeds=seeds, progress=False, backend="jax")
    f32 = train_seeds(models, task, HORIZON, ALPHA, probes, RECORDS, seeds=seeds, progress=False, backend="jax",
                      dtype="float32")
    err = max(np.max(np.abs(a.outputs - b.outputs)) for a, b in zip(f64, f32))
    eps = np.finfo(np.float32).eps
    assert 0 < err < 1e3 * eps, err


def test_divergence_names_the_seed_and_step():
    task, probes, models, seeds = _runs("delay1", Diagonal("tanh", 1.0, 0.5), n_seeds=2)
    with pytest.raises(FloatingPointError, match="seed index 0 .* alpha = 1e\\+30"):
        train_seeds(models, task, HORIZON, 1e30, probes, RECORDS, seeds=seeds, progress=False, backend="jax")


def test_bad_backend_arguments_are_refused():
    task, probes, models, seeds = _runs("delay1", Diagonal("tanh", 1.0, 0.5), n_seeds=2)
    with pytest.raises(ValueError, match="backend must be one of"):
        train_online(models[0], task, HORIZON, ALPHA, probes, backend="torch")
    with pytest.raises(ValueError, match="dtype 'float32' needs backend='jax'"):
        train_online(models[0], task, HORIZON, ALPHA, probes, dtype="float32")
    with pytest.raises(ValueError, match="dtype must be one of"):
        train_seeds(models, task, HORIZON, ALPHA, probes, seeds=seeds, backend="jax", dtype="float16")
    with pytest.raises(ValueError, match="seeds must hold one seed per model"):
        train_seeds(models, task, HORIZON, ALPHA, probes, seeds=seeds[:1], backend="jax")
    other = Diagonal("tanh", 1.0, 0.5).network(64, 1, seed=0)
    with pytest.raises(ValueError, match=r"models\[1\] differs"):
        train_seeds([models[0], other], task, HORIZON, ALPHA, probes, seeds=seeds, backend="jax")
