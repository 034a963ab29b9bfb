"""jaxloss.sgd_step / fit / sweep: optax bit for bit, gradient-descent theory on a quadratic,
sweep rows against separate fit calls, divergence handling, and no retracing."""

import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

ce = optax.losses.softmax_cross_entropy_with_integer_labels

# A quadratic with known minimum and Hessian: sample i is x_i = sqrt(λ_i) e_i with target
# y_i = x_i·θ*, so Σ_i ½(x_i·θ − y_i)² = ½ Σ_i λ_i (θ_i − θ*_i)² (Hessian diag(λ)).
LAMBDAS = np.array([4.0, 1.0, 0.25])
THETA_STAR = np.array([1.0, -2.0, 0.5])
THETA_0 = np.zeros(3)


def quadratic_data(dtype=np.float32):
    x = np.diag(np.sqrt(LAMBDAS)).astype(dtype)
    return jnp.asarray(x), jnp.asarray(x @ THETA_STAR.astype(dtype))


quadratic = jaxloss.objective(
    lambda theta, x: x @ theta, lambda p, y: 0.5 * (p - y) ** 2, reduction="sum"
)
jit_quadratic = jax.jit(quadratic)


def quadratic_reference(eta, steps):
    """Exact gradient descent on the quadratic: e_t = (1 − ηλ)^t e_0 per eigen-direction."""
    t = np.arange(steps + 1)[:, None]
    errors = (1 - eta * LAMBDAS) ** t * (THETA_0 - THETA_STAR)
    return errors, 0.5 * (LAMBDAS * errors**2).sum(axis=1)


@pytest.fixture(scope="module")
def mlp_problem():
    # float32, as users run it (float64 tests cast inside their x64 context).
    init_fn, apply_fn = jaxloss.mlp([2, 4, 3])
    init_fn = jax.jit(init_fn)  # eager initialisation is slow; sweep takes a jitted one too
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 2)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    return init_fn, jaxloss.objective(apply_fn, ce), jnp.asarray(x), jnp.asarray(y)


# Shared by the tests so that equal shapes compile once.
jit_step = jax.jit(jaxloss.sgd_step, static_argnums=0)
STEPS, BATCH = 6, 5
# The same float32 computation done two ways (scan vs. step by step, vmapped vs. not) may differ
# by a few roundings.
F32 = dict(rtol=1e-5, atol=1e-6)


def tree_equal(a, b):
    # NumPy: jnp.array_equal op by op compiles for every leaf shape
    return all(
        jax.tree.leaves(
            jax.tree.map(lambda u, v: np.array_equal(np.asarray(u), np.asarray(v)), a, b)
        )
    )


def trace_counted(objective):
    """`(objective with a count of its traces, the count)`: one compilation of fit or sweep traces
    the objective twice (the scan body and the final loss); chex fails a third trace."""
    chex.clear_trace_counter()  # chex counts per function code, which every use shares
    count = {"n": 0}

    def counted(params, x, y):
        count["n"] += 1
        return objective(params, x, y)

    return chex.assert_max_traces(counted, n=2), count


# --------------------------------------------------------------------------------- sgd_step


def optax_sgd(f, params, x, y, lr):
    """The reference: optax.sgd + optax.apply_updates on jax.grad's gradient."""
    opt = optax.sgd(lr)
    updates, _ = opt.update(jax.grad(f)(params, x, y), opt.init(params))
    return optax.apply_updates(params, updates)


def test_sgd_step_is_optax_sgd_bit_for_bit_unjitted(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = jax.tree.map(lambda a: a.astype(jnp.float32), init_fn(jax.random.key(0)))
    x = x.astype(jnp.float32)
    new, loss = jaxloss.sgd_step(f, params, x, y, 0.37)
    assert tree_equal(new, optax_sgd(f, params, x, y, 0.37))
    chex.assert_trees_all_equal_dtypes(new, params)
    assert loss == f(params, x, y)  # the loss at the OLD params


@pytest.mark.parametrize(
    "dtype", [jnp.float32, pytest.param(jnp.float64, marks=pytest.mark.x64, id="float64")]
)
def test_sgd_step_is_optax_sgd_bit_for_bit_jitted_and_vmapped(mlp_problem, dtype):
    init_fn, f, x, y = mlp_problem
    params = jax.tree.map(lambda a: a.astype(dtype), init_fn(jax.random.key(0)))
    x = x.astype(dtype)
    reference = jax.jit(optax_sgd, static_argnums=(0,))
    for lr in (0.37, 1.3):  # traced: one compilation for both
        lr = jnp.asarray(lr, dtype)
        new, _ = jit_step(f, params, x, y, lr)
        assert tree_equal(new, reference(f, params, x, y, lr))
        chex.assert_trees_all_equal_dtypes(new, params)
    # vmapped over learning rates, as sweep does.
    rates = jnp.asarray([0.0, 1.3], dtype)
    batched, losses = jax.jit(jax.vmap(lambda r: jaxloss.sgd_step(f, params, x, y, r)))(rates)
    chex.assert_shape(losses, (2,))
    assert tree_equal(jax.tree.map(lambda a: a[0], batched), params)  # η = 0 changes nothing
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], batched), new, **F32)


