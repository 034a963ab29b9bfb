"""Tests for jaxloss.segmentation: dice, Tversky and Jaccard against MONAI constants and NumPy.

Tests marked x64 compare float64 results with the float64 MONAI constants and NumPy reference at
float64 tolerance; the others run in JAX's default float32 mode, as users do.
"""

import functools

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss

# ------------------------------------------------------------------------------ fixed inputs
# Built from formulas so that the MONAI script (torch 2.13.0, monai 1.6.1, float64, channel-first
# via np.moveaxis(x, -1, 1)) saw exactly these arrays. Shapes (B, H, W, C) = (2, 3, 4, 3).
B, H, W, C = 2, 3, 4, 3
_K = np.arange(B * H * W * C, dtype=np.float64)
LOGITS = (4.0 * np.sin(1.3 * _K + 0.5)).reshape(B, H, W, C)
LABELS = ((np.arange(B * H * W) * 5) // 3 % C).reshape(B, H, W)
LABELS[1] = np.where(LABELS[1] == 2, 0, LABELS[1])  # class 2 absent from sample 1
SOFT = (0.5 + 0.5 * np.cos(0.9 * _K)).reshape(B, H, W, C)
PROBS = (0.5 + 0.45 * np.sin(2.1 * _K + 0.3)).reshape(B, H, W, C)
ONEHOT = np.eye(C)[LABELS]
WEIGHTS = np.array([0.2, 1.0, 3.0])

# (name, function, keyword arguments, predictions, targets, per-sample MONAI losses).
# MONAI's smooth_nr = smooth_dr = smooth for DiceLoss and smooth / 2 for TverskyLoss (which
# writes (I + s')/(I + αFP + βFN + s')); reduction="none", then the mean over classes per sample.
MONAI_CASES = [
    # DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0)
    ("softmax", jaxloss.dice_loss, {}, LOGITS, LABELS, [0.6792044205502376, 0.6610162275284637]),
    # same, one-hot targets without to_onehot_y
    ("onehot", jaxloss.dice_loss, {}, LOGITS, ONEHOT, [0.6792044205502376, 0.6610162275284637]),
    # DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0), soft targets
    (
        "sigmoid_soft",
        jaxloss.dice_loss,
        {"activation": "sigmoid"},
        LOGITS,
        SOFT,
        [0.40976915167262185, 0.47460114088314587],
    ),
    # DiceLoss(smooth_nr=0.0, smooth_dr=0.0), no activation
    (
        "probs_smooth0",
        jaxloss.dice_loss,
        {"from_logits": False, "smooth": 0.0},
        PROBS,
        SOFT,
        [0.5672274640168778, 0.5679787596626976],
    ),
    # DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True, smooth_nr=1.0, smooth_dr=1.0)
    (
        "squared",
        jaxloss.dice_loss,
        {"squared": True},
        LOGITS,
        LABELS,
        [0.6474932544937287, 0.6311419955763894],
    ),
    # DiceLoss(softmax=True, to_onehot_y=True) with MONAI's defaults smooth_nr = smooth_dr = 1e-5
    (
        "smooth1e-5",
        jaxloss.dice_loss,
        {"smooth": 1e-5},
        LOGITS,
        LABELS,
        [0.7652165900976463, 0.7818248529455714],
    ),
    # DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0, weight=[0.2, 1, 3]),
    # weight a float64 tensor (a list becomes a float32 buffer: 6e-10 off)
    (
        "weighted",
        jaxloss.dice_loss,
        {"class_weights": WEIGHTS},
        LOGITS,
        LABELS,
        [1.0306675514224024, 1.1038450764831729],
    ),
    # DiceLoss(..., include_background=False, weight=[1, 3]): MONAI's weight omits class 0
    (
        "no_background",
        jaxloss.dice_loss,
        {"class_weights": WEIGHTS, "include_background": False},
        LOGITS,
        LABELS,
        [1.4831712730715825, 1.6185437615873624],
    ),
    # DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, smooth_nr=1.0, smooth_dr=1.0)
    (
        "jaccard",
        jaxloss.jaccard_loss,
        {},
        LOGITS,
        LABELS,
        [0.8069327305710798, 0.7756391741107823],
    ),
    # DiceLoss(sigmoid=True, jaccard=True, squared_pred=True, smooth_nr=1.0, smooth_dr=1.0)
    (
        "jaccard_squared_sigmoid",
        jaxloss.jaccard_loss,
        {"activation": "sigmoid", "squared": True},
        LOGITS,
        SOFT,
        [0.41824063266247763, 0.49477631522831134],
    ),
    # TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7, smooth_nr=0.5, smooth_dr=0.5)
    (
        "tversky",
        jaxloss.tversky_loss,
        {"alpha": 0.3, "beta": 0.7},
        LOGITS,
        LABELS,
        [0.6826219314947274, 0.6520870229913034],
    ),
    # TverskyLoss(sigmoid=True, include_background=False, alpha=0.8, beta=0.2, smooth_nr=0.5,
    # smooth_dr=0.5)
    (
        "tversky_sigmoid_no_background",
        jaxloss.tversky_loss,
        {"alpha": 0.8, "beta": 0.2, "activation": "sigmoid", "include_background": False},
        LOGITS,
        SOFT,
        [0.45690058297004077, 0.4656342390838255],
    ),
]
# DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1.0, smooth_dr=1.0), mean
MONAI_BATCH_DICE = 0.7010097250751394
# DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0), reduction="mean"
MONAI_MEAN_DICE = 0.6701103240393507


# ------------------------------------------------------------------------ NumPy reference


def np_tversky(
    predictions,
    targets,
    *,
    alpha=0.5,
    beta=0.5,
    from_logits=True,
    activation="softmax",
    smooth=1.0,
    squared=False,
    class_weights=None,
    include_background=True,
):
    """Float64 NumPy Tversky/dice/Jaccard written as MONAI computes it (tp, fp = Σp^k − tp, ...)."""
    x = np.asarray(predictions, np.float64)
    num_classes = x.shape[-1]
    if from_logits and activation == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
    elif from_logits:
        p = 0.5 * (1.0 + np.tanh(0.5 * x))  # the sigmoid without overflow
    else:
        p = x
    t = np.asarray(targets)
    t = np.eye(num_classes)[t] if t.dtype.kind in "iu" else t.astype(np.float64)
    k = 2 if squared else 1
    axes = tuple(range(x.ndim - 1))
    tp = (p * t).sum(axes)
    fp = (p**k).sum(axes) - tp
    fn = (t**k).sum(axes) - tp
    num = 2 * tp + smooth
    den = 2 * tp + 2 * alpha * fp + 2 * beta * fn + smooth
    ratio = np.divide(num, den, out=np.ones_like(den), where=den != 0)  # 0/0 := 1 (loss 0)
    loss = 1.0 - ratio
    if class_weights is not None:
        loss = loss * np.asarray(class_weights)
    if not include_background:
        loss = loss[1:]
    return loss.mean()


def _np_kwargs(fn, kwargs):
    """Our keyword arguments plus the (alpha, beta) that dice and jaccard fix."""
    fixed = {jaxloss.dice_loss: (0.5, 0.5), jaxloss.jaccard_loss: (1.0, 1.0)}.get(fn)
    return kwargs if fixed is None else {**kwargs, "alpha": fixed[0], "beta": fixed[1]}


# ------------------------------------------------------------------- values: MONAI and NumPy


@pytest.mark.x64
@pytest.mark.parametrize("case", MONAI_CASES, ids=[c[0] for c in MONAI_CASES])
def test_matches_monai_jitted_vmapped_and_eager(case):
    _, fn, kwargs, x, y, expected = case
    per_sample = jax.jit(jax.vmap(functools.partial(fn, **kwargs)))(x, y)
    chex.assert_shape(per_sample, (B,))
    chex.assert_trees_all_close(per_sample, np.array(expected), rtol=1e-12, atol=0)
    eager = fn(x[0], y[0], **kwargs)
    chex.assert_shape(eager, ())
    chex.assert_trees_all_close(eager, expected[0], rtol=1e-12, atol=0)
    # the NumPy reference below is itself checked against MONAI here
    ref = [np_tversky(x[i], y[i], **_np_kwargs(fn, kwargs)) for i in range(B)]
    np.testing.assert_allclose(ref, expected, rtol=1e-12)


@pytest.mark.x64
def test_batch_as_one_sample_is_monai_batch_dice():
    whole, per_sample = jax.jit(
        lambda x, y: (jaxloss.dice_loss(x, y), jax.vmap(jaxloss.dice_loss)(x, y))
    )(LOGITS, LABELS)
    chex.assert_trees_all_close(whole, MONAI_BATCH_DICE, rtol=1e-12)
    chex.assert_trees_all_close(jnp.mean(per_sample), MONAI_MEAN_DICE, rtol=1e-12)


OPTION_SETS = [
    (jaxloss.dice_loss, {}),
    (jaxloss.dice_loss, {"activation": "sigmoid", "squared": True, "smooth": 0.0}),
    (jaxloss.dice_loss, {"from_logits": False, "class_weights": WEIGHTS}),
    (jaxloss.jaccard_loss, {"include_background": False, "smooth": 0.3}),
    (jaxloss.tversky_loss, {"alpha": 0.2, "beta": 1.5, "squared": True}),
    (jaxloss.tversky_loss, {"alpha": 0.7, "beta": 0.1, "activation": "sigmoid"}),
]


@pytest.mark.x64
@pytest.mark.parametrize("fn, kwargs", OPTION_SETS)
def test_random_inputs_against_numpy(fn, kwargs):
    rng = np.random.default_rng(0)
    shape = LOGITS.shape[1:]  # the MONAI cases' shape: eager ops are already compiled for it
    if kwargs.get("from_logits", True):
        x = 3.0 * rng.standard_normal(shape)
    else:
        x = rng.uniform(size=shape)
    f = functools.partial(fn, **kwargs)
    ref_kwargs = _np_kwargs(fn, kwargs)
    for y in (rng.integers(0, C, shape[:-1]), rng.uniform(size=shape)):
        chex.assert_trees_all_close(f(x, y), np_tversky(x, y, **ref_kwargs), rtol=1e-12, atol=1e-15)
    # float32 inputs: float32 result, equal to the float64 reference to float32 roundoff
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    out32 = jax.jit(f)(x32, y32)
    assert out32.dtype == jnp.float32
    chex.assert_trees_all_close(out32, np_tversky(x32, y32, **ref_kwargs), rtol=2e-6)


def test_dice_and_jaccard_are_tversky_and_labels_are_one_hot():
    @jax.jit  # one program for every value (op by op each call compiles its primitives)
    def values(x, labels, soft, onehot, mask):
        pairs = []
        for smooth in (0.0, 1.0):
            dice = jaxloss.dice_loss(x, labels, smooth=smooth, squared=True)
            tv = jaxloss.tversky_loss(x, labels, alpha=0.5, beta=0.5, smooth=smooth, squared=True)
            pairs.append((dice, tv))
            jac = jaxloss.jaccard_loss(x, soft, smooth=smooth, activation="sigmoid")
            tv = jaxloss.tversky_loss(
                x, soft, alpha=1.0, beta=1.0, smooth=smooth, activation="sigmoid"
            )
            pairs.append((jac, tv))
        targets = (labels, onehot, mask)
        return pairs, [jaxloss.dice_loss(x, y) for y in targets]

    # bool masks are one-hot targets too, and keep float32 predictions float32
    pairs, (from_labels, from_onehot, from_mask) = values(
        LOGITS.astype(np.float32), LABELS, SOFT, ONEHOT, ONEHOT.astype(bool)
    )
    for loss, tv in pairs:
        assert loss == tv
    chex.assert_trees_all_close(from_labels, from_onehot, rtol=1e-15)
    chex.assert_trees_all_close(from_mask, from_onehot)
    assert from_mask.dtype == jnp.float32


@pytest.mark.x64
def test_traced_hyperparameters_and_single_trace():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, y, smooth, alpha, beta, weights):
        return jaxloss.tversky_loss(
            x, y, smooth=smooth, alpha=alpha, beta=beta, class_weights=weights
        )

    for smooth, alpha, beta in [(1.0, 0.3, 0.7), (0.0, 2.0, 0.1)]:
        got = f(LOGITS[0], LABELS[0], smooth, alpha, beta, WEIGHTS)
        expected = np_tversky(
            LOGITS[0], LABELS[0], smooth=smooth, alpha=alpha, beta=beta, class_weights=WEIGHTS
        )
        chex.assert_trees_all_close(got, expected, rtol=1e-12)
    # vmapped over smooth: one loss per value
    smooths = jnp.array([0.0, 1e-5, 1.0])
    got = jax.jit(jax.vmap(lambda s: jaxloss.dice_loss(LOGITS[1], LABELS[1], smooth=s)))(smooths)
    expected = [np_tversky(LOGITS[1], LABELS[1], smooth=float(s)) for s in smooths]
    chex.assert_trees_all_close(got, np.array(expected), rtol=1e-12)


