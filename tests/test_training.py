"""jaxloss.fit / sweep with optax optimizers, schedules, any pytree, the sharpness monitor, results
as JSON, and the LR range test: each against a hand-written lax.scan over optax, jax.grad or a
NumPy reference."""

import functools
import json
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_sgd import trace_counted  # the objective with a count of its traces

import jaxloss

STEPS = 20
# The same float32 computation in two programs may differ by a few roundings.
F32 = dict(rtol=1e-6, atol=1e-6)
MOMENTUM = functools.partial(optax.sgd, momentum=0.9)  # one object: one compilation
SCHEDULE = optax.exponential_decay(0.5, transition_steps=5, decay_rate=0.5)


@pytest.fixture(scope="module")
def problem():
    """MLP 2-8-3 on 32 spiral points, mean integer cross entropy."""
    x, y = jaxloss.spirals(32, classes=3, key=0)
    init_fn, apply_fn = jaxloss.mlp([2, 8, 3])
    f = jaxloss.objective(apply_fn, jaxloss.softmax_cross_entropy_with_integer_labels)
    return f, jax.jit(init_fn), x, y


def optax_scan(f, opt, params, x, y, steps):
    """The reference: `steps` of optax's update + apply_updates in a hand-written lax.scan.
    Returns `((params, state) at the end, (params, state, loss, gradient) before each step)`."""

    def body(carry, _):
        p, state = carry
        loss, g = jax.value_and_grad(f)(p, x, y)
        updates, new_state = opt.update(g, state, p)
        return (optax.apply_updates(p, updates), new_state), (p, state, loss, g)

    return jax.lax.scan(body, (params, opt.init(params)), None, length=steps)


# ------------------------------------------------------------------ SGD on the MLP, monitored


@pytest.fixture(scope="module")
def sgd_run(problem):
    """SGD at η = 0.5 with the monitor every 6 steps, and the reference trajectory (params,
    gradient and loss before each step) of a hand-written scan over optax.sgd."""
    f, init_fn, x, y = problem
    params = init_fn(jax.random.key(0))
    result = jaxloss.fit(f, params, x, y, learning_rate=0.5, steps=STEPS, monitor_every=6)
    reference = jax.jit(lambda p: optax_scan(f, optax.sgd(0.5), p, x, y, STEPS))(params)
    return result, reference


def test_fit_equals_a_lax_scan_over_optax_sgd(problem, sgd_run):
    f, _, x, y = problem
    result, ((p, state), (_, _, losses, _)) = sgd_run
    chex.assert_trees_all_close(result.losses, losses, **F32)
    chex.assert_trees_all_close((result.params, result.opt_state), (p, state), **F32)
    chex.assert_trees_all_close(result.final_loss, jax.jit(f)(p, x, y), **F32)
    assert int(result.diverged_at) == -1


def test_monitor_against_top_eigenvalue_jax_grad_and_the_taylor_ratio(problem, sgd_run):
    f, init_fn, x, y = problem
    (result, (_, (trajectory, _, losses, grads))), eta = sgd_run, 0.5
    monitor = result.monitor
    np.testing.assert_array_equal(monitor.steps, [0, 6, 12, 18, 19])  # and the last step
    gg = np.asarray(sum(jnp.sum(g**2, axis=range(1, g.ndim)) for g in jax.tree.leaves(grads)))
    np.testing.assert_allclose(monitor.grad_norm_sq, gg[monitor.steps], rtol=1e-5)
    # The ratio: actual ΔL / (−η‖g‖²), ΔL from the reference's losses.
    after = np.r_[np.asarray(losses), result.final_loss]
    ratio = (after[1:] - after[:-1]) / (-eta * gg)
    np.testing.assert_allclose(monitor.first_order_ratio, ratio[monitor.steps], rtol=1e-3)
    # λ_max at the last record (after 4 warm-started ones) against 500 plain power iterations.
    before = jax.tree.map(lambda a: a[-1], trajectory)
    lam = jaxloss.top_hessian_eigenvalue(f, before, x, y, iters=500, key=1)
    chex.assert_trees_all_close(monitor.sharpness[-1], lam, rtol=1e-3)


