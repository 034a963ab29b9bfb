"""Classification losses against torch/torchvision constants, NumPy float64 references of their
formulas, and optax where the maths is identical; extremes, gradients, static and run-time
errors."""

import functools

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
from static_errors import assert_raises_eager_and_jitted

import jaxloss

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 5)) * 3  # logits, float64
P = RNG.dirichlet(np.ones(5), size=6)  # probability labels
Y = RNG.uniform(size=(6, 5))  # soft binary labels
Y[:, 0] = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]  # hard labels too
LAB = RNG.integers(0, 5, size=6)
W = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
INF = np.inf


# ------------------------------------------------------------------ NumPy float64 references


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_bce(x, y, pw=1.0, eps=0.0):
    """torch.nn.functional.binary_cross_entropy_with_logits(pos_weight=) on smoothed labels."""
    y = y * (1 - eps) + eps / 2
    return -(pw * y * np_log_sigmoid(x) + (1 - y) * np_log_sigmoid(-x))


def np_log_softmax(x):
    # log1p of the non-max terms: log(1 + 1e-13) in float64 would lose 3 digits of a small loss.
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    first_max = np.arange(x.shape[-1]) == np.argmax(x, -1)[..., None]
    return x - m - np.log1p(np.where(first_max, 0.0, e).sum(-1, keepdims=True))


def np_softmax_ce(x, y, w=None, eps=0.0):
    """torch.nn.functional.cross_entropy with probability targets, weight= and label_smoothing=."""
    w = np.ones(x.shape[-1]) if w is None else w
    y = (1 - eps) * y + eps / x.shape[-1]
    return -(w * y * np_log_softmax(x)).sum(-1)


def np_ce_int(x, labels, w=None, ignore_index=-100, eps=0.0):
    """torch's cross_entropy_loss_label_smoothing (aten/src/ATen/native/LossNLL.cpp), 'none':
    (1 - eps) * nll_loss(log_softmax, weight) + eps / C * (-(log_softmax * weight).sum(C)),
    both zeroed where target == ignore_index."""
    num = x.shape[-1]
    w = np.ones(num) if w is None else w
    logp = np_log_softmax(x)
    ign = labels == ignore_index
    safe = np.where(ign, 0, labels)
    nll = np.where(ign, 0.0, -w[safe] * np.take_along_axis(logp, safe[..., None], -1)[..., 0])
    smooth = np.where(ign, 0.0, -(logp * w).sum(-1))
    return (1 - eps) * nll + eps / num * smooth


