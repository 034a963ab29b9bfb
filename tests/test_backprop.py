"""Tests for jaxloss.backprop: the chain rule written out equals jax.grad; gradient_cost."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import backprop


def identity(x):
    return x


ACTIVATIONS = {
    "tanh": jax.nn.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": identity,
    "softplus (jvp fallback)": jax.nn.softplus,
}


def _net(sizes, activation, seed=0):
    """`mlp` params drawn with NumPy (no jax.random compilations), non-zero biases; float64 in
    the tests marked x64, float32 otherwise."""
    _, apply_fn = jaxloss.mlp(sizes, activation=activation)
    rng = np.random.default_rng(seed)
    params = [
        {
            "w": jnp.asarray(rng.normal(size=(i, o)) / np.sqrt(i)),
            "b": jnp.asarray(0.1 * rng.normal(size=o)),
        }
        for i, o in zip(sizes[:-1], sizes[1:])
    ]
    return params, apply_fn


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


def _hand_and_autodiff(apply_fn, loss, activation=jax.nn.tanh, batched=True):
    """One jitted program: (hand-written backprop, jax.grad) of loss(model(params, x))."""
    model = _batched(apply_fn) if batched else apply_fn

    @jax.jit
    def both(params, x):
        out, cache = backprop.mlp_forward_with_cache(params, x, activation)
        hand = backprop.mlp_backward(params, cache, jax.grad(loss)(out), activation)
        return out, model(params, x), hand, jax.grad(lambda p: loss(model(p, x)))(params)

    return both


def _batched(apply_fn):
    return jax.vmap(apply_fn, (None, 0))


# One linear layer has no activation: one case; two and four layers with each activation.
CASES = [("tanh", [3, 2])] + [
    (name, sizes) for sizes in ([3, 5, 2], [3, 6, 5, 4, 2]) for name in ACTIVATIONS
]


@pytest.mark.x64  # float64 reference at 1e-12
@pytest.mark.parametrize("name, sizes", CASES, ids=[f"{n}-L{len(s) - 1}" for n, s in CASES])
def test_backward_equals_jax_grad_for_a_batch(name, sizes):
    activation = ACTIVATIONS[name]
    params, apply_fn = _net(sizes, activation)
    x = _normal(10, (7, sizes[0]))
    y = _normal(11, (7, sizes[-1]))

    def loss(out):
        return 0.5 * jnp.sum((out - y) ** 2)

    out, model_out, grads, expected = _hand_and_autodiff(apply_fn, loss, activation)(params, x)
    chex.assert_trees_all_close(out, model_out, rtol=1e-14, atol=1e-14)
    chex.assert_trees_all_equal_structs(grads, params)
    chex.assert_trees_all_close(grads, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.x64  # float64 reference at 1e-12
@pytest.mark.parametrize("name", ["tanh", "relu", "sigmoid"])
def test_backward_single_sample(name):
    activation = ACTIVATIONS[name]
    params, apply_fn = _net([4, 8, 8, 3], activation, seed=3)
    x = jnp.linspace(-1.0, 1.0, 4)
    g_out = jnp.array([0.3, -1.0, 2.0])
    both = _hand_and_autodiff(apply_fn, lambda o: jnp.dot(o, g_out), activation, batched=False)
    out, _, grads, expected = both(params, x)
    chex.assert_shape(out, (3,))
    chex.assert_trees_all_close(grads, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.x64  # float64 reference at 1e-12
@pytest.mark.parametrize(
    "loss_name", ["softmax cross entropy", "mean squared error", "sigmoid focal-free BCE"]
)
def test_any_loss_through_output_grad(loss_name):
    params, apply_fn = _net([2, 6, 3], jax.nn.tanh, seed=5)
    x = _normal(1, (5, 2))
    labels = jnp.array([0, 2, 1, 1, 0])
    soft = jax.nn.one_hot(labels, 3)
    losses = {
        "softmax cross entropy": lambda o: optax.softmax_cross_entropy_with_integer_labels(
            o, labels
        ).sum(),
        "mean squared error": lambda o: jnp.mean((o - soft) ** 2),
        "sigmoid focal-free BCE": lambda o: optax.sigmoid_binary_cross_entropy(o, soft).sum(),
    }
    _, _, grads, expected = _hand_and_autodiff(apply_fn, losses[loss_name])(params, x)
    chex.assert_trees_all_close(grads, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.x64  # float64 reference at 1e-12
def test_relu_kink_follows_jax_convention():
    # Zero input and zero biases put every hidden pre-activation exactly at the kink z = 0.
    params, apply_fn = _net([2, 4, 1], jax.nn.relu)
    params[0]["b"] = jnp.zeros(4)
    both = _hand_and_autodiff(apply_fn, lambda o: o[0], jax.nn.relu, batched=False)
    _, _, grads, expected = both(params, jnp.zeros(2))
    assert float(jnp.abs(grads[0]["b"]).max()) == 0.0  # relu'(0) = 0, as jax.nn.relu
    chex.assert_trees_all_close(grads, expected, atol=0)


@pytest.mark.x64  # float64 reference at 1e-12
def test_jit_vmap_and_float32():
    params, _ = _net([3, 4, 2], jax.nn.tanh)
    x = _normal(2, (6, 3))
    g_out = jnp.ones((6, 2))
    traces = []

    @jax.jit
    def grads_fn(params, x, g_out):
        traces.append(x.shape)
        _, cache = backprop.mlp_forward_with_cache(params, x)
        return backprop.mlp_backward(params, cache, g_out)

    batch = grads_fn(params, x, g_out)
    grads_fn(params, x + 1.0, g_out)
    assert len(traces) == 1  # new values, same shapes: no retrace
    # The batch gradient is the sum of the per-sample gradients (summed and cast in NumPy: op by
    # op each would compile).
    per_sample = jax.vmap(grads_fn, (None, 0, 0))(params, x, g_out)
    chex.assert_trees_all_close(
        batch, jax.tree.map(lambda g: np.asarray(g).sum(0), per_sample), rtol=1e-13
    )
    params32 = jax.tree.map(lambda p: np.asarray(p, np.float32), params)
    g32 = grads_fn(params32, np.asarray(x, np.float32), np.asarray(g_out, np.float32))
    chex.assert_trees_all_close(g32, batch, rtol=1e-5, atol=1e-6)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(g32))


def numpy_mlp_grads(params, x, g_out):
    """Reference in NumPy float64: ∂(Σ out·g_out)/∂params for one tanh hidden layer."""
    (w0, b0), (w1, _) = ((np.asarray(p["w"], float), np.asarray(p["b"], float)) for p in params)
    x, g_out = np.asarray(x, float), np.asarray(g_out, float)
    h = np.tanh(x @ w0 + b0)
    dh = g_out @ w1.T * (1 - h**2)
    return [{"w": x.T @ dh, "b": dh.sum(0)}, {"w": h.T @ g_out, "b": g_out.sum(0)}]


def test_float32_against_numpy_float64():
    params, apply_fn = _net([3, 5, 2], jax.nn.tanh, seed=4)  # float32: default mode
    x = _normal(6, (7, 3))
    g_out = _normal(7, (7, 2))
    assert x.dtype == jnp.float32

    @jax.jit  # one program: op by op every primitive compiles separately
    def forward_model_backward(params, x, g_out):
        out, cache = backprop.mlp_forward_with_cache(params, x)
        return out, _batched(apply_fn)(params, x), backprop.mlp_backward(params, cache, g_out)

    out, model_out, grads = forward_model_backward(params, x, g_out)
    np.testing.assert_allclose(out, model_out, rtol=1e-6)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    chex.assert_trees_all_close(grads, numpy_mlp_grads(params, x, g_out), rtol=1e-5, atol=1e-6)
    # gradient_cost in float32: every method against the same reference (Σ out·g_out).
    f = lambda p, x, g: jnp.sum(_batched(apply_fn)(p, x) * g)  # noqa: E731
    result = backprop.gradient_cost(f, params, x, g_out, repeats=np.int64(1))
    reference = numpy_mlp_grads(params, x, g_out)
    chex.assert_trees_all_close(result["gradients"]["reverse"], reference, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(result["gradients"]["forward"], reference, rtol=1e-5, atol=1e-5)
    # Central differences in float32, h = eps^(1/3) ≈ 5e-3: O(h²) + O(eps·|f|/h) ≈ 1e-3 here.
    chex.assert_trees_all_close(
        result["gradients"]["finite_difference"], reference, rtol=1e-2, atol=5e-3
    )


def test_static_errors():
    params, _ = _net([3, 4, 2], jax.nn.tanh)
    x = jnp.ones(3)
    with pytest.raises(ValueError, match=r"mlp_forward_with_cache: `params` must be jaxloss.mlp"):
        backprop.mlp_forward_with_cache({"w": jnp.ones((3, 2))}, x)
    with pytest.raises(ValueError, match=r"`params` layer 1 must have w \(in, out\)"):
        backprop.mlp_forward_with_cache([params[0], {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}], x)
    with pytest.raises(ValueError, match=r"`x` must have shape \(\.\.\., 3\)"):
        backprop.mlp_forward_with_cache(params, jnp.ones(4))
    _, cache = backprop.mlp_forward_with_cache(params, x)
    with pytest.raises(ValueError, match=r"mlp_backward: `output_grad` must have the output's"):
        backprop.mlp_backward(params, cache, jnp.ones(3))
    with pytest.raises(ValueError, match=r"mlp_backward: `cache` must come from"):
        backprop.mlp_backward(_net([3, 4, 4, 2], jax.nn.tanh)[0], cache, jnp.ones(2))


# ---------------------------------------------------------------------------- gradient_cost


def _objective(apply_fn):
    def f(params, inputs, targets):
        return jnp.mean((_batched(apply_fn)(params, inputs) - targets) ** 2)

    return f


@pytest.mark.x64  # float64 reference at 1e-12
def test_gradient_cost_gradients_and_structure():
    params, apply_fn = _net([2, 5, 1], jax.nn.tanh, seed=7)
    x = _normal(3, (8, 2))
    y = _normal(4, (8, 1))
    f = _objective(apply_fn)
    result = backprop.gradient_cost(f, params, x, y, repeats=1)
    assert set(result) == {
        "num_params",
        "value",
        "seconds",
        "first_call_seconds",
        "gradients",
        "max_abs_diff",
    }
    assert result["num_params"] == 2 * 5 + 5 + 5 * 1 + 1
    # The references in one jitted program (op by op every primitive compiles separately).
    value, expected = jax.jit(jax.value_and_grad(f))(params, x, y)
    np.testing.assert_allclose(result["value"], value, rtol=1e-14)
    methods = {"reverse", "forward", "finite_difference"}
    assert set(result["seconds"]) == set(result["first_call_seconds"]) == methods | {"objective"}
    assert all(t > 0 for t in result["seconds"].values())
    assert set(result["gradients"]) == methods
    assert set(result["max_abs_diff"]) == {"forward", "finite_difference"}
    chex.assert_trees_all_close(result["gradients"]["reverse"], expected, rtol=1e-14)
    chex.assert_trees_all_close(result["gradients"]["forward"], expected, rtol=1e-12, atol=1e-14)
    # Central differences in float64 with h = eps^(1/3): error O(h²) ≈ 1e-10 here.
    chex.assert_trees_all_close(
        result["gradients"]["finite_difference"], expected, rtol=1e-6, atol=1e-8
    )
    assert result["max_abs_diff"]["forward"] < 1e-12
    assert result["max_abs_diff"]["finite_difference"] < 1e-7


def test_gradient_cost_method_subset_and_errors():
    params, apply_fn = _net([2, 3, 1], jax.nn.tanh)
    x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
    f = _objective(apply_fn)
    result = backprop.gradient_cost(f, params, x, y, methods=(), repeats=1)
    assert set(result["gradients"]) == {"reverse"} and result["max_abs_diff"] == {}
    with pytest.raises(ValueError, match=r"gradient_cost: `methods` must contain only"):
        backprop.gradient_cost(f, params, x, y, methods=("backward",))
    with pytest.raises(ValueError, match=r"gradient_cost: `repeats` must lie in \[1, inf\]"):
        backprop.gradient_cost(f, params, x, y, repeats=0)
    for repeats in (2.0, True):  # one rule: wrong type -> TypeError
        with pytest.raises(TypeError, match=r"gradient_cost: `repeats` must be an integer"):
            backprop.gradient_cost(f, params, x, y, repeats=repeats)
    per_sample = lambda p, x, y: (_batched(apply_fn)(p, x) - y) ** 2  # noqa: E731
    with pytest.raises(ValueError, match=r"gradient_cost: `objective_fn` must return a scalar"):
        backprop.gradient_cost(per_sample, params, x, y)
    with pytest.raises(ValueError, match=r"gradient_cost: `step` must be > 0"):
        backprop.gradient_cost(f, params, x, y, step=0.0)
    int_params = jax.tree.map(lambda p: p.astype(jnp.int32), params)
    with pytest.raises(TypeError, match=r"gradient_cost: `params` must be a non-empty pytree of"):
        backprop.gradient_cost(f, int_params, x, y)
