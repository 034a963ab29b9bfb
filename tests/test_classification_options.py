"""PolyLoss and the classification options optax has (`axis=` on the softmax losses, `where=` on
the integer-label cross entropy): against optax (values and gradients), NumPy float64 references,
moving the class axis last by hand; bf16, static errors, NaN policy and `checked`.

Every numeric comparison runs in one compiled program (`results`), float64 and float32 inputs side
by side under x64, compiled with XLA's backend optimisations off (the same numbers, several times
faster to compile); each test reads its part."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from static_errors import assert_raises_eager_and_jitted
from test_classification import ICE, IFL, MFL, P_, SCE, np_log_softmax, np_softmax_ce

import jaxloss

POLY = jaxloss.poly_loss_cross_entropy
OPTAX_POLY = optax.losses.poly_loss_cross_entropy
OPTAX_ICE = optax.softmax_cross_entropy_with_integer_labels
FAST = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}

RNG = np.random.default_rng(11)
# Channel-first (C, H, W) logits: the class axis is 0.
XC = RNG.normal(size=(4, 3, 5)) * 3
X = RNG.normal(size=(6, 5)) * 3
P = RNG.dirichlet(np.ones(5), size=6)
LAB = RNG.integers(0, 5, size=6)
W = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
# Masks: classes kept by poly's `where` (position 4 keeps none), positions, and classes kept by
# the integer loss's `where` (every label on a kept class; position 2 keeps none).
POLY_MASK = RNG.uniform(size=X.shape) > 0.3
POLY_MASK[:, 2] = True
POLY_MASK[4] = False
POS = np.array([True, False, True, True, False, True])
CLS = RNG.uniform(size=X.shape) < 0.6
CLS[np.arange(6), LAB] = True
CLS[2] = False
EPSILONS = (2.0, -1.0, 0.0, 0.7)
AXES = (0, 1)


def np_poly(x, y, eps):
    """Poly-1 (Leng et al. 2022, eq. 3) for probability labels: CE + eps sum_c y_c (1 - p_c), with
    1 - p_c = sum_{k != c} p_k (exact in float64 where p_c -> 1)."""
    p = np.exp(np_log_softmax(x))
    one_minus_p = (p[..., None, :] * (1 - np.eye(x.shape[-1]))).sum(-1)
    return np_softmax_ce(x, y) + eps * (y * one_minus_p).sum(-1)


def _labels_for(x, axis):
    """Probability labels with the class axis at `axis`, and integer labels of x's shape without
    it."""
    moved = np.moveaxis(x, axis, -1).shape
    probs = RNG.dirichlet(np.ones(moved[-1]), size=moved[:-1])
    return np.moveaxis(probs, -1, axis), RNG.integers(0, moved[-1], size=moved[:-1])


AXIS_INPUTS = {a: (XC.astype(np.float32), *_labels_for(XC, a)) for a in AXES}
Y_C0 = _labels_for(XC, 0)[0]
# Saturated rows (p_t -> 1) and edge cases: a -inf logit, labels outside [0, 1].
X_SAT = np.array([[20.0, 0.0, 0.0], [18.0, 1.0, -2.0]])
Y_SAT = np.eye(3)[[0, 0]]
X_EDGE = np.array([[2.0, 0.0, -np.inf], [0.0, 1.0, 0.0], [1.0, 2.0, 3.0]], np.float32)
Y_EDGE = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 1.3, -0.5]], np.float32)


def _value_and_grads(f, x, y, argnums=0):
    return f(x, y), jax.grad(lambda x, y: f(x, y).sum(), argnums=argnums)(x, y)


def _poly_part():
    out = {}
    # PolyLoss against optax (gradients w.r.t. logits and labels), epsilon vmapped (traced).
    eps = jnp.array(EPSILONS)
    out["poly eps"] = tuple(
        jax.vmap(lambda e, f=f: _value_and_grads(P_(f, epsilon=e), X, P, (0, 1)))(eps)
        for f in (POLY, OPTAX_POLY)
    )
    out["poly axis=0"] = tuple(
        _value_and_grads(P_(f, axis=0), XC, Y_C0, (0, 1)) for f in (POLY, OPTAX_POLY)
    )
    out["poly where"] = tuple(
        _value_and_grads(P_(f, epsilon=1.5, where=POLY_MASK), X, P, (0, 1))
        for f in (POLY, OPTAX_POLY)
    )
    out["saturated"] = tuple(
        f(X_SAT.astype(np.float32), Y_SAT.astype(np.float32)) for f in (POLY, SCE, OPTAX_POLY)
    )
    out["edge"] = _value_and_grads(POLY, X_EDGE, Y_EDGE)
    out["traced eps"] = jax.vmap(lambda e: POLY(X_EDGE[:2], Y_EDGE[:2], epsilon=e))(
        jnp.array([2.0, -1.5], np.float32)
    )
    return out


def _axis_part(axis, x, y, lab):
    """axis= (float32): values equal to moving the class axis last; values and gradients equal to
    optax's axis=. axis=-1 is the default's program (test_default_axis_adds_no_operation)."""
    out = {}
    xm, ym = jnp.moveaxis(x, axis, -1), jnp.moveaxis(y, axis, -1)
    w = jnp.arange(1.0, 1.0 + x.shape[axis], dtype=np.float32)
    for name, f, labels, moved in [
        ("sce", P_(SCE, label_smoothing=0.1), y, ym),
        ("ice", P_(ICE, label_smoothing=0.1, class_weights=w), lab, lab),
        ("ifl", P_(IFL, gamma=0.5, alpha=0.25), lab, lab),
        ("mfl", P_(MFL, gamma=1.5), y, ym),
        ("poly", POLY, y, ym),
    ][: 5 if axis == 0 else 3]:  # every loss at axis 0; one of each label kind at axis 1
        out[f"axis={axis} {name}"] = f(x, labels, axis=axis), f(xm, moved)
    for name, ours, theirs, labels in [
        ("sce", SCE, optax.softmax_cross_entropy, y),
        ("ice", ICE, OPTAX_ICE, lab),
    ]:
        out[f"axis={axis} optax {name}"] = tuple(
            _value_and_grads(P_(f, axis=axis), x, labels) for f in (ours, theirs)
        )
    return out


def _bf16_part(x, y, lab):
    """Half precision, class axis first: computed in float32, equal to the float32 twins."""

    def losses(x, y):
        return [SCE(x, y, axis=0), ICE(x, lab, axis=0), MFL(x, y, axis=0), POLY(x, y, axis=0)]

    return {"bf16": (losses(x, y), losses(x.astype(np.float32), y.astype(np.float32)))}


def _where_part():
    out = {}
    # where= on integer labels against optax: positions, classes, each with the class axis first.
    xc = np.moveaxis(X, -1, 0)
    for name, x, kw in [
        ("positions", X, {"where": POS}),
        ("classes", X, {"where": CLS}),
        ("classes axis=0", xc, {"where": CLS.T, "axis": 0}),
    ]:
        out["where " + name] = tuple(
            _value_and_grads(P_(f, **kw), x, LAB) for f in (ICE, OPTAX_ICE)
        )
    # Garbage (NaN, +inf) where the masks leave out.
    x_pos = np.where(POS[:, None], X, np.nan)
    x_pos[1, 0] = np.inf
    x_cls = np.where(CLS, X, np.inf)
    x_cls[2] = np.nan
    out["garbage"] = (
        _value_and_grads(P_(ICE, where=POS), x_pos, LAB),
        _value_and_grads(P_(ICE, where=CLS), x_cls, LAB),
    )
    # Classes left out with smoothing, weights and ignore_index: the probability-label loss on
    # one-hot labels with the same mask.
    lab = np.where(np.arange(6) == 3, -100, LAB)
    kw = {"label_smoothing": 0.2, "class_weights": W}
    onehot = jax.nn.one_hot(jnp.where(lab < 0, 0, lab), 5, dtype=X.dtype)
    out["class where smoothing"] = (
        _value_and_grads(P_(ICE, where=CLS, ignore_index=-100, **kw), X, lab),
        _value_and_grads(lambda x, y: jnp.where(lab < 0, 0, SCE(x, y, where=CLS, **kw)), X, onehot),
    )
    # A label on a left-out class.
    off = np.ones(X.shape, bool)
    off[0, LAB[0]] = False
    out["label left out"] = tuple(f(X, LAB, where=off) for f in (ICE, OPTAX_ICE))
    # softmax_cross_entropy with a position mask.
    out["sce positions"] = tuple(
        _value_and_grads(P_(f, where=POS), X, P) for f in (SCE, optax.softmax_cross_entropy)
    )
    return out


@functools.cache
def results():
    """Every numeric comparison, a dict of (ours, reference) pairs and single results. A few
    programs: XLA's compile time grows faster than the program, so one would take longer."""
    parts = [(_poly_part, ()), (_where_part, ())]
    parts += [(P_(_axis_part, axis), args) for axis, args in AXIS_INPUTS.items()]
    parts.append(
        (_bf16_part, (XC.astype(jnp.bfloat16), Y_C0.astype(jnp.bfloat16), AXIS_INPUTS[0][2]))
    )
    out = {}
    with jax.enable_x64(True):
        for part, args in parts:
            out.update(jax.device_get(jax.jit(part, compiler_options=FAST)(*args)))
    return out