@pytest.mark.x64
def test_sgd_step_keeps_float32_with_float64_learning_rate():
    x, y = quadratic_data(np.float32)
    theta = jnp.asarray(THETA_0, jnp.float32)
    new, _ = jit_step(quadratic, theta, x, y, jnp.float64(0.1))
    assert new.dtype == jnp.float32
    # θ − η g with η rounded to float32: g = −Xᵀy at θ = 0 (λ_i θ*_i per direction).
    np.testing.assert_allclose(new, np.float32(0.1) * LAMBDAS * THETA_STAR, rtol=1e-6)


def test_sgd_step_rejects_a_non_scalar_learning_rate(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    # (3,) would broadcast over the (3,) output bias and fail elsewhere: never accepted.
    with pytest.raises(
        ValueError, match=r"jaxloss.sgd_step: `learning_rate` must be a scalar; got"
    ):
        jaxloss.sgd_step(f, params, x, y, jnp.asarray([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match=r"jaxloss.sgd_step: `learning_rate` must be real"):
        jaxloss.sgd_step(f, params, x, y, 0.1 + 0j)
    with pytest.raises(ValueError, match=r"jaxloss.fit: `learning_rate` must be a scalar"):
        jaxloss.fit(f, params, x, y, learning_rate=jnp.ones(3), steps=2)


def test_integer_and_string_params_are_a_clear_type_error(mlp_problem):
    init_fn, f, x, y = mlp_problem
    int_params = jax.tree.map(lambda a: a.astype(jnp.int32), init_fn(jax.random.key(0)))
    msg = r"`params` must be a pytree with at least one floating-point array leaf.*int32"
    with pytest.raises(TypeError, match=r"jaxloss.sgd_step: " + msg):
        jaxloss.sgd_step(f, int_params, x, y, 0.1)
    with pytest.raises(TypeError, match=r"jaxloss.fit: " + msg):
        jaxloss.fit(f, int_params, x, y, learning_rate=0.1, steps=2)
    with pytest.raises(TypeError, match=r"jaxloss.sweep: " + msg):
        jaxloss.sweep(f, int_params, x, y, learning_rates=[0.1], steps=2)
    with pytest.raises(TypeError, match=r"jaxloss.fit: `params`.*types \['str'\]"):
        jaxloss.fit(lambda p, x, y: 0.0, {"a": "w"}, x, y, learning_rate=0.1, steps=2)
    int_init = lambda key: jax.tree.map(lambda a: a.astype(jnp.int32), init_fn(key))  # noqa: E731
    with pytest.raises(TypeError, match=r"jaxloss.sweep: `init_fn\(key\)` must be a pytree with"):
        jaxloss.sweep(f, None, x, y, learning_rates=[0.1], steps=2, init_fn=int_init)


def test_empty_data_set_is_a_value_error_naming_the_function(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    with pytest.raises(ValueError, match=r"jaxloss.fit: `inputs` must have at least one sample"):
        jaxloss.fit(f, params, x[:0], y[:0], learning_rate=0.1, steps=2)
    # The error comes from the shared fit/sweep core's checks, and names `sweep`.
    with pytest.raises(ValueError, match=r"jaxloss.sweep: `inputs` must have at least one sample"):
        jaxloss.sweep(f, params, x[:0], y[:0], learning_rates=[0.1], steps=2)


# ---------------------------------------------------------------------------- fit: theory


# float32 as users run it, against the float64 NumPy reference at float32 tolerance (the error
# θ − θ* is a difference of O(1) numbers: absolute roundoff ~1e-7); float64 tightly.
DTYPES = [
    pytest.param(np.float32, dict(rtol=2e-5, atol=1e-6), id="float32"),
    pytest.param(np.float64, dict(rtol=1e-10, atol=1e-14), id="float64", marks=pytest.mark.x64),
]


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("eta", [0.1, 0.3, 0.45])
def test_fit_contracts_by_one_minus_eta_lambda(eta, dtype, tol):
    x, y = quadratic_data(dtype)
    steps = 40
    theta0 = jnp.asarray(THETA_0.astype(dtype))
    result = jaxloss.fit(quadratic, theta0, x, y, learning_rate=eta, steps=steps)
    assert result.params.dtype == result.losses.dtype == dtype
    errors, losses = quadratic_reference(eta, steps)
    chex.assert_shape(result.losses, (steps,))
    # losses[t] is the loss BEFORE step t; final_loss the loss after the last one.
    chex.assert_trees_all_close(result.losses, losses[:-1], **tol)
    chex.assert_trees_all_close(result.final_loss, losses[-1], **tol)
    chex.assert_trees_all_close(result.params - THETA_STAR, errors[-1], **tol)
    # Per eigen-direction the error shrinks by exactly |1 − ηλ| per step.
    e = np.abs(np.asarray(result.params, np.float64) - THETA_STAR)
    expected = np.abs(1 - eta * LAMBDAS) ** steps
    chex.assert_trees_all_close(e / np.abs(THETA_0 - THETA_STAR), expected, **tol)
    assert int(result.diverged_at) == -1


def test_fit_diverges_above_two_over_lambda_max():
    x, y = quadratic_data()
    lam_max = LAMBDAS.max()
    below = jaxloss.fit(
        quadratic, jnp.asarray(THETA_0), x, y, learning_rate=1.9 / lam_max, steps=60
    )
    above = jaxloss.fit(
        quadratic, jnp.asarray(THETA_0), x, y, learning_rate=2.1 / lam_max, steps=60
    )
    assert below.final_loss < below.losses[0]
    assert above.final_loss > 10 * above.losses[0]
    # Late in the run the λ_max direction dominates: the loss grows by (ηλ_max − 1)² per step.
    growth = above.losses[-1] / above.losses[-2]
    chex.assert_trees_all_close(growth, (2.1 - 1) ** 2, rtol=1e-3)
    assert int(above.diverged_at) == -1  # still finite: large, not yet overflowed


def test_diverged_run_freezes_at_last_finite_params():
    x, y = quadratic_data(np.float32)
    theta0 = jnp.asarray(THETA_0, jnp.float32)
    # |1 − ηλ_max| = 3999: the float32 loss overflows after ~10 steps.
    result = jaxloss.fit(quadratic, theta0, x, y, learning_rate=1000.0, steps=30)
    d = int(result.diverged_at)
    losses = np.asarray(result.losses)
    assert 0 < d < 30
    assert np.all(np.isfinite(losses[:d])) and not np.isfinite(losses[d])
    assert np.all(np.isnan(losses[d + 1 :]))
    chex.assert_tree_all_finite(result.params)
    # The returned params are θ_{d-1}: their loss is losses[d-1].
    chex.assert_trees_all_close(jit_quadratic(result.params, x, y), losses[d - 1], rtol=1e-6)
    assert np.isnan(result.final_loss)
    # Stepping by hand gives the same divergence step.
    theta = theta0
    for t in range(30):
        theta, loss = jit_step(quadratic, theta, x, y, 1000.0)
        if not np.isfinite(loss):
            assert t == d
            break


def test_blow_up_on_the_last_step_counts_as_divergence():
    x, y = quadratic_data(np.float32)
    theta0 = jnp.asarray(THETA_0, jnp.float32)
    d = int(jaxloss.fit(quadratic, theta0, x, y, learning_rate=1000.0, steps=30).diverged_at)
    # Stop exactly when the next loss would overflow: only final_loss sees it.
    result = jaxloss.fit(quadratic, theta0, x, y, learning_rate=1000.0, steps=d)
    assert int(result.diverged_at) == d
    assert np.all(np.isfinite(result.losses)) and np.isnan(result.final_loss)
    chex.assert_trees_all_close(jit_quadratic(result.params, x, y), result.losses[-1], rtol=1e-6)


def test_initial_non_finite_loss_keeps_initial_params():
    x, y = quadratic_data()
    theta0 = jnp.asarray([np.inf, 0.0, 0.0], jnp.float32)
    result = jaxloss.fit(quadratic, theta0, x, y, learning_rate=0.1, steps=3)
    assert int(result.diverged_at) == 0
    assert tree_equal(result.params, theta0)


# ------------------------------------------------------------------------ fit: mechanics


def test_fit_steps_equal_sgd_steps_full_and_minibatch(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    key = jax.random.key(7)
    full = jaxloss.fit(f, params, x, y, learning_rate=0.5, steps=STEPS)
    mini = jaxloss.fit(f, params, x, y, learning_rate=0.5, steps=STEPS, batch_size=BATCH, key=key)
    # The documented minibatch: BATCH samples without replacement from fold_in(key, t).
    draw = jax.jit(
        jax.vmap(lambda t: jax.random.choice(jax.random.fold_in(key, t), len(x), (BATCH,), False))
    )
    batches = np.asarray(draw(jnp.arange(STEPS)))
    assert all(len(set(b.tolist())) == BATCH for b in batches)
    p_full, p_mini = params, params
    xn, yn = np.asarray(x), np.asarray(y)  # NumPy indexing: op by op a gather compiles
    for t in range(STEPS):
        p_full, loss = jit_step(f, p_full, x, y, 0.5)
        chex.assert_trees_all_close(full.losses[t], loss, **F32)
        p_mini, loss = jit_step(f, p_mini, xn[batches[t]], yn[batches[t]], 0.5)
        chex.assert_trees_all_close(mini.losses[t], loss, **F32)
    chex.assert_trees_all_close(full.params, p_full, **F32)
    chex.assert_trees_all_close(mini.params, p_mini, **F32)
    chex.assert_trees_all_close(mini.final_loss, jax.jit(f)(p_mini, x, y), **F32)
    # An int seed is a key: fit(key=7) is fit(key=jax.random.key(7)); so is a legacy key.
    for key in (7, np.int64(7)):
        seeded = jaxloss.fit(
            f, params, x, y, learning_rate=0.5, steps=np.int64(STEPS), batch_size=BATCH, key=key
        )
        chex.assert_trees_all_close(seeded, mini, rtol=0, atol=0)


@pytest.mark.x64  # a float64 leaf among float32 and bfloat16 ones
def test_fit_keeps_mixed_dtypes_and_matches_sgd_step():
    # Leaves of several dtypes (the scan carries one flat vector per dtype).
    params = {
        "a": jnp.asarray([0.5, -1.0, 2.0], jnp.float32),
        "b": jnp.asarray([[1.0, 2.0], [3.0, 4.0]], jnp.bfloat16),
        "c": jnp.float64(0.25),
        "d": jnp.asarray([-0.5, 0.75], jnp.float32),
    }

    def f(p, x, y):
        pred = x @ p["a"] + jnp.sum(p["b"].astype(jnp.float32)) * p["c"] + p["d"][0] * p["d"][1]
        return jnp.mean((pred - y) ** 2)

    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 3)), jnp.float32)
    y = jnp.arange(4.0, dtype=jnp.float32)
    result = jaxloss.fit(f, params, x, y, learning_rate=0.01, steps=3)
    chex.assert_trees_all_equal_dtypes(result.params, params)
    expected = params
    for _ in range(3):
        expected, _ = jit_step(f, expected, x, y, 0.01)
    assert tree_equal(result.params, expected)


def test_no_retrace_across_learning_rates_data_and_params():
    f, count = trace_counted(quadratic)
    x, y = quadratic_data()
    jaxloss.fit(f, jnp.asarray(THETA_0), x, y, learning_rate=0.1, steps=7)
    first = count["n"]
    rng = np.random.default_rng(1)
    for lr in (0.2, np.float64(0.05), jnp.asarray(0.3)):
        new_x, new_y = jnp.asarray(rng.normal(size=(3, 3))), jnp.asarray(rng.normal(size=3))
        new_theta = jnp.asarray(rng.normal(size=3))
        jaxloss.fit(f, new_theta, new_x, new_y, learning_rate=lr, steps=7)
    # Weakly typed params (a Python float broadcast) are the same program as the strong ones
    # fit returns: feeding a result back in does not compile again.
    weak = jnp.full(3, 0.5)
    assert weak.weak_type
    again = jaxloss.fit(f, weak, x, y, learning_rate=0.1, steps=7)
    jaxloss.fit(f, again.params, x, y, learning_rate=0.1, steps=7)
    assert count["n"] == first == 2


def test_progress_bar_gives_the_same_run(mlp_problem, capsys):
    pytest.importorskip("tqdm")
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    kwargs = dict(learning_rate=0.5, steps=STEPS, batch_size=BATCH, key=jax.random.key(1))
    plain = jaxloss.fit(f, params, x, y, **kwargs)
    shown = jaxloss.fit(f, params, x, y, progress=True, **kwargs)  # STEPS chunks of one step
    chex.assert_trees_all_close(shown, plain, **F32)
    assert f"{STEPS}/{STEPS}" in capsys.readouterr().err


def test_progress_without_tqdm_is_a_clear_error(mlp_problem, monkeypatch):
    init_fn, f, x, y = mlp_problem
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # makes `import tqdm.auto` fail
    with pytest.raises(ImportError, match=r"jaxloss.fit: `progress=True` needs tqdm.*\[progress\]"):
        jaxloss.fit(f, init_fn(jax.random.key(0)), x, y, learning_rate=0.1, steps=2, progress=True)


def test_fit_static_errors(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    with pytest.raises(ValueError, match=r"jaxloss.fit: `steps` must lie in \[1, inf\]; got 0"):
        jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=0)
    # One rule: a float or a bool is not an integer (a TypeError), NumPy ints are (see above).
    for steps in (2.5, 2.0, True):
        with pytest.raises(
            TypeError, match=rf"jaxloss.fit: `steps` must be an integer; got {steps}"
        ):
            jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=steps)
    for key in (0.5, True, "0"):
        with pytest.raises(TypeError, match=r"jaxloss.fit: `key` must be a jax.random key or an"):
            jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=2, batch_size=4, key=key)
    with pytest.raises(TypeError, match=r"jaxloss.fit: `batch_size` must be an integer; got 4.0"):
        jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=2, batch_size=4.0, key=0)
    with pytest.raises(ValueError, match=r"`learning_rate` must lie in \[0, inf\]; got -0.1"):
        jaxloss.fit(f, params, x, y, learning_rate=-0.1, steps=2)
    with pytest.raises(ValueError, match=r"`learning_rate` must be a scalar; got shape \(2,\)"):
        jaxloss.fit(f, params, x, y, learning_rate=[0.1, 0.2], steps=2)
    with pytest.raises(ValueError, match=r"`batch_size` must be at most the number of samples 12"):
        jaxloss.fit(
            f, params, x, y, learning_rate=0.1, steps=2, batch_size=13, key=jax.random.key(0)
        )
    with pytest.raises(ValueError, match=r"jaxloss.fit: `key` must be given when `batch_size`"):
        jaxloss.fit(f, params, x, y, learning_rate=0.1, steps=2, batch_size=4)
    with pytest.raises(ValueError, match=r"jaxloss.fit: `inputs` and `targets` must share"):
        jaxloss.fit(f, params, x, y[:5], learning_rate=0.1, steps=2)


