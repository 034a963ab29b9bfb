"""Tests for jaxloss.generalized_dice_loss against MONAI constants, NumPy and optax.

MONAI is not a dependency: its values are constants computed once (provenance below) and a
float64 NumPy implementation of MONAI's formula, checked against those constants, serves for
random inputs. optax's `multiclass_generalized_dice_loss` is a different formula (a weighted mean
of per-class dice); it is compared where the two coincide (one class) and shown to differ elsewhere.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss

GDL = jaxloss.generalized_dice_loss

# ------------------------------------------------------------------------------ fixed inputs
# Shapes (B, H, W, C) = (2, 4, 4, 4). Class volumes are powers of two, so MONAI's float32 weights
# 1/G² are exact and its float64 losses comparable at 1e-12: sample 0 has [8, 4, 2, 2] positions
# per class, sample 1 [8, 4, 4, 0] (class 3 absent: MONAI gives it the largest present weight).
B, H, W, C = 2, 4, 4, 4
_K = np.arange(B * H * W * C, dtype=np.float64)
LOGITS = (4.0 * np.sin(1.3 * _K + 0.5)).reshape(B, H, W, C)
_ORDER = (5 * np.arange(H * W) + 3) % (H * W)
LABELS = np.stack(
    [np.repeat(np.arange(C), counts)[_ORDER] for counts in ([8, 4, 2, 2], [8, 4, 4, 0])]
).reshape(B, H, W)
SOFT = (0.5 + 0.5 * np.cos(0.9 * _K)).reshape(B, H, W, C)
PROBS = (0.5 + 0.45 * np.sin(2.1 * _K + 0.3)).reshape(B, H, W, C)
ONEHOT = np.eye(C)[LABELS]

# (name, keyword arguments, predictions, targets, per-sample MONAI losses, rtol). Script: torch
# 2.13.0, monai 1.6.1, float64, channel-first via np.moveaxis(x, -1, 1):
# GeneralizedDiceLoss(reduction="none", smooth_nr=s, smooth_dr=s, **options)(x, one-hot y).
# rtol 1e-12 where MONAI's weights are exact; 1e-6 for soft targets, whose volumes MONAI rounds
# to float32 before 1/G² (`w_func(ground_o.float())`).
MONAI_CASES = [
    # softmax=True, s = 1e-5 (MONAI's defaults), w_type "square"; to_onehot_y=True gives the same
    ("square", {}, LOGITS, LABELS, [0.7799379466080686, 0.7655098712519226], 1e-12),
    # w_type="simple"
    (
        "simple",
        {"w_type": "simple"},
        LOGITS,
        LABELS,
        [0.7729040916669495, 0.7488640233820497],
        1e-12,
    ),
    # w_type="uniform"
    (
        "uniform",
        {"w_type": "uniform"},
        LOGITS,
        ONEHOT,
        [0.7492262001304333, 0.7255370224984683],
        1e-12,
    ),
    # smooth_nr = smooth_dr = 0.1
    ("smooth0.1", {"smooth": 0.1}, LOGITS, LABELS, [0.760120604066511, 0.7145172134450344], 1e-12),
    # include_background=False: weights of classes 1..3 only
    (
        "no_background",
        {"include_background": False},
        LOGITS,
        LABELS,
        [0.7864775160745179, 0.787692557103071],
        1e-12,
    ),
    # sigmoid=True, soft targets
    (
        "sigmoid_soft",
        {"activation": "sigmoid"},
        LOGITS,
        SOFT,
        [0.4860179535716107, 0.49158813871543006],
        1e-6,
    ),
    # no activation, smooth_nr = smooth_dr = 0
    (
        "probs_smooth0",
        {"from_logits": False, "smooth": 0.0},
        PROBS,
        SOFT,
        [0.49033999401686335, 0.49689816001693965],
        1e-6,
    ),
]
# GeneralizedDiceLoss(softmax=True, batch=True): volumes [16, 8, 6, 2], 1/36 rounded in float32
MONAI_BATCH = 0.8199966332729431
# GeneralizedDiceLoss(sigmoid=True, w_type="uniform") with all-zero targets: 1 − s/(ΣP + s)
MONAI_ALL_ABSENT_UNIFORM = [0.9999996918094867, 0.9999996917035265]
# GeneralizedDiceLoss(sigmoid=True) on LOGITS[0], SOFT[0] with channel 3 times 1e-30 (G_3 = 8e-30):
# MONAI's float32 1/G_3² overflows, so it treats class 3 as absent; the paper's weights (float64
# NumPy below, and jaxloss) give class 3 the weight 1/G_3², which dominates.
MONAI_TINY_VOLUME = 0.5689828075378323


# ------------------------------------------------------------------------ NumPy references


def _np_probs(x, from_logits, activation):
    x = np.asarray(x, np.float64)
    if from_logits and activation == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if from_logits:
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # the sigmoid without overflow
    return x


def _np_targets(t, num_classes):
    t = np.asarray(t)
    return np.eye(num_classes)[t] if t.dtype.kind in "iu" else t.astype(np.float64)


def np_generalized_dice(
    x,
    t,
    *,
    w_type="square",
    from_logits=True,
    activation="softmax",
    smooth=1e-5,
    include_background=True,
):
    """Float64 NumPy generalised dice as MONAI documents it: w = 1/G^k, inf -> max finite w."""
    p = _np_probs(x, from_logits, activation)
    t = _np_targets(t, p.shape[-1])
    if not include_background:
        p, t = p[..., 1:], t[..., 1:]
    axes = tuple(range(p.ndim - 1))
    intersection, ground, pred = (p * t).sum(axes), t.sum(axes), p.sum(axes)
    with np.errstate(divide="ignore"):
        w = {"square": 1.0 / ground**2, "simple": 1.0 / ground, "uniform": np.ones_like(ground)}
    w = w[w_type]
    infs = np.isinf(w)
    w[infs] = 0.0
    w[infs] = w.max()
    num = 2.0 * (w * intersection).sum() + smooth
    den = (w * (ground + pred)).sum() + smooth
    return 1.0 - num / den if den != 0 else 0.0  # 0/0 (nothing anywhere, s = 0) := loss 0


def np_optax_generalized_dice(x, t, *, smooth=1.0):
    """optax 0.2.8's formula, one sample: a weighted MEAN of per-class dice losses, weights
    1/(G² + 1e-7) normalised to mean 1 (so mean(w L) = Σ w L / Σ w)."""
    p = _np_probs(x, True, "softmax" if x.shape[-1] > 1 else "sigmoid")
    t = _np_targets(t, p.shape[-1])
    axes = tuple(range(p.ndim - 1))
    intersection, ground, pred = (p * t).sum(axes), t.sum(axes), p.sum(axes)
    w = 1.0 / (ground**2 + 1e-7)
    per_class = 1.0 - (intersection + smooth) / (0.5 * (pred + ground) + smooth)
    return (w * per_class).sum() / w.sum()


# ------------------------------------------------------------------- values: MONAI and NumPy


@pytest.mark.x64
def test_matches_monai_jitted_and_vmapped():
    square = [c for c in MONAI_CASES if c[0] in ("square", "smooth0.1")]
    others = [c for c in MONAI_CASES if c not in square]
    options = [case[1] for case in others]

    @jax.jit  # every case in one program (a jit per case compiles each apart)
    @chex.assert_max_traces(n=1)
    def run(arrays, whole_batch, smooths):
        per_case = [jax.vmap(functools.partial(GDL, **kw))(*xy) for kw, xy in zip(options, arrays)]
        # smooth traced, vmapped over: one loss per value
        traced = jax.vmap(lambda s: jax.vmap(functools.partial(GDL, smooth=s))(LOGITS, LABELS))
        return per_case, traced(smooths), GDL(*whole_batch)

    arrays = [(x, y) for _, _, x, y, _, _ in others]
    smooths = np.array([c[1].get("smooth", 1e-5) for c in square])
    got, traced, batch = jax.tree.map(np.asarray, run(arrays, (LOGITS, ONEHOT), smooths))
    for (name, kw, x, y, expected, rtol), out in zip(others + square, got + list(traced)):
        chex.assert_shape(out, (B,))
        chex.assert_trees_all_close(out, np.array(expected), rtol=rtol, atol=0)
        # the NumPy reference is itself checked against MONAI here
        ref = [np_generalized_dice(x[i], y[i], **kw) for i in range(B)]
        np.testing.assert_allclose(ref, expected, rtol=rtol, err_msg=name)
        chex.assert_trees_all_close(out, np.array(ref), rtol=1e-12, atol=0)
    run(arrays, (LOGITS, ONEHOT), np.array([0.0, 1.0]))  # new values, no new trace
    # a whole batch passed as one sample: MONAI's batch=True
    chex.assert_trees_all_close(batch, MONAI_BATCH, rtol=1e-6)
    chex.assert_trees_all_close(batch, np_generalized_dice(LOGITS, ONEHOT), rtol=1e-12)


# Option sets for random inputs: every option at least once; "labels" draws integer targets.
OPTION_SETS = [
    ({}, "labels"),
    ({"w_type": "simple", "activation": "sigmoid"}, "soft"),
    ({"w_type": "uniform", "include_background": False, "smooth": 0.0}, "labels"),
    ({"from_logits": False, "smooth": 0.3}, "soft"),
]
S = 8  # random samples per option set, of shape (2, 3, C): 6 positions, so classes go absent


def _random_inputs(seed, kind, from_logits=True):
    rng = np.random.default_rng(seed)
    shape = (S, 2, 3, C)
    x = 3.0 * rng.standard_normal(shape) if from_logits else rng.uniform(0.05, 0.95, shape)
    if kind == "labels":
        y = rng.integers(0, C, shape[:-1])
    else:
        # soft targets with some channels empty (absent classes)
        y = rng.uniform(0.05, 0.95, shape) * (rng.uniform(size=(S, 1, 1, C)) < 0.7)
    return x, y


def _np_numerical_grad(x, y, kwargs, argnum, eps=1e-6):
    """Central differences of the float64 NumPy reference w.r.t. x (argnum 0) or y (argnum 1):
    an independent gradient reference."""
    args = [x, y]
    grad = np.zeros_like(args[argnum])
    for i in np.ndindex(grad.shape):
        step = np.zeros_like(grad)
        step[i] = eps
        plus, minus = list(args), list(args)
        plus[argnum], minus[argnum] = args[argnum] + step, args[argnum] - step
        difference = np_generalized_dice(*plus, **kwargs) - np_generalized_dice(*minus, **kwargs)
        grad[i] = difference / (2 * eps)
    return grad


@pytest.mark.x64
def test_random_inputs_values_and_gradients_against_numpy():
    inputs = [
        _random_inputs(i, kind, kw.get("from_logits", True))
        for i, (kw, kind) in enumerate(OPTION_SETS)
    ]

    @jax.jit  # one program: values of every option set, gradients of the first two
    def run(inputs):
        outs = []
        for i, ((kw, _), (x, y)) in enumerate(zip(OPTION_SETS, inputs)):
            f = functools.partial(GDL, **kw)
            if i == 0:  # labels, square weights, softmax (the default path): float32 inputs
                outs.append(jax.vmap(jax.value_and_grad(f))(x.astype(jnp.float32), y))
            elif i == 1:  # soft targets, simple weights, sigmoid: the targets' gradient too
                outs.append(jax.vmap(jax.value_and_grad(f, argnums=(0, 1)))(x, y))
            else:
                outs.append((jax.vmap(f)(x, y), None))
        return outs

    outs = jax.tree.map(np.asarray, run(inputs))  # NumPy: eager indexing would compile
    for (kw, kind), (x, y), (value, grads) in zip(OPTION_SETS, inputs, outs):
        # float32 inputs: float32 results, equal to float64 to float32 roundoff
        float32 = value.dtype == np.float32
        rtol, atol = (2e-6, 1e-7) if float32 else (1e-12, 1e-15)
        x_seen = x.astype(value.dtype).astype(np.float64)  # the reference sees the same inputs
        ref = np.array([np_generalized_dice(x_seen[i], y[i], **kw) for i in range(S)])
        chex.assert_trees_all_close(value, ref, rtol=rtol, atol=atol)
        assert np.all((value >= 0) & (value <= 1))
        rtol, atol = (1e-4, 1e-6) if float32 else (1e-6, 1e-8)
        for i in range(S if grads is not None else 0):
            ref_grad = _np_numerical_grad(x_seen[i], y[i], kw, argnum=0)
            grad_x = grads[i] if kind == "labels" else grads[0][i]
            chex.assert_trees_all_close(grad_x, ref_grad, rtol=rtol, atol=atol)
            if kind == "soft":
                ref_grad = _np_numerical_grad(x[i], y[i], kw, argnum=1)
                # an absent class's weight jumps (max weight at G = 0, 1/G^k above): no derivative
                present = y[i].sum((0, 1)) > 0
                chex.assert_trees_all_close(
                    grads[1][i][..., present], ref_grad[..., present], rtol=rtol, atol=atol
                )


# ------------------------------------------------------------------------------ edge cases


def test_absent_classes_extremes_and_half_precision():
    """float32, as users run it: sigmoid channels, square weights, every edge case in one vmap."""
    x, soft = LOGITS[0], SOFT[0]
    tiny = soft.copy()
    tiny[..., 3] *= 1e-30  # G_3 = 8e-30: MONAI's float32 1/G_3² overflows
    cases = [
        (x, np.zeros_like(soft)),  # no class present: every weight 0 (MONAI), loss 0
        (x, tiny),  # a tiny class dominates, as the paper's weights say
        (1e4 * np.sign(x), soft),  # saturated sigmoids
        (np.where(x > 0, np.inf, -np.inf), soft),  # probabilities exactly 0 and 1
        (x, soft),
    ]
    xs = np.stack([c[0] for c in cases]).astype(np.float32)
    ys = np.stack([c[1] for c in cases]).astype(np.float32)
    sigmoid = functools.partial(GDL, activation="sigmoid")
    perfect = ONEHOT[0].astype(np.float32)
    switched_off = np.where(np.arange(C) == 3, -np.inf, x).astype(np.float32)  # class 3 off

    @jax.jit
    def run(xs, ys, half_logits, half_targets):
        per_smooth = jax.vmap(  # smooth MONAI's 1e-5 and 0
            lambda s: jax.vmap(jax.value_and_grad(functools.partial(sigmoid, smooth=s)))(xs, ys)
        )(jnp.array([1e-5, 0.0], jnp.float32))
        return (
            per_smooth,
            GDL(xs[0], ys[0], activation="sigmoid", w_type="uniform"),
            GDL(perfect, perfect, from_logits=False, smooth=0.0),
            jax.value_and_grad(GDL)(switched_off, LABELS[1]),
            GDL(half_logits, LABELS[0]),
            sigmoid(xs[4], half_targets),
        )

    half_logits, half_targets = jnp.asarray(x, jnp.bfloat16), jnp.asarray(soft, jnp.float16)
    outs = run(xs, ys, half_logits, half_targets)
    assert outs[-2].dtype == outs[-1].dtype == jnp.float32  # half precision in float32
    outs = jax.tree.map(np.asarray, outs)  # NumPy: eager indexing would compile
    (values, grads), uniform, perfect_loss, (off_loss, off_grad), bf16, f16 = outs
    chex.assert_tree_all_finite((values, grads, off_loss, off_grad))
    for smooth, value in zip((1e-5, 0.0), values):
        ref = [np_generalized_dice(a, b, activation="sigmoid", smooth=smooth) for a, b in cases]
        chex.assert_trees_all_close(value, np.array(ref), rtol=2e-6)
    # no class present: loss 0 whatever the predictions, zero gradient (MONAI: 0; s = 0: 0/0)
    assert np.all(values[:, 0] == 0.0) and np.all(grads[:, 0] == 0.0)
    # the tiny class: loss ≈ 1 (its dice alone), where MONAI's overflow gives 0.57
    chex.assert_trees_all_close(values[:, 1], 1.0, rtol=1e-6)
    assert abs(MONAI_TINY_VOLUME - values[0, 1]) > 0.4
    # no class present, uniform weights: 1 − s/(ΣP + s) penalises false positives (MONAI)
    chex.assert_trees_all_close(uniform, MONAI_ALL_ABSENT_UNIFORM[0], rtol=1e-6)
    assert perfect_loss == 0.0
    # a class switched off by -inf logits (and absent from the labels)
    ref = np_generalized_dice(switched_off, LABELS[1])
    chex.assert_trees_all_close(off_loss, ref, rtol=2e-6)
    ref = np_generalized_dice(np.asarray(half_logits, np.float64), LABELS[0])
    chex.assert_trees_all_close(bf16, ref, rtol=2e-6)
    ref = np_generalized_dice(x, np.asarray(half_targets, np.float64), activation="sigmoid")
    chex.assert_trees_all_close(f16, ref, rtol=2e-6)


# ------------------------------------------------------------------------------------ optax


@pytest.mark.x64
def test_optax_is_a_weighted_mean_of_dice_not_the_papers_ratio():
    rng = np.random.default_rng(3)
    # one class (sigmoid): both are 1 − 2I/(P + G) with s = 0; values and gradients agree
    x1 = rng.standard_normal((S, 2, 3, 1))
    y1 = rng.uniform(size=(S, 2, 3, 1))
    # four classes: sample 1 of the MONAI inputs (class 3 absent) and random samples, all present
    x4 = np.concatenate([LOGITS[1:], 3.0 * rng.standard_normal((3, H, W, C))])
    y4 = np.concatenate([LABELS[1:], np.repeat([[0, 1, 2, 3]], 4, 0).reshape(1, H, W).repeat(3, 0)])
    y4[1:] = rng.permuted(y4[1:], axis=-1)

    def optax_loss(x, y, smooth=0.0):  # optax's first axis is a batch: a sample is a batch of one
        # optax's weights (C,) multiply per-class losses (1, C): rank promotion inside optax
        with jax.numpy_rank_promotion("allow"):
            return optax.losses.multiclass_generalized_dice_loss(x[None], y[None], smooth=smooth)

    @jax.jit
    def run(x1, y1, x4, y4):
        ours = functools.partial(GDL, activation="sigmoid", smooth=0.0)
        onehot = jax.nn.one_hot(y4, C, dtype=x4.dtype)
        return (
            jax.vmap(jax.value_and_grad(ours))(x1, y1),
            jax.vmap(jax.value_and_grad(optax_loss))(x1, y1),
            jax.vmap(GDL)(x4, y4),
            jax.vmap(functools.partial(optax_loss, smooth=1.0))(x4, onehot),
        )

    ours1, optax1, ours4, optax4 = jax.tree.map(np.asarray, run(x1, y1, x4, y4))
    chex.assert_trees_all_close(ours1, optax1, rtol=1e-12, atol=1e-15)
    # four classes: optax is the weighted mean, jaxloss the paper's ratio, as MONAI
    optax_ref = [np_optax_generalized_dice(x4[i], y4[i]) for i in range(4)]
    chex.assert_trees_all_close(optax4, np.array(optax_ref), rtol=1e-12)
    ours_ref = [np_generalized_dice(x4[i], y4[i]) for i in range(4)]
    chex.assert_trees_all_close(ours4, np.array(ours_ref), rtol=1e-12)
    chex.assert_trees_all_close(ours4[0], MONAI_CASES[0][4][1], rtol=1e-12)
    assert np.all(np.abs(optax4 - ours4) > 0.01)
    # optax's weight 1/(0 + 1e-7) for the absent class makes its loss that class's dice alone:
    # 1 − s/(P_3/2 + s) with s = 1, where MONAI (and jaxloss) give 0.7655
    p3 = _np_probs(x4[0], True, "softmax")[..., 3].sum()
    chex.assert_trees_all_close(optax4[0], 1.0 - 1.0 / (0.5 * p3 + 1.0), rtol=1e-5)


# ---------------------------------------------------------------------------- static errors

STATIC_ERRORS = [
    # (predictions, targets, keyword arguments, error, message pattern)
    (LOGITS, LABELS, {"w_type": "log"}, ValueError, "`w_type` must be one of 'square', 'sim"),
    (LOGITS, LABELS, {"smooth": -1.0}, ValueError, r"`smooth` must lie in \[0, inf\]; got -1"),
    (LOGITS, LABELS, {"smooth": [1.0]}, ValueError, r"`smooth` must be a scalar"),
    (LOGITS, LABELS, {"activation": "relu"}, ValueError, "`activation` must be one of 'soft"),
    (LOGITS, SOFT[..., :2], {}, ValueError, "`targets` must have the same shape as `pred"),
    (LOGITS, LABELS[:, :2], {}, ValueError, r"`targets` must have shape predictions\.shape"),
    (LOGITS, ONEHOT.astype(np.int32), {}, TypeError, "integer `targets` are class indices"),
    (LABELS[..., None], ONEHOT[..., :1], {}, TypeError, "`predictions` must be a floating"),
    (LOGITS[..., :1], SOFT[..., :1], {}, ValueError, "`activation='softmax'` needs at least 2"),
    (
        LOGITS[..., :1],
        SOFT[..., :1],
        {"activation": "sigmoid", "include_background": False},
        ValueError,
        "`include_background=False` needs at least 2 classes",
    ),
    (LOGITS[:, :0], LABELS[:, :0], {}, ValueError, "`predictions` must not be empty"),
    (LOGITS + 1j, LABELS, {}, TypeError, "`predictions` must be real"),
    (LOGITS, LABELS, {"from_logits": "no"}, TypeError, "`from_logits` must be True or False"),
]


@pytest.mark.parametrize("x, y, kwargs, error, match", STATIC_ERRORS)
def test_static_errors(x, y, kwargs, error, match):
    with pytest.raises(error, match=rf"^jaxloss\.generalized_dice_loss: {match}"):
        GDL(x, y, **kwargs)


# ------------------------------------------------------------------------- run-time problems


def test_runtime_value_problems_give_nan_and_checked_raises():
    # (un-jitted runs: the docstring example; op by op every primitive compiles, seconds here)
    bad_targets = SOFT[0].copy()
    bad_targets[0, 0, 0] = 1.5
    bad_labels = LABELS[0].copy()
    bad_labels[1, 1] = C
    x = LOGITS[0].astype(np.float32)
    # a traced smooth (vmapped) is only checkable at run time: NaN where negative
    smooths, bad_label_loss, bad_target_loss = jax.jit(
        lambda s: (
            jax.vmap(lambda s: GDL(x, LABELS[0], smooth=s))(s),
            GDL(x, bad_labels),
            GDL(x, bad_targets, activation="sigmoid"),
        )
    )(jnp.array([1e-5, -1.0]))
    chex.assert_trees_all_close(smooths[0], np_generalized_dice(x, LABELS[0]), rtol=2e-6)
    assert np.isnan(smooths[1]) and np.isnan(bad_label_loss) and np.isnan(bad_target_loss)
    # jitted inside `checked`: one compilation each (op by op, each primitive compiles)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`targets` has class indices outside"):
        jaxloss.checked(jax.jit(GDL))(x, bad_labels)
    assert jaxloss.checked(jax.jit(GDL))(x, LABELS[0]) == smooths[0]  # valid inputs pass