def np_tv_focal(x, y, alpha=-1.0, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss (0.28.0), line for line."""
    p = 1 / (1 + np.exp(-x))
    ce = np_bce(x, y)
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def np_softmax_focal(x, y, alpha=1.0, gamma=2.0):
    """-sum_c alpha_c y_c (1 - p_c)**gamma log p_c."""
    logp = np_log_softmax(x)
    p = np.exp(logp)
    one_minus_p = (p[..., None, :] * (1 - np.eye(x.shape[-1]))).sum(-1)  # sum_{k != c} p_k
    return -(alpha * y * one_minus_p**gamma * logp).sum(-1)


# ------------------------------------------------------------------ torch / torchvision constants
# Computed with /work/refvenv (torch 2.13.0+cpu, float64) on the inputs below; torchvision 0.28.0's
# ops/focal_loss.py was run from its wheel's source (its C ops do not load on CPU torch).
XT = np.array(
    [
        [1.5, -0.3, 0.2, 2.0, -1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0, -2.0, 0.5, 1.0, 4.0],
        [-1.2, 0.7, 2.2, -0.4, 0.9],
    ]
)
LT = np.array([0, 3, 1, 4])
WT = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
# F.cross_entropy(XT, LT, reduction='none', ...)
CE_INT_PLAIN = [1.15330151137526, 1.6094379124341003, 6.371799835508308, 1.7720694947236288]
CE_INT_WEIGHT = [0.57665075568763, 0.40235947810852507, 6.371799835508308, 2.658104242085443]
CE_INT_SMOOTH = [1.2553015113752601, 1.6094379124341003, 6.041799835508308, 1.8180694947236289]
# labels [0, 3, -100, 4], weight=WT, ignore_index=-100, label_smoothing=0.1
CE_INT_ALL = [0.8005823388132693, 0.5311145111032531, 0.0, 2.5578611148228796]
# labels LT, weight=WT, ignore_index=3 (a real class), label_smoothing=0.1
CE_INT_IGNORE_CLASS = [0.8005823388132693, 0.0, 6.05865883468585, 2.5578611148228796]
# F.cross_entropy([[2, 0, -inf]], [0]) without and with label_smoothing=0.1
CE_INT_NEGINF, CE_INT_NEGINF_SMOOTH = 0.1269280110429726, INF
# XT.reshape(2, 2, 5).permute(0, 2, 1) (class axis 1), labels [[0, 3], [1, 4]], weight=WT, ls=0.1
CE_INT_SPATIAL = [0.8005823388132695, 0.5311145111032531, 6.0586588346858505, 2.5578611148228796]

XP = np.array([[0.5, -1.0, 2.0, 0.1], [1.0, 1.0, -3.0, 0.0], [-0.5, 0.3, 0.3, 2.5]])
PP = np.array([[0.7, 0.1, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 1.0, 0.0]])
WP = np.array([1.0, 0.5, 2.0, 3.0])
# F.cross_entropy(XP, PP, reduction='none'), and with weight=WP, label_smoothing=0.2
CE_PROB_PLAIN = [1.7024059381034307, 2.119700080626986, 2.4401134526535073]
CE_PROB_ALL = [1.8337453929387713, 4.163262631018852, 4.407218396358002]

XB = np.array([[0.5, -2.0, 3.0], [-0.1, 8.0, -6.0]])
YB = np.array([[1.0, 0.0, 0.3], [0.5, 1.0, 0.0]])
PWB = np.array([2.0, 0.5, 3.0])
# F.binary_cross_entropy_with_logits(XB, YB, reduction='none'), and with pos_weight=PWB
BCE_PLAIN = [0.4740769841801067, 0.1269280110429727, 2.1485873515737417, 0.6943966600735708,
             0.00033540637289576885, 0.0024756851377301103]  # fmt: skip
BCE_POSW = [0.9481539683602134, 0.1269280110429727, 2.177739762517987, 1.0665949901103562,
            0.00016770318644788442, 0.0024756851377301103]  # fmt: skip
# torchvision sigmoid_focal_loss(XB, YB, alpha=0.25, gamma=2), and (alpha=-1, gamma=0.5)
TV_FOCAL_A025_G2 = [0.016893372629375906, 0.001352672126430284, 0.5979106738937995,
                    0.08679958250919635, 9.429925857322207e-12, 1.135200404604343e-08]  # fmt: skip
TV_FOCAL_G05 = [0.2912934651463975, 0.0438228809912045, 1.7731114124736114, 0.4910125871713119,
                6.142151862122256e-06, 0.00012310462670938889]  # fmt: skip
# torchvision sigmoid_focal_loss([100, -100], [1, 0], alpha=-1, gamma=0.5).sum().backward():
# loss [0.0, 0.0], grad [nan, nan] in float32 and in float64.

ICE = jaxloss.softmax_cross_entropy_with_integer_labels
IFL = jaxloss.softmax_focal_loss_with_integer_labels
SCE = jaxloss.softmax_cross_entropy
MFL = jaxloss.softmax_focal_loss
SIG = jaxloss.sigmoid_binary_cross_entropy
SFL = jaxloss.sigmoid_focal_loss
P_ = functools.partial

# Each test compiles few programs: checks are bundled into one jitted function where they can be.
TORCH_CASES = {
    "ce_int_plain": (P_(ICE), (XT, LT), CE_INT_PLAIN),
    "ce_int_weight": (P_(ICE, class_weights=WT), (XT, LT), CE_INT_WEIGHT),
    "ce_int_smooth": (P_(ICE, label_smoothing=0.1), (XT, LT), CE_INT_SMOOTH),
    "ce_int_all": (
        P_(ICE, class_weights=WT, ignore_index=-100, label_smoothing=0.1),
        (XT, np.array([0, 3, -100, 4])),
        CE_INT_ALL,
    ),
    "ce_int_ignore_class": (
        P_(ICE, class_weights=WT, ignore_index=3, label_smoothing=0.1),
        (XT, LT),
        CE_INT_IGNORE_CLASS,
    ),
    "ce_int_spatial": (
        P_(ICE, class_weights=WT, label_smoothing=0.1),
        (XT.reshape(2, 2, 5), LT.reshape(2, 2)),
        np.reshape(CE_INT_SPATIAL, (2, 2)),
    ),
    "ce_int_neginf": (P_(ICE), (np.array([2.0, 0.0, -INF]), np.array(0)), CE_INT_NEGINF),
    "ce_int_neginf_smooth": (
        P_(ICE, label_smoothing=0.1),
        (np.array([2.0, 0.0, -INF]), np.array(0)),
        CE_INT_NEGINF_SMOOTH,
    ),
    "ce_prob_plain": (P_(SCE), (XP, PP), CE_PROB_PLAIN),
    "ce_prob_all": (P_(SCE, class_weights=WP, label_smoothing=0.2), (XP, PP), CE_PROB_ALL),
    "bce_plain": (P_(SIG), (XB, YB), np.reshape(BCE_PLAIN, (2, 3))),
    "bce_posw": (P_(SIG, pos_weight=PWB), (XB, YB), np.reshape(BCE_POSW, (2, 3))),
    "tv_focal_a025_g2": (
        P_(SFL, alpha=0.25, gamma=2.0),
        (XB, YB),
        np.reshape(TV_FOCAL_A025_G2, (2, 3)),
    ),
    "tv_focal_g05": (P_(SFL, gamma=0.5), (XB, YB), np.reshape(TV_FOCAL_G05, (2, 3))),
}


@pytest.mark.x64
def test_matches_torch_constants():
    # Jitted here; every loss also runs un-jitted in test_matches_numpy_sample_batch_vmap.
    got = jax.jit(lambda: {k: fn(*args) for k, (fn, args, _) in TORCH_CASES.items()})()
    for name, (_, _, want) in TORCH_CASES.items():
        chex.assert_shape(got[name], np.shape(want))
        np.testing.assert_allclose(got[name], want, rtol=1e-13, atol=1e-15, err_msg=name)


def test_numpy_references_reproduce_torch():
    """The NumPy formulas used below for random inputs give the torch constants."""
    np.testing.assert_allclose(np_ce_int(XT, LT), CE_INT_PLAIN, rtol=1e-13)
    np.testing.assert_allclose(
        np_ce_int(XT, np.array([0, 3, -100, 4]), WT, eps=0.1), CE_INT_ALL, rtol=1e-13
    )
    np.testing.assert_allclose(np_ce_int(XT, LT, WT, 3, 0.1), CE_INT_IGNORE_CLASS, rtol=1e-13)
    np.testing.assert_allclose(np_softmax_ce(XP, PP, WP, 0.2), CE_PROB_ALL, rtol=1e-13)
    np.testing.assert_allclose(np_bce(XB, YB, PWB).ravel(), BCE_POSW, rtol=1e-12)
    np.testing.assert_allclose(np_tv_focal(XB, YB, 0.25, 2.0).ravel(), TV_FOCAL_A025_G2, rtol=1e-12)
    np.testing.assert_allclose(np_tv_focal(XB, YB, -1, 0.5).ravel(), TV_FOCAL_G05, rtol=1e-12)


# ------------------------------------------------------------------ optax, where identical

OPTAX_PAIRS = {
    "bce": (SIG, optax.sigmoid_binary_cross_entropy, (X, Y)),
    "softmax_ce": (SCE, optax.softmax_cross_entropy, (X, P)),
    "int_ce": (ICE, optax.softmax_cross_entropy_with_integer_labels, (X, LAB)),
    "smooth_labels": (jaxloss.smooth_labels, optax.smooth_labels, (P, 0.3)),
    "focal_g05": (P_(SFL, gamma=0.5), P_(optax.sigmoid_focal_loss, gamma=0.5), (X, Y)),
    "focal_g2_a025": (
        P_(SFL, gamma=2.0, alpha=0.25),
        P_(optax.sigmoid_focal_loss, gamma=2.0, alpha=0.25),
        (X, Y),
    ),
    "focal_g3_a09": (
        P_(SFL, gamma=3.0, alpha=0.9),
        P_(optax.sigmoid_focal_loss, gamma=3.0, alpha=0.9),
        (X, Y),
    ),
}


@pytest.mark.x64
def test_matches_optax():
    got = jax.jit(lambda: {k: (f(*a), g(*a)) for k, (f, g, a) in OPTAX_PAIRS.items()})()
    for name, (ours, theirs) in got.items():
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, err_msg=name)


@pytest.mark.x64
def test_where_matches_optax():
    """`where` excludes classes from the softmax and the sum, as optax's `where` does."""
    mask = RNG.uniform(size=X.shape) > 0.4
    mask[:, 1] = True

    @jax.jit
    def run(x, mask):
        def ours(x, eps=0.0):
            return SCE(x, P, where=mask, label_smoothing=eps)

        return {
            "ours": [ours(x, eps) for eps in (0.0, 0.3)],
            "optax": [
                optax.softmax_cross_entropy(x, optax.smooth_labels(P, eps, where=mask), where=mask)
                for eps in (0.0, 0.3)
            ],
            "grad": jax.grad(lambda x: ours(x).sum())(x),
        }

    out = jax.device_get(run(X, mask))  # NumPy: indexing a jax array compiles op by op
    chex.assert_trees_all_close(out["ours"], out["optax"], rtol=1e-14)
    # A fully masked position gives 0 with a zero gradient (optax: 0 too).
    mask[2] = False
    out = jax.device_get(run(X, mask))
    np.testing.assert_array_equal(out["ours"][0][2], 0.0)
    chex.assert_trees_all_close(out["ours"], out["optax"], rtol=1e-14)
    chex.assert_tree_all_finite(out["grad"])
    np.testing.assert_array_equal(out["grad"][2], 0.0)
    np.testing.assert_array_equal(out["grad"][~mask], 0.0)
    # Garbage (NaN) in masked-out classes is never looked at.
    garbage = jax.device_get(run(np.where(mask, X, np.nan), mask))
    chex.assert_trees_all_close((garbage["ours"], garbage["grad"]), (out["ours"], out["grad"]))


# ------------------------------------------------------------------ NumPy references, random inputs

A_VEC = np.array([0.25, 1.0, 0.5, 2.0, 0.75])
CASES = {  # name: (loss, (logits, labels), its NumPy float64 reference as a function of logits)
    "bce": (P_(SIG), (X, Y), lambda x: np_bce(x, Y)),
    "bce_posw_smooth": (
        P_(SIG, pos_weight=W, label_smoothing=0.2),
        (X, Y),
        lambda x: np_bce(x, Y, W, 0.2),
    ),
    "sigmoid_focal": (
        P_(SFL, alpha=0.3, gamma=1.5),
        (X, Y),
        lambda x: np_tv_focal(x, Y, 0.3, 1.5),
    ),
    "softmax_ce": (
        P_(SCE, class_weights=W, label_smoothing=0.15),
        (X, P),
        lambda x: np_softmax_ce(x, P, W, 0.15),
    ),
    "int_ce": (
        P_(ICE, class_weights=W, label_smoothing=0.15),
        (X, LAB),
        lambda x: np_ce_int(x, LAB, W, eps=0.15),
    ),
    "softmax_focal": (
        P_(MFL, alpha=A_VEC, gamma=0.7),
        (X, P),
        lambda x: np_softmax_focal(x, P, A_VEC, 0.7),
    ),
    "int_focal": (
        P_(IFL, alpha=A_VEC, gamma=2.5),
        (X, LAB),
        lambda x: np_softmax_focal(x, np.eye(5)[LAB], A_VEC, 2.5),
    ),
}


def np_grad(f, x, h=1e-6):
    """Central differences of a NumPy float64 function's sum: ~1e-9 accurate, far below float32."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e).sum() - f(x - e).sum()) / (2 * h)
    return g


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_value_and_gradient(name):
    """JAX's default mode, as users run it: float32 value and gradient against float64 NumPy."""
    f, (x, y), ref = CASES[name]
    x32 = x.astype(np.float32)
    loss, grad = jax.jit(jax.value_and_grad(lambda x: f(x, y).sum()))(x32)
    assert loss.dtype == grad.dtype == jnp.float32
    x64 = x32.astype(np.float64)  # the reference sees the same rounded inputs
    np.testing.assert_allclose(loss, ref(x64).sum(), rtol=2e-6)
    np.testing.assert_allclose(grad, np_grad(ref, x64), rtol=1e-4, atol=2e-6)


@pytest.mark.x64
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_sample_batch_vmap(name):
    f, (x, y), ref = CASES[name]
    want = ref(x)
    # Un-jitted (op by op).
    got = f(x, y)
    chex.assert_shape(got, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # Jitted: the batch, one sample, the batch under vmap, and float32 in -> float32 out.
    f32 = lambda a: a.astype(np.float32) if a.dtype.kind == "f" else a  # noqa: E731
    elementwise = name in ("bce", "sigmoid_focal")  # a scalar logit is a sample too
    batch, sample, vmapped, got32, scalar = jax.jit(
        lambda x, y, x32, y32: (
            f(x, y),
            f(x[1], y[1]),
            jax.vmap(f)(x, y),
            f(x32, y32),
            f(x[1, 2], y[1, 2]) if elementwise else None,
        )
    )(x, y, f32(x), f32(y))
    np.testing.assert_allclose(batch, want, rtol=1e-12, atol=1e-14)
    chex.assert_shape(sample, want.shape[1:])
    np.testing.assert_allclose(sample, want[1], rtol=1e-12)
    if elementwise:
        chex.assert_shape(scalar, ())
        np.testing.assert_allclose(scalar, want[1, 2], rtol=1e-12)
    chex.assert_trees_all_close(vmapped, batch, rtol=1e-14)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, want, rtol=2e-5, atol=1e-6)


def test_gamma_zero_is_cross_entropy():
    # The focal losses share the cross entropy's maths, not its code: equal up to float32
    # rounding (the sigmoid pair exactly, limits included). One jitted program (the eager path of
    # every loss is covered by test_matches_numpy_sample_batch_vmap); the inputs are closed over,
    # so they stay concrete.
    x = X.copy()
    x[0, 2], x[1, 0], x[2, 0] = -INF, INF, -INF  # the limits agree too
    lab = LAB.copy()
    lab[2] = -1

    @jax.jit
    def pairs():
        return [
            (SFL(X, Y, gamma=0.0), SIG(X, Y)),
            (SFL(x, Y, gamma=0.0), SIG(x, Y)),
            (MFL(X, P, gamma=0.0), SCE(X, P)),
            (MFL(X, P, gamma=0.0, alpha=W), SCE(X, P, class_weights=W)),
            (IFL(X, lab, gamma=0.0, ignore_index=-1), ICE(X, lab, ignore_index=-1)),
            (
                IFL(X, lab, gamma=0.0, alpha=W, ignore_index=-1),
                ICE(X, lab, class_weights=W, ignore_index=-1),
            ),
        ]

    (exact, exact_limits, *close_pairs) = jax.device_get(pairs())
    np.testing.assert_array_equal(*exact)
    np.testing.assert_array_equal(*exact_limits)
    for focal, cross_entropy in close_pairs:
        np.testing.assert_allclose(focal, cross_entropy, rtol=1e-6)


@pytest.mark.x64
def test_smooth_labels():
    @jax.jit
    def run(p, p16):
        return (
            jaxloss.smooth_labels(np.array([0.0, 1.0, 0.0, 0.0]), 0.1),
            SCE(X, p, label_smoothing=0.3),
            SCE(X, jaxloss.smooth_labels(p, 0.3)),
            jaxloss.smooth_labels(p16, 0.1),
        )

    one, ce_smoothed, ce_of_smoothed, half = run(P, P.astype(jnp.bfloat16))
    np.testing.assert_allclose(one, [0.025, 0.925, 0.025, 0.025], rtol=1e-15)
    # label_smoothing in the cross entropy is smooth_labels on the labels.
    chex.assert_trees_all_close(ce_smoothed, ce_of_smoothed, rtol=1e-14)
    assert half.dtype == jnp.float32


# ------------------------------------------------------------------ gradients


def all_losses(x, y, p, w, lab):
    return (
        SIG(x, y, pos_weight=w, label_smoothing=0.1),
        SFL(x, y, alpha=0.25, gamma=0.5),
        SFL(x, y, gamma=2.0),
        SCE(x, p, class_weights=w, label_smoothing=0.1),
        ICE(x, lab, class_weights=w, label_smoothing=0.1),
        MFL(x, p, alpha=w, gamma=0.5),
        IFL(x, lab, gamma=1.5),
    )


@pytest.mark.x64
def test_check_grads_float64():
    # The module's NumPy arrays go in as jax arrays: JAX 0.10 caches the device copy of a NumPy
    # constant captured under x64 and would hand the float64 copy to later float32 programs.
    y, p, w, lab = map(jnp.asarray, (Y, P, W, LAB))
    check_grads(jax.jit(lambda x: all_losses(x, y, p, w, lab)), (X,), order=1, modes=("rev",))


@pytest.mark.x64
def test_check_grads_labels_and_hyperparameters():
    """Hand-written JVPs: soft-label, pos_weight, gamma and alpha derivatives too, forward and
    reverse."""
    y = RNG.uniform(0.1, 0.9, size=X.shape)
    check_grads(
        jax.jit(
            lambda x, y, w, g, a: (
                SIG(x, y, pos_weight=w),
                SFL(x, y, gamma=g),
                SFL(x, y, gamma=2.0, alpha=a),
                SFL(x, y, gamma=g, alpha=a),
            )
        ),
        (X, y, W, 1.5, 0.3),
        order=1,
        modes=("fwd", "rev"),
    )


@pytest.mark.x64
def test_derivatives_at_hard_labels_and_zero_logits():
    # d/dy of the focal loss at y = 1 exactly (autodiff of log1p(-y) would give 0 * inf there)
    # against a one-sided difference.
    f = lambda y: SFL(X, y, gamma=0.5)  # noqa: E731
    y = np.ones(X.shape)
    h = 1e-7
    run = jax.jit(lambda y: (jax.grad(lambda y: f(y).sum())(y), (f(y) - f(y - h)) / h))
    g, fd = run(y)
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    # Hessians (Taylor checks) at logits exactly 0, as a zero-initialised model gives them.
    h_sig, h_ice = jax.jit(
        lambda z: (
            jax.hessian(lambda x: SIG(x, np.ones(3)).sum())(z),
            jax.hessian(ICE)(z, np.array(0)),  # ties in the softmax
        )
    )(np.zeros(3))
    np.testing.assert_allclose(h_sig, np.eye(3) / 4, rtol=1e-15)
    np.testing.assert_allclose(h_ice, np.eye(3) / 3 - 1 / 9, rtol=1e-14)  # diag(p) - p p^T


# ------------------------------------------------------------------ extremes


def np_focal_grad_y1(x, gamma):
    """d/dx of softplus(-x) sigmoid(-x)**gamma (hard label 1), differentiated by hand."""
    s_neg, s_pos = np.exp(np_log_sigmoid(-x)), np.exp(np_log_sigmoid(x))
    return -(s_neg**gamma) * (s_neg + gamma * np.logaddexp(0.0, -x) * s_pos)


@jax.jit
def _sigmoid_values_and_grads(x, y):
    grad = lambda f: jax.grad(lambda x: f(x, y).sum())(x)  # noqa: E731
    return {
        "bce": (SIG(x, y), grad(SIG)),
        "focal": (SFL(x, y), grad(SFL)),
        "focal_g05": (SFL(x, y, gamma=0.5), grad(P_(SFL, gamma=0.5))),
        "optax_focal_grad": grad(optax.sigmoid_focal_loss),
    }


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.x64), np.float32])
def test_sigmoid_limits_at_infinity(dtype):
    x = np.array([INF, -INF, INF, -INF, 1e4, -1e4, INF], dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5], dtype)
    want = np.array([0.0, 0.0, INF, INF, 0.0, 1e4, INF])
    exact = np.array([0, 1, 2, 3, 6])
    out = jax.device_get(_sigmoid_values_and_grads(x, y))  # NumPy: indexing compiles op by op
    for name in ("bce", "focal", "focal_g05"):
        loss, g = out[name]
        assert loss.dtype == dtype
        np.testing.assert_array_equal(loss[exact], want[exact], err_msg=name)
        # Gradients finite wherever the loss is: the limit of sigmoid(x) - y style terms.
        np.testing.assert_array_equal(g[np.isfinite(want)], [0.0, 0.0, 0.0, -1.0], err_msg=name)
    np.testing.assert_allclose(out["bce"][0][4:6], [0.0, 1e4])
    assert np.isnan(out["optax_focal_grad"][0])  # optax: NaN at x = +inf, y = 1


