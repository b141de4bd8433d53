"""The muP Langevin sampler on JAX against the NumPy reference (float64 on the CPU)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from meanfield.architectures.mup.network import MuPNetwork, langevin, langevin_update  # noqa: E402
from meanfield.backends import precision  # noqa: E402
from meanfield.jax_backend import mup as jax_mup  # noqa: E402


def _problem(seed=0, P=4, T=3, d=2):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(P, T + 1, d)), rng.normal(size=(T + 1, P))
    readout = rng.random((T + 1, P)) < 0.5
    readout[-1] = True
    return X, y, readout


def _jax_gradient(net, X, y, readout, beta, dtype="float64"):
    jnp = jax.numpy
    with precision(dtype):
        real = jnp.dtype(dtype)
        grads, phi, h, f = jax_mup.data_gradient({k: jnp.asarray(v, real) for k, v in net.params.items()},
                                                 jnp.asarray(X, real), jnp.asarray(y, real), jnp.asarray(readout),
                                                 beta, activation_name=net.activation, shared=net.shared)
        return {k: np.asarray(g, dtype=float) for k, g in grads.items()}, float(phi), np.asarray(f, dtype=float)


@pytest.mark.parametrize("shared, activation", [(True, "tanh"), (True, "erf"), (False, "tanh"), (False, "linear")])
def test_gradient_equals_the_numpy_backpropagation(shared, activation):
    X, y, readout = _problem()
    net = MuPNetwork(48, 2, 3, shared=shared, activation=activation, g=1.3, seed=1)
    grads, phi, _, f = net.data_gradient(X, y, readout, 0.7)
    jgrads, jphi, jf = _jax_gradient(net, X, y, readout, 0.7)
    for key in grads:
        assert np.max(np.abs(jgrads[key] - grads[key])) <= 1e-12 * np.max(np.abs(grads[key])), (activation, key)
    assert jphi == pytest.approx(phi, rel=1e-12) and np.allclose(jf, f, rtol=0, atol=1e-12 * np.max(np.abs(f)))


def test_one_step_with_the_same_noise_equals_the_reference():
    X, y, readout = _problem(seed=3)
    net = MuPNetwork(40, 2, 3, shared=True, activation="tanh", seed=2)
    rng = np.random.default_rng(5)
    xi, new = ({k: rng.standard_normal(v.shape) for k, v in net.params.items()} for _ in range(2))
    start = {k: v.copy() for k, v in net.params.items()}
    jgrads, _, _ = _jax_gradient(net, X, y, readout, 1.5)
    with precision("float64"):
        stepped = jax_mup.update(start, jgrads, xi, new, 0.03, net.prior_var)
    grads, _, _, _ = net.data_gradient(X, y, readout, 1.5)
    langevin_update(net.params, grads, xi, new, 0.03, net.prior_var)
    for key, value in net.params.items():
        moved = np.max(np.abs(value - start[key]))
        assert np.max(np.abs(np.asarray(stepped[key]) - value)) <= 1e-12 * moved, key


def test_recorded_kernels_agree_with_the_reference_within_standard_errors():
    """Two independent chains of the same posterior (N = 16, tanh, two sequences, T = 2): every mean kernel
    entry agrees within 4 combined chain standard errors (a wrong noise scale or drift moves them by many)."""
    X = np.zeros((2, 3, 2))
    X[:, 0] = np.array([[1.0, 0.3], [-0.2, 1.0]]) * np.sqrt(2)
    y = np.array([0.6, -0.4])
    estimates = {}
    for backend in ("numba", "jax"):
        net = MuPNetwork(16, 2, 2, activation="tanh", g=1.5, g_u=1.5, seed=4)
        samples = langevin(net, X, y, beta=3.0, step_size=0.05, n_steps=6000, burn_in=1000, thin=5, seed=6,
                           backend=backend)
        assert samples.kernels.shape == (1000, 3, 2, 3, 2) and samples.energy.shape == (1000,)
        estimates[backend] = samples.kernel_estimate()
    (m_np, se_np), (m_jax, se_jax) = estimates["numba"], estimates["jax"]
    z = np.abs(m_jax - m_np) / np.sqrt(se_np**2 + se_jax**2)
    assert np.max(z) < 4, np.max(z)
    assert np.max(np.abs(m_jax - m_np)) > 0  # different random streams


def test_net_is_updated_in_place_and_divergence_raises():
    X, y, readout = _problem(seed=1, T=2)
    net = MuPNetwork(16, 2, 2, activation="linear", seed=0)
    arrays = {k: v for k, v in net.params.items()}
    start = {k: v.copy() for k, v in net.params.items()}
    s = langevin(net, X, y, readout, beta=1.0, step_size=0.05, n_steps=23, burn_in=4, thin=6, seed=1, backend="jax")
    assert s.outputs.shape == (len(range(4, 23, 6)), 3, 4)
    assert all(net.params[k] is arrays[k] and not np.allclose(arrays[k], start[k]) for k in arrays)
    assert np.all(np.isfinite(s.kernels))
    with pytest.raises(FloatingPointError, match="diverged at step"):  # the same chunk shape: no new compilation
        langevin(net, X, y, readout, beta=1e6, step_size=0.5, n_steps=23, burn_in=4, thin=6, seed=1, backend="jax")


def test_bad_backend_and_dtype_are_refused_naming_the_argument():
    X, y, readout = _problem(T=2)
    net = MuPNetwork(8, 2, 2, seed=0)
    kwargs = dict(beta=1.0, step_size=0.05, n_steps=10, burn_in=0)
    for options, name in ((dict(backend="torch"), "backend"), (dict(backend="jax", dtype="float16"), "dtype"),
                          (dict(dtype="float32"), "dtype")):
        with pytest.raises(ValueError, match=name):
            langevin(net, X, y, readout, **kwargs, **options)


def test_float32_gradient_error():
    X, y, readout = _problem()
    net = MuPNetwork(48, 2, 3, activation="tanh", g=1.3, seed=3)
    g64, _, _ = _jax_gradient(net, X, y, readout, 1.0)
    g32, _, _ = _jax_gradient(net, X, y, readout, 1.0, dtype="float32")
    error = max(np.max(np.abs(g32[k] - g64[k])) / np.max(np.abs(g64[k])) for k in g64)
    assert 1e-9 < error < 1e-5, error  # float32 rounding, not float64 and not a bug
