"""Regression losses against NumPy float64 references and optax where the maths is identical.

Tests marked x64 compare float64 results at float64 tolerance; the float32 tests (JAX's default,
what users run) compare float32 values and gradients with the same float64 NumPy references.
"""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss

RNG = np.random.default_rng(0)
P64 = RNG.normal(size=(4, 3))
T64 = RNG.normal(size=(4, 3))
MASK = RNG.random((4, 3)) > 0.4


# NumPy references, written from the definitions.
def np_huber(p, t, delta):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta))


ELEMENTWISE = {
    "squared_error": lambda p, t: (p - t) ** 2,
    "absolute_error": lambda p, t: np.abs(p - t),
    "huber_loss": lambda p, t: np_huber(p, t, 1.0),
}
REDUCED = {
    "mse": lambda p, t, m: ((p - t) ** 2)[m].mean(),
    "mae": lambda p, t, m: np.abs(p - t)[m].mean(),
    "rmse": lambda p, t, m: np.sqrt(((p - t) ** 2)[m].mean()),
}


@pytest.mark.x64
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_matches_numpy(name, jit):
    fn = getattr(jaxloss, name)
    fn = jax.jit(fn) if jit else fn
    got = fn(P64, T64)
    chex.assert_shape(got, P64.shape)
    np.testing.assert_allclose(got, ELEMENTWISE[name](P64, T64), rtol=1e-12)
    # float32 in, float32 out, close to the float64 truth.
    got32 = fn(P64.astype(np.float32), T64.astype(np.float32))
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, ELEMENTWISE[name](P64, T64), rtol=1e-5, atol=1e-6)


@pytest.mark.x64
@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", sorted(REDUCED))
def test_reduced_matches_numpy(name, jit):
    fn = getattr(jaxloss, name)
    call = jax.jit(fn) if jit else fn
    everything = np.ones_like(MASK)
    chex.assert_shape(call(P64, T64), ())
    np.testing.assert_allclose(call(P64, T64), REDUCED[name](P64, T64, everything), rtol=1e-12)
    np.testing.assert_allclose(
        call(P64, T64, where=MASK), REDUCED[name](P64, T64, MASK), rtol=1e-12
    )


@pytest.mark.x64
def test_matches_optax():
    deltas = (0.3, 1.0, 2.5)

    @jax.jit  # one program for every comparison (op by op each call compiles its primitives)
    def both(p, t):
        ours = [jaxloss.squared_error(p, t)] + [jaxloss.huber_loss(p, t, delta=d) for d in deltas]
        theirs = [optax.squared_error(p, t)] + [optax.huber_loss(p, t, delta=d) for d in deltas]
        return ours, theirs

    ours, theirs = both(P64, T64)
    chex.assert_trees_all_close(ours[0], theirs[0], rtol=1e-12)
    for delta, huber, optax_huber in zip(deltas, ours[1:], theirs[1:]):
        chex.assert_trees_all_close(huber, optax_huber, rtol=1e-12)
        np.testing.assert_allclose(huber, np_huber(P64, T64, delta), rtol=1e-12)


@pytest.mark.x64
@pytest.mark.parametrize("name", ["mse", "mae", "rmse"])
def test_vmap_gives_per_sample_values(name):
    fn = getattr(jaxloss, name)
    per_sample = jax.jit(jax.vmap(fn))(P64, T64)
    chex.assert_shape(per_sample, (4,))
    ones = np.ones(3, bool)
    expected = [REDUCED[name](p, t, ones) for p, t in zip(P64, T64)]
    np.testing.assert_allclose(per_sample, expected, rtol=1e-12)


@pytest.mark.x64
@pytest.mark.parametrize("name", ["squared_error", "absolute_error", "huber_loss"])
def test_gradients_elementwise(name):
    fn = getattr(jaxloss, name)
    # Keep |p - t| away from the kinks of abs and Huber, where finite differences disagree.
    p = P64 + 0.05 * np.sign(P64 - T64)
    # jitted: the finite differences then reuse one compilation
    check_grads(jax.jit(lambda a, b: fn(a, b).sum()), (p, T64), order=2, modes=["rev"])


@pytest.mark.x64
@pytest.mark.parametrize("name", ["mse", "mae", "rmse"])
def test_gradients_reduced(name):
    fn = getattr(jaxloss, name)
    check_grads(
        jax.jit(lambda a, b: fn(a, b, where=MASK)), (P64, T64), order=1, modes=["fwd", "rev"]
    )


