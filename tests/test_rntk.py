import math

import numpy as np
import pytest
from helpers import finite_difference_jacobian

from meanfield.activations import ERF, RELU, TANH, gaussian_dual, normal_rule
from meanfield.architectures.elman import rntk
from meanfield.architectures.elman.network import ElmanRNN
from meanfield.reference import gaussian_dual_reference, rntk_reference
from meanfield.stats import fit_rate
from meanfield.testing import assert_rate

RULE = normal_rule()


def relu_dual(s11, s12, s22):
    return gaussian_dual(s11, s12, s22, RELU, *RULE)


def erf_dual(s11, s12, s22):
    return gaussian_dual(s11, s12, s22, ERF, *RULE)


@pytest.fixture(scope="module")
def sequences():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(T, 2)) for T in (3, 5, 4, 1)], [rng.normal(size=(T, 2)) for T in (2, 5, 6)]


@pytest.mark.parametrize("activation, dual", [("relu", relu_dual), ("erf", erf_dual), ("tanh", None)])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("readout, initial_state", [("last", "shared"), ("mean", "shared"), ("per_step", "shared"),
                                                    ("last", "independent"), ("per_step", "independent")])
def test_compiled_rntk_equals_the_full_grid_reference(sequences, activation, dual, layers, readout, initial_state):
    """The reference recurses over every (t, t') pair; the compiled kernel over the end-aligned
    diagonal only (last and per-step readouts) - they must agree, for cross and symmetric Grams."""
    X, Y = sequences
    kw = dict(layers=layers, activation=activation, sigma_w=1.1, sigma_u=0.9, sigma_b=0.3, sigma_v=1.2,
              sigma_h=0.5, readout=readout, initial_state=initial_state)
    tol = 1e-13 if activation != "tanh" else 1e-9
    # A sequence paired with itself has lambda = 1; the reference computes its own variances and the
    # pair by different roundings, and ReLU's (pi - arccos lambda) turns an ulp into sqrt(eps) ~ 1e-8.
    # (The compiled kernel shares the arithmetic of both and gets lambda = 1 exactly.)
    for (A, B), t in (((X, Y), tol), ((X, None), 1e-7 if activation == "relu" else tol)):
        nngp, ntk = rntk(A, B, kind="both", **kw)
        ref_nngp, ref_ntk = rntk_reference(A, B, dual=dual, **kw)
        np.testing.assert_allclose(nngp, ref_nngp, atol=t, rtol=t)
        np.testing.assert_allclose(ntk, ref_ntk, atol=t, rtol=t)
    sym = rntk(X, kind="ntk", **kw)
    np.testing.assert_array_equal(sym, sym.T)
    cross = rntk(X, [x.copy() for x in X], **kw)
    if initial_state == "shared":
        np.testing.assert_allclose(sym, cross, rtol=1e-12, atol=1e-13)
    else:  # a cross Gram holds different draws of the initial state: only the diagonal differs
        off = ~np.eye(len(X), dtype=bool)
        np.testing.assert_allclose(sym[off], cross[off], rtol=1e-12, atol=1e-13)
        assert np.all(np.abs(np.diag(sym) - np.diag(cross)) > 1e-3)


@pytest.mark.parametrize("s11, s12, s22", [(1.3, 0.4, 0.8), (2.0, -1.5, 1.5), (0.5, 0.5, 0.5), (3.0, 0.0, 0.2)])
def test_closed_form_duals_against_gaussian_integrals(s11, s12, s22):
    # erf is smooth: a fine trapezoidal rule is exact to rounding
    np.testing.assert_allclose(erf_dual(s11, s12, s22),
                               gaussian_dual_reference(s11, s12, s22, "erf", order=400), atol=1e-12)
    # ReLU has a kink: the rule converges slowly (measured error about 1e-5 at 2000 nodes)
    np.testing.assert_allclose(relu_dual(s11, s12, s22),
                               gaussian_dual_reference(s11, s12, s22, "relu", order=2000), atol=5e-5)
    # tanh by the compiled 96-node rule against a 400-node rule
    np.testing.assert_allclose(gaussian_dual(s11, s12, s22, TANH, *RULE),
                               gaussian_dual_reference(s11, s12, s22, "tanh", order=400), atol=1e-10)


