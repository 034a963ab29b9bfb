"""Tests for jaxloss.likelihood: the losses as negative log-likelihoods, stated as identities."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from test_classification import np_grad  # central differences of a NumPy reference

import jaxloss
from jaxloss import likelihood

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# torch 2.13.0 (CPU, float64): torch.nn.functional.gaussian_nll_loss(MEAN, TARGET, STD**2,
# full=True, eps=1e-6, reduction='none'), and the gradients of its sum w.r.t. input and var.
MEAN = np.array([0.0, 1.5, -2.0, 3.0, 0.25, -1.0])
TARGET = np.array([0.5, -0.5, -2.0, 10.0, 0.0, 4.0])
STD = np.array([1.0, 0.5, 2.0, 3.0, 0.01, 1e-3])
TORCH_GAUSSIAN_NLL = np.array(
    [
        1.0439385332046727,
        8.225791352644727,
        1.612085713764618,
        4.7397730440950046,
        308.8137683472166,
        12499994.011183254,
    ]
)
TORCH_GRAD_INPUT = np.array([-0.5, 8.0, 0.0, -0.7777777777777777, 2500.0, -5000000.0])
TORCH_GRAD_VAR = np.array([0.375, -30.0, 0.125, -0.2469135802469136, -3120000.0, -12499999500000.0])
# torch 2.13.0: gaussian_nll_loss(tensor([0.]), tensor([1e-3]), tensor([1e-8]), full=True,
# reduction='none') -- var 1e-8 is clamped to eps = 1e-6 there.
TORCH_CLAMPED = -5.488816745777465


def _normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape))


# ------------------------------------------------------------------------------ gaussian_nll


@pytest.mark.x64
def test_gaussian_nll_matches_torch_full():
    f = jax.jit(lambda m, y, s: likelihood.gaussian_nll(m, y, std=s))
    np.testing.assert_allclose(f(MEAN, TARGET, STD), TORCH_GAUSSIAN_NLL, rtol=1e-14)
    g_mean, g_std = jax.grad(lambda m, s: f(m, TARGET, s).sum(), argnums=(0, 1))(MEAN, STD)
    # torch differentiates w.r.t. var = σ²: ∂/∂σ = ∂/∂var · 2σ.
    np.testing.assert_allclose(g_mean, TORCH_GRAD_INPUT, rtol=1e-12)
    np.testing.assert_allclose(g_std, TORCH_GRAD_VAR * 2 * STD, rtol=1e-12)


@pytest.mark.x64
def test_gaussian_nll_does_not_clamp_the_variance_like_torch():
    # Un-jitted here (the other gaussian tests run jitted).
    ours = likelihood.gaussian_nll(jnp.array([0.0]), jnp.array([1e-3]), std=1e-4)
    exact = math.log(1e-4) + 0.5 * (1e-3 / 1e-4) ** 2 + HALF_LOG_2PI  # the exact N(0, 1e-8) NLL
    np.testing.assert_allclose(ours, [exact], rtol=1e-14)
    assert abs(float(ours[0]) - TORCH_CLAMPED) > 40


def test_gaussian_nll_unit_std_is_half_squared_error():
    mean, targets = _normal(0, (4, 3)), _normal(1, (4, 3))

    @jax.jit
    def sides(m):
        # Same gradient as ½ MSE (times the element count: a sum against a mean).
        g_nll = jax.grad(lambda m: likelihood.gaussian_nll(m, targets).sum())(m)
        g_mse = jax.grad(lambda m: 0.5 * m.size * jaxloss.mse(m, targets))(m)
        return (
            likelihood.gaussian_nll(m, targets),
            likelihood.gaussian_nll(m, targets, std=1.0),
            0.5 * jaxloss.squared_error(m, targets) + HALF_LOG_2PI,
            g_nll,
            g_mse,
        )

    nll, nll_std1, half_se, g_nll, g_mse = sides(mean)
    np.testing.assert_allclose(nll, half_se, rtol=1e-14)
    np.testing.assert_allclose(nll, nll_std1, rtol=0)
    np.testing.assert_allclose(g_nll, g_mse, rtol=1e-14)


@pytest.mark.x64
def test_gaussian_log_std_equals_std_and_gives_the_mle():
    mean, targets = _normal(2, (50,)), _normal(3, (50,), 2.0)
    log_std = _normal(4, (50,), 0.5)
    f = jax.jit(lambda m, y, ls: likelihood.gaussian_nll(m, y, log_std=ls))
    # both parametrisations in one program (one compilation)
    from_log_std, from_std = jax.jit(
        lambda m, y, ls: (
            likelihood.gaussian_nll(m, y, log_std=ls),
            likelihood.gaussian_nll(m, y, std=jnp.exp(ls)),
        )
    )(mean, targets, log_std)
    np.testing.assert_allclose(from_log_std, from_std, rtol=1e-13)
    # A learnable scalar log σ: Σ NLL is stationary at σ² = mean squared residual (the MLE), and
    # its second derivative there is Σ 2 r² e^{−2 log σ} = 2N.
    mle = 0.5 * np.log(np.mean((np.asarray(mean) - np.asarray(targets)) ** 2))

    def total(ls):
        return f(mean, targets, ls).sum()

    # gradient and Hessian in one program (apart, each compiled its own derivative programs)
    grad, hessian = jax.jit(lambda ls: (jax.grad(total)(ls), jax.hessian(total)(ls)))(mle)
    np.testing.assert_allclose(grad, 0.0, atol=1e-12)
    np.testing.assert_allclose(hessian, 2 * 50, rtol=1e-12)
    check_grads(lambda m, ls: f(m, targets[:5], ls), (mean[:5], log_std[:5]), order=1)


def test_gaussian_nll_grads_vmap_and_dtypes():
    mean, targets, std = _normal(5, (6,)), _normal(6, (6,)), jnp.exp(_normal(7, (6,), 0.3))
    f = jax.jit(lambda m, y, s: likelihood.gaussian_nll(m, y, std=s))
    check_grads(lambda m, s: f(m, targets, s), (mean, std), order=1)
    dtypes = (jnp.float32, jnp.float16, jnp.bfloat16)

    @jax.jit  # the batch and the three dtypes in one program (one compilation, not four)
    def batch_and_casts(m, y, s):
        batch = jax.vmap(f)(m.reshape(2, 3), y.reshape(2, 3), s.reshape(2, 3))
        return batch, [f(m.astype(d), y.astype(d), s.astype(d)) for d in dtypes]

    batch, outs = batch_and_casts(mean, targets, std)
    np.testing.assert_allclose(batch.ravel(), f(mean, targets, std), rtol=1e-15)
    for out in outs:
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, f(mean, targets, std), rtol=3e-2, atol=3e-2)


def test_nonpositive_scale_gives_nan_and_checked_raises():
    mean, targets = jnp.zeros(3), jnp.ones(3)

    def f(s):
        return likelihood.gaussian_nll(mean, targets, std=s)

    @jax.jit  # one program for the three results (one compilation, not three)
    def results(s, s_laplace):
        lap = likelihood.laplace_nll(mean, targets, scale=s_laplace)
        return f(s), jax.grad(lambda s: f(s)[0])(s), lap

    out, g, lap = results(jnp.array([1.0, 0.0, -1.0]), jnp.array([2.0, 0.0, 1]))
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])
    assert np.all(np.isfinite(g))  # the discarded branch does not poison the gradient
    assert np.isfinite(lap[0]) and np.isnan(lap[1])
    with pytest.raises(checkify.JaxRuntimeError, match="`std` must be > 0"):
        # A fresh jit (a cached trace has no checks): std is traced, so the run-time check fires.
        checked = jaxloss.checked(jax.jit(lambda s: likelihood.gaussian_nll(mean, targets, std=s)))
        checked(jnp.array([1.0, 0.0, 1.0]))


def test_extreme_inputs_stay_finite():
    mean = jnp.array([1e6, -1e6, 0.0])
    targets = jnp.zeros(3)

    @jax.jit
    def values(ls):
        g = jax.grad(lambda ls: likelihood.laplace_nll(mean, targets, log_scale=ls).sum())(ls)
        return likelihood.gaussian_nll(mean, targets, log_std=ls), g

    for ls in (-20.0, 30.0):
        chex.assert_tree_all_finite(values(ls))


# ------------------------------------------------------------------------------- laplace_nll


def np_laplace_nll(loc, y, b):
    return -np.log(np.exp(-np.abs(y - loc) / b) / (2 * b))  # the density, then −log


def test_laplace_nll_unit_scale_is_absolute_error_plus_log2():
    loc, targets = _normal(8, (3, 4)), _normal(9, (3, 4))

    @jax.jit
    def sides(m):
        g = jax.grad(lambda m: likelihood.laplace_nll(m, targets).sum())(m)
        g_abs = jax.grad(lambda m: jaxloss.absolute_error(m, targets).sum())(m)
        return likelihood.laplace_nll(m, targets), jaxloss.absolute_error(m, targets), g, g_abs

    nll, abs_err, g, g_abs = sides(loc)
    np.testing.assert_allclose(nll, abs_err + math.log(2), rtol=1e-14)
    np.testing.assert_allclose(g, g_abs, rtol=0)
    # At y = μ the gradient is 0 (torch's l1_loss convention; jnp.abs gives 1 there).
    np.testing.assert_array_equal(sides(targets)[2], np.zeros((3, 4)))


@pytest.mark.x64
def test_laplace_nll_scale_and_log_scale_match_the_density():
    loc, targets = _normal(10, (8,)), _normal(11, (8,), 3.0)
    b = np.exp(np.asarray(_normal(12, (8,), 0.5)))
    expected = np_laplace_nll(np.asarray(loc), np.asarray(targets), b)
    # Un-jitted here (the other laplace tests run jitted).
    np.testing.assert_allclose(likelihood.laplace_nll(loc, targets, scale=b), expected, rtol=1e-13)
    np.testing.assert_allclose(
        jax.jit(lambda ls: likelihood.laplace_nll(loc, targets, log_scale=ls))(np.log(b)),
        expected,
        rtol=1e-13,
    )
    f = jax.jit(lambda m, s: likelihood.laplace_nll(m, targets, scale=s))
    check_grads(f, (loc, jnp.asarray(b)), order=1)


# --------------------------------------------------------------------- bernoulli / categorical


# The wrapped classification losses are costly to run op by op (their own tests do that), so these
# run jitted: one program computes both sides of each identity.


@pytest.mark.x64
def test_bernoulli_nll_is_sigmoid_bce_and_the_bernoulli_likelihood():
    logits = _normal(13, (5, 2), 3.0)
    labels = jnp.asarray(np.random.default_rng(14).integers(0, 2, (5, 2)))

    @jax.jit
    def both(x, y):
        return likelihood.bernoulli_nll(x, y), jaxloss.sigmoid_binary_cross_entropy(x, y * 1.0)

    nll, bce = both(logits, labels)
    np.testing.assert_allclose(nll, bce, rtol=1e-15)
    p = 1 / (1 + np.exp(-np.asarray(logits)))
    y = np.asarray(labels)
    np.testing.assert_allclose(nll, -np.log(p**y * (1 - p) ** (1 - y)), rtol=1e-12)
    np.testing.assert_allclose(both(logits, labels.astype(bool))[0], nll)
    extreme, _ = both(jnp.array([100.0, -100.0]), jnp.array([0, 0]))
    np.testing.assert_allclose(extreme, [100.0, 0.0], atol=1e-12)
    check_grads(lambda x: both(x, labels)[0], (logits,), order=1, modes=("rev",))


@pytest.mark.x64
def test_categorical_nll_is_integer_label_cross_entropy():
    logits = _normal(15, (4, 3, 5), 2.0)
    labels = jnp.asarray(np.random.default_rng(16).integers(0, 5, (4, 3)))

    @jax.jit
    def both(x, y):
        per_row = jax.vmap(likelihood.categorical_nll)(x, y)
        return (
            likelihood.categorical_nll(x, y),
            jaxloss.softmax_cross_entropy_with_integer_labels(x, y),
            per_row,
        )

    nll, ce, per_row = both(logits, labels)
    chex.assert_shape(nll, (4, 3))
    np.testing.assert_allclose(nll, ce, rtol=1e-15)
    np.testing.assert_allclose(per_row, nll, rtol=1e-15)
    x = np.asarray(logits)
    p = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    expected = -np.log(np.take_along_axis(p, np.asarray(labels)[..., None], -1)[..., 0])
    np.testing.assert_allclose(nll, expected, rtol=1e-12)
    check_grads(lambda z: both(z, labels)[0], (logits,), order=1, modes=("rev",))
    out16 = jax.jit(likelihood.categorical_nll)(logits.astype(jnp.float16), labels)
    assert out16.dtype == jnp.float32
    np.testing.assert_allclose(out16, nll, rtol=1e-2, atol=1e-2)


# ------------------------------------------------------------------- float32, as users run it

_R = np.random.default_rng(17)
_M, _T = _R.normal(size=(3, 4)) * 2, _R.normal(size=(3, 4)) * 2
_S = np.exp(_R.normal(size=(3, 4)) * 0.5)
_B = _R.integers(0, 2, size=(3, 4)).astype(float)
_LAB = _R.integers(0, 4, size=3)


def _np_log_softmax(x):
    return (
        x
        - x.max(-1, keepdims=True)
        - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1))[..., None]
    )


FLOAT32_CASES = {  # name: (loss of the first argument, NumPy float64 reference of the density)
    "gaussian_std": (
        lambda m: likelihood.gaussian_nll(m, _T, std=_S),
        lambda m: np.log(_S) + (_T - m) ** 2 / (2 * _S**2) + HALF_LOG_2PI,
    ),
    "gaussian_log_std": (
        lambda ls: likelihood.gaussian_nll(_M, _T, log_std=ls),
        lambda ls: ls + (_T - _M) ** 2 / (2 * np.exp(2 * ls)) + HALF_LOG_2PI,
    ),
    "laplace_scale": (
        lambda m: likelihood.laplace_nll(m, _T, scale=_S),
        lambda m: np_laplace_nll(m, _T, _S),
    ),
    "bernoulli": (
        lambda x: likelihood.bernoulli_nll(x, _B),
        lambda x: -np.log(np.where(_B == 1, 1 / (1 + np.exp(-x)), 1 / (1 + np.exp(x)))),
    ),
    "categorical": (
        lambda x: likelihood.categorical_nll(x, _LAB),
        lambda x: -np.take_along_axis(_np_log_softmax(x), _LAB[:, None], -1)[:, 0],
    ),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_value_and_gradient(name):
    """JAX's default float32 mode: value and gradient against the float64 NumPy density."""
    f, ref = FLOAT32_CASES[name]
    x = (_S if name == "gaussian_log_std" else _M).astype(np.float32)
    loss, grad = jax.jit(jax.value_and_grad(lambda x: f(x).sum()))(x)
    assert loss.dtype == grad.dtype == jnp.float32
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(loss, ref(x64).sum(), rtol=2e-6)
    np.testing.assert_allclose(grad, np_grad(ref, x64), rtol=1e-4, atol=2e-6)