def _close(pair, name, **tol):
    chex.assert_trees_all_close(*pair, custom_message=name, **tol)


# ------------------------------------------------------------------------------------ PolyLoss


def test_poly_matches_optax_and_numpy():
    out = results()
    # optax's label gradient is NaN on classes `where` leaves out; jaxloss's is 0 (no part).
    (_, (_, g_ours)), (loss, (g_x, g_theirs)) = out["poly where"]
    np.testing.assert_array_equal(g_ours[~POLY_MASK], 0.0)
    assert np.isnan(g_theirs[~POLY_MASK]).all()
    theirs = (loss, (g_x, np.where(POLY_MASK, g_theirs, 0.0)))
    _close((out["poly where"][0], theirs), "where", rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(out["poly where"][0][0][4], 0.0)  # no class kept
    _close(out["poly eps"], "epsilons", rtol=1e-12, atol=1e-14)
    losses = out["poly eps"][0][0]
    for e, loss in zip(EPSILONS, losses):
        np.testing.assert_allclose(loss, np_poly(X, P, e), rtol=1e-13, err_msg=f"epsilon={e}")
    np.testing.assert_allclose(losses[EPSILONS.index(0.0)], np_softmax_ce(X, P), rtol=1e-13)
    _close(out["poly axis=0"], "axis=0", rtol=1e-12, atol=1e-14)


def test_poly_saturated_float32_is_accurate_where_optax_gives_zero():
    """p_t -> 1: the polynomial term eps (1 - p_t) is tiny but not 0. optax's 1 - p_t rounds to
    0 in float32; jaxloss's keeps every digit. (The cross-entropy part is
    `softmax_cross_entropy`'s, which like torch's float32 log-softmax rounds -log p_t < 6e-8.)"""
    ours, ce, theirs = results()["saturated"]
    assert ours.dtype == np.float32
    term = np_poly(X_SAT, Y_SAT, 2.0) - np_softmax_ce(X_SAT, Y_SAT)  # [8.2e-09, 8.7e-08]
    np.testing.assert_allclose(ours - ce, term, rtol=1e-6)
    np.testing.assert_allclose(ours, np_poly(X_SAT, Y_SAT, 2.0), atol=6e-8)
    np.testing.assert_array_equal(theirs, 0.0)


def test_poly_edge_cases_and_nan_policy():
    loss, g = results()["edge"]
    # -inf logit with label 0: finite value and gradient; labels outside [0, 1]: NaN.
    x_ref = np.where(np.isinf(X_EDGE[:2]), -1e3, X_EDGE[:2]).astype(np.float64)  # exp(-1e3) = 0
    np.testing.assert_allclose(loss[:2], np_poly(x_ref, Y_EDGE[:2], 2.0), rtol=1e-6)
    assert np.isnan(loss[2])
    chex.assert_tree_all_finite(g[:2])
    # A traced epsilon below -1 gives NaN (`checked` raises, through the shared
    # `_checks.hyperparameter_ok`, as for every hyperparameter).
    traced = results()["traced eps"]
    assert np.isfinite(traced[0]).all() and np.isnan(traced[1]).all()


@pytest.mark.x64
def test_check_grads_second_order_through_labels():
    """Through logits, labels and epsilon. The labels' path is `softmax_cross_entropy`'s core,
    whose forward-over-forward derivative through the labels was NaN (the 0 * inf guard's
    overflow term was differentiated)."""
    # Labels >= 0.1: the finite differences stay inside [0, 1] (outside is NaN by design).
    f = jax.jit(lambda x, y, e: POLY(x, y, epsilon=e))
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)  # compiles several times faster
    try:
        check_grads(f, (X[:3], 0.5 * P[:3] + 0.1, 1.3), order=2, modes=("fwd",))
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)


