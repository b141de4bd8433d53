"""The muP Langevin step and Elman full-batch GD (with its empirical NTK) on JAX against the NumPy path.

Cases of ``benchmarks/bench_gpu.py`` (``--only mup_elman``; ``--small`` for a CPU smoke test):

- Langevin step, T = 2, P = 4 sequences, tanh, endpoint targets, at N = 512, 2048, 8192: JAX per step
  amortised over one compiled loop of many steps (parameters on the device, as in the sampler), against the
  NumPy sampler's step measured in the same run; the difference is that of the data-term gradients.
- Elman full-batch GD step, 32 sequences, erf, at (n, T) = (4096, 64), (8192, 64), (8192, 256): JAX per step
  amortised over a compiled loop of steps, against one NumPy step (the same arithmetic as ``train``); and the
  empirical NTK Gram of the 32 sequences on both. Differences: the parameters after one step and the Gram.
"""

from __future__ import annotations

import time

import numpy as np
from gpu_common import best_of, block, row

from meanfield.architectures.elman.network import ElmanRNN
from meanfield.architectures.mup.network import MuPNetwork, endpoint_readout, langevin
from meanfield.backends import precision

CPU_BUDGET_S = 20.0  # the NumPy path is timed where a measurement takes about this long or less


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _langevin_case(N, steps):
    import jax
    import jax.numpy as jnp

    from meanfield.jax_backend import mup

    rng = np.random.default_rng(0)
    P, T, d = 4, 2, 4
    X = np.zeros((P, T + 1, d))
    X[:, 0] = rng.normal(size=(P, d))
    y = np.where(endpoint_readout(T, P), rng.normal(size=P)[None, :], 0.0)
    readout = endpoint_readout(T, P)
    net = MuPNetwork(N, d, T, activation="tanh", seed=1)
    static = dict(activation_name="tanh", shared=True)
    with precision("float64"):
        problem = dict(X=jnp.asarray(X), y=jnp.asarray(y), readout=jnp.asarray(readout), beta=jnp.asarray(1.0),
                       step_size=jnp.asarray(0.01), prior_var={k: jnp.asarray(v) for k, v in net.prior_var.items()})
        params = {k: jnp.asarray(net.params[k]) for k in mup.KEYS}
        key, first = jax.random.split(jax.random.key(0))
        state = (params, mup._normals(first, params), key, jnp.asarray(0, jnp.int32), jnp.asarray(-1, jnp.int32))
        gaps = jnp.asarray([steps - 1], jnp.int32)
        jax_s, _ = best_of(lambda: mup._intervals(state, problem, gaps, **static), repeats=3)
        grads = mup.data_gradient(params, problem["X"], problem["y"], problem["readout"], 1.0, **static)[0]
        reference = net.data_gradient(X, y, readout, 1.0)[0]
        difference = max(_relative(grads[k], reference[k]) for k in reference)
    # the NumPy sampler: a few steps, timed whole (its first step includes nothing to compile)
    cpu_steps = max(2, min(200, int(CPU_BUDGET_S / (1.5e-8 * N * N + 1e-4))))  # about 15 ns per weight
    t0 = time.perf_counter()
    langevin(net, X, y[-1], beta=1.0, step_size=0.01, n_steps=cpu_steps, burn_in=cpu_steps - 1, thin=1, seed=0)
    cpu_s = (time.perf_counter() - t0) / cpu_steps
    return jax_s / steps, cpu_s, difference, cpu_steps


