"""jaxloss.testing: each assertion passes on correct code and fails, with its message, on a
planted defect; no false failure where there is nothing to measure."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss.testing import (
    assert_finite_gradients,
    assert_gradient_consistent,
    assert_per_sample_decomposable,
)

X = np.linspace(-2.0, 2.0, 8)  # no entry exactly on a kink at 0


def softplus_with_derivative(scale, offset):
    """softplus with the custom_jvp `(scale · sigmoid(x) + offset) · t`: correct for (1, 0)."""

    @jax.custom_jvp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    @softplus.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), (scale * jax.nn.sigmoid(x) + offset) * t

    return lambda x: softplus(x).sum()


def softplus_vjp(scale):
    """softplus with a custom_vjp whose gradient is `scale` times the true one."""

    @jax.custom_vjp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defvjp(lambda x: (softplus(x), x), lambda x, c: (scale * c * jax.nn.sigmoid(x),))
    return lambda x: softplus(x).sum()


def measured(message):
    """(slope, actual/predicted) from an assert_gradient_consistent message."""
    slope = float(re.search(r"falls with slope (-?[\d.]+)", message).group(1))
    ratio = float(re.search(r"\(actual/predicted\) is (-?[\d.]+)", message).group(1))
    return slope, ratio


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.x64)])
def test_gradient_consistent_passes_and_catches_a_scaled_custom_jvp(dtype):
    x = jnp.asarray(X, dtype)
    assert_gradient_consistent(softplus_with_derivative(1.0, 0.0), x)
    with pytest.raises(AssertionError, match="wrong custom_jvp/custom_vjp rule") as info:
        assert_gradient_consistent(softplus_with_derivative(1.1, 0.0), x)
    slope, ratio = measured(str(info.value))
    assert 0.9 < slope < 1.5, slope
    # At the smallest η the change of f is its true slope: 1/1.1 of the predicted one.
    np.testing.assert_allclose(ratio, 1 / 1.1, rtol=0.01)
    assert re.search(rf"step lengths η in \[\S+, \S+\], {dtype}\)", str(info.value))


def test_gradient_consistent_catches_a_derivative_off_by_a_constant():
    with pytest.raises(AssertionError, match="slope .* a correct gradient gives 2") as info:
        assert_gradient_consistent(softplus_with_derivative(1.0, 0.05), jnp.asarray(X, "float32"))
    assert measured(str(info.value))[0] < 1.5


def test_gradient_consistent_through_custom_vjp():
    x = jnp.asarray(X, "float32")
    assert_gradient_consistent(softplus_vjp(1.0), x)  # no jvp needed: custom_vjp works
    with pytest.raises(AssertionError, match="along a random unit direction"):
        assert_gradient_consistent(softplus_vjp(1.1), x)


def test_gradient_consistent_on_pytree_params_and_extra_args():
    def f(params, x, reduce):
        # `step` (an int) and `name` (a str) pass through untouched; `reduce` is a callable arg.
        assert params["name"] == "layer" and params["step"].dtype == jnp.int32
        return reduce(jnp.tanh(x @ params["w"] + params["b"][None]) ** 2)

    params = {"w": jnp.full((3, 2), 0.3), "b": jnp.array([0.1, -0.2]), "step": jnp.int32(5)}
    params["name"] = "layer"
    x = jnp.asarray(np.arange(12.0).reshape(4, 3) / 10)
    assert_gradient_consistent(f, params, x, jnp.sum)
    # Along a given direction too (its non-float leaves ignored).
    direction = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2), "step": 0, "name": "layer"}
    assert_gradient_consistent(f, params, x, jnp.sum, direction=direction)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: (3.0 * x**2 - x).sum(),  # quadratic: remainder exactly 1.5η²‖d‖²... slope 2
        lambda x: (2.0 * x).sum(),  # linear: remainder within roundoff everywhere
        lambda x: 0.0 * x.sum() + 1.0,  # constant: zero gradient, d = -g is zero
        # Flat half with zero gradient; kinks crossed from η ≈ 4e-3 on (where the remainder
        # jumps out of roundoff, and a slope fitted past the kink would be ≈ 1).
        lambda x: jax.nn.relu(0.03 * x + 0.001).sum(),
        lambda x: jnp.where(jnp.arange(8) < 3, jnp.log1p(x**2), 0.0).sum(),  # masked entries
        lambda x: optax.huber_loss(x, delta=0.5).sum(),  # piecewise: quadratic, then linear
    ],
    ids=["quadratic", "linear", "constant", "relu", "masked", "huber"],
)
def test_gradient_consistent_no_false_failure(f):
    assert_gradient_consistent(f, jnp.asarray(X, "float32"))


def test_gradient_consistent_catches_a_wrong_derivative_of_a_piecewise_linear_function():
    @jax.custom_jvp
    def relu(x):
        return jnp.maximum(x, 0.0)

    relu.defjvp(lambda p, t: (relu(p[0]), 1.1 * (p[0] > 0) * t[0]))
    # The remainder is 0.1 η |gᵀd| exactly (slope 1), up to float32 roundoff of f.
    with pytest.raises(AssertionError, match=r"slope 1\.0\d "):
        assert_gradient_consistent(lambda x: relu(0.03 * x + 0.001).sum(), jnp.float32(X))


def test_gradient_consistent_bad_arguments():
    x = jnp.asarray(X, "float32")
    with pytest.raises(TypeError, match=r"assert_gradient_consistent: `f` must return a scalar"):
        assert_gradient_consistent(lambda x: x**2, x)
    with pytest.raises(ValueError, match=r"assert_gradient_consistent: `rtol` must be .* got 0.5"):
        assert_gradient_consistent(lambda x: x.sum(), x, rtol=0.5)
    with pytest.raises(ValueError, match=r"assert_gradient_consistent: `direction` leaf 0"):
        assert_gradient_consistent(lambda x: x.sum(), x, direction=jnp.ones(3))
    with pytest.raises(TypeError, match=r"assert_gradient_consistent: `params` must be a pytree"):
        assert_gradient_consistent(lambda x: x.sum(), jnp.arange(3))


# ------------------------------------------------------------------------ finite gradients


def naive_focal(x, y, gamma=0.5):
    """The torchvision way: (1 - p_t)**gamma has an infinite slope at p_t = 1 for gamma < 1."""
    p = jax.nn.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    return optax.sigmoid_binary_cross_entropy(x, y) * (1 - p_t) ** gamma


LOGITS = np.array([[1.5, -0.5, 0.2], [-2.0, 0.7, 3.0]], np.float32)
LABELS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], np.float32)


def test_finite_gradients_catches_the_naive_focal_loss():
    # jaxloss's focal loss passes at gamma = 0.5 (tests/test_losses_self_checks.py).
    with pytest.raises(AssertionError, match="finite but its gradient is not") as info:
        assert_finite_gradients(naive_focal, LOGITS, LABELS)
    table = str(info.value)
    # +1e4 on a label-1 entry and -1e4 on a label-0 entry: p_t = 1, loss 0, gradient 0 * inf.
    for dtype in ("float32", "float16", "bfloat16"):
        for fill in ("all +1e4", "all -1e4", "even entries +1e4, -1e4, ..."):
            assert re.search(rf"arg 0 {re.escape(fill)} +{dtype} ", table), (fill, dtype)
    # all +1e4: NaN at the four label-1 entries, the two label-0 entries cost 1e4 each;
    # all -1e4: NaN at the two label-0 entries, the four label-1 entries cost 1e4 each.
    assert re.search(r"arg 0 all \+1e4 +float32 +20000 +arg 0: 4 of 6", table), table
    assert re.search(r"arg 0 all -1e4 +float32 +40000 +arg 0: 2 of 6", table), table
    assert "  example " not in table and "all 0 " not in table  # finite there
    assert "9 of 15 inputs" in table


def test_finite_gradients_probabilities_and_two_arguments():
    def hellinger(p, q):  # sqrt: infinite slope at 0, a finite value
        return jnp.sum((jnp.sqrt(p) - jnp.sqrt(q)) ** 2)

    p, q = np.array([0.2, 0.5, 0.3], np.float32), np.array([0.1, 0.6, 0.3], np.float32)
    with pytest.raises(AssertionError) as info:
        assert_finite_gradients(hellinger, p, q, argnums=(0, 1))
    table = str(info.value)
    # Probabilities are set to 0 and 1 (never ±1e4); one argument varied at a time.
    assert re.search(r"arg 0 all 0 +float32 +\S+ +arg 0: 3 of 3\n", table), table
    assert re.search(r"arg 1 all 0 +float32 +\S+ +arg 1: 3 of 3\n", table), table
    assert re.search(r"arg 1 even entries 1, 0, 1, ... +float32 +\S+ +arg 1: 1 of 3\n", table)
    assert "1e4" not in table and "all 1 " not in table
    # A loss infinite where its gradient is (-log p at p = 0) is outside its domain: not reported.
    assert_finite_gradients(lambda p: -jnp.log(p).sum(), p)


def test_finite_gradients_bad_arguments():
    with pytest.raises(
        ValueError, match=r"assert_finite_gradients: `argnums` must be .* got \(2,\)"
    ):
        assert_finite_gradients(naive_focal, LOGITS, LABELS, argnums=2)
    with pytest.raises(TypeError, match=r"assert_finite_gradients: argument 1 .* got dtype int32"):
        assert_finite_gradients(lambda x, y: x.sum(), LOGITS, np.int32([1]), argnums=1)


# ---------------------------------------------------------------- per-sample decomposition

INIT, APPLY = jaxloss.mlp([3, 4, 2])
PARAMS = INIT(jax.random.key(0))
INPUTS = np.linspace(-1.0, 1.0, 18, dtype=np.float32).reshape(6, 3) ** 3
TARGETS = np.array([0, 1, 1, 0, 1, 0])
CE = jaxloss.softmax_cross_entropy_with_integer_labels


def test_per_sample_decomposable_objective():
    # The mean (the sum is detected in the tests below, whose objectives sum).
    f = jaxloss.objective(APPLY, CE)
    assert_per_sample_decomposable(f, PARAMS, INPUTS, TARGETS)


def test_per_sample_catches_batch_normalisation():
    f = jaxloss.objective(APPLY, CE, reduction="sum")

    def batch_normalised(params, x, y):  # divides by the batch's standard deviation
        return f(params, x / x.std(0, keepdims=True), y)

    with pytest.raises(AssertionError, match="normalises over the batch") as info:
        assert_per_sample_decomposable(batch_normalised, PARAMS, INPUTS, TARGETS)
    message = str(info.value)
    assert re.search(r"over the batch of N = 6 is \d", message), message  # finite
    # One sample: its std is 0, x / 0 is ±inf or NaN, so the single-sample sum is not finite.
    assert re.search(r"sum of the 6 single-sample objectives .* is (nan|inf)", message), message
    assert "a single sample alone gives a non-finite objective" in message
    assert "breaks minibatch SGD" in message and "and data parallelism" in message


def test_per_sample_catches_coupling_through_the_gradient_alone():
    f = jaxloss.objective(APPLY, CE, reduction="sum")

    def coupled(params, x, y):
        # + m - stop_gradient(m): value unchanged, gradient + ∇ of a batch mean.
        m = jnp.mean(jax.vmap(APPLY, (None, 0))(params, x) ** 2)
        return f(params, x, y) + m - jax.lax.stop_gradient(m)

    with pytest.raises(AssertionError, match=r"is the sum of its 6 .* gradient is not the sum"):
        assert_per_sample_decomposable(coupled, PARAMS, INPUTS, TARGETS)


@pytest.mark.x64
def test_per_sample_pytree_data_and_params_float64():
    def f(params, inputs, targets):
        pred = inputs["a"] @ params["w"] + params["scale"] * inputs["b"]
        return jnp.mean((pred - targets["y"]) ** 2) * params["count"]

    params = {"w": jnp.arange(3.0) / 3, "scale": jnp.float64(0.5), "count": jnp.int32(2)}
    inputs = {"a": jnp.asarray(INPUTS, jnp.float64), "b": jnp.arange(6.0)}
    targets = {"y": jnp.asarray(TARGETS, jnp.float64)}
    assert_per_sample_decomposable(f, params, inputs, targets)


def test_per_sample_bad_arguments():
    f = jaxloss.objective(APPLY, CE)
    with pytest.raises(ValueError, match=r"assert_per_sample_decomposable: `inputs` and `targets`"):
        assert_per_sample_decomposable(f, PARAMS, INPUTS, TARGETS[:5])
    with pytest.raises(TypeError, match=r"assert_per_sample_decomposable: `objective_fn` must"):
        assert_per_sample_decomposable(lambda *a: f(*a) * jnp.ones(2), PARAMS, INPUTS, TARGETS)
