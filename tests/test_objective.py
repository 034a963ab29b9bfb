"""jaxloss.objective / per_sample_losses against Python loops over the samples."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss.testing import assert_gradient_consistent, assert_per_sample_decomposable

N, D, C = 7, 3, 4
ce = optax.losses.softmax_cross_entropy_with_integer_labels


@pytest.fixture(scope="module")
def problem_numpy():
    """NumPy float64 params and data; tests make JAX arrays in their own x64 mode."""
    _, apply_fn = jaxloss.mlp([D, 5, C])
    rng = np.random.default_rng(0)
    # `mlp` params drawn with NumPy (init_fn's jax.random compiles for seconds), non-zero biases.
    params = [
        {"w": rng.normal(size=(i, o)) / np.sqrt(i), "b": 0.1 * rng.normal(size=o)}
        for i, o in ((D, 5), (5, C))
    ]
    x = rng.normal(size=(N, D))
    y = rng.integers(0, C, size=N).astype(np.int32)
    return apply_fn, params, x, y


@pytest.fixture
def problem(problem_numpy, x64):
    """float64 JAX arrays (x64 on for the test)."""
    apply_fn, params, x, y = problem_numpy
    return apply_fn, jax.tree.map(jnp.asarray, params), jnp.asarray(x), jnp.asarray(y)


def numpy_mean_ce_and_grad(params, x, y):
    """Reference in NumPy float64: mean softmax cross entropy of the tanh MLP and its gradient,
    the chain rule written out (δ = (softmax − onehot)/N at the logits)."""
    (w0, b0), (w1, b1) = ((p["w"], p["b"]) for p in params)
    h = np.tanh(x @ w0 + b0)
    z = h @ w1 + b1
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    onehot = np.eye(z.shape[1])[y]
    loss = -(onehot * log_p).sum(axis=1).mean()
    delta = (np.exp(log_p) - onehot) / len(x)
    dh = delta @ w1.T * (1 - h**2)
    grads = [{"w": x.T @ dh, "b": dh.sum(0)}, {"w": h.T @ delta, "b": delta.sum(0)}]
    return loss, grads


def loop_losses(apply_fn, loss_fn, params, x, y):
    """The reference: one sample at a time, in a Python loop (each sample's loss jitted: op by
    op it would compile every primitive)."""
    one = jax.jit(lambda p, xi, yi: loss_fn(apply_fn(p, xi), yi))
    return np.array([float(one(params, x[i], y[i])) for i in range(len(x))])


@pytest.mark.parametrize("jit", [False, True])
def test_float32_value_and_gradient_against_numpy_float64(problem_numpy, jit):
    apply_fn, params, x, y = problem_numpy
    loss, grads = numpy_mean_ce_and_grad(params, x, y)
    f = jaxloss.objective(apply_fn, ce)
    value_and_grad = jax.value_and_grad(f)
    if jit:
        value_and_grad = jax.jit(value_and_grad)
    params32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    value, g = value_and_grad(params32, jnp.asarray(x, jnp.float32), jnp.asarray(y))
    assert value.dtype == jnp.float32
    chex.assert_trees_all_equal_dtypes(g, params32)
    chex.assert_trees_all_close(value, loss, rtol=1e-6)
    chex.assert_trees_all_close(g, grads, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit", [False, True])
def test_objective_equals_python_loop(problem, jit):
    apply_fn, params, x, y = problem
    reference = loop_losses(apply_fn, ce, params, x, y)
    per_sample = jaxloss.per_sample_losses(apply_fn, ce)
    total = jaxloss.objective(apply_fn, ce, reduction="sum")
    mean = jaxloss.objective(apply_fn, ce)
    if jit:
        per_sample, total, mean = jax.jit(per_sample), jax.jit(total), jax.jit(mean)
    values = per_sample(params, x, y)
    chex.assert_shape(values, (N,))
    chex.assert_trees_all_close(values, reference, rtol=1e-12)
    chex.assert_trees_all_close(total(params, x, y), reference.sum(), rtol=1e-12)
    chex.assert_trees_all_close(mean(params, x, y), reference.mean(), rtol=1e-12)
    # sum = N × mean
    chex.assert_trees_all_close(total(params, x, y), N * mean(params, x, y), rtol=1e-12)


def test_objective_decomposes_per_sample_and_its_gradient_is_consistent(problem_numpy):
    # float32, as users train: the sum of single-sample objectives, in value and gradient.
    apply_fn, params, x, y = problem_numpy
    params, x = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), (params, x))
    f = jaxloss.objective(apply_fn, ce, reduction="sum")
    assert_per_sample_decomposable(f, params, x, y)
    assert_gradient_consistent(f, params, x, y)


@pytest.mark.x64  # x["v"] is float64 on purpose: the promotion is the user's
def test_pytree_inputs_and_targets_and_float32():
    # Inputs are a dict, targets a tuple: vmap maps the leading axis of every leaf.
    def apply_fn(params, x):
        return params["a"] * x["u"] + params["b"] * x["v"].sum()

    def loss_fn(prediction, target):
        return jnp.sum((prediction - target[0]) ** 2) * target[1]

    rng = np.random.default_rng(0)
    x = {"u": rng.normal(size=(N, 2)).astype(np.float32), "v": rng.normal(size=(N, 3, 2))}
    y = (rng.normal(size=(N, 2)).astype(np.float32), rng.uniform(size=N).astype(np.float32))
    params = {"a": jnp.float32(0.5), "b": jnp.float32(-1.5)}
    f = jaxloss.objective(apply_fn, loss_fn, reduction="sum")
    reference = sum(
        np.sum((0.5 * x["u"][i] - 1.5 * x["v"][i].sum() - y[0][i]) ** 2) * y[1][i] for i in range(N)
    )
    chex.assert_trees_all_close(f(params, x, y), reference, rtol=1e-5)
    per_sample = jax.jit(jaxloss.per_sample_losses(apply_fn, loss_fn))(params, x, y)
    chex.assert_shape(per_sample, (N,))
    assert per_sample.dtype == jnp.float64  # x["v"] is float64: the promotion is the user's


def test_float32_stays_float32_and_vmaps_over_params(problem):
    apply_fn, params, x, y = problem
    # The casts, stacks and doublings in NumPy (exact): op by op each would compile.
    params32 = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    x32 = np.asarray(x, np.float32)
    f = jax.jit(jaxloss.objective(apply_fn, ce))
    assert f(params32, x32, y).dtype == jnp.float32
    # Stacking two parameter sets and vmapping the objective over them (as `sweep` does).
    stacked = jax.tree.map(lambda a: np.stack([a, 2 * np.asarray(a)]), params)
    both = jax.jit(jax.vmap(f, in_axes=(0, None, None)))(stacked, x, y)
    chex.assert_shape(both, (2,))
    doubled = jax.tree.map(lambda a: 2 * np.asarray(a), params)
    chex.assert_trees_all_close(both, np.stack([f(params, x, y), f(doubled, x, y)]), rtol=1e-12)


def test_non_scalar_loss_names_shape_and_fix(problem):
    apply_fn, params, x, y = problem
    onehot = jax.nn.one_hot(y, C)
    f = jaxloss.objective(apply_fn, lambda p, t: (p - t) ** 2)
    with pytest.raises(ValueError, match=r"scalar for one sample; got shape \(4,\).*jaxloss.mse"):
        f(params, x, onehot)
    g = jaxloss.per_sample_losses(apply_fn, lambda p, t: (p - t) ** 2)
    with pytest.raises(ValueError, match=r"jaxloss.per_sample_losses: `loss_fn`.*\.sum\(\)"):
        jax.jit(g)(params, x, onehot)
    # The fix the message suggests works.
    fixed = jaxloss.objective(apply_fn, lambda p, t: ((p - t) ** 2).sum())
    chex.assert_shape(fixed(params, x, onehot), ())


def test_static_errors(problem):
    apply_fn, params, x, y = problem
    with pytest.raises(ValueError, match=r"jaxloss.objective: `reduction` must be one of"):
        jaxloss.objective(apply_fn, ce, reduction="none")
    f = jaxloss.objective(apply_fn, ce)
    with pytest.raises(ValueError, match=r"share the length.*inputs \(7, 3\).*targets \(6,\)"):
        f(params, x, y[:6])
    with pytest.raises(ValueError, match=r"leading sample axis; got a scalar"):
        f(params, x, jnp.int32(0))
    with pytest.raises(ValueError, match=r"`targets` must hold at least one array"):
        f(params, x, ())


def test_empty_data_set_is_a_value_error(problem_numpy):
    # A mean over no sample would be NaN, a sum 0.0: neither says what went wrong.
    apply_fn, params, x, y = problem_numpy
    empty = (jnp.zeros((0, D)), jnp.zeros((0,), jnp.int32))
    for fn, make in (
        ("objective", lambda: jaxloss.objective(apply_fn, ce, reduction="sum")),
        ("per_sample_losses", lambda: jaxloss.per_sample_losses(apply_fn, ce)),
    ):
        for f in (make(), jax.jit(make())):
            with pytest.raises(ValueError, match=rf"jaxloss.{fn}: `inputs` must have at least"):
                f(params, *empty)