# ------------------------------------------------------------------------------ empty masks

# One class, 4 positions, probabilities given (from_logits=False), dice: I = Σpt, P = Σp, T = Σt.
_ZERO = np.zeros((4, 1))
_PRED3 = np.array([[1.0], [1.0], [1.0], [0.0]])  # P = 3
_TARG2 = np.array([[0.0], [0.0], [1.0], [1.0]])  # T = 2; with _PRED3: I = 1
EMPTY_CASES = [
    # both empty: (0 + s)/(0 + s) = 1 -> 0 for s = 1; s = 0 is 0/0, defined as loss 0
    ("both_empty", _ZERO, _ZERO, 0.0, 0.0),
    # false positives on an empty target: 1 - s/(P + s) = 1 - 1/4 = 0.75; s = 0: 1 - 0/3 = 1
    ("false_positives", _PRED3, _ZERO, 0.75, 1.0),
    # empty prediction, all missed: 1 - s/(T + s) = 1 - 1/3 = 2/3; s = 0: 1 - 0/2 = 1
    ("all_missed", _ZERO, _TARG2, 2.0 / 3.0, 1.0),
    # both non-empty: 1 - (2*1 + s)/(3 + 2 + s) = 1 - 3/6 = 0.5; s = 0: 1 - 2/5 = 0.6
    ("overlap", _PRED3, _TARG2, 0.5, 0.6),
]