# ----------------------------------------------------------------------------- static errors


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3), jnp.ones(3), std=1.0, log_std=0.0),
            ValueError,
            r"gaussian_nll: pass at most one of `std` and `log_std`",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3), jnp.ones(3), std=jnp.ones(2)),
            ValueError,
            r"gaussian_nll: `std` must be a scalar or have the location's shape \(3,\)",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3), jnp.ones(3), std=-1.0),
            ValueError,
            r"gaussian_nll: `std` must lie in \(0, inf\]",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3), jnp.ones((3, 1))),
            ValueError,
            r"gaussian_nll: `targets` must have the same shape as `mean`",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3, int), jnp.ones(3)),
            TypeError,
            r"gaussian_nll: `mean` must be a floating-point array",
        ),
        (
            lambda: likelihood.laplace_nll(jnp.ones(3), jnp.ones(3), log_scale=jnp.ones((3, 1))),
            ValueError,
            r"laplace_nll: `log_scale` must be a scalar or have the location's shape",
        ),
        (
            lambda: likelihood.laplace_nll(jnp.ones(3), jnp.ones(3), scale=0.0),
            ValueError,
            r"laplace_nll: `scale` must lie in \(0, inf\]",
        ),
        (
            lambda: likelihood.bernoulli_nll(jnp.ones(3), jnp.ones(4)),
            ValueError,
            r"bernoulli_nll: `labels` must have the same shape as `logits`",
        ),
        (
            lambda: likelihood.categorical_nll(jnp.ones((3, 2)), jnp.zeros(3)),
            TypeError,
            r"categorical_nll: `labels` must be an integer array",
        ),
        (
            lambda: likelihood.categorical_nll(jnp.ones((3, 2)), jnp.zeros(2, int)),
            ValueError,
            r"categorical_nll: `labels` must have shape logits.shape\[:-1\]",
        ),
        (
            lambda: likelihood.categorical_nll(jnp.ones((3, 0)), jnp.zeros(3, int)),
            ValueError,
            r"categorical_nll: `logits` must have at least one class \(its last axis\)",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3), jnp.ones(3) + 1j),
            TypeError,
            r"gaussian_nll: `targets` must be real",
        ),
        (
            lambda: likelihood.gaussian_nll(jnp.ones(3) * 1j, jnp.ones(3)),
            TypeError,
            r"gaussian_nll: `mean` must be real",
        ),
        (
            lambda: likelihood.laplace_nll(jnp.ones(3), jnp.ones(3) + 1j),
            TypeError,
            r"laplace_nll: `targets` must be real",
        ),
        (
            lambda: likelihood.bernoulli_nll(jnp.ones(3), jnp.ones(3) + 1j),
            TypeError,
            r"bernoulli_nll: `labels` must be real",
        ),
    ],
)
def test_static_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
