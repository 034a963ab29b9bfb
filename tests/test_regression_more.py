"""l2_loss, log_cosh, cosine_similarity and cosine_distance against torch and mpmath constants,
NumPy float64 references and optax (values and gradients); where optax is wrong (log_cosh near 0,
the cosine of a zero vector or of vectors whose squared norm leaves float32's range) the test
shows optax's error beside ours. Comparisons are batched into one compiled float32 program; the
un-jitted runs are the docstring examples (their values are checkable by hand)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss

COS = jaxloss.cosine_similarity
DIST = jaxloss.cosine_distance

RNG = np.random.default_rng(11)
P64 = RNG.normal(size=(5, 4, 3))
T64 = RNG.normal(size=(5, 4, 3))
MASK = RNG.random((5, 4, 3)) > 0.3
# optax's options (axis=None and where alone are special cases of these; the default axis=-1 is
# checked against torch and on the rows below), against the NumPy reference, all at once against
# optax.
OPTIONS = [
    {"axis": (0, 2)},
    {"epsilon": 2.0, "axis": 1, "where": MASK},
]


# ------------------------------------------------------------------ NumPy float64 references


def np_cosine(p, t, epsilon=0.0, axis=-1, where=None):
    """⟨p, t⟩ / (max(‖p‖, √ε) max(‖t‖, √ε)) with masked entries left out; 0 for a zero vector."""
    if where is not None:
        p, t = np.where(where, p, 0), np.where(where, t, 0)
    norm_p = np.maximum(np.sqrt((p * p).sum(axis=axis)), np.sqrt(epsilon))
    norm_t = np.maximum(np.sqrt((t * t).sum(axis=axis)), np.sqrt(epsilon))
    denominator = norm_p * norm_t
    return (p * t).sum(axis=axis) / np.where(denominator == 0, 1, denominator)


def np_cosine_grad(p, t, epsilon=0.0, axis=-1, where=None):
    """d/dp of the summed cosine, derived by hand: (t̂ − cos p̂) / ‖p‖ when ‖p‖ > √ε, else
    t / (√ε ‖t‖); masked entries 0."""
    if where is not None:
        p, t = np.where(where, p, 0), np.where(where, t, 0)
    axis = tuple(range(p.ndim)) if axis is None else axis
    norm_p = np.sqrt((p * p).sum(axis=axis, keepdims=True))
    norm_t = np.maximum(np.sqrt((t * t).sum(axis=axis, keepdims=True)), np.sqrt(epsilon))
    big = norm_p > np.sqrt(epsilon)
    divisor = np.where(big, norm_p, np.sqrt(epsilon))
    cos = (p * t).sum(axis=axis, keepdims=True) / (divisor * norm_t)
    grad = np.where(big, (t / norm_t - cos * p / divisor) / divisor, t / (divisor * norm_t))
    return grad if where is None else np.where(where, grad, 0)


# --------------------------------------------------------------- torch and mpmath constants
# torch 2.13.0+cpu, float64 (/tmp/bench-venv): c = F.cosine_similarity(A, B, dim=-1, eps=eps);
# c.sum().backward(); TORCH_COS_GRAD_* = A.grad, B.grad. Row 1 of A is a zero vector.
A = np.array([[0.5, -1.25, 2.0, 0.75], [0.0, 0.0, 0.0, 0.0], [-3.5, 0.25, 1.5, -0.5]])
B = np.array([[1.0, 0.5, -0.25, 2.0], [0.75, -1.5, 0.5, 1.0], [-2.0, 1.25, 0.5, -1.75]])
TORCH_COS = [0.15035521186416323, 0.0, 0.7795028228677167]  # eps=1e-8 and eps=0.5 alike
TORCH_COS_GRAD_A_ROWS_0_2 = [
    [0.16004196220835304, 0.1153986780133914, -0.09012889450680933, 0.32598020723490856],
    [0.009752122890912374, 0.0958652080408558, -0.03532844518972036, -0.12631759178511995],
]
# Row 1 (the zero vector): B[1] / (eps ‖B[1]‖), i.e. ~1e8 for the default eps=1e-8.
TORCH_COS_GRAD_A_ZERO_ROW_EPS_1E_8 = [
    37210420.37676254,
    -74420840.75352508,
    24806946.91784169,
    49613893.83568338,
]
TORCH_COS_GRAD_A_ZERO_ROW_EPS_0_5 = [
    0.7442084075352507,
    -1.4884168150705015,
    0.49613893835683387,
    0.9922778767136677,
]
TORCH_COS_GRAD_B = [
    [0.05761510639500712, -0.22894423856963347, 0.350744595071359, 0.07227158082882469],
    [0.0, 0.0, 0.0, 0.0],
    [-0.1295972387472378, -0.08798485521583803, 0.08690999660063578, 0.11009623244285491],
]
# F.cosine_similarity(A, B, dim=0, eps=1e-8)
TORCH_COS_DIM0 = [0.8994380267950337, -0.12162606385262999, 0.1333333333333333, 0.9279339519604584]
# F.mse_loss(A, B, reduction="none") / 2
TORCH_HALF_MSE = [
    [0.125, 1.53125, 2.53125, 0.78125],
    [0.28125, 1.125, 0.125, 0.5],
    [1.125, 0.5, 0.5, 0.78125],
]
# mpmath 1.3.0, mp.dps = 40: mpmath.log(mpmath.cosh(mpmath.mpf(x))), printed with nstr(v, 17).
LOG_COSH_X = ["1e-6", "1e-4", "3e-4", "0.01", "0.5", "1", "20", "100", "1e4"]
MPMATH_LOG_COSH = [
    4.9999999999991667e-13,
    4.9999999916666667e-9,
    4.4999999325000016e-8,
    4.9999166688888214e-5,
    0.12011450695827752,
    0.43378083048302719,
    19.306852819440055,
    99.306852819440055,
    9999.3068528194401,
]


# ------------------------------------------------------------------ float64: NumPy and optax


# ------------------------------------------------------------------ the float32 program

A32, B32 = A.astype(np.float32), B.astype(np.float32)
P32, T32 = P64.astype(np.float32), T64.astype(np.float32)
LOG_COSH_IN = np.array([float(v) for v in LOG_COSH_X], np.float32)
LOG_COSH_IN = np.concatenate([LOG_COSH_IN, -LOG_COSH_IN, [np.inf, -np.inf, 0.0]]).astype(np.float32)
# torch's eps=e is epsilon=e² (epsilon bounds the squared norm); -1 and NaN are out of range.
EPSILONS = np.array([0.0, 1e-16, 0.25, -1.0, np.nan], np.float32)
# Rows of 3-vectors, one cosine call for all: two zero vectors (against a vector and against a
# zero vector); entries whose ‖x‖² over- or underflows float32 although the cosine does not; a
# NaN, an inf and a plain vector, unmasked and then with the NaN and inf masked out.
SCALES = np.array([1e-36, 1e-25, 1e-19, 1e19, 1e30, 1e38], np.float32)
DIRECTION = np.array([1.0, 2.0, 0.0], np.float32)
BAD = np.array([[1.0, np.nan, 2.0], [1.0, np.inf, 2.0], [1.0, 2.0, 3.0]], np.float32)
ROWS = np.concatenate([np.zeros((2, 3)), SCALES[:, None] * DIRECTION, BAD, BAD]).astype(np.float32)
ROWS_T = np.concatenate([[[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], np.ones((12, 3))]).astype(np.float32)
ROWS_KEEP = np.ones((14, 3), bool)
ROWS_KEEP[-3:-1, 1] = False
ZERO, EXTREME, NAN_INF, MASKED = slice(0, 2), slice(2, 8), slice(8, 11), slice(11, 14)
HALF = {d: (jnp.asarray(P64[0], d), jnp.asarray(T64[0], d)) for d in ("float16", "bfloat16")}


def _sum_grads(f, p, t, **kw):
    return jax.grad(lambda a, b: f(a, b, **kw).sum(), argnums=(0, 1))(p, t)


def _with_grads(f, p, t, **kw):
    return f(p, t, **kw), _sum_grads(f, p, t, **kw)


@jax.jit
def _float32_program(x):
    """Every float32 check's numbers: one compilation for the whole file. The inputs are
    arguments, not constants: XLA's constant folding rewrites (x/s)² as x²/s², which over- and
    underflows."""
    out = {}
    a, b, p, t = x["a"], x["b"], x["p"], x["t"]
    out["torch"] = jax.vmap(lambda eps: _with_grads(COS, a, b, epsilon=eps))(x["epsilons"])
    out["torch_dim0"] = COS(a, b, axis=0)
    out["torch_l2"] = jaxloss.l2_loss(a, b)
    for name in ("l2_loss", "log_cosh"):
        out[name] = [_with_grads(f, p, t) for f in (getattr(jaxloss, name), getattr(optax, name))]
    out["cos 0"] = [_with_grads(COS, p, t, **OPTIONS[0])]
    # optax with every option at once (each compilation costs ~0.5 s)
    out["cos 1"] = [_with_grads(f, p, t, **OPTIONS[1]) for f in (COS, optax.cosine_similarity)]
    # log_cosh near 0 and far, its gradient and second derivative; optax's value.
    e, zeros = x["log_cosh"], jnp.zeros_like(x["log_cosh"])
    second = jax.vmap(jax.grad(jax.grad(lambda v: jaxloss.log_cosh(v, 0.0))))(e)
    out["log_cosh_extremes"] = (
        *_with_grads(jaxloss.log_cosh, e, zeros),
        second,
        optax.log_cosh(e, zeros),
    )
    rows, rows_t = x["rows"], x["rows_t"]
    # vmapped over the rows (the jit + vmap check: the references are per row)
    per_row = functools.partial(_with_grads, COS)
    out["rows"] = jax.vmap(lambda r, rt, k: per_row(r, rt, where=k))(rows, rows_t, x["keep"])
    out["optax_rows"] = optax.cosine_similarity(rows, rows_t)
    # the shared upcast (`_checks.float_pair`): the cosine in bfloat16, the elementwise losses in
    # float16 (each half dtype in every function would cost a compilation each)
    out["half"] = {d: [f(hp, ht) for f in FNS_HALF[d]] for d, (hp, ht) in x["half"].items()}
    return out


FNS_HALF = {"float16": [jaxloss.l2_loss, jaxloss.log_cosh], "bfloat16": [COS]}


@functools.cache
def _float32():
    inputs = {"a": A32, "b": B32, "p": P32, "t": T32, "epsilons": EPSILONS, "half": HALF}
    inputs.update(log_cosh=LOG_COSH_IN, rows=ROWS, rows_t=ROWS_T, keep=ROWS_KEEP)
    return jax.tree.map(np.asarray, _float32_program(inputs))


def test_cosine_matches_torch_constants():
    values, (grad_a, grad_b) = _float32()["torch"]
    for e in range(3):  # epsilon 0, 1e-16 (torch's default eps 1e-8) and 0.25 (eps 0.5)
        np.testing.assert_allclose(values[e], TORCH_COS, rtol=2e-6)
        np.testing.assert_allclose(grad_a[e, ::2], TORCH_COS_GRAD_A_ROWS_0_2, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(grad_b[e], TORCH_COS_GRAD_B, rtol=2e-6, atol=1e-7)
    # The zero vector: gradient 0 with epsilon = 0 (torch's default eps=1e-8 gives ~1e8), and
    # torch's gradient with epsilon = eps².
    chex.assert_trees_all_equal(grad_a[0, 1], np.zeros(4, np.float32))
    np.testing.assert_allclose(grad_a[1, 1], TORCH_COS_GRAD_A_ZERO_ROW_EPS_1E_8, rtol=2e-6)
    np.testing.assert_allclose(grad_a[2, 1], TORCH_COS_GRAD_A_ZERO_ROW_EPS_0_5, rtol=2e-6)
    np.testing.assert_allclose(_float32()["torch_dim0"], TORCH_COS_DIM0, rtol=2e-6)
    np.testing.assert_allclose(_float32()["torch_l2"], TORCH_HALF_MSE, rtol=1e-7)


def test_match_numpy_and_optax_values_and_gradients():
    got = _float32()
    # The float64 references see exactly the float32 inputs.
    p, t = P32.astype(np.float64), T32.astype(np.float64)
    e = p - t  # |e| between 0.01 and 4 here: optax's log_cosh is accurate there
    reference = {"l2_loss": (0.5 * e**2, e), "log_cosh": (np.log(np.cosh(e)), np.tanh(e))}
    for name, (value, grad) in reference.items():
        ours, theirs = got[name]
        chex.assert_shape(ours[0], P64.shape)
        chex.assert_trees_all_close(ours, (value, (grad, -grad)), rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)
    for i, kw in enumerate(OPTIONS):
        ours, *theirs = got[f"cos {i}"]
        cos, (gp, gt) = ours
        np.testing.assert_allclose(cos, np_cosine(p, t, **kw), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gp, np_cosine_grad(p, t, **kw), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gt, np_cosine_grad(t, p, **kw), rtol=1e-5, atol=1e-6)
        for other in theirs:
            chex.assert_trees_all_close(ours, other, rtol=1e-5, atol=1e-6)


@pytest.mark.x64
def test_gradients_check_grads():
    # Finite differences of the cosine's less common paths (mask, clipped norms) and log_cosh's
    # custom derivative; the other tests check every gradient against a hand-derived one.
    def total(p, t):
        return jaxloss.log_cosh(p, t).sum() + DIST(p, t, axis=0, where=MASK[0], epsilon=2.0).sum()

    check_grads(jax.jit(total), (P64[0], T64[0]), order=1, modes=["rev"])


def test_log_cosh_float32_near_zero_and_far_against_mpmath():
    value, grad, second, optax_value = _float32()["log_cosh_extremes"]
    grad = grad[0]
    x64 = LOG_COSH_IN.astype(np.float64)
    # mpmath's constants are for the decimal inputs; where float32 rounded one (|x| < 0.1),
    # ½x²(1 − x²/6), log cosh to 1e-8 relative there, gives the value at the float32 input.
    reference = np.concatenate([MPMATH_LOG_COSH, MPMATH_LOG_COSH, [np.inf, np.inf, 0.0]])
    reference = np.where(np.abs(x64) < 0.1, 0.5 * x64**2 * (1 - x64**2 / 6), reference)
    np.testing.assert_allclose(value, reference, rtol=3e-7)
    # optax's logaddexp(x, −x) − log 2 cancels: 0 at 1e-6, 1e-4 and 3e-4 (float32).
    optax_error = np.abs(optax_value[:3] / reference[:3] - 1)
    np.testing.assert_array_equal(optax_error, 1.0)
    # Gradient tanh(x) (±1 at ±inf), second derivative 1 − tanh², both finite everywhere.
    np.testing.assert_allclose(grad, np.tanh(x64), rtol=1e-6)
    np.testing.assert_allclose(second, 1 - np.tanh(x64) ** 2, rtol=1e-5, atol=1e-7)
    assert np.isinf(value[-3:-1]).all()


def test_cosine_zero_vector_is_zero_with_zero_gradient():
    (cos, (gp, gt)), optax_cos = _float32()["rows"], _float32()["optax_rows"]
    # 0 against a vector and against another zero vector, nothing to differentiate.
    chex.assert_trees_all_equal(cos[ZERO], np.zeros(2, np.float32))
    chex.assert_trees_all_equal((gp[ZERO], gt[ZERO]), (np.zeros((2, 3), np.float32),) * 2)
    # optax: 0/0.
    assert np.isnan(optax_cos[ZERO]).all()


def test_cosine_float32_huge_and_tiny_entries():
    (cos, (gp, gt)), optax_cos = _float32()["rows"], _float32()["optax_rows"]
    p, ones = ROWS[EXTREME].astype(np.float64), np.ones((6, 3))
    np.testing.assert_allclose(cos[EXTREME], np_cosine(p, ones), rtol=1e-6)  # 3/√15 for all
    # w.r.t. t the gradient does not depend on ‖p‖; w.r.t. p it is 1/‖p‖ times a unit-scale one
    np.testing.assert_allclose(gt[EXTREME], np_cosine_grad(ones, p), atol=1e-7)
    unit = np_cosine_grad(DIRECTION.astype(np.float64), ones[0])
    np.testing.assert_allclose(gp[EXTREME][:5] * SCALES[:5, None], np.tile(unit, (5, 1)), atol=1e-6)
    chex.assert_tree_all_finite(gp[EXTREME])
    # optax: NaN where ‖p‖² underflows (1e-36, 1e-25), 0 where it overflows (1e30, 1e38).
    optax_cos = optax_cos[EXTREME]
    assert np.isnan(optax_cos[:2]).all() and (optax_cos[-2:] == 0).all()


def test_nan_inf_and_masked_entries():
    cos, (gp, _) = _float32()["rows"]
    # A NaN or inf entry leaves the vector without a direction: NaN.
    np.testing.assert_array_equal(np.isnan(cos[NAN_INF]), [True, True, False])
    # Left out by the mask, they take no part in the value nor the gradient.
    masked = np_cosine(BAD.astype(np.float64), np.ones((3, 3)), where=ROWS_KEEP[MASKED])
    np.testing.assert_allclose(cos[MASKED], masked, rtol=1e-6)
    chex.assert_tree_all_finite(gp[MASKED])
    assert gp[MASKED][0, 1] == gp[MASKED][1, 1] == 0
    log_cosh = _float32()["log_cosh_extremes"][0]
    assert np.isinf(log_cosh[-3:-1]).all()


def test_traced_epsilon_out_of_range_is_nan_and_checked_raises():
    values, grads = _float32()["torch"]
    assert np.isnan(values[3:]).all()  # epsilon -1 and NaN
    with pytest.raises(
        checkify.JaxRuntimeError, match=r"jaxloss.cosine_distance: `epsilon` must lie in \[0, inf\]"
    ):
        jaxloss.checked(jax.jit(lambda e: DIST(B32, B32, epsilon=e)))(-1.0)


def test_checked_names_nan_input():
    p = A32.copy()
    p[0, 0] = np.nan
    with pytest.raises(
        checkify.JaxRuntimeError, match=r"jaxloss.cosine_similarity: `predictions` contains NaN"
    ):
        jaxloss.checked(jax.jit(COS))(p, B32)  # jitted: one compilation, not one per primitive


def test_half_precision_computed_in_float32():
    half = _float32()["half"]
    (l2, log_cosh), (cos,) = half["float16"], half["bfloat16"]
    assert l2.dtype == log_cosh.dtype == cos.dtype == np.float32
    p, t = (np.asarray(v, np.float64) for v in HALF["float16"])  # the half values, exactly
    np.testing.assert_allclose(l2, 0.5 * (p - t) ** 2, rtol=1e-6)
    np.testing.assert_allclose(log_cosh, np.log(np.cosh(p - t)), rtol=1e-6)
    p, t = (np.asarray(v, np.float64) for v in HALF["bfloat16"])
    np.testing.assert_allclose(cos, np_cosine(p, t), rtol=1e-6)


# ------------------------------------------------------------------ static errors


@pytest.mark.parametrize("name", ["l2_loss", "log_cosh", "cosine_similarity", "cosine_distance"])
def test_static_errors(name):
    fn = getattr(jaxloss, name)
    with pytest.raises(ValueError, match=rf"^jaxloss.{name}: `targets` must have the same shape"):
        fn(np.zeros(3, np.float32), np.zeros((3, 1), np.float32))
    with pytest.raises(TypeError, match=rf"^jaxloss.{name}: `predictions` must be a floating"):
        fn(np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match=rf"^jaxloss.{name}: `predictions` must not be empty"):
        fn(np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"axis": 2}, ValueError, r"`axis` must lie in \[-2, 2\) .* 2 dimension\(s\); got 2"),
        ({"axis": (0, -2)}, ValueError, r"`axis` repeats an axis; got \(0, -2\)"),
        ({"axis": 1.0}, TypeError, r"`axis` must be an int, a tuple of ints or None; got 1.0"),
        ({"epsilon": -1.0}, ValueError, r"`epsilon` must lie in \[0, inf\]; got -1.0"),
        ({"epsilon": np.ones(2)}, ValueError, r"`epsilon` must be a scalar; got shape \(2,\)"),
        ({"where": np.ones(3, bool)}, ValueError, r"`where` must have shape \(2, 3\); got \(3,\)"),
        ({"where": np.ones((2, 3))}, TypeError, r"`where` must be a boolean mask"),
    ],
)
def test_cosine_bad_options(kwargs, error, match):
    with pytest.raises(error, match=rf"^jaxloss.cosine_similarity: {match}"):
        COS(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), **kwargs)