@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.x64), np.float32])
def test_sigmoid_focal_gradient_finite_where_torchvision_is_nan(dtype):
    """torchvision gives NaN here (constant above): d/dx (1 - p_t)**0.5 at 1 - p_t = 0."""
    x = np.array([100.0, -100.0, 30.0, -30.0, 1e4, -1e4, 0.5], dtype)
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype)
    g = _sigmoid_values_and_grads(x, y)["focal_g05"][1]
    chex.assert_tree_all_finite(g)
    sign = np.where(y == 1, 1.0, -1.0)  # label 0 at x is label 1 at -x
    want = sign * np_focal_grad_y1(sign * x.astype(np.float64), 0.5)
    # In float32 the gradient at +-100 (1e-65) underflows to 0.
    tol = {"rtol": 1e-12, "atol": 0} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-38}
    np.testing.assert_allclose(g, want, **tol)


@pytest.mark.x64
def test_softmax_negative_infinite_logit():
    x, p = np.array([2.0, 0.0, -INF]), np.array([1.0, 0.0, 0.0])
    w = np.array([1.0, 1.0, 0.0])

    @jax.jit
    def run(x):
        grad = lambda f: jax.grad(lambda x: f(x, p))(x)  # noqa: E731
        return {
            "ce": (SCE(x, p), grad(SCE)),
            "focal": (MFL(x, p, gamma=0.0), grad(P_(MFL, gamma=0.0))),
            "focal_g05": (MFL(x, p, gamma=0.5), grad(P_(MFL, gamma=0.5))),
            "int": (ICE(x, 0), grad(lambda x, p: ICE(x, 0))),
            "optax": optax.softmax_cross_entropy(x, p),
            "label_on_neginf": SCE(x, np.array([0.0, 0.0, 1.0])),
            "smoothed": SCE(x, p, label_smoothing=0.1),
            "zero_weight": SCE(x, p, class_weights=w, label_smoothing=0.1),
        }

    out = run(x)
    assert np.isnan(out["optax"])  # optax: 0 * -inf
    p1 = 1 / (1 + np.exp(2.0))
    for name in ("ce", "focal", "int"):
        np.testing.assert_allclose(out[name][0], np.log1p(np.exp(-2.0)), rtol=1e-15)
        np.testing.assert_allclose(out[name][1], [-p1, p1, 0.0], rtol=1e-14)
    np.testing.assert_allclose(out["focal_g05"][0], np_softmax_focal(x[:2], p[:2], 1, 0.5))
    chex.assert_tree_all_finite(out["focal_g05"][1])
    assert out["label_on_neginf"] == INF
    # With smoothing the -inf class has label eps/C > 0: the true loss is +inf...
    assert out["smoothed"] == INF
    # ...unless a zero class weight removes the class.
    y = 0.9 * p + 0.1 / 3
    np.testing.assert_allclose(out["zero_weight"], -(y[:2] * np_log_softmax(x[:2])).sum())