# ---------------------------------------------------------------- momentum and schedules


# A quadratic with known Hessian diag(λ) (a cheap program): L = ½ Σ λ_i (θ_i − θ*_i)².
LAMBDAS = np.array([4.0, 1.0, 0.25])
THETA_STAR = np.array([1.0, -2.0, 0.5])
Z = jnp.zeros((1, 1))


def quadratic(theta, x, y):
    return 0.5 * jnp.sum(jnp.asarray(LAMBDAS, theta.dtype) * (theta - THETA_STAR) ** 2)


def test_schedule_rate_at_step_t_is_schedule_of_t():
    # Per eigen-direction SGD gives e_{t+1} = (1 − η_t λ) e_t, η_t = schedule(t) (in NumPy).
    result = jaxloss.fit(quadratic, jnp.zeros(3), Z, Z, learning_rate=SCHEDULE, steps=12)
    etas = 0.5 * 0.5 ** (np.arange(12) / 5)
    errors = np.cumprod(np.vstack([-THETA_STAR, 1 - etas[:, None] * LAMBDAS]), axis=0)
    losses = 0.5 * (LAMBDAS * errors**2).sum(axis=1)
    np.testing.assert_allclose(result.losses, losses[:-1], rtol=1e-5)
    np.testing.assert_allclose(result.final_loss, losses[-1], rtol=1e-5)
    # And the hand-written scan over optax.sgd(schedule).
    (p, state), (_, _, ref_losses, _) = jax.jit(
        lambda p: optax_scan(quadratic, optax.sgd(SCHEDULE), p, Z, Z, 12)
    )(jnp.zeros(3))
    chex.assert_trees_all_close(result.losses, ref_losses, **F32)
    chex.assert_trees_all_close((result.params, result.opt_state), (p, state), **F32)
    assert int(result.opt_state[-1].count) == 12  # optax's step counter came along


MOMENTUM_KW = dict(learning_rate=0.1, steps=10, optimizer=MOMENTUM, monitor_every=3)


@pytest.fixture(scope="module")
def momentum_run():
    return jaxloss.fit(quadratic, jnp.zeros(3), Z, Z, **MOMENTUM_KW)


def test_momentum_equals_a_lax_scan_and_its_monitor_a_numpy_reference(momentum_run):
    result = momentum_run
    (p, state), (_, _, losses, _) = jax.jit(
        lambda p: optax_scan(quadratic, MOMENTUM(0.1), p, Z, Z, 10)
    )(jnp.zeros(3))
    chex.assert_trees_all_close(result.losses, losses, **F32)
    chex.assert_trees_all_close((result.params, result.opt_state), (p, state), **F32)
    # Momentum (m ← g + 0.9 m, u = −η m) in float64 NumPy. On the quadratic
    # L(θ + u) − L(θ) = g·u + ½ Σ λ u² exactly, so the ratio ΔL / (g·u) = 1 + ½ Σ λ u² / (g·u);
    # λ_max = 4, ‖g‖² = Σ (λ e)².
    theta, m, expected = np.zeros(3), np.zeros(3), []
    for _ in range(10):
        g = LAMBDAS * (theta - THETA_STAR)
        m = g + 0.9 * m
        u = -0.1 * m
        expected.append((4.0, g @ g, 1 + 0.5 * (LAMBDAS * u**2).sum() / (g @ u)))
        theta = theta + u
    monitor = result.monitor
    np.testing.assert_array_equal(monitor.steps, [0, 3, 6, 9])
    got = np.stack([monitor.sharpness, monitor.grad_norm_sq, monitor.first_order_ratio], 1)
    np.testing.assert_allclose(got, np.asarray(expected)[[0, 3, 6, 9]], rtol=1e-4)