# ------------------------------------------------------------------------------------ axis=


@pytest.mark.parametrize("axis", AXES)
def test_axis_equals_moving_the_class_axis_last_and_matches_optax(axis):
    """Every softmax loss on (C, H, W)-like inputs: equal to the same loss on
    moveaxis(x, axis, -1), values and gradients; optax's `axis=` where it has one."""
    shape = tuple(np.delete(XC.shape, axis % 3))
    for name, pair in results().items():
        if name.startswith(f"axis={axis} "):
            loss = pair[0][0] if isinstance(pair[0], tuple) else pair[0]
            chex.assert_shape(loss, shape, custom_message=name)
            _close(pair, name, rtol=2e-6, atol=1e-6)


def test_default_axis_adds_no_operation():
    """axis=-1 (or the last axis by number) moves nothing: the traced program has no transpose
    and is the one without `axis`, so the tuned default is unchanged. axis=0 transposes."""
    x, y = XC.astype(np.float32), np.full(XC.shape, 0.25, np.float32)
    lab = np.zeros(XC.shape[:-1], np.int32)
    for f, labels in [(SCE, y), (ICE, lab), (MFL, y), (IFL, lab), (POLY, y)]:
        plain = str(jax.make_jaxpr(f)(x, labels))
        for axis in (-1, 2):
            text = str(jax.make_jaxpr(P_(f, axis=axis))(x, labels))
            assert "transpose" not in text and text == plain, (f.__name__, axis)
    assert "transpose" in str(jax.make_jaxpr(P_(SCE, axis=0))(x, y))