def test_gram_is_symmetric_positive_semidefinite():
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(T, 3)) for T in rng.integers(1, 9, size=25)]
    for activation in ("relu", "erf"):
        for kind_index, G in enumerate(rntk(X, kind="both", layers=2, activation=activation, sigma_b=0.1)):
            np.testing.assert_array_equal(G, G.T)
            eig = np.linalg.eigvalsh(G)
            assert eig.min() > -1e-12 * eig.max(), (activation, kind_index, eig.min())


def test_left_padding_with_zeros_changes_nothing_without_bias_and_initial_state():
    """With sigma_b = sigma_h = 0 and phi(0) = 0, zero inputs keep the state at 0, so left-padding a
    sequence with zeros leaves the network and both kernels unchanged (last readout). A bias, an
    initial state, or the mean readout (which averages over the padded steps) break this."""
    rng = np.random.default_rng(2)
    X = [rng.normal(size=(T, 2)) for T in (3, 6)]
    padded = [np.vstack([np.zeros((4, 2)), x]) for x in X]
    Y = [rng.normal(size=(T, 2)) for T in (2, 5, 7)]
    for activation in ("relu", "erf", "tanh"):
        kw = dict(layers=2, activation=activation, sigma_w=1.2, sigma_u=0.8)
        for a, b in zip(rntk(X, Y, kind="both", **kw), rntk(padded, Y, kind="both", **kw)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
        net = ElmanRNN(64, 2, **kw, seed=3)
        np.testing.assert_allclose(net(X), net(padded), rtol=1e-13, atol=1e-15)
        for breaking in (dict(sigma_b=0.3), dict(sigma_h=0.3), dict(readout="mean")):
            assert not np.allclose(rntk(X, Y, **kw, **breaking), rntk(padded, Y, **kw, **breaking))


def test_empirical_ntk_equals_finite_difference_jacobians():
    rng = np.random.default_rng(4)
    X = [rng.normal(size=(T, 2)) for T in (3, 4, 3)]
    for readout in ("last", "mean", "per_step"):
        net = ElmanRNN(5, 2, layers=2, activation="tanh", sigma_b=0.4, sigma_h=0.3, readout=readout, seed=1)
        net(X)  # the per-step readout draws its vectors V_s for the longest sequence on first use
        J = finite_difference_jacobian(net, X)
        if readout == "per_step":  # its own streams do not depend on how often the caller's seed was used
            seed = np.random.SeedSequence(1)
            first, second = (ElmanRNN(5, 2, layers=2, activation="tanh", readout=readout, seed=seed) for _ in range(2))
            np.testing.assert_array_equal(first(X), second(X))
        np.testing.assert_allclose(net.ntk(X), J @ J.T, atol=1e-8)


# A covering design: each activation, depth, kind of lengths and convention (readout, initial state) appears,
# without all combinations. The RNTK_UCI conventions (theory_notes/rntk.md section 7) with sigma_h > 0, so that
# the independent initial states count.
RATE_CASES = [("relu", 1, "equal", "last", "shared"), ("relu", 2, "different", "last", "shared"),
              ("erf", 1, "different", "last", "shared"), ("erf", 2, "equal", "last", "shared"),
              ("relu", 1, "equal", "per_step", "independent"), ("erf", 1, "different", "per_step", "shared"),
              ("relu", 2, "equal", "last", "independent")]
SEEDS = 8


@pytest.mark.parametrize("activation, layers, lengths, readout, initial_state", RATE_CASES)
def test_wide_networks_converge_to_the_rntk_at_rate_one_half(activation, layers, lengths, readout, initial_state):
    rng = np.random.default_rng(5)
    X = [rng.normal(size=(4 if lengths == "equal" else T, 2)) for T in (2, 4, 5)]
    kw = dict(layers=layers, activation=activation, sigma_w=1.0, sigma_u=1.0, sigma_b=0.2, sigma_v=1.0,
              sigma_h=0.0 if (readout, initial_state) == ("last", "shared") else 0.6, readout=readout,
              initial_state=initial_state)
    nngp, ntk = rntk(X, kind="both", **kw)
    widths = 2 ** np.arange(6, 12)
    e_ntk, e_nngp = [], []
    for n in widths:
        nets = [ElmanRNN(int(n), 2, seed=[int(n), s], **kw) for s in range(SEEDS)]
        e_ntk.append([np.linalg.norm(net.ntk(X) - ntk) / np.linalg.norm(ntk) for net in nets])
        e_nngp.append([np.linalg.norm(net.nngp(X) - nngp) / np.linalg.norm(nngp) for net in nets])
    for errors in (e_ntk, e_nngp):  # the calibrated interval at 0.999: covers -1/2, excludes 0
        assert_rate(widths, errors, expected=-0.5, level=0.999)


def test_rntk_validation():
    good = [np.zeros((3, 2))]
    with pytest.raises(ValueError, match=r"X\[1\] has input dimension 3"):
        rntk([np.zeros((3, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="NaN"):
        rntk([np.full((3, 2), np.nan)])
    with pytest.raises(ValueError, match="shape"):
        rntk([np.zeros(3)])
    with pytest.raises(ValueError, match="at least one"):
        rntk([])
    with pytest.raises(ValueError, match="input dimension"):
        rntk(good, [np.zeros((2, 5))])
    with pytest.raises(ValueError, match="kind"):
        rntk(good, kind="gp")
    with pytest.raises(ValueError, match="readout"):
        rntk(good, readout="max")
    with pytest.raises(ValueError, match="sigma_w"):
        rntk(good, sigma_w=-1.0)
    with pytest.raises(ValueError, match="activation"):
        rntk(good, activation="softplus")
    assert math.isfinite(rntk(good)[0, 0])


def test_gradient_descent_follows_the_rntk_kernel_flow():
    """Full-batch GD with step lr on (1/2M) sum (f - y)^2 is, for wide networks, the flow
    f' = -(1/M) Theta (f - y) in time t = lr * steps, solved by solvers.ode with the analytic RNTK and
    the network's own f_0. The relative gap must shrink with the width (fitted slope below 0)."""
    from meanfield.solvers.ode import LinearKernelFlow

    rng = np.random.default_rng(6)
    X_train = [rng.normal(size=(T, 2)) for T in (3, 4, 5, 4, 3, 5, 2, 4)]
    y = np.array([np.sin(x[-1, 0] + 0.5 * x[0, 1]) for x in X_train])
    X_test = [rng.normal(size=(T, 2)) for T in (3, 5, 4)]
    kw = dict(layers=1, activation="erf", sigma_w=1.0, sigma_u=1.0, sigma_b=0.2, sigma_v=1.0)
    K, K_cross = rntk(X_train, **kw), rntk(X_test, X_train, **kw)
    M, lr, steps = len(X_train), 0.5, 40
    widths = [64, 256, 1024]
    gaps = []
    for n in widths:
        per_seed = []
        for s in range(3):
            net = ElmanRNN(n, 2, seed=[n, s], **kw)
            f0_train, f0_test = net(X_train), net(X_test)
            rec, f = net.train(X_train, y, lr, steps, X_eval=X_train + X_test, record_every=5)
            flow = LinearKernelFlow(K, np.full(M, 1 / M), y, 1.0, f0_train)
            pred = np.hstack([flow.on_grid(rec * lr), flow.at(rec * lr, K_cross, f0_test)])
            per_seed.append(np.abs(f - pred).max() / np.abs(pred - pred[0]).max())
        gaps.append(per_seed)
    fit = fit_rate(widths, gaps)
    assert fit.ci_high < 0, fit
    assert np.mean(gaps[-1]) < 0.1  # at width 1024 the network is within 10% of the kernel flow
    # and the training moved the outputs: the prediction is not the trivial f_t = f_0
    assert np.abs(pred - pred[0]).max() > 0.3


def test_online_sgd_reduces_the_training_loss():
    rng = np.random.default_rng(7)
    X = [rng.normal(size=(4, 2)) for _ in range(6)]
    y = np.array([x[-1, 0] for x in X])
    net = ElmanRNN(256, 2, activation="relu", seed=0)
    _, f = net.train(X, y, 0.2, 120, mode="online", record_every=120, seed=1)
    assert np.mean((f[-1] - y) ** 2) < 0.5 * np.mean((f[0] - y) ** 2)
    with pytest.raises(ValueError, match="mode"):
        net.train(X, y, 0.1, 1, mode="batch")


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_output_covariance_and_mean_ntk_over_seeds_equal_the_rntk_for_one_step(activation):
    """For one-step sequences with sigma_h = 0 the pre-activations g_i = (sigma_u/sqrt m) U_i x + sigma_b b_i are
    exactly Gaussian and independent across units at any width, so over random networks (NTK readout
    sigma_v/sqrt n) E[f(x) f(x')] is the NNGP and E[empirical NTK] the NTK of the infinite-width recursion,
    with no finite-width correction. Monte Carlo over 1500 networks of width 8, within 4 standard errors
    of the sample means of f(x) f(x') and of the Gram entries. A readout sigma_v/n would shrink both by 1/n."""
    rng = np.random.default_rng(8)
    X = [rng.normal(size=(1, 2)) for _ in range(3)]
    kw = dict(layers=1, activation=activation, sigma_u=1.1, sigma_b=0.3, sigma_v=1.3)
    nngp, ntk = rntk(X, kind="both", **kw)
    outputs, grams = [], []
    for s in range(1500):
        net = ElmanRNN(8, 2, seed=[9, s], **kw)
        outputs.append(net(X))
        grams.append(net.ntk(X))
    outputs, grams = np.array(outputs), np.array(grams)
    products = outputs[:, :, None] * outputs[:, None, :]
    for sample, exact in ((products, nngp), (grams, ntk)):
        mean, se = sample.mean(axis=0), sample.std(axis=0, ddof=1) / np.sqrt(len(sample))
        assert np.all(np.abs(mean - exact) <= 4 * se), np.max(np.abs(mean - exact) / se)
    assert np.all(np.abs(outputs.mean(axis=0)) <= 4 * np.sqrt(np.diag(nngp) / len(outputs)))  # E f = 0


def test_time_weights_have_the_closed_forms_of_linear_and_relu_recursions():
    """Linear: K(T) = sigma_v^2 sum_s sigma_w^(2(T-s)) sigma_u^2 x_s . y_s / m, so w_s = sigma_v^2 sigma_u^2
    sigma_w^(2(T-s)) for any pair. ReLU, a sequence with itself: Kd = 1/2 at every step, so
    w_s = sigma_v^2 sigma_u^2 (1/2) (sigma_w^2 / 2)^(T-s). Two layers, linear: the derivative is the sum over the
    paths from (s, layer 1) to (T, layer 2), checked against the (linear, hence exact) difference quotient."""
    from meanfield.architectures.elman.kernel import time_weights

    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    kw = dict(sigma_w=1.3, sigma_u=0.8, sigma_v=1.1, sigma_b=0.4)
    back = np.arange(4, -1, -1)  # steps before the end
    np.testing.assert_allclose(time_weights(x, y, activation="linear", **kw),
                               1.1**2 * 0.8**2 * 1.3 ** (2 * back), rtol=1e-13)
    np.testing.assert_allclose(time_weights(x, x, activation="relu", **kw),
                               1.1**2 * 0.8**2 * 0.5 * (1.3**2 / 2) ** np.arange(6, -1, -1), rtol=1e-12)
    # two linear layers: K is linear in the products x_s . y_s (the variances do not enter), so scaling the
    # last 5 steps of x by (1 + e) at one step s changes K by e w_s x_s . y_s / m exactly
    with pytest.raises(ValueError, match="last readout"):
        time_weights(x, y, readout="per_step", **kw)
    w = time_weights(x, y, activation="linear", layers=2, **kw)
    base = rntk([x], [y], kind="nngp", activation="linear", layers=2, **kw)[0, 0]
    for s in range(5):
        bumped = x.copy()
        bumped[2 + s] *= 1.5
        change = rntk([bumped], [y], kind="nngp", activation="linear", layers=2, **kw)[0, 0] - base
        assert change == pytest.approx(0.5 * w[s] * x[2 + s] @ y[s] / 2, rel=1e-10)


def _first_relu_step_above(limit, x, sigma_w, sigma_u=1.0, sigma_b=0.0, sigma_h=0.0):
    """The 1-based step at which ReLU's own variance Sigma(t) = sigma_w^2 Sigma(t-1) / 2 + sigma_u^2 x_t^2 + sigma_b^2
    (K(0) = sigma_h^2) first exceeds ``limit``, by the recursion written out in Python."""
    k = sigma_h**2
    for t, xt in enumerate(x[:, 0], start=1):
        s = sigma_w**2 * k + sigma_u**2 * xt**2 + sigma_b**2
        if s > limit:
            return t
        k = s / 2
    return None


def test_overflowing_kernels_are_refused_naming_sigma_w_the_sequence_and_its_length():
    from meanfield.architectures.elman.kernel import VARIANCE_LIMIT, KernelOverflowError

    rng = np.random.default_rng(0)
    long = rng.normal(size=(5000, 1))
    step = _first_relu_step_above(VARIANCE_LIMIT, long, 1.5)
    assert step is not None and step < 5000
    for X, Y in (([long] * 2, None), ([long[:10]], [long[:10], long])):
        with pytest.raises(KernelOverflowError, match=r"sigma_w=1\.5 \(relu\)") as err:
            rntk(X, Y, sigma_w=1.5)
        name = "X[0]" if Y is None else "Y[1]"
        assert f"{name} (length 5000)" in str(err.value) and f"at step {step};" in str(err.value)
    # just below the limit the kernel is returned, finite
    short = long[: step - 1]
    nngp, ntk = rntk([short, short[:-1]], sigma_w=1.5, kind="both")
    assert np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk)) and nngp.max() > 1e100
    with pytest.raises(KernelOverflowError, match="sigma_w=1e\\+200"):
        rntk([np.ones((3, 2)), -np.ones((4, 2))], sigma_w=1e200, kind="both")
    # the Gram check itself: a non-finite entry is named with its pair and the lengths
    from meanfield.architectures.elman import Elman
    from meanfield.architectures.elman.kernel import check_gram

    G = np.ones((2, 3))
    G[1, 2] = np.nan
    with pytest.raises(KernelOverflowError, match=r"at \(1, 2\) \(sequence lengths 7 and 9\)"):
        check_gram(G, "NTK", Elman(), [5, 7], [3, 4, 9])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_overflowing_empirical_kernels_are_refused():
    from meanfield.architectures.elman.kernel import KernelOverflowError

    net = ElmanRNN(8, 1, seed=0, activation="relu", sigma_w=30.0)
    X = [np.ones((300, 1))]
    with pytest.raises(KernelOverflowError, match=r"empirical NTK Gram is not finite at \(0, 0\) \(sequence lengths "
                                                  r"300 and 300\).*sigma_w=30"):
        net.ntk(X)
    with pytest.raises(KernelOverflowError, match="empirical NNGP"):
        net.nngp(X)
    assert np.all(np.isfinite(net.ntk([np.ones((3, 1))])))