def test_progress_chunks_carry_the_optimizer_state_and_the_eigenvector(momentum_run):
    pytest.importorskip("tqdm")
    shown = jaxloss.fit(quadratic, jnp.zeros(3), Z, Z, progress=True, **MOMENTUM_KW)
    chex.assert_trees_all_close(shown, momentum_run, rtol=1e-6)


def test_sweep_monitor_rows_equal_fit_calls(momentum_run):
    # Rows run as `fit` with the same settings (the momentum_run program, no new compilation).
    kwargs = {k: v for k, v in MOMENTUM_KW.items() if k != "learning_rate"}
    result = jaxloss.sweep(quadratic, jnp.zeros(3), Z, Z, learning_rates=[0.05, 0.1], **kwargs)
    chex.assert_shape(result.monitor.sharpness, (2, 1, 4))
    chex.assert_trees_all_close(result.run(1), momentum_run, rtol=1e-6)
    alone = jaxloss.fit(quadratic, jnp.zeros(3), Z, Z, learning_rate=0.05, **kwargs)
    chex.assert_trees_all_close(result.run(0), alone, rtol=1e-6)
    back = round_trip(result)
    chex.assert_trees_all_equal(back, jax.tree.map(np.asarray, result), strict=False)


@pytest.fixture(scope="module")
def diverged():
    # Momentum 0.9 at η = 1000 on the quadratic overflows float32 within a few dozen steps.
    theta0 = jnp.zeros(3)
    return jaxloss.fit(quadratic, theta0, Z, Z, learning_rate=1e3, steps=60, optimizer=MOMENTUM)


def test_diverged_run_keeps_its_last_finite_params_and_optimizer_state(diverged):
    result, d = diverged, int(diverged.diverged_at)
    assert 0 < d < 60
    # By hand: step until the loss is not finite; keep the params and state before that step.
    opt = MOMENTUM(1000.0)
    theta = jnp.zeros(3)
    state = opt.init(theta)
    step = jax.jit(lambda theta, state: opt.update(jax.grad(quadratic)(theta, Z, Z), state))
    for _ in range(d - 1):
        updates, state = step(theta, state)
        theta = optax.apply_updates(theta, updates)
    assert np.isfinite(quadratic(theta, Z, Z))
    chex.assert_trees_all_close(result.params, theta, rtol=1e-6)
    chex.assert_trees_all_close(result.opt_state, state, rtol=1e-6)
    assert np.isnan(result.final_loss) and np.all(np.isnan(result.losses[d + 1 :]))


# ------------------------------------------------------------------------- any pytree, Adam


def tree_params(activation):
    """A hand-made model: a float32 matrix, a bfloat16 vector, an int32 counter, a bool mask and
    a Python callable (the activation the objective applies)."""
    return {
        "w": jnp.asarray([[0.5, -1.0], [0.25, 0.75], [-0.5, 0.3]], jnp.float32),
        "scale": jnp.asarray([1.0, -0.5], jnp.bfloat16),
        "count": jnp.int32(7),
        "mask": jnp.asarray([True, False]),
        "act": activation,
    }


def tree_objective(p, x, y):
    h = p["act"](x @ p["w"]) * p["scale"].astype(jnp.float32)[None, :]
    h = jnp.where(p["mask"][None, :], h, 0.0) + 0.01 * p["count"]
    return jnp.mean((h.sum(axis=1) - y) ** 2)


def tree_reference(params, x, y, optimizer, learning_rate, steps):
    """The optimizer on the float leaves only, by hand: the other leaves held in a closure; one
    jitted step (one program holding all steps could skip the bfloat16 rounding in between).
    Returns the float leaves and the optimizer states after 0, 1, …, `steps` steps."""
    frozen = {k: params[k] for k in ("count", "mask", "act")}
    opt = optimizer(learning_rate)

    @jax.jit
    def step(floats, state):
        grads = jax.grad(lambda fl: tree_objective({**fl, **frozen}, x, y))(floats)
        updates, state = opt.update(grads, state, floats)
        return optax.apply_updates(floats, updates), state

    floats = [floats_of(params)]
    states = [opt.init(floats[0])]
    for _ in range(steps):
        new, state = step(floats[-1], states[-1])
        floats.append(new)
        states.append(state)
    return floats, states