def _elman_case(n, T, jax_steps, cpu_measured):
    from meanfield.jax_backend import elman

    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, T, 1))
    y = rng.normal(size=32)
    net = ElmanRNN(n, 1, activation="erf", sigma_b=0.1, seed=0)
    lr = 0.1
    with precision("float64"):
        import jax.numpy as jnp

        real = jnp.float64
        fixed, static = elman._fixed(net, real), elman._static(net)
        state = (elman._params(net, real), jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))
        x, targets = jnp.asarray(X), jnp.asarray(y)

        def descend(count):
            return elman._descend(*state, count, fixed, [x], [targets], lr, static)

        jax_s, _ = best_of(lambda: descend(jax_steps), repeats=2)
        one_step = block(descend(1))[0]
    ntk_jax_s, gram_jax = best_of(lambda: net.ntk(X, backend="jax"), repeats=2)
    cpu_s = ntk_cpu_s = step_difference = gram_difference = None
    if cpu_measured:
        ref = net.copy()

        def numpy_step():  # the body of ElmanRNN.train's full-batch step
            groups, _ = ref._features(X)
            residual = np.empty(len(y))
            for idx, f in groups:
                residual[idx] = f.outputs
            ref._gradient_step(groups, (residual - y) / len(y), lr)

        cpu_s, _ = best_of(numpy_step, repeats=1, warmup=0)
        step_difference = max(_relative(np.asarray(one_step[k][0] if k != "V" else one_step[k]), p)
                              for k, p in (("W", ref.W[0]), ("U", ref.U[0]), ("b", ref.b[0]), ("V", ref.V)))
        ntk_cpu_s, gram = best_of(lambda: net.ntk(X), repeats=1, warmup=0)
        gram_difference = _relative(gram_jax, gram)
    return jax_s / jax_steps, cpu_s, step_difference, ntk_jax_s, ntk_cpu_s, gram_difference


def cases(args):
    small = getattr(args, "small", False)
    rows = []
    for N, steps, goal in ((512, 2000, None), (2048, 2000, "<= 0.3 ms per step (one H100)"), (8192, 200, None)):
        if small:
            N, steps, goal = N // 8, 50, None  # a smoke test: no goal
        print(f"muP Langevin step, N = {N}, T = 2, P = 4: {steps} steps in one compiled loop on jax", flush=True)
        jax_s, cpu_s, difference, cpu_steps = _langevin_case(N, steps)
        rows.append(row(f"muP Langevin step, N = {N}, T = 2, P = 4, f64", jax_s, cpu_s, unit="step", goal=goal,
                        max_difference=difference, cpu_note=f"NumPy sampler, {cpu_steps} steps",
                        jax_note=f"per step of a {steps}-step compiled loop"))
    measured = {}  # n -> (T, NumPy GD step s, NumPy NTK s) of the shorter length
    for n, T, goal in ((4096, 64, None), (8192, 64, "<= 100 ms per step (one H100)"), (8192, 256, None)):
        if small:
            n, T, goal = n // 32, T // 4, None
        cpu_measured = n not in measured  # the longer T at the same n: NumPy extrapolated (linear in T)
        print(f"Elman GD step, n = {n}, T = {T}, 32 sequences, erf (NumPy: "
              f"{'1 step' if cpu_measured else 'extrapolated'})", flush=True)
        jax_s, cpu_s, step_difference, ntk_jax_s, ntk_cpu_s, gram_difference = _elman_case(n, T, 5, cpu_measured)
        if cpu_measured:
            measured[n] = (T, cpu_s, ntk_cpu_s)
            note = "NumPy, one step (the train loop's body) / one call"
        else:
            T0, step_s, gram_s = measured[n]
            cpu_s, ntk_cpu_s = step_s * T / T0, gram_s * T / T0
            note = f"NumPy extrapolated from T = {T0} (x {T / T0:g}), not measured"
        rows.append(row(f"Elman full-batch GD step, n = {n}, T = {T}, 32 sequences, erf, f64", jax_s, cpu_s,
                        unit="step", goal=goal, max_difference=step_difference, cpu_note=note,
                        jax_note="per step of a 5-step compiled loop"))
        rows.append(row(f"Elman empirical NTK, n = {n}, T = {T}, 32 x 32, f64", ntk_jax_s, ntk_cpu_s,
                        max_difference=gram_difference, cpu_note=note))
    return rows