# Gradients of the summed elementwise losses and of the reduced ones w.r.t. the predictions,
# derived by hand from the definitions (e = p - t, m the mask, n = Σm).
def _np_grad(name, p, t, m):
    e = (p - t) * m
    n = m.sum()
    return {
        "squared_error": 2 * e,
        "absolute_error": np.sign(e),
        "huber_loss": np.clip(e, -1.0, 1.0),
        "mse": 2 * e / n,
        "mae": np.sign(e) / n,
        "rmse": e / (n * np.sqrt((e**2).sum() / n)),
    }[name]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE) + sorted(REDUCED))
def test_float32_value_and_gradient_against_float64_numpy(name, jit):
    fn = getattr(jaxloss, name)
    p32, t32 = P64.astype(np.float32), T64.astype(np.float32)
    # The float64 references see exactly the float32 inputs.
    p, t = p32.astype(np.float64), t32.astype(np.float64)
    everything = np.ones(p.shape, bool)
    if name in ELEMENTWISE:
        summed = jax.value_and_grad(lambda a, b: fn(a, b).sum())
        value, grad = (jax.jit(summed) if jit else summed)(p32, t32)
        call = jax.jit(fn) if jit else fn
        got = call(p32, t32)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, ELEMENTWISE[name](p, t), rtol=1e-6, atol=1e-7)
    else:
        call = jax.jit(jax.value_and_grad(fn)) if jit else jax.value_and_grad(fn)
        value, grad = call(p32, t32)
        np.testing.assert_allclose(value, REDUCED[name](p, t, everything), rtol=1e-6)
        masked_value, masked_grad = call(p32, t32, where=MASK)
        np.testing.assert_allclose(masked_value, REDUCED[name](p, t, MASK), rtol=1e-6)
        np.testing.assert_allclose(masked_grad, _np_grad(name, p, t, MASK), rtol=1e-5, atol=1e-7)
    assert value.dtype == grad.dtype == jnp.float32
    np.testing.assert_allclose(grad, _np_grad(name, p, t, everything), rtol=1e-5, atol=1e-7)


def test_rmse_gradient_at_zero_error_is_zero():
    # d/dp sqrt(mean((p-t)^2)) is 0/0 at p == t; torch.sqrt(F.mse_loss) gives NaN there.
    x = np.arange(6.0).reshape(2, 3)
    value, grad = jax.jit(jax.value_and_grad(jaxloss.rmse))(x, x)
    chex.assert_trees_all_equal(grad, np.zeros_like(x))
    assert float(value) == 0.0


@pytest.mark.parametrize("name", ["mse", "mae", "rmse"])
def test_all_masked_is_zero_with_zero_gradient(name):
    fn = getattr(jaxloss, name)
    nothing = np.zeros((4, 3), bool)
    # An inf in a masked-out position must not leak into the value or the gradient.
    p = P64.copy()
    p[0, 0] = np.inf
    partly = MASK & ~np.eye(4, 3, dtype=bool)
    partly[0, 0] = False
    # one program for both masks (op by op every call compiles its primitives)
    value_and_grad = jax.value_and_grad(fn)
    (value, nothing_grad), (_, grad) = jax.jit(
        lambda p, t: (value_and_grad(p, t, where=nothing), value_and_grad(p, t, where=partly))
    )(p, T64)
    assert float(value) == 0.0
    chex.assert_trees_all_equal(nothing_grad, np.zeros_like(p))
    chex.assert_tree_all_finite(grad)
    assert grad[0, 0] == 0.0


@pytest.mark.x64
def test_huber_is_continuous_at_delta():
    # Both pieces agree at |e| = delta: value delta^2 / 2 and slope delta (derived by hand).
    delta = 0.7
    e = np.array([delta - 1e-9, delta, delta + 1e-9])
    vals, slopes = jax.jit(
        lambda e: (
            jaxloss.huber_loss(e, jnp.zeros(3), delta=delta),
            jax.vmap(jax.grad(lambda p: jaxloss.huber_loss(p, 0.0, delta=delta)))(e),
        )
    )(e)
    np.testing.assert_allclose(vals, 0.5 * delta**2, atol=1e-8)
    np.testing.assert_allclose(slopes, delta, atol=1e-8)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("name", ["squared_error", "mse", "rmse", "mae", "huber_loss"])