def floats_of(params):
    return {k: params[k] for k in ("w", "scale")}


def without_act(result):
    return result._replace(params={k: v for k, v in result.params.items() if k != "act"})


@pytest.fixture(scope="module")
def tree_data():
    rng = np.random.default_rng(3)
    return jnp.asarray(rng.normal(size=(6, 3)), jnp.float32), jnp.asarray(rng.normal(size=6))


def tree_init(key):
    return {**tree_params(jnp.tanh), "w": jax.random.normal(key, (3, 2))}


def test_sgd_step_and_fit_train_only_float_leaves_of_any_pytree(tree_data):
    x, y = tree_data
    params = tree_params(jnp.tanh)

    @jax.jit  # (compiled: op by op the step costs seconds of dispatch)
    def step(floats):
        new, loss = jaxloss.sgd_step(tree_objective, {**params, **floats}, x, y, 0.1)
        assert new["act"] is jnp.tanh and new["count"] is params["count"]
        assert new["scale"].dtype == jnp.bfloat16
        return floats_of(new), loss, tree_objective({**params, **floats}, x, y)

    new, loss, expected_loss = step(floats_of(params))
    assert loss == expected_loss
    (_, one, *_), _ = tree_reference(params, x, y, optax.sgd, 0.1, 3)
    chex.assert_trees_all_close(new, one, **F32)
    result = jaxloss.fit(tree_objective, params, x, y, learning_rate=0.1, steps=3)
    expected = tree_reference(params, x, y, optax.sgd, 0.1, 3)[0][-1]
    chex.assert_trees_all_close(floats_of(result.params), expected, **F32)
    # The leaves that do not train come back as they went in: the same objects.
    for k in ("count", "mask", "act"):
        assert result.params[k] is params[k]


@pytest.fixture(scope="module")
def swept(tree_data):
    """Adam, K = 2 rates × S = 2 seeds (init_fn), on the pytree model."""
    x, y = tree_data
    g, count = trace_counted(tree_objective)
    kwargs = dict(steps=3, init_fn=tree_init, optimizer=optax.adam)
    result = jaxloss.sweep(g, None, x, y, learning_rates=[0.05, 0.1], seeds=[1, 2], **kwargs)
    # New learning rates and seeds: the same program, no retrace.
    jaxloss.sweep(g, None, x, y, learning_rates=[0.3, 1.0], seeds=[5, 6], **kwargs)
    return result, count["n"]


def test_adam_sweep_rows_equal_fit_calls_and_a_hand_loop_and_compile_once(tree_data, swept):
    x, y = tree_data
    result, traces = swept
    assert traces == 2
    chex.assert_shape(result.params["count"], (2, 2))
    chex.assert_shape(result.opt_state[0].mu["w"], (2, 2, 3, 2))
    assert result.params["act"] is jnp.tanh
    for s, seed in enumerate([1, 2]):
        params = tree_init(jax.random.split(jax.random.key(seed))[0])
        for k, lr in enumerate([0.05, 0.1]):
            alone = jaxloss.fit(
                tree_objective, params, x, y, learning_rate=lr, steps=3, optimizer=optax.adam
            )
            # (the params compared without the activation: chex compares arrays)
            chex.assert_trees_all_close(without_act(result.run(k, s)), without_act(alone), **F32)
    (*_, expected), (*_, state) = tree_reference(params, x, y, optax.adam, 0.1, 3)
    run = result.run(1, 1)
    chex.assert_trees_all_close(floats_of(run.params), expected, **F32)
    assert int(run.params["count"]) == 7 and run.params["act"] is jnp.tanh
    # The optimizer saw None where nothing trains (equinox's convention).
    mu = run.opt_state[0].mu
    assert mu["count"] is None and mu["mask"] is None and mu["act"] is None
    chex.assert_trees_all_close(floats_of(mu), state[0].mu, **F32)
    assert mu["scale"].dtype == jnp.bfloat16