@pytest.mark.x64
def test_empty_mask_cases():
    p = np.stack([c[1] for c in EMPTY_CASES])
    t = np.stack([c[2] for c in EMPTY_CASES])
    dice = functools.partial(jaxloss.dice_loss, from_logits=False)
    # the four cases as a batch, smooth traced: one compilation serves both values of smooth
    loss_and_grad = jax.value_and_grad(lambda p, t, s: dice(p, t, smooth=s))
    jitted = jax.jit(jax.vmap(loss_and_grad, in_axes=(0, 0, None)))
    for smooth, column in [(1.0, 3), (0.0, 4)]:
        expected = np.array([c[column] for c in EMPTY_CASES])
        loss, grad = jitted(p, t, smooth)
        chex.assert_trees_all_close(loss, expected, rtol=1e-15, atol=1e-15)
        chex.assert_tree_all_finite(grad)
        for case, value in zip(EMPTY_CASES, expected):  # un-jitted, one sample at a time
            chex.assert_trees_all_close(dice(case[1], case[2], smooth=smooth), value, atol=1e-15)


def test_empty_mask_gradients():
    f = jax.jit(jax.grad(functools.partial(jaxloss.dice_loss, from_logits=False), argnums=(0, 1)))
    # both empty, s = 0: the defined 0/0 has zero gradient
    chex.assert_trees_all_equal(f(_ZERO, _ZERO, smooth=0.0), (_ZERO, _ZERO))
    # both empty, s = 1: d/dp_i [1 - (2 Σpt + 1)/(Σp + Σt + 1)] = 1/1 = 1; d/dt_i = (1 - 2p_i)/1 = 1
    chex.assert_trees_all_close(f(_ZERO, _ZERO, smooth=1.0), (np.ones((4, 1)),) * 2)
    # an all-background image with sigmoid logits -1e4 (p == 0 exactly): loss 0, zero gradient
    g = functools.partial(jaxloss.dice_loss, activation="sigmoid", smooth=0.0)
    x = np.full(LOGITS.shape[1:], -1e4)
    loss, grad = jax.jit(jax.value_and_grad(g))(x, np.zeros_like(x))
    assert loss == 0.0
    chex.assert_trees_all_equal(grad, np.zeros_like(x))