def test_half_precision_computed_in_float32(name, dtype):
    fn = getattr(jaxloss, name)
    p, t = jnp.asarray(P64, dtype), jnp.asarray(T64, dtype)
    got, reference = jax.jit(
        lambda p, t: (fn(p, t), fn(p.astype(jnp.float32), t.astype(jnp.float32)))
    )(p, t)
    assert got.dtype == jnp.float32
    chex.assert_trees_all_equal(got, reference)


def test_integer_targets_keep_prediction_dtype():
    p = jnp.asarray(P64, jnp.float32)
    assert jaxloss.mse(p, np.zeros((4, 3), np.int32)).dtype == jnp.float32


@jax.jit
def _all_gradients(p, t):
    """The gradients the property test checks, in one program: one compilation per shape."""
    grads = [jax.grad(fn)(p, t) for fn in (jaxloss.mse, jaxloss.mae, jaxloss.rmse)]
    return grads + [jax.grad(lambda a: jaxloss.huber_loss(a, t).sum())(p)]


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    # A few shapes only: every new shape recompiles, and the magnitudes are what matter here.
    shape=st.sampled_from([(), (3,), (2, 3)]),
    log_scale=st.floats(-6, 6),
    seed=st.integers(0, 2**16),
)
def test_property_finite_gradients(shape, log_scale, seed):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=shape) * 10**log_scale
    t = rng.normal(size=shape) * 10**log_scale
    for grad in _all_gradients(p, t):
        chex.assert_tree_all_finite(grad)


def test_no_retrace_for_new_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(p, t):
        return jaxloss.rmse(p, t)

    for seed in range(3):
        rng = np.random.default_rng(seed)
        loss(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)))


# --------------------------------------------------------------------------- static errors


@pytest.mark.parametrize("name", ["squared_error", "absolute_error", "mse", "mae", "rmse"])
def test_shape_mismatch_raises(name):
    with pytest.raises(ValueError, match=rf"jaxloss.{name}: `targets` must have the same shape"):
        getattr(jaxloss, name)(np.zeros(3), np.zeros((3, 1)))


def test_integer_predictions_raise():
    with pytest.raises(TypeError, match=r"jaxloss.mse: `predictions` must be a floating-point"):
        jaxloss.mse(np.arange(3), np.zeros(3))


@pytest.mark.parametrize("delta", [0.0, -1.0])
def test_bad_delta_raises(delta):
    with pytest.raises(ValueError, match=r"jaxloss.huber_loss: `delta` must lie in \(0, inf\]"):
        jaxloss.huber_loss(np.zeros(3), np.zeros(3), delta=delta)


def test_bad_mask_raises():
    with pytest.raises(ValueError, match=r"jaxloss.mse: `where` must have shape \(3,\)"):
        jaxloss.mse(np.zeros(3), np.zeros(3), where=np.ones(2, bool))
    with pytest.raises(TypeError, match=r"jaxloss.mse: `where` must be a boolean mask"):
        jaxloss.mse(np.zeros(3), np.zeros(3), where=np.ones(3))


# ------------------------------------------------------------------------- checked mode


def test_checked_names_nan_input():
    p = np.array([1.0, np.nan])
    assert np.isnan(jaxloss.mse(p, np.zeros(2)))
    with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss.mse: `predictions` contains NaN"):
        jaxloss.checked(jaxloss.mse)(p, np.zeros(2))
    with pytest.raises(checkify.JaxRuntimeError, match=r"`targets` contains NaN"):
        jaxloss.checked(jaxloss.huber_loss)(np.zeros(2), p, delta=2.0)


@pytest.mark.x64
def test_checked_passes_good_input_through():
    got = jaxloss.checked(jaxloss.mse)(P64, T64, where=MASK)
    np.testing.assert_allclose(got, REDUCED["mse"](P64, T64, MASK), rtol=1e-12)
    # Under vmap, inside the checked function.
    per_sample = jaxloss.checked(jax.vmap(jaxloss.rmse))(P64, T64)
    chex.assert_shape(per_sample, (4,))