# ------------------------------------------------------------------------------------ sweep


def test_sweep_rows_equal_separate_fit_calls_and_compile_once(mlp_problem):
    # One run after another (parallel_runs=1, the CPU default); the vmapped paths below.
    parallel_runs = 1
    init_fn, f, x, y = mlp_problem
    g, count = trace_counted(f)
    rates = np.array([0.05, 0.5, 2.0, np.inf])  # the last one diverges; the others must not care
    seeds = [3, 11]
    result = jaxloss.sweep(
        g,
        None,
        x,
        y,
        learning_rates=rates,
        steps=STEPS,
        seeds=seeds,
        init_fn=init_fn,
        batch_size=BATCH,
        parallel_runs=parallel_runs,
    )
    chex.assert_shape(result.losses, (4, 2, STEPS))
    chex.assert_shape([result.final_losses, result.diverged_at], (4, 2))
    chex.assert_shape(result.params[0]["w"], (4, 2, 2, 4))
    for s, seed in enumerate(seeds):
        init_key, batch_key = jax.random.split(jax.random.key(seed))
        params = init_fn(init_key)
        # Where seed s's runs started: init_fn's params for its key.
        chex.assert_trees_all_equal(result.initial(s), params)
        for k, lr in enumerate(rates):
            alone = jaxloss.fit(
                f, params, x, y, learning_rate=lr, steps=STEPS, batch_size=BATCH, key=batch_key
            )
            chex.assert_trees_all_close(result.run(k, s), alone, **F32)
    assert np.all(np.asarray(result.diverged_at)[:3] == -1)
    assert np.all(np.asarray(result.diverged_at)[3] >= 0)
    assert result.best() in rates[:3]
    # New learning rates, seeds and data of the same shapes: no retrace.
    jaxloss.sweep(
        g,
        None,
        x + 1,
        y,
        learning_rates=[0.3, 0.1, 0.2, 0.4],
        steps=STEPS,
        seeds=np.array([5, 6]),
        init_fn=init_fn,
        batch_size=BATCH,
        parallel_runs=parallel_runs,
    )
    assert count["n"] == 2