def direct_softmax_focal(x, y, gamma):
    """The formula written directly in jnp: fine in float64 at moderate logits, NaN gradient for
    gamma < 1 once 1 - p rounds to 0."""
    logp = jax.nn.log_softmax(x)
    return -(y * (1 - jnp.exp(logp)) ** gamma * logp).sum(-1)


@pytest.mark.x64
def test_softmax_focal_saturated():
    """1 - p_c rounds to 0 in float32 at these logits; log(1 - p_c) is exact, so the loss is
    right and the gradient finite, for gamma < 1 too."""
    x = np.array([[30.0, 0.0, -2.0], [100.0, 0.0, 0.0], [1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]])
    lab = np.array([0, 0, 0, 1])
    onehot = np.eye(3)[lab]
    x12 = np.array([[12.0, 0.0, -2.0]])  # 1 - p = 7e-6: the direct formula is accurate in f64

    @jax.jit
    def run(gamma):
        def value_and_grad(f, x, y, g):
            return f(x, y, g), jax.grad(lambda x: f(x, y, g).sum())(x)

        x32, g32 = x.astype(np.float32), gamma.astype(np.float32)
        return {
            "int": value_and_grad(lambda x, y, g: IFL(x, y, gamma=g), x32, lab, g32),
            "prob": value_and_grad(lambda x, y, g: MFL(x, y, gamma=g), x32, onehot, g32),
            "direct32": value_and_grad(direct_softmax_focal, x32, onehot, g32),
            "ours64": value_and_grad(lambda x, y, g: MFL(x, y, gamma=g), x12, onehot[:1], gamma),
            "direct64": value_and_grad(direct_softmax_focal, x12, onehot[:1], gamma),
        }

    for gamma in (0.0, 0.3, 2.0):
        out = jax.device_get(run(np.float64(gamma)))
        want = np_softmax_focal(x, onehot, gamma=gamma)  # float64; 1 - p is 9e-14 in row 0
        for name in ("int", "prob"):
            # (a loss of 1e-13 rounds to 0 in float32, as in optax and torch)
            np.testing.assert_allclose(out[name][0], want, rtol=1e-5, atol=1e-12, err_msg=name)
            chex.assert_tree_all_finite(out[name][1])
        np.testing.assert_allclose(out["ours64"][1], out["direct64"][1], rtol=1e-9)
        if gamma == 0.3:  # the direct formula's gradient is NaN where ours is finite
            assert np.isnan(out["direct32"][1][1]).any()