def test_init_fn_must_keep_its_static_leaves(tree_data):
    x, y = tree_data

    def new_lambda_each_time(key):
        return {**tree_init(key), "act": lambda h: jnp.tanh(h)}

    with pytest.raises(ValueError, match=r"jaxloss.sweep: `init_fn` must give every seed"):
        jaxloss.sweep(
            tree_objective, None, x, y, learning_rates=[0.1], steps=2, seeds=2,
            init_fn=new_lambda_each_time,
        )  # fmt: skip


def test_monitor_of_adam_on_the_pytree(tree_data):
    # Adam's update of the bfloat16 leaf is float32: g·u is taken leaf by leaf, in optax's dtypes.
    x, y = tree_data
    params = tree_params(jnp.tanh)
    kwargs = dict(learning_rate=0.1, steps=2, optimizer=optax.adam, monitor_every=1)
    result = jaxloss.fit(tree_objective, params, x, y, **kwargs)

    @jax.jit
    def reference(floats):  # g·u and ‖g‖² of the first step
        g = jax.grad(lambda fl: tree_objective({**params, **fl}, x, y))(floats)
        updates, _ = optax.adam(0.1).update(g, optax.adam(0.1).init(floats), floats)
        g_g = sum(jnp.vdot(v, v).astype(jnp.float32) for v in g.values())
        return sum(jnp.vdot(g[k], updates[k]) for k in floats), g_g

    g_u, g_g = reference(floats_of(params))
    ratio = (result.losses[1] - result.losses[0]) / g_u
    chex.assert_trees_all_close(result.monitor.first_order_ratio[0], ratio, rtol=1e-3)
    chex.assert_trees_all_close(result.monitor.grad_norm_sq[0], g_g, rtol=1e-2)  # bfloat16 sums


# -------------------------------------------------------------------------- saved results


def round_trip(result):
    return type(result).from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))


def test_results_round_trip_through_strict_json_and_pickle(sgd_run, momentum_run, diverged, swept):
    for result in (sgd_run[0], momentum_run):
        back = round_trip(result)
        chex.assert_trees_all_equal(back, jax.tree.map(np.asarray, result), strict=False)
        chex.assert_trees_all_equal(pickle.loads(pickle.dumps(result)), result)
    assert back.monitor.steps.dtype == np.int32
    assert type(back.opt_state[0]) is optax.TraceState
    assert round_trip(sgd_run[0]).params[0]["w"].dtype == np.float32
    # A diverged run: non-finite values are null in the JSON and NaN when read back.
    back = round_trip(diverged)
    finite = np.where(np.isfinite(diverged.losses), diverged.losses, np.nan)
    np.testing.assert_array_equal(back.losses, finite)
    assert np.isnan(back.final_loss) and back.diverged_at == diverged.diverged_at
    # A sweep of the pytree model: bfloat16 and bool leaves keep their dtypes, the activation
    # (a Python callable) comes back as None.
    result = swept[0]
    back = round_trip(result)
    assert back.params["act"] is None and back.params["scale"].dtype == jnp.bfloat16
    assert back.params["mask"].dtype == np.bool_
    assert back.initial_params["act"] is None
    chex.assert_trees_all_equal(
        back._replace(params=floats_of(back.params), initial_params=floats_of(back.initial_params)),
        jax.tree.map(
            np.asarray,
            result._replace(
                params=floats_of(result.params), initial_params=floats_of(result.initial_params)
            ),
        ),
        strict=False,
    )
    assert back.best() == result.best()
    pickled = pickle.loads(
        pickle.dumps(result._replace(params=floats_of(result.params), initial_params=None))
    )
    chex.assert_trees_all_equal(pickled.losses, result.losses)


# -------------------------------------------------------------------------------- errors