# 3 rates × 2 seeds = 6 runs, 4 at a time (padded to 8 with copies of run 0, dropped after), or
# all 6 at once (the GPU/TPU default); minibatches drawn per run.
@pytest.mark.parametrize("parallel_runs", [4, 6])
def test_sweep_vmapped_and_in_padded_groups_equals_fit_calls(parallel_runs):
    g, count = trace_counted(quadratic)  # one trace for all groups, none for the padding
    x, y = quadratic_data()
    init = jax.jit(lambda key: jax.random.normal(key, (3,)))
    rates, seeds = np.array([0.1, 0.3, 0.45]), [1, 2]
    result = jaxloss.sweep(
        g,
        None,
        x,
        y,
        learning_rates=rates,
        steps=5,
        seeds=seeds,
        init_fn=init,
        batch_size=2,
        parallel_runs=parallel_runs,
    )
    chex.assert_shape(result.losses, (3, 2, 5))
    for s, seed in enumerate(seeds):
        init_key, batch_key = jax.random.split(jax.random.key(seed))
        theta0 = init(init_key)
        for k, lr in enumerate(rates):
            alone = jaxloss.fit(
                quadratic, theta0, x, y, learning_rate=lr, steps=5, batch_size=2, key=batch_key
            )
            chex.assert_trees_all_close(result.run(k, s), alone, **F32)
    assert count["n"] == 2