def test_bf16_computed_in_float32():
    got, want = results()["bf16"]
    for g in got:
        assert g.dtype == np.float32
    _close((got, want), "bf16", rtol=1e-6)


# ------------------------------------------------------------------------------------ where=


def test_integer_where_matches_optax():
    """A mask of labels' shape leaves positions out (0, zero gradient); one of logits' shape leaves
    classes out of the softmax; as optax's `where`, also with the class axis first. Garbage
    (NaN, +inf) where a mask leaves out is never looked at."""
    out = results()
    for name in ("positions", "classes", "classes axis=0"):
        _close(out["where " + name], name, rtol=1e-13, atol=1e-15)
    loss, g = out["where positions"][0]
    np.testing.assert_array_equal(loss[~POS], 0.0)
    np.testing.assert_array_equal(g[~POS], 0.0)
    loss, g = out["where classes"][0]
    assert loss[2] == 0.0 and (g[2] == 0).all() and (g[~CLS] == 0).all()
    _close((out["garbage"], (out["where positions"][0], out["where classes"][0])), "garbage")


def test_integer_class_where_with_smoothing_weights_and_ignore_index():
    """With classes left out, smoothing spreads over the C' kept ones: equal to the probability-
    label loss on one-hot labels with the same mask (itself tested against optax and torch);
    ignore_index combines with it."""
    ours, ref = results()["class where smoothing"]
    _close((ours, ref), "smoothing", rtol=1e-13, atol=1e-15)
    assert ours[0][3] == 0.0 and (ours[1][3] == 0).all()


