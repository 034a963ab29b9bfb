"""The tiny functional models against a NumPy forward pass, and their argument checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss


def test_mlp_apply_works_on_a_batch_and_a_sample():
    init_fn, apply_fn = jaxloss.mlp([3, 5, 2])
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)

    @jax.jit  # one program: op by op every primitive compiles separately
    def run(key):
        params = init_fn(key)
        return (
            params,
            apply_fn(params, x),
            jax.vmap(apply_fn, (None, 0))(params, x),
            apply_fn(params, x[0]),
        )

    params, batch, mapped, sample = run(jax.random.key(0))
    chex.assert_trees_all_close(batch, mapped)
    w0, b0, w1, b1 = (np.asarray(params[i][k], np.float64) for i in (0, 1) for k in ("w", "b"))
    # float32 model against the float64 NumPy forward pass, at float32 tolerance.
    np.testing.assert_allclose(sample, np.tanh(x[0] @ w0 + b0) @ w1 + b1, rtol=1e-5)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


def test_mlp_gradient_against_numpy_float64():
    # d/dparams of Σ apply_fn(params, x)·v for one tanh hidden layer, the chain rule in NumPy.
    init_fn, apply_fn = jaxloss.mlp([3, 4, 2])
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    v = np.array([0.5, -2.0], np.float32)

    @jax.jit  # one program: op by op every primitive compiles separately
    def run():
        params = init_fn(0)  # an int seed is a key (a concrete 0, closed over)
        return params, jax.grad(lambda p: jnp.sum(apply_fn(p, x) @ v))(params)

    params, grads = run()
    w0, b0, w1, _ = (np.asarray(params[i][k], np.float64) for i in (0, 1) for k in ("w", "b"))
    h = np.tanh(x @ w0 + b0)
    delta = np.broadcast_to(v, (5, 2))
    dh = delta @ w1.T * (1 - h**2)
    expected = [{"w": x.T @ dh, "b": dh.sum(0)}, {"w": h.T @ delta, "b": delta.sum(0)}]
    chex.assert_trees_all_close(grads, expected, rtol=1e-5, atol=1e-6)


def test_linear_is_an_affine_map():
    init_fn, apply_fn = jaxloss.linear(np.int64(3), 2)
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    # One jitted program: op by op every primitive compiles separately.
    params, out = jax.jit(lambda k: (p := init_fn(k), apply_fn(p, x)))(jax.random.key(1))
    w, b = (np.asarray(params[0][k], np.float64) for k in ("w", "b"))
    np.testing.assert_allclose(out, x @ w + b, rtol=1e-6)


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"jaxloss.mlp: `sizes` must list at least"):
        jaxloss.mlp([3])
    with pytest.raises(ValueError, match=r"jaxloss.mlp: `sizes\[1\]` must lie in \[1, inf\]"):
        jaxloss.mlp([3, 0])
    # Floats used to be truncated (2.7 -> 2), strings failed in int(); bools are not sizes.
    for sizes, bad in (
        ([2.7, 3], "sizes\\[0\\]"),
        (["a", 3], "sizes\\[0\\]"),
        ([2, True], "sizes\\[1\\]"),
    ):
        with pytest.raises(TypeError, match=rf"jaxloss.mlp: `{bad}` must be an integer"):
            jaxloss.mlp(sizes)
    with pytest.raises(TypeError, match=r"jaxloss.mlp: `sizes` must be a sequence of integers"):
        jaxloss.mlp(3)
    with pytest.raises(TypeError, match=r"jaxloss.linear: `in_dim` must be an integer"):
        jaxloss.linear(2.0, 3)
    assert jaxloss.mlp(np.array([2, 3]))[0](0)[0]["w"].shape == (2, 3)  # NumPy ints are sizes


def test_models_reject_integer_dtypes_and_bad_keys():
    with pytest.raises(TypeError, match=r"jaxloss.linear: `dtype` must be a floating dtype"):
        jaxloss.linear(2, 3, dtype=jnp.int32)
    with pytest.raises(TypeError, match=r"jaxloss.mlp: `dtype` must be a floating dtype"):
        jaxloss.mlp([2, 3], dtype=int)
    init_fn, _ = jaxloss.mlp([2, 3])
    with pytest.raises(TypeError, match=r"jaxloss.mlp: `key` must be a jax.random key or an int"):
        init_fn(0.5)


def test_apply_fn_checks_the_input_width():
    init_fn, apply_fn = jaxloss.mlp([2, 4, 3])
    params = jax.jit(lambda: init_fn(0))()  # jitted: op by op init compiles every primitive
    for x in (jnp.ones(3), jnp.ones((5, 3)), jnp.float32(1.0)):
        with pytest.raises(ValueError, match=r"jaxloss.mlp: apply_fn's `x` must have shape"):
            apply_fn(params, x)
    _, linear_apply = jaxloss.linear(2, 1)
    with pytest.raises(
        ValueError, match=r"jaxloss.linear: apply_fn's `x` must have shape \(\.\.\., 2\)"
    ):
        jax.jit(linear_apply)(jaxloss.linear(2, 1)[0](0), jnp.ones((4, 3)))