def test_absolute_error_gradient_zero_at_zero_error():
    # torch 2.13.0: torch.autograd.grad(F.l1_loss(x, x), x) is 0 (sign(0) = 0); jnp.abs gives 1.
    x = np.array([0.0, 1.0, -2.0])
    grad, mae_grad = jax.jit(
        lambda x: (
            jax.grad(lambda p: jaxloss.absolute_error(p, x).sum())(x),
            jax.grad(jaxloss.mae)(x + jnp.array([0.0, 0.5, -0.5]), x),
        )
    )(x)
    chex.assert_trees_all_equal(grad, np.zeros(3))
    np.testing.assert_allclose(mae_grad, np.array([0.0, 1.0, -1.0]) / 3)


def test_checked_sees_through_an_already_compiled_jit():
    # jit caches the unchecked trace; checked must check the wrapped function itself.
    jitted = jax.jit(jaxloss.mse)
    p = np.array([1.0, np.nan])
    assert np.isnan(jitted(p, np.zeros(2)))
    with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss.mse: `predictions` contains NaN"):
        jaxloss.checked(jitted)(p, np.zeros(2))
    # ... and the plain jitted function still runs unchecked afterwards.
    assert np.isnan(jitted(p, np.zeros(2)))


# ------------------------------------------------------------------ bad and edge inputs (issue 7)


@pytest.mark.parametrize("bad", ["predictions", "targets"])
def test_rmse_of_nan_is_nan_and_checked_raises(bad):
    # Before: the `mean_square > 0` branch turned a NaN mean square into 0.0.
    with_nan, zeros = np.array([1.0, np.nan]), np.zeros(2)
    args = (with_nan, zeros) if bad == "predictions" else (zeros, with_nan)
    assert np.isnan(jaxloss.rmse(*args))
    assert np.isnan(jax.jit(jaxloss.rmse)(*args))
    with pytest.raises(checkify.JaxRuntimeError, match=rf"jaxloss.rmse: `{bad}` contains NaN"):
        jaxloss.checked(jaxloss.rmse)(*args)
    # A NaN that the mask leaves out is never read: √((1 − 0)² / 1) = 1.
    assert float(jaxloss.rmse(*args, where=np.array([True, False]))) == 1.0


@pytest.mark.parametrize("name", sorted(ELEMENTWISE) + sorted(REDUCED))
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_empty_arrays_raise(name, shape):
    # Before: mse/mae gave NaN, rmse 0.0, the elementwise losses an empty array.
    with pytest.raises(ValueError, match=rf"^jaxloss.{name}: `predictions` must not be empty"):
        getattr(jaxloss, name)(np.zeros(shape, np.float32), np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE) + sorted(REDUCED))
def test_complex_inputs_raise(name):
    fn = getattr(jaxloss, name)
    with pytest.raises(TypeError, match=rf"^jaxloss.{name}: `targets` must be real"):
        fn(np.zeros(2, np.float32), np.array([1 + 2j, 0]))
    with pytest.raises(TypeError, match=rf"^jaxloss.{name}: `predictions` must be real"):
        fn(np.array([1 + 2j, 0]), np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=rf"^jaxloss.{name}: `targets` must be a real number"):
        fn(np.zeros(2, np.float32), "ab")


def test_huber_traced_bad_delta_is_nan_and_checked_raises():
    p, t = jnp.array([0.5, 3.0]), jnp.zeros(2)
    jitted = jax.jit(jaxloss.huber_loss)
    for delta in (-1.0, 0.0, np.nan):
        # Before: delta = -1 gave [-1.0, -3.5] (negative losses) and checked did not raise.
        assert np.all(np.isnan(jitted(p, t, delta=delta)))
    for delta in (-1.0, np.nan):  # checked compiles afresh each call
        with pytest.raises(
            checkify.JaxRuntimeError, match=r"jaxloss.huber_loss: `delta` must lie in \(0, inf\]"
        ):
            jaxloss.checked(jitted)(p, t, delta=delta)
    # vmapped over delta: only the bad entry is NaN.
    rows = jax.jit(jax.vmap(lambda d: jaxloss.huber_loss(p, t, delta=d)))(jnp.array([1.0, -1.0]))
    np.testing.assert_allclose(rows[0], np_huber(np.array([0.5, 3.0]), 0.0, 1.0), rtol=1e-6)
    assert np.all(np.isnan(rows[1]))