def test_large_logits():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], np.float32)
    lab = np.array([1, 2])

    @jax.jit
    def run(x):
        fns = [
            lambda x: ICE(x, lab, label_smoothing=0.1),
            lambda x: SCE(x, np.eye(3, dtype=np.float32)[lab]),
            lambda x: IFL(x, lab, gamma=0.5),
            lambda x: MFL(x, np.eye(3, dtype=np.float32)[lab], gamma=0.5),
        ]
        return fns[0](x), [jax.grad(lambda x, f=f: f(x).sum())(x) for f in fns]

    loss, grads = run(x)
    np.testing.assert_allclose(loss, np_ce_int(x.astype(np.float64), lab, eps=0.1), rtol=1e-6)
    chex.assert_tree_all_finite(grads)


def test_half_precision_computed_in_float32():
    def losses(x, y, p):
        return [
            SIG(x, y),
            SFL(x, y, gamma=0.5),
            SCE(x, p, label_smoothing=0.1),
            MFL(x, p),
            ICE(x, LAB, class_weights=W),
            IFL(x, LAB, alpha=0.5),
        ]

    inputs = {}
    for half in (jnp.float16, jnp.bfloat16):
        args = tuple(a.astype(half) for a in (X, Y, P))
        # The same numbers in float32, exactly.
        inputs[half.__name__] = (args, tuple(np.asarray(a, np.float32) for a in args))
    # One program for both half types and their float32 twins.
    run = jax.jit(lambda inputs: {k: (losses(*h), losses(*f)) for k, (h, f) in inputs.items()})
    for got, want in run(inputs).values():
        for g in got:
            assert g.dtype == jnp.float32
        chex.assert_trees_all_close(got, want, rtol=1e-6)


def test_ignored_positions_give_zero_and_zero_gradient():
    x = X.copy()
    x[1] = [np.nan, INF, -INF, 0.0, 1.0]  # an ignored row may hold anything
    lab = np.array([0, -100, -100, 3, 1, 2])
    kept = np.array([0, 3, 4, 5])

    @jax.jit
    def run(x, lab):
        out = {}
        for name, fn in [("ce", P_(ICE, label_smoothing=0.2)), ("focal", P_(IFL, gamma=0.5))]:
            f = P_(fn, ignore_index=-100)
            out[name] = (
                f(x, lab),
                jax.grad(lambda x, f=f: f(x, lab).sum())(x),
                f(x[kept], lab[kept]),
            )
        return out

    for name, (loss, g, loss_kept) in jax.device_get(run(x, lab)).items():
        np.testing.assert_array_equal(loss[1:3], 0.0, err_msg=name)
        chex.assert_tree_all_finite(g)
        np.testing.assert_array_equal(g[1:3], 0.0, err_msg=name)
        np.testing.assert_allclose(loss[kept], loss_kept, rtol=1e-14)
    # All positions ignored: all 0, zero gradient.
    for name, (loss, g, _) in jax.device_get(run(X, np.full(6, -100))).items():
        np.testing.assert_array_equal(loss, 0.0, err_msg=name)
        np.testing.assert_array_equal(g, 0.0, err_msg=name)


@pytest.mark.x64
def test_label_out_of_range_is_nan_where_optax_reads_the_last_class():
    lab = np.array([0, -1, 5, 2, 4, 1])
    ok = np.array([0, 3, 4, 5])
    ce, focal, optax_ce = jax.device_get(
        jax.jit(
            lambda lab: (
                ICE(X, lab),
                IFL(X, lab),
                optax.softmax_cross_entropy_with_integer_labels(X, lab),
            )
        )(lab)
    )
    for got in (ce, focal):
        assert np.isnan(got[1:3]).all() and np.isfinite(got[ok]).all()
    np.testing.assert_allclose(ce[ok], np_ce_int(X[ok], lab[ok]), rtol=1e-14)
    # optax silently reads -1 as class C - 1.
    np.testing.assert_allclose(optax_ce[1], np_ce_int(X[1], np.array(4)), rtol=1e-14)