# ---------------------------------------------------------------------------------- gradients


@pytest.mark.x64
# each option set with one kind of targets, alternating: every mode covered, half the compilations
@pytest.mark.parametrize(
    "fn, kwargs, integer_targets", [(*o, i % 2 == 1) for i, o in enumerate(OPTION_SETS)]
)
def test_check_grads_float64(fn, kwargs, integer_targets):
    rng = np.random.default_rng(1)
    shape = (3, 2, 3)
    if kwargs.get("from_logits", True):
        x = 2.0 * rng.standard_normal(shape)
    else:
        x = rng.uniform(0.1, 0.9, shape)  # away from [0, 1]'s edges for finite differences
    f = functools.partial(fn, **kwargs)
    # jitted: the finite differences then reuse one compilation
    if integer_targets:
        labels = rng.integers(0, 3, shape[:-1])
        check_grads(jax.jit(lambda x: f(x, labels)), (x,), order=1, modes=("rev",))
    else:
        check_grads(jax.jit(f), (x, rng.uniform(0.1, 0.9, shape)), order=1, modes=("rev",))


def _np_numerical_grad(f, x, eps=1e-6):
    """Central differences of a float64 NumPy function: an independent gradient reference."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return grad


@pytest.mark.parametrize("fn, kwargs", OPTION_SETS)
def test_float32_value_and_gradient_against_float64_numpy(fn, kwargs):
    rng = np.random.default_rng(2)
    shape = (3, 2, 3)
    if kwargs.get("from_logits", True):
        x = (2.0 * rng.standard_normal(shape)).astype(np.float32)
    else:
        x = rng.uniform(0.1, 0.9, shape).astype(np.float32)
    y = rng.integers(0, 3, shape[:-1])
    f = functools.partial(fn, **kwargs)
    ref_kwargs = _np_kwargs(fn, kwargs)
    x64 = x.astype(np.float64)  # the reference sees exactly the float32 inputs
    expected = np_tversky(x64, y, **ref_kwargs)
    expected_grad = _np_numerical_grad(lambda a: np_tversky(a, y, **ref_kwargs), x64)
    # jitted only: op by op the gradient takes seconds (eager values are tested above)
    value, grad = jax.jit(jax.value_and_grad(f))(x, y)
    assert value.dtype == grad.dtype == jnp.float32
    np.testing.assert_allclose(value, expected, rtol=2e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=2e-6)


# ------------------------------------------------------------------------------------ extremes


@pytest.mark.x64
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_extreme_logits(activation):
    # value and gradient in one program: one compilation per kind of targets
    f = jax.jit(jax.value_and_grad(functools.partial(jaxloss.dice_loss, activation=activation)))
    x = 1e4 * np.sign(LOGITS[0])
    for y in (LABELS[0], SOFT[0]):
        loss, grad = f(x, y)
        chex.assert_trees_all_close(loss, np_tversky(x, y, activation=activation), rtol=1e-12)
        chex.assert_tree_all_finite(grad)
    # infinite logits: sigmoid reaches 0/1, a softmax -inf is a class switched off
    x_inf = np.where(LOGITS[0] > 0, np.inf, -np.inf)
    if activation == "softmax":
        x_inf = np.where(np.arange(C) == 0, 0.0, -np.inf) * np.ones_like(x)
    loss, grad = f(x_inf, LABELS[0])
    chex.assert_trees_all_close(loss, np_tversky(x_inf, LABELS[0], activation=activation))
    chex.assert_tree_all_finite((loss, grad))


def test_probabilities_exactly_zero_and_one():
    f = functools.partial(jaxloss.jaccard_loss, from_logits=False, smooth=0.0)
    p = (LOGITS[0] > 0).astype(np.float64)
    # one program (op by op each call compiles its primitives)
    (loss, grads), perfect = jax.jit(
        lambda p, y: (jax.value_and_grad(f, argnums=(0, 1))(p, y), f(y, y))
    )(p, ONEHOT[0])
    chex.assert_trees_all_close(
        loss, np_tversky(p, ONEHOT[0], from_logits=False, smooth=0.0, alpha=1.0, beta=1.0)
    )
    chex.assert_tree_all_finite((loss, grads))
    # a perfect prediction: loss exactly 0
    assert perfect == 0.0


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    x = jnp.asarray(LOGITS, dtype)
    y = jnp.asarray(SOFT, dtype)
    # 1e4 is representable in float16: saturated logits stay finite in value and gradient
    x_big = jnp.asarray(1e4 * np.sign(LOGITS[0]), dtype)
    cases = ((jaxloss.dice_loss, LABELS), (jaxloss.tversky_loss, y))
    # one program for every value (each jit compiles for seconds at half precision)
    outs, (loss, grad) = jax.jit(
        lambda x, y, x_big: (
            [
                fn(x, targets)
                for fn, targets in ((jaxloss.dice_loss, LABELS), (jaxloss.tversky_loss, y))
            ],
            jax.value_and_grad(jaxloss.dice_loss)(x_big, LABELS[0]),
        )
    )(x, y, x_big)
    for out, (_, targets) in zip(outs, cases):
        assert out.dtype == jnp.float32
        expected = np_tversky(np.asarray(x, np.float64), np.asarray(targets))
        chex.assert_trees_all_close(out, expected, rtol=1e-6)
    assert loss.dtype == jnp.float32 and grad.dtype == dtype
    chex.assert_tree_all_finite((loss, grad))


@jax.jit
def _all_modes_value_and_grad(x, y, smooth):
    """Tversky value and gradient under both activations, squared or not: one compilation per
    shape (one program per squared flag compiled 1.3 s more in all)."""
    return [
        jax.value_and_grad(jaxloss.tversky_loss)(
            x, y, alpha=0.3, beta=0.7, smooth=smooth, activation=activation, squared=squared
        )
        for activation in ("softmax", "sigmoid")
        for squared in (False, True)
    ]


@hypothesis.settings(max_examples=25, deadline=None, derandomize=True)
@hypothesis.given(
    shape=st.sampled_from([(3, 2), (2, 3, 4)]),  # few shapes: few compilations
    log_scale=st.floats(-3.0, 4.0),
    smooth=st.sampled_from([0.0, 1e-5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_finite_gradients(shape, log_scale, smooth, seed):
    rng = np.random.default_rng(seed)
    x = (10.0**log_scale) * rng.standard_normal(shape)
    y = rng.integers(0, shape[-1], shape[:-1])
    # every example checks both squared modes (it drew one of them before)
    for loss, grad in _all_modes_value_and_grad(x, y, smooth):
        chex.assert_tree_all_finite((loss, grad))
        assert 0.0 <= loss <= 1.0 + 1e-12


# ----------------------------------------------------------------------------- static errors


_D, _J, _T = jaxloss.dice_loss, jaxloss.jaccard_loss, jaxloss.tversky_loss
STATIC_ERRORS = [
    # (function, predictions, targets, keyword arguments, error, message pattern)
    (_D, LOGITS, SOFT[..., :2], {}, ValueError, "`targets` must have the same shape as `pred"),
    (_D, LABELS[..., None], ONEHOT[..., :1], {}, TypeError, "`predictions` must be a floating"),
    (_D, LOGITS, LABELS[:, :2], {}, ValueError, r"`targets` must have shape predictions\.shape"),
    (_D, LOGITS, ONEHOT.astype(np.int32), {}, TypeError, "integer `targets` are class indices"),
    (_D, LOGITS, LABELS, {"smooth": -1.0}, ValueError, r"`smooth` must lie in \[0, inf\]; got -1"),
    (_J, LOGITS, LABELS, {"activation": "relu"}, ValueError, "`activation` must be one of 'sof"),
    (_T, LOGITS, LABELS, {"alpha": -0.1}, ValueError, r"`alpha` must lie in \[0, inf\]"),
    (_T, LOGITS, LABELS, {"beta": -0.1}, ValueError, r"`beta` must lie in \[0, inf\]"),
    (
        _D,
        LOGITS,
        LABELS,
        {"class_weights": [1.0, -1.0, 1.0]},
        ValueError,
        "`class_weights` must lie",
    ),
    (
        _D,
        LOGITS,
        LABELS,
        {"class_weights": [1.0, 1.0]},
        ValueError,
        r"`class_weights` must have shape \(3,\)",
    ),
    (_D, LOGITS[..., :1], SOFT[..., :1], {}, ValueError, "`activation='softmax'` needs at least 2"),
    (
        _D,
        LOGITS[..., :1],
        SOFT[..., :1],
        {"activation": "sigmoid", "include_background": False},
        ValueError,
        "`include_background=False` needs at least 2 classes",
    ),
    (_D, np.float64(1.0), np.float64(1.0), {}, ValueError, "`predictions` must have a class axis"),
    # issue 7: no class (C = 0) gave NaN, an empty sample 0.0; both now raise at trace time
    (
        _D,
        LOGITS[..., :0],
        SOFT[..., :0],
        {"activation": "sigmoid"},
        ValueError,
        r"`predictions` must have at least one class \(its last axis\)",
    ),
    (
        _J,
        LOGITS[..., :0],
        LABELS,
        {"activation": "sigmoid"},
        ValueError,
        "`predictions` must have at least one class",
    ),
    (_T, LOGITS[:, :0], LABELS[:, :0], {}, ValueError, r"`predictions` must not be empty"),
    (_D, LOGITS[0, :0], SOFT[0, :0], {}, ValueError, r"`predictions` must not be empty"),
    # complex inputs: the imaginary part would be dropped
    (_D, LOGITS, SOFT + 1j, {}, TypeError, "`targets` must be real"),
    (_J, LOGITS + 1j, LABELS, {}, TypeError, "`predictions` must be real"),
    (_T, LOGITS, None, {}, TypeError, "`targets` must be a real number or array; got None"),
    # hyperparameters are scalars; bools and strings are not numbers
    (_D, LOGITS, LABELS, {"smooth": [1.0, 2.0]}, ValueError, r"`smooth` must be a scalar"),
    (_T, LOGITS, LABELS, {"alpha": True}, TypeError, r"`alpha` must be a real number"),
    (_T, LOGITS, LABELS, {"beta": "0.5"}, TypeError, r"`beta` must be a real number or array"),
    # bool options: a truthy string would silently switch them on
    (_D, LOGITS, LABELS, {"from_logits": "no"}, TypeError, r"`from_logits` must be True or False"),
    (_J, LOGITS, LABELS, {"squared": 1}, TypeError, r"`squared` must be True or False"),
    (
        _T,
        LOGITS,
        LABELS,
        {"include_background": None},
        TypeError,
        r"`include_background` must be True or False",
    ),
]


@pytest.mark.parametrize("fn, x, y, kwargs, error, match", STATIC_ERRORS)
def test_static_errors(fn, x, y, kwargs, error, match):
    with pytest.raises(error, match=rf"^jaxloss\.{fn.__name__}: {match}"):
        fn(x, y, **kwargs)


# ------------------------------------------------------------------------- run-time problems


def test_runtime_value_problems_give_nan_and_checked_raises():
    bad_targets = SOFT[0].copy()
    bad_targets[0, 0, 0] = 1.5
    bad_labels = LABELS[0].copy()
    bad_labels[1, 1] = C
    bad_probs = PROBS[0].copy()
    bad_probs[2, 3, 1] = -0.25
    inf_logit = LOGITS[0].copy()
    inf_logit[0, 0, 1] = np.inf
    nan_logit = LOGITS[0].copy()
    nan_logit[1, 2, 0] = np.nan
    cases = [
        (jaxloss.dice_loss, (LOGITS[0], bad_targets), "`targets` has values outside"),
        (jaxloss.tversky_loss, (LOGITS[0], bad_labels), r"`targets` has class indices outside"),
        (jaxloss.jaccard_loss, (LOGITS[0], bad_labels - C - 1), r"class indices outside \[0, 3\)"),
        (
            functools.partial(jaxloss.dice_loss, from_logits=False),
            (bad_probs, SOFT[0]),
            "`predictions` has values outside",
        ),
        # +inf has no softmax (inf − inf); a sigmoid takes ±inf but not NaN
        (jaxloss.dice_loss, (inf_logit, LABELS[0]), r"`predictions` contains NaN or \+inf"),
        (
            functools.partial(jaxloss.jaccard_loss, activation="sigmoid"),
            (nan_logit, SOFT[0]),
            r"`predictions` contains NaN\.",
        ),
    ]
    # a vmapped hyperparameter is traced, so only checkable at run time (a concrete one raises
    # ValueError, also inside `checked`); smooth, alpha and beta go the same way
    cases += [
        (
            jax.vmap(lambda w: jaxloss.tversky_loss(LOGITS[0], LABELS[0], class_weights=w)),
            (np.stack([WEIGHTS, -WEIGHTS]),),
            r"`class_weights` must lie in \[0, inf\]",
        ),
        (
            jax.jit(lambda s: jaxloss.dice_loss(LOGITS[0], LABELS[0], smooth=s)),
            (-1.0,),
            r"jaxloss.dice_loss: `smooth` must lie in \[0, inf\]",
        ),
    ]
    # the unchecked results in one program (op by op or one jit each, every case compiled apart)
    results = jax.jit(lambda all_args: [fn(*args) for (fn, _, _), args in zip(cases, all_args)])(
        [args for _, args, _ in cases]
    )
    for result in results:
        assert jnp.isnan(result).any()
    for fn, args, match in cases:
        with pytest.raises(checkify.JaxRuntimeError, match=match):
            jaxloss.checked(fn)(*args)
    # valid inputs pass the checks
    assert jaxloss.checked(jaxloss.dice_loss)(LOGITS[0], LABELS[0]) >= 0
    checked_probs = jaxloss.checked(functools.partial(jaxloss.dice_loss, from_logits=False))
    assert checked_probs(PROBS[0], SOFT[0]) >= 0