def test_integer_label_on_a_left_out_class_is_nan():
    """optax returns logsumexp(kept logits) - logit of the label, which can be negative; jaxloss
    gives NaN there (`checked` raises), like any other label outside the classes."""
    ours, theirs = results()["label left out"]
    assert np.isnan(ours[0]) and np.isfinite(ours[1:]).all() and np.isfinite(theirs[0])
    np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-13)
    off = np.ones(X.shape, bool)
    off[0, LAB[0]] = False
    with pytest.raises(checkify.JaxRuntimeError, match=r"`labels` has a class that `where` leaves"):
        jaxloss.checked(jax.jit(lambda x: ICE(x, LAB.astype(np.int32), where=off)))(
            X.astype(np.float32)
        )


def test_softmax_cross_entropy_position_where_matches_optax():
    ours, theirs = results()["sce positions"]
    _close((ours, theirs), "sce positions", rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(ours[1][~POS], 0.0)


# ------------------------------------------------------------------------------------ static errors

XC32 = XC.astype(np.float32)
YC32 = np.full(XC.shape, 0.25, np.float32)
LABC = np.zeros((3, 5), np.int32)
STATIC_ERRORS = [
    (SCE, (XC32, YC32), {"axis": 1.0}, TypeError, r"softmax_cross_entropy: `axis` must be an int"),
    (ICE, (XC32, LABC), {"axis": True}, TypeError, r"`axis` must be an integer; got True"),
    (MFL, (XC32, YC32), {"axis": (0, 1)}, TypeError, r"softmax_focal_loss: `axis` must be an int"),
    (IFL, (XC32, LABC), {"axis": 3}, ValueError, r"`axis` must lie in \[-3, 2\] for logits of sh"),
    (POLY, (XC32, YC32), {"axis": -4}, ValueError, r"poly_loss_cross_entropy: `axis` must lie in"),
    (
        ICE,
        (XC32, np.zeros((4, 3), np.int32)),
        {"axis": 1},
        ValueError,
        r"`labels` must have logits' shape without its class axis 1, \(4, 5\) .*got \(4, 3\)",
    ),
    (
        SCE,
        (XC32, YC32[:, :, :2]),
        {"axis": 0},
        ValueError,
        r"`labels` must have the same shape as `logits` \(4, 3, 5\); got \(4, 3, 2\)",
    ),
    (
        ICE,
        (XC32, LABC),
        {"axis": 0, "where": np.ones((4, 3), bool)},
        ValueError,
        r"`where` must have shape \(3, 5\) \(labels': positions\) or \(4, 3, 5\)",
    ),
    (ICE, (XC32, LABC), {"axis": 0, "where": np.ones((3, 5))}, TypeError, r"boolean mask"),
    (
        POLY,
        (XC32, YC32),
        {"axis": 1, "where": np.ones((4, 5, 3), bool)},
        ValueError,
        r"`where` must have shape \(4, 3, 5\) \(logits': classes\) or \(4, 5\)",
    ),
    (SCE, (XC32, YC32), {"where": np.ones((4, 3), np.int32)}, TypeError, r"boolean mask"),
    (POLY, (XC32, YC32), {"epsilon": -2.0}, ValueError, r"`epsilon` must lie in \[-1, inf\]"),
    (POLY, (XC32, YC32), {"epsilon": np.ones(2)}, ValueError, r"`epsilon` must be a scalar"),
    (POLY, (np.zeros(3, np.int32), YC32[0, 0, :3]), {}, TypeError, r"`logits` must be a floating"),
]


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    fn, args, kwargs, exc, match = STATIC_ERRORS[case]
    # Shapes, dtypes and axes fail at trace time under jit too; value ranges need concrete values.
    assert_raises_eager_and_jitted(fn, args, kwargs, exc, match, jitted="must lie" not in match)