def test_parallel_runs_default_by_backend(monkeypatch):
    assert jaxloss.sgd._parallel_runs(None, 12) == (1 if jax.default_backend() == "cpu" else 12)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert jaxloss.sgd._parallel_runs(None, 12) == 1
    for backend in ("gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert jaxloss.sgd._parallel_runs(None, 12) == 12
    # A user's value is kept, above K·S clipped (one compilation for all of them).
    assert jaxloss.sgd._parallel_runs(np.int64(5), 12) == 5
    assert jaxloss.sgd._parallel_runs(100, 12) == 12


@pytest.mark.x64  # the reference keys: jax.random.key(seed) is exact for 64-bit seeds with x64
def test_sweep_seeds_beyond_32_bits_are_exact():
    x, y = quadratic_data()
    theta0 = jnp.asarray(THETA_0, jnp.float32)
    # 2**40 used to wrap to 0 (the same run twice); -5 gives the x64 key also without x64
    seeds = [0, 2**40, 2**63 - 1, -5]
    result = jaxloss.sweep(
        quadratic, theta0, x, y, learning_rates=[0.1], steps=3, seeds=seeds, batch_size=1
    )
    assert result.seeds.dtype == np.int64 and result.seeds.tolist() == seeds
    for s, seed in enumerate(seeds):
        batch_key = jax.random.split(jax.random.key(seed))[1]
        alone = jaxloss.fit(
            quadratic, theta0, x, y, learning_rate=0.1, steps=3, batch_size=1, key=batch_key
        )
        chex.assert_trees_all_close(result.run(0, s), alone, **F32)
    # Different seeds, different minibatches: the runs differ.
    assert not np.array_equal(result.losses[0, 0], result.losses[0, 1])


def test_sweep_shared_params_and_progress(mlp_problem, capsys):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    rates = jnp.asarray([0.1, 1.0])
    plain = jaxloss.sweep(f, params, x, y, learning_rates=rates, steps=STEPS)
    chex.assert_shape(plain.losses, (2, 1, STEPS))
    np.testing.assert_array_equal(plain.seeds, [0])
    chex.assert_trees_all_equal(plain.initial(0), params)  # the shared start
    with pytest.raises(IndexError, match=r"SweepResult.initial: `s` must lie in \[-1, 0\]"):
        plain.initial(1)
    alone = jaxloss.fit(f, params, x, y, learning_rate=1.0, steps=STEPS)
    chex.assert_trees_all_close(plain.run(1), alone, **F32)
    assert plain.best() == 1.0
    pytest.importorskip("tqdm")
    shown = jaxloss.sweep(f, params, x, y, learning_rates=rates, steps=STEPS, progress=True)
    chex.assert_trees_all_close(shown, plain, **F32)
    assert f"{STEPS}/{STEPS}" in capsys.readouterr().err


def test_sweep_result_best():
    def result(final, diverged):
        final = np.asarray(final, float)
        return jaxloss.SweepResult(
            learning_rates=np.array([0.01, 0.1, 1.0]),
            seeds=np.arange(final.shape[1]),
            losses=np.zeros((*final.shape, 1)),
            final_losses=final,
            diverged_at=np.asarray(diverged),
            params=None,
        )

    # Lowest mean over seeds among the rates where no seed diverged.
    assert (
        result([[0.5, 0.5], [0.2, 0.4], [0.1, np.nan]], [[-1, -1], [-1, -1], [-1, 3]]).best() == 0.1
    )
    assert result([[0.5], [0.2], [0.1]], [[-1], [-1], [-1]]).best() == 1.0
    with pytest.raises(ValueError, match=r"SweepResult.best: every learning rate diverged"):
        result([[np.nan], [np.nan], [np.nan]], [[0], [1], [2]]).best()


def test_sweep_result_run_indices():
    final = np.arange(6.0).reshape(3, 2)  # final[k, s] = 2k + s identifies the row
    result = jaxloss.SweepResult(
        learning_rates=np.array([0.01, 0.1, 1.0]),
        seeds=np.arange(2),
        losses=np.zeros((3, 2, 1)),
        final_losses=final,
        diverged_at=-np.ones((3, 2), int),
        params={"w": final},
    )
    assert result.run(2, 1).final_loss == 5.0 and result.run(2, 1).params["w"] == 5.0
    assert result.run(np.int64(1)).final_loss == 2.0  # s defaults to 0
    # Negative indices count from the end, as in Python.
    assert result.run(-1, -2).final_loss == 4.0 and result.run(-3, -1).final_loss == 1.0
    for k, s in ((3, 0), (-4, 0), (0, 2), (0, -3)):  # used to be clamped to the last row
        with pytest.raises(IndexError, match=r"jaxloss.SweepResult.run: `[ks]` must lie in"):
            result.run(k, s)
    with pytest.raises(TypeError, match=r"SweepResult.run: `k` must be an integer; got 0.5"):
        result.run(0.5)


def test_sweep_static_errors(mlp_problem):
    init_fn, f, x, y = mlp_problem
    params = init_fn(jax.random.key(0))
    with pytest.raises(ValueError, match=r"exactly one of `params`.*got both"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, init_fn=init_fn)
    with pytest.raises(ValueError, match=r"exactly one of `params`.*got neither"):
        jaxloss.sweep(f, None, x, y, learning_rates=[0.1], steps=2)
    with pytest.raises(ValueError, match=r"`learning_rates` must be a non-empty 1-D array"):
        jaxloss.sweep(f, params, x, y, learning_rates=0.1, steps=2)
    with pytest.raises(ValueError, match=r"`learning_rates` must lie in \[0, inf\]"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1, -1.0], steps=2)
    with pytest.raises(TypeError, match=r"jaxloss.sweep: `seeds\[1\]` must be an integer; got 0.5"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, seeds=[1, 0.5])
    with pytest.raises(ValueError, match=r"`seeds` must be an int S or a non-empty 1-D"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, seeds=[])
    with pytest.raises(ValueError, match=r"jaxloss.sweep: `seeds` must lie in \[1, inf\]; got 0"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, seeds=0)
    with pytest.raises(ValueError, match=r"jaxloss.sweep: `seeds\[0\]` must lie in"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, seeds=[2**64])
    with pytest.raises(TypeError, match=r"jaxloss.sweep: `steps` must be an integer; got True"):
        jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=True)
    for bad, exc in ((0, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(exc, match=r"jaxloss.sweep: `parallel_runs` must"):
            jaxloss.sweep(f, params, x, y, learning_rates=[0.1], steps=2, parallel_runs=bad)