# ------------------------------------------------------------------ hypothesis: finite gradients


@jax.jit
def _all_grads(x, y, lab, gamma):
    losses = [
        lambda x: SIG(x, y, label_smoothing=0.1),
        lambda x: SFL(x, y, gamma=gamma, alpha=0.25),
        lambda x: SCE(x, y / y.sum(-1, keepdims=True)),
        lambda x: MFL(x, y, gamma=gamma),
        lambda x: ICE(x, lab, label_smoothing=0.1),
        lambda x: IFL(x, lab, gamma=gamma),
    ]
    return [jax.grad(lambda x, f=f: f(x).sum())(x) for f in losses]


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    shape=st.sampled_from([(4,), (2, 2, 3)]),
    log_scale=st.floats(-2, 4),
    gamma=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.5]),
    hard=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gradients_finite_property(shape, log_scale, gamma, hard, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 10.0**log_scale).astype(np.float32)
    y = rng.uniform(size=shape).astype(np.float32)
    if hard:
        y = np.round(y)
    y[..., 0] = np.maximum(y[..., 0], 0.5)  # no all-zero row for the normalised labels
    lab = rng.integers(0, shape[-1], size=shape[:-1]).astype(np.int32)
    for g in _all_grads(x, y, lab, np.float32(gamma)):
        chex.assert_tree_all_finite(g)


def test_no_retrace_across_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, y, lab, gamma):
        return SFL(x, y, gamma=gamma), ICE(x, lab, ignore_index=-1)

    for k in range(3):
        f(X + k, Y, LAB - k % 2, 0.5 * k)


# ------------------------------------------------------------------ static errors

STATIC_ERRORS = [
    (
        SIG,
        (X, Y[:, :3]),
        {},
        ValueError,
        r"sigmoid_binary_cross_entropy: `labels` must have the same shape",
    ),
    (
        SCE,
        (X, P[:, None]),
        {},
        ValueError,
        r"softmax_cross_entropy: `labels` must have the same shape",
    ),
    (SIG, (LAB, LAB), {}, TypeError, r"sigmoid_binary_cross_entropy: `logits` must be a floating"),
    (ICE, (LAB[:, None], LAB), {}, TypeError, r"with_integer_labels: `logits` must be a floating"),
    (
        ICE,
        (X, LAB.astype(float)),
        {},
        TypeError,
        r"with_integer_labels: `labels` must be an integer",
    ),
    (
        IFL,
        (X, LAB.astype(float)),
        {},
        TypeError,
        r"focal_loss_with_integer_labels: `labels` must be an integer",
    ),
    (ICE, (X, LAB[:3]), {}, ValueError, r"`labels` must have shape logits.shape\[:-1\]"),
    (SCE, (X[0, 0], P[0, 0]), {}, ValueError, r"`logits` must have a class axis"),
    (SIG, (X, Y), {"label_smoothing": 1.5}, ValueError, r"`label_smoothing` must lie in \[0, 1\]"),
    (SCE, (X, P), {"label_smoothing": -0.1}, ValueError, r"`label_smoothing` must lie in \[0, 1\]"),
    (
        ICE,
        (X, LAB),
        {"label_smoothing": 2.0},
        ValueError,
        r"`label_smoothing` must lie in \[0, 1\]",
    ),
    (
        SFL,
        (X, Y),
        {"gamma": -1.0},
        ValueError,
        r"sigmoid_focal_loss: `gamma` must lie in \[0, inf\]",
    ),
    (MFL, (X, P), {"gamma": -0.5}, ValueError, r"softmax_focal_loss: `gamma` must lie"),
    (IFL, (X, LAB), {"gamma": -2.0}, ValueError, r"`gamma` must lie in \[0, inf\]"),
    (SFL, (X, Y), {"alpha": 1.5}, ValueError, r"sigmoid_focal_loss: `alpha` must lie in \[0, 1\]"),
    (SFL, (X, Y), {"alpha": -0.25}, ValueError, r"`alpha` must lie in \[0, 1\]"),
    (MFL, (X, P), {"alpha": -W}, ValueError, r"softmax_focal_loss: `alpha` must lie in \[0, inf\]"),
    (SCE, (X, P), {"class_weights": -W}, ValueError, r"`class_weights` must lie in \[0, inf\]"),
    (
        ICE,
        (X, LAB),
        {"class_weights": W - 1},
        ValueError,
        r"`class_weights` must lie in \[0, inf\]",
    ),
    (SIG, (X, Y), {"pos_weight": -1.0}, ValueError, r"`pos_weight` must lie in \[0, inf\]"),
    (SCE, (X, P), {"class_weights": W[:3]}, ValueError, r"`class_weights` must have shape \(5,\)"),
    (ICE, (X, LAB), {"class_weights": 2.0}, ValueError, r"`class_weights` must have shape \(5,\)"),
    (SIG, (X, Y), {"pos_weight": W[:2]}, ValueError, r"`pos_weight` must have shape \(5,\)"),
    (IFL, (X, LAB), {"alpha": W[:4]}, ValueError, r"`alpha` must have shape \(5,\)"),
    (SCE, (X, P), {"where": np.ones(5, bool)}, ValueError, r"`where` must have shape \(6, 5\)"),
    (SCE, (X, P), {"where": np.ones(X.shape)}, TypeError, r"`where` must be a boolean mask"),
    (
        ICE,
        (X, LAB),
        {"ignore_index": 1.0},
        TypeError,
        r"with_integer_labels: `ignore_index` must be an integer; got 1.0",
    ),
    # True is not class 1; 2**40 does not fit the int32 labels it is compared with.
    (ICE, (X, LAB), {"ignore_index": True}, TypeError, r"`ignore_index` must be an integer"),
    (
        IFL,
        (X, LAB),
        {"ignore_index": 2**40},
        ValueError,
        r"focal_loss_with_integer_labels: `ignore_index` must lie in \[-2147483648, 2147483647\]",
    ),
    # Complex input would lose its imaginary part.
    (SIG, (X + 1j, Y), {}, TypeError, r"sigmoid_binary_cross_entropy: `logits` must be real"),
    (SIG, (X, Y + 0j), {}, TypeError, r"sigmoid_binary_cross_entropy: `labels` must be real"),
    (SCE, (X, P + 0j), {}, TypeError, r"softmax_cross_entropy: `labels` must be real"),
    (ICE, (X + 1j, LAB), {}, TypeError, r"with_integer_labels: `logits` must be real"),
    (ICE, (X, LAB + 0j), {}, TypeError, r"with_integer_labels: `labels` must be an integer"),
    (SFL, (X, Y + 1j), {}, TypeError, r"sigmoid_focal_loss: `labels` must be real"),
    (MFL, (X + 1j, P), {}, TypeError, r"softmax_focal_loss: `logits` must be real"),
    # No class at all: a softmax over nothing.
    (SCE, (X[:, :0], P[:, :0]), {}, ValueError, r"softmax_cross_entropy: `logits` must have at"),
    (MFL, (X[:, :0], P[:, :0]), {}, ValueError, r"softmax_focal_loss: `logits` must have at"),
    (ICE, (X[:, :0], LAB), {}, ValueError, r"with_integer_labels: `logits` must have at least"),
    (IFL, (X[:, :0], LAB), {}, ValueError, r"focal_loss_with_integer_labels: `logits` must have"),
    (SFL, (X, Y), {"gamma": np.ones(2)}, ValueError, r"`gamma` must be a scalar"),
    (
        jaxloss.smooth_labels,
        (P, 1.2),
        {},
        ValueError,
        r"smooth_labels: `alpha` must lie in \[0, 1\]",
    ),
    (
        jaxloss.smooth_labels,
        (0.5, 0.1),
        {},
        ValueError,
        r"smooth_labels: `labels` must have a class axis",
    ),
]


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    fn, args, kwargs, exc, match = STATIC_ERRORS[case]
    # Shapes and dtypes fail at trace time under jit too; value ranges need concrete values.
    assert_raises_eager_and_jitted(fn, args, kwargs, exc, match, jitted="must lie" not in match)