def test_bad_optimizer_and_monitor_are_errors_naming_the_caller(problem):
    f, init_fn, x, y = problem
    params = init_fn(jax.random.key(0))
    fit = functools.partial(jaxloss.fit, f, params, x, y, learning_rate=0.1, steps=2)
    sweep = functools.partial(jaxloss.sweep, f, params, x, y, learning_rates=[0.1], steps=2)
    for call, name in ((fit, "fit"), (sweep, "sweep")):
        with pytest.raises(TypeError, match=rf"jaxloss.{name}: `optimizer` must be a callable"):
            call(optimizer="adam")
        with pytest.raises(TypeError, match=rf"jaxloss.{name}: .*not optax.adam\(1e-3\)"):
            call(optimizer=optax.adam(1e-3))
        with pytest.raises(TypeError, match=rf"jaxloss.{name}: `optimizer\(learning_rate\)` must"):
            call(optimizer=lambda lr: lr)
    with pytest.raises(ValueError, match=r"jaxloss.fit: `monitor_every` must lie in \[1, "):
        fit(monitor_every=0)
    with pytest.raises(TypeError, match=r"jaxloss.fit: `monitor_every` must be an integer"):
        fit(monitor_every=2.0)
    with pytest.raises(ValueError, match=r"jaxloss.fit: `learning_rate\(0\)` must be a scalar"):
        fit(learning_rate=lambda count: jnp.ones(2))


# ---------------------------------------------------------------------------- LR range test


def test_lr_range_test_on_linear_regression_blows_up_past_two_over_lambda_max():
    x, y, _ = jaxloss.linear_regression(64, 3, key=0)
    init_fn, apply_fn = jaxloss.linear(3, 1)
    f = jaxloss.objective(apply_fn, jaxloss.mse)
    result = jaxloss.lr_range_test(f, init_fn(0), x, y, min_lr=1e-3, max_lr=10.0, steps=200)
    # The mean squared error of an affine model has Hessian (2/N) X̃ᵀX̃, X̃ = [x, 1]; gradient
    # descent on it is stable exactly for η < 2/λ_max.
    design = np.c_[np.asarray(x, np.float64), np.ones(len(x))]
    limit = 2 / np.linalg.eigvalsh(2 / len(x) * design.T @ design).max()
    np.testing.assert_allclose(result.learning_rates, np.geomspace(1e-3, 10.0, 200), rtol=1e-12)
    stop = int(np.isfinite(result.losses).sum()) - 1
    assert np.all(np.isnan(result.losses[stop + 1 :]))
    assert result.learning_rates[stop] > limit  # the loss blew up past 2/λ_max ...
    stable = result.losses[result.learning_rates < limit]
    assert np.all(np.diff(stable) <= 1e-6 * stable[1:])  # ... and fell all the way below it
    assert result.learning_rates[0] < result.suggested < limit
    # fastai's debiased average: Σ_s β^(t−s) (1−β) L_s / (1 − β^(t+1)), β = 0.98.
    t = np.arange(stop + 1)
    weights = np.tril(0.98 ** (t[:, None] - t[None, :])) * 0.02 / (1 - 0.98 ** (t + 1))[:, None]
    np.testing.assert_allclose(
        result.smoothed_losses[: stop + 1], weights @ result.losses[: stop + 1]
    )
    assert result.smoothed_losses[stop] > 4 * np.min(result.smoothed_losses[:stop])
    assert np.all(
        result.smoothed_losses[:stop] <= 4 * np.minimum.accumulate(result.smoothed_losses[:stop])
    )
    back = round_trip(result)
    chex.assert_trees_all_equal(back, result)
    with pytest.raises(ValueError, match=r"jaxloss.lr_range_test: `max_lr` must lie in \(0.1, inf"):
        jaxloss.lr_range_test(f, init_fn(0), x, y, min_lr=0.1, max_lr=0.1, steps=5)
    with pytest.raises(TypeError, match=r"jaxloss.lr_range_test: `optimizer` must be a callable"):
        jaxloss.lr_range_test(f, init_fn(0), x, y, min_lr=0.1, max_lr=1, steps=5, optimizer=1)