def test_huber_infinite_delta_is_half_squared_error():
    # The limit δ → inf of Huber is ½e² everywhere (torch.nn.functional.huber_loss with
    # delta=inf gives it too); before, inf · 0 made it NaN.
    e = np.array([-1e3, -0.5, 0.0, 3.0], np.float32)
    # jitted: op by op the gradient compiles slowly
    elementwise, (value, grad) = jax.jit(
        lambda e: (
            jaxloss.huber_loss(e, jnp.zeros(4), delta=np.inf),
            jax.value_and_grad(lambda a: jaxloss.huber_loss(a, jnp.zeros(4), delta=np.inf).sum())(
                e
            ),
        )
    )(e)
    np.testing.assert_allclose(elementwise, 0.5 * e**2)
    np.testing.assert_allclose(value, 0.5 * (e.astype(np.float64) ** 2).sum(), rtol=1e-6)
    np.testing.assert_allclose(grad, e, rtol=1e-6)  # d(½e²)/de = e


@pytest.mark.parametrize(
    "delta, error, match",
    [
        (np.nan, ValueError, r"`delta` must lie in \(0, inf\]; got nan"),
        (np.ones(2), ValueError, r"`delta` must be a scalar; got shape \(2,\)"),
        (True, TypeError, r"`delta` must be a real number; got dtype bool"),
        ("1", TypeError, r"`delta` must be a real number or array; got '1'"),
        (1 + 1j, TypeError, r"`delta` must be real"),
    ],
)
def test_huber_bad_delta_types(delta, error, match):
    with pytest.raises(error, match=rf"^jaxloss.huber_loss: {match}"):
        jaxloss.huber_loss(np.zeros(2, np.float32), np.zeros(2, np.float32), delta=delta)


def test_huber_delta_gradient():
    # d/dδ of δ(|e| − ½δ) is |e| − δ in the linear part; 0 in the quadratic part (hand-derived).
    e = np.array([0.5, -3.0], np.float32)
    grad = jax.jit(jax.grad(lambda d: jaxloss.huber_loss(e, np.zeros(2), delta=d).sum()))(1.0)
    np.testing.assert_allclose(grad, 0.0 + (3.0 - 1.0), rtol=1e-6)


def test_where_as_a_list_and_bad_where():
    # Before: a Python list mask failed inside jnp.sum with a raw JAX TypeError.
    p, t = np.array([1.0, 3.0], np.float32), np.zeros(2, np.float32)
    # one program for the three losses; the list mask is closed over, so it stays a Python list
    got = jax.jit(
        lambda p, t: {name: getattr(jaxloss, name)(p, t, where=[True, False]) for name in REDUCED}
    )(p, t)
    for name in REDUCED:
        np.testing.assert_allclose(
            got[name], REDUCED[name](p, t, np.array([True, False])), rtol=1e-6
        )
    with pytest.raises(TypeError, match=r"^jaxloss.mae: `where` must be a real number or array"):
        jaxloss.mae(p, t, where="ab")


# one compilation shared by the four magnitudes (op by op each compiled its primitives)
_rmse_value_and_grad = jax.jit(jax.value_and_grad(jaxloss.rmse))


@pytest.mark.parametrize("magnitude", [1e-30, 1e-20, 1e20, 1e30, 6e37])
def test_rmse_tiny_and_huge_errors_in_float32(magnitude):
    # e² leaves float32's range (under 1e-38 or over 3e38) although the rmse does not: before,
    # 1e-30 errors gave rmse 0 with gradient 0, 1e20 errors gave inf; and errors near float32's
    # max (6e37 × 4 = 2.4e38) gave 0, XLA dividing by the max |e| through its flushed reciprocal.
    e64 = magnitude * np.array([3.0, -4.0, 0.0])
    e32 = e64.astype(np.float32)
    value, grad = _rmse_value_and_grad(e32, np.zeros(3, np.float32))
    ref = np.sqrt(np.mean(e32.astype(np.float64) ** 2))  # float64 holds e² here
    np.testing.assert_allclose(value, ref, rtol=1e-6)
    np.testing.assert_allclose(grad, e32 / (3 * ref), rtol=1e-6)  # d rmse / de = e / (n rmse)
    if magnitude > 1e37:  # op by op, the division compiles alone: that is where it flushed
        eager = jaxloss.rmse(jnp.asarray(e32), jnp.zeros(3))
        np.testing.assert_allclose(eager, ref, rtol=1e-6)