# ------------------------------------------------------------------ run-time values and checked


def checked_jit(fn, **kwargs):
    """`jaxloss.checked` of a jitted fresh function: one compilation instead of op by op (a fresh
    lambda, since a jit cache filled without the checks would drop their messages)."""
    return jaxloss.checked(jax.jit(lambda *a: fn(*a, **kwargs)))


def test_probability_labels_out_of_range_give_nan_and_checked_raises():
    y = Y.copy()
    y[2, 1] = 1.5
    p = P.copy()
    p[3, 0] = -0.2
    cases = [
        (SIG, (X, y), (2, 1)),
        (SFL, (X, y), (2, 1)),
        (SCE, (X, p), 3),
        (MFL, (X, p), 3),
        (jaxloss.smooth_labels, (p, 0.1), (3, 0)),
    ]
    results = jax.jit(lambda: [fn(*args) for fn, args, _ in cases])()
    for (fn, args, bad), got in zip(cases, results):
        got = np.asarray(got)
        assert np.isnan(got[bad]) and np.isnan(got).sum() == 1, fn.__name__
        with pytest.raises(checkify.JaxRuntimeError, match=r"`labels` has values outside \[0, 1\]"):
            checked_jit(fn)(*args)


def test_checked_integer_label_out_of_range():
    with pytest.raises(checkify.JaxRuntimeError, match=r"`labels` has values outside \[0, 5\)"):
        checked_jit(ICE)(X, np.array([0, 1, 2, 3, 4, 5]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"focal_loss_with_integer_labels: `labels`"):
        checked_jit(IFL, ignore_index=-100)(X, np.array([0, 1, -1, 3, 4, 0]))
    # ignore_index is not out of range.
    got = np.asarray(checked_jit(ICE, ignore_index=-1)(X, np.array([0, 1, -1, 3, 4, 0])))
    assert got[2] == 0.0


def test_checked_nan_logits():
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.raises(checkify.JaxRuntimeError, match=r"sigmoid_binary_cross_entropy: `logits`"):
        checked_jit(SIG)(x, Y)
    cases = [(SCE, P), (MFL, P), (ICE, LAB), (IFL, LAB)]
    got_all = jax.device_get(jax.jit(lambda x: [f(x, y) for f, y in cases])(x))
    for (fn, labels), got in zip(cases, got_all):
        assert np.isnan(got[0]) and np.isfinite(got[1:]).all()
        with pytest.raises(checkify.JaxRuntimeError, match=r"`logits` contains NaN or \+inf"):
            checked_jit(fn)(x, labels)


def test_traced_hyperparameters_out_of_range_give_nan():
    focal, ce = jax.device_get(
        jax.jit(
            lambda gammas, weights: (
                jax.vmap(lambda g: SFL(X, Y, gamma=g))(gammas),
                jax.vmap(lambda w: SCE(X, P, class_weights=w))(weights),
            )
        )(np.array([-1.0, 0.0, 2.0]), np.stack([W, -W]))
    )
    assert np.isnan(focal[0]).all() and np.isfinite(focal[1:]).all()
    assert np.isfinite(ce[0]).all() and np.isnan(ce[1]).all()
    with pytest.raises(checkify.JaxRuntimeError, match=r"`gamma` must lie in \[0, inf\]"):
        jaxloss.checked(jax.jit(lambda g: MFL(X, P, gamma=g)))(-1.0)


def test_checked_passes_good_input_through():
    got = checked_jit(IFL, alpha=W, gamma=0.5)(X, LAB)
    chex.assert_trees_all_close(got, jax.jit(P_(IFL, alpha=W, gamma=0.5))(X, LAB))


def test_checked_un_jitted_as_the_readme_shows_it():
    p = P.copy()
    p[3, 0] = -0.2
    with pytest.raises(checkify.JaxRuntimeError, match=r"softmax_cross_entropy: `labels` has"):
        jaxloss.checked(SCE)(X, p)


def test_zero_weight_does_not_hide_nan():
    """NaN in, NaN out whatever the weight (torch gives NaN too); a zero weight still takes no
    part of the infinite term of a -inf logit."""
    x = np.array([[np.nan, 0.0, 1.0], [2.0, 0.0, -INF]], np.float32)
    w0 = np.array([0.0, 1.0, 0.0], np.float32)  # zero for both rows' labels
    onehot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    lab = np.array([0, 2])
    out = jax.device_get(
        jax.jit(
            lambda x: {
                "bce": SIG(x[0, :1], np.ones(1, np.float32), pos_weight=0.0),
                "bce_vec": SIG(x[0], np.ones(3, np.float32), pos_weight=w0),
                "sce": SCE(x, onehot, class_weights=w0),
                "ice": ICE(x, lab, class_weights=w0),
                "ice_smooth": ICE(x, lab, class_weights=w0, label_smoothing=0.1),
                "mfl": MFL(x, onehot, alpha=w0),
                "ifl": IFL(x, lab, alpha=w0),
            }
        )(x)
    )
    assert np.isnan(out["bce"]).all() and np.isnan(out["bce_vec"][0])
    for name in ("sce", "ice", "ice_smooth", "mfl", "ifl"):
        assert np.isnan(out[name][0]), name
    # Row 1: the label's class has logit -inf and weight 0: 0, not NaN (0 * inf).
    np.testing.assert_array_equal(out["sce"][1], 0.0)
    np.testing.assert_array_equal(out["mfl"][1], 0.0)
    np.testing.assert_array_equal(out["ice"][1], 0.0)
    np.testing.assert_array_equal(out["ifl"][1], 0.0)


def test_sigmoid_focal_zero_alpha_takes_no_part_of_an_infinite_term():
    # alpha_t = 0 at a saturated wrong logit: 0 (as pos_weight=0 in BCE), with a finite gradient;
    # by hand, d/dx there is alpha_t * (d bce/dx) = 1 * sigmoid(+inf) = 1 for the y = 0 term.
    x = jnp.array([-INF, INF, INF])
    y = jnp.array([1.0, 0.0, 1.0])
    loss, grad, nan = jax.jit(
        lambda x: (
            SFL(x, y, alpha=0.0),
            jax.grad(lambda x: SFL(x, y, alpha=0.0).sum())(x),
            SFL(jnp.array([np.nan]), jnp.ones(1), alpha=0.0),
        )
    )(x)
    np.testing.assert_array_equal(loss, [0.0, INF, 0.0])
    np.testing.assert_array_equal(grad, [0, 1, 0])
    assert np.isnan(nan[0])  # NaN in, NaN out


def test_checked_names_the_likelihood_the_user_called():
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.bernoulli_nll: `logits`"):
        checked_jit(jaxloss.bernoulli_nll)(x, np.round(Y))
    with pytest.raises(checkify.JaxRuntimeError, match=r"jaxloss\.categorical_nll: `labels` has"):
        checked_jit(jaxloss.categorical_nll)(X, np.array([0, 1, 2, 3, 4, 5]))


# ------------------------------------------------------------------ hand-written derivatives


def plain_losses():
    """The formulas written directly in jnp, differentiated by JAX's autodiff: the reference for
    the hand-written JVPs (first and second order) at moderate logits."""
    ls, ls_neg = jax.nn.log_sigmoid, lambda x: jax.nn.log_sigmoid(-x)  # noqa: E731
    w, lab = jnp.asarray(W, jnp.float32)[None], jnp.asarray(LAB)  # (1, C)

    def smooth(y, eps):
        return (1 - eps) * y + eps / y.shape[-1]

    def focal(x, y, g, a):
        p = jax.nn.sigmoid(x)
        q = 1 - (p * y + (1 - p) * (1 - y))
        return (a * y + (1 - a) * (1 - y)) * q**g * -(y * ls(x) + (1 - y) * ls_neg(x))

    onehot = jax.nn.one_hot(lab, 5)
    return {  # name: (jaxloss, plain), both functions of (logits, labels)
        "ice": (lambda x, _: ICE(x, lab), lambda x, _: -(onehot * jax.nn.log_softmax(x)).sum(-1)),
        "ice_all": (
            lambda x, _: ICE(x, lab, class_weights=w[0], label_smoothing=0.2),
            lambda x, _: -(w * smooth(onehot, 0.2) * jax.nn.log_softmax(x)).sum(-1),
        ),
        "sce": (
            lambda x, y: SCE(x, y, class_weights=w[0], label_smoothing=0.1),
            lambda x, y: -(w * smooth(y, 0.1) * jax.nn.log_softmax(x)).sum(-1),
        ),
        "bce": (
            lambda x, y: SIG(x, y, pos_weight=w[0]),
            lambda x, y: -(w * y * ls(x) + (1 - y) * ls_neg(x)),
        ),
        "focal_g2": (
            lambda x, y: SFL(x, y, gamma=2, alpha=0.25),
            lambda x, y: focal(x, y, 2, 0.25),
        ),
        "focal_g15": (
            lambda x, y: SFL(x, y, gamma=1.5, alpha=0.6),
            lambda x, y: focal(x, y, 1.5, 0.6),
        ),
    }


@pytest.mark.parametrize("name", sorted(plain_losses()))
def test_grad_jvp_and_hvp_match_autodiff_of_the_formula(name):
    """Gradient, forward mode and jvp-of-grad (what taylor_check and Hessians use), float32."""
    ours, plain = plain_losses()[name]
    x = jnp.asarray(X, jnp.float32)
    y = jnp.asarray(P if name == "sce" else Y, jnp.float32)
    v = jnp.asarray(RNG.normal(size=X.shape), jnp.float32)

    @jax.jit
    def run(x):
        out = {}
        for key, f in (("ours", ours), ("plain", plain)):
            total = lambda x, f=f: f(x, y).sum()  # noqa: E731
            out[key] = (
                jax.grad(total)(x),
                jax.jvp(lambda x, f=f: f(x, y), (x,), (v,))[1],
                jax.jvp(jax.grad(total), (x,), (v,))[1],
            )
        return out

    out = run(x)
    chex.assert_trees_all_close(out["ours"], out["plain"], rtol=2e-5, atol=2e-6)


def test_softmax_cross_entropy_label_gradient_is_minus_log_softmax():
    """d/dy_c = -w_c (1 - eps) log softmax(z)_c, also where y_c = 0 (it was 0 there)."""
    x = jnp.asarray(X, jnp.float32)
    w = jnp.asarray(W, jnp.float32)[None]  # (1, C)
    hard = np.eye(5, dtype=np.float32)[LAB]
    soft = P.astype(np.float32)
    soft[:, 2] = 0.0  # zero entries in soft labels too
    soft /= soft.sum(-1, keepdims=True)

    def plain(x, y, eps):
        return -(w * ((1 - eps) * y + eps / 5) * jax.nn.log_softmax(x)).sum()

    @jax.jit
    def run(y):
        return [
            (
                jax.grad(lambda y, e=eps: SCE(x, y, class_weights=w[0], label_smoothing=e).sum())(
                    y
                ),
                jax.grad(plain, argnums=1)(x, y, eps),
            )
            for eps in (0.0, 0.2)
        ]

    for labels in (hard, soft, np.zeros_like(hard)):
        for ours, want in run(labels):
            chex.assert_trees_all_close(ours, want, rtol=1e-5, atol=1e-6)
            assert np.all(np.asarray(ours) != 0)  # no zero where a label is 0
    # Independently: -log softmax in NumPy float64.
    got = jax.jit(jax.grad(lambda y: SCE(x, y).sum()))(hard)
    np.testing.assert_allclose(got, -np_log_softmax(X.astype(np.float32)), rtol=1e-5, atol=1e-6)


def test_hessians_at_zero_logits_match_autodiff_of_the_formula():
    """x = 0 exactly (a zero-initialised model): |x| and max(x, 0) have one-sided derivatives
    there, and a hand-written derivative must take the branch's, not abs's 0 or max's 1/2."""
    plain = plain_losses()
    x = jnp.zeros((2, 5), jnp.float32)
    y = jnp.asarray(Y[:2], jnp.float32)

    @jax.jit
    def run(x):
        return {
            name: [jax.hessian(lambda x, f=f: f(x, y).sum())(x) for f in plain[name]]
            for name in ("bce", "focal_g2", "focal_g15")
        }

    for name, (ours, want) in run(x).items():
        chex.assert_trees_all_close(ours, want, rtol=1e-5, atol=1e-6, custom_message=name)
