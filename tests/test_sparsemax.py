"""Sparsemax losses and Fenchel-Young losses against NumPy float64 references (the projection by
bisection, the loss by Martins & Astudillo's closed form) and optax; -inf scores, large scores,
soft binary labels, static errors, NaN policy and half precision.

Every numeric comparison runs in one compiled float32 program (the default mode)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.scipy.special import logsumexp
from static_errors import assert_raises_eager_and_jitted

import jaxloss

SPARSE = jaxloss.sparsemax_loss
MSPARSE = jaxloss.multiclass_sparsemax_loss
INF = np.inf

RNG = np.random.default_rng(7)


def _bf16_exact(x):
    """Values bfloat16 holds exactly, so the half-precision test can reuse the float32 results."""
    return np.asarray(np.asarray(x, np.float32).astype(jnp.bfloat16), np.float32)


# Rows: 0 all tied, 1 classes switched off (-inf), 2 one class left, 3-6 scores near 1e4,
# 7-29 random, 30-31 labels out of range (6 and -1).
Z = _bf16_exact(RNG.normal(size=(32, 6)) * 1.5)
Z[0] = 1.0
Z[1] = [3.0, -INF, 0.5, -INF, 2.75, 0.0]
Z[2] = [5.0, 0.0, 0.125, -1.0, 0.25, 0.375]
BIG = slice(3, 7)
Z[BIG] += np.float32(1e4)  # exact in float32 (spacing 2**-10 there)
GOOD = np.r_[0:3, 7:30]  # rows without large scores or bad labels
LAB = RNG.integers(0, 6, size=32).astype(np.int32)
LAB[1], LAB[30], LAB[31] = 4, 6, -1
LAB_READ = np.clip(LAB, 0, 5)
LAB_READ[31] = 5  # the class optax reads for labels 6 and -1 (jnp indexing)
V = RNG.normal(size=Z.shape).astype(np.float32)  # tangents
W = np.array([0.5, 2.0, 1.0, 0.25, 1.5, 3.0], np.float32)  # logsumexp's weights b
Z64 = Z.astype(np.float64)

# Binary: one vector of cases, 0/1 labels, soft labels, labels on the curve sparse_sigmoid(x) = y,
# infinite logits, labels outside [0, 1].
_x = _bf16_exact(RNG.normal(size=(40,)) * 2)
_x[np.abs(np.abs(_x) - 1) < 1e-2] += 0.0625  # away from the kinks at ±1 (for the Hessian)
_parts = {
    "hard": (_x, (RNG.uniform(size=40) > 0.5)),
    "soft": (_x, RNG.uniform(size=40)),
    "zero": (_x, np.clip((_x + 1) / 2, 0, 1)),
    "inf": ([INF, -INF, INF, -INF, INF], [1.0, 0.0, 0.5, 0.5, 0.0]),
    "bad": ([0.0, 0.0, 0.0], [1.5, -0.5, 1.0]),
}
XB = np.concatenate([np.asarray(x, np.float32) for x, _ in _parts.values()])
YB = np.concatenate([np.asarray(y, np.float32) for _, y in _parts.values()])
_ends = np.cumsum([len(x) for x, _ in _parts.values()])
PART = {k: slice(e - len(x), e) for (k, (x, _)), e in zip(_parts.items(), _ends)}


# ------------------------------------------------------------------ NumPy float64 references


def np_sparsemax(z):
    """Projection onto the simplex by bisection on tau (sum_j max(z_j - tau, 0) = 1): independent
    of the sort-based algorithm under test."""
    z = np.asarray(z, np.float64)
    hi = z.max(-1, keepdims=True)
    lo = hi - 1
    for _ in range(100):
        mid = (lo + hi) / 2
        over = np.maximum(z - mid, 0).sum(-1, keepdims=True) > 1
        lo, hi = np.where(over, mid, lo), np.where(over, hi, mid)
    return np.maximum(z - (lo + hi) / 2, 0), (lo + hi)[..., 0] / 2


def np_multiclass_sparsemax(z, y):
    """Martins & Astudillo 2016, Eq. 18: -z_y + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2, and its
    gradient p - e_y."""
    p, tau = np_sparsemax(z)
    support = p > 0
    sq = np.where(support, np.where(support, z, 0) ** 2, 0).sum(-1) - support.sum(-1) * tau**2
    onehot = np.eye(z.shape[-1])[y]
    return -np.take_along_axis(z, y[:, None], -1)[:, 0] + sq / 2 + 0.5, p - onehot


def np_sparsemax_jacobian_vp(z, v):
    """(diag(s) - s s^T / |S|) v, s the support of sparsemax(z)."""
    s = (np_sparsemax(z)[0] > 0).astype(np.float64)
    return s * (v - (s * v).sum(-1, keepdims=True) / s.sum(-1, keepdims=True))


def np_logsumexp(z, b=1.0):
    """log sum_j b_j exp(z_j) over the last axis."""
    m = z.max(-1, keepdims=True)
    return m[..., 0] + np.log((b * np.exp(z - m)).sum(-1))


def np_sparse_plus(x):
    return np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4))


def np_binary_sparsemax(x, y):
    """The Fenchel-Young loss of sparse_plus: sparse_plus(x) - x y + Omega(y), Omega(y) = y^2 - y,
    and its gradient sparse_sigmoid(x) - y."""
    return np_sparse_plus(x) - x * y + y * y - y, np.clip((x + 1) / 2, 0, 1) - y


def _loss_and_grad(fn, x, *args):
    out, vjp = jax.vjp(lambda x: fn(x, *args), x)
    return out, vjp(jnp.ones_like(out))[0]


def _loss_grad_hvp(fn, x, v, *args):
    """(loss, gradient of its sum, Hessian-vector product) from one jvp of a vjp."""
    (loss, grad), (_, hvp) = jax.jvp(lambda x: _loss_and_grad(fn, x, *args), (x,), (v,))
    return loss, grad, hvp


@functools.cache
def results():
    """Every numeric comparison in one compiled program (each test reads its part)."""
    fy_lse = jaxloss.make_fenchel_young_loss(logsumexp)
    optax_fy = optax.losses.make_fenchel_young_loss(logsumexp)
    onehot = np.eye(6, dtype=np.float32)[LAB_READ]

    def run(z, lab, v, onehot, xb, yb):
        small = z[GOOD]
        return {
            "multi": _loss_grad_hvp(MSPARSE, z, v, lab),
            "optax_multi": _loss_and_grad(optax.losses.multiclass_sparsemax_loss, z, lab),
            # vmap over samples of bfloat16 scores (computed in float32)
            "vmap_bf16": jax.vmap(MSPARSE)(small.astype(jnp.bfloat16), lab[GOOD]),
            "binary": _loss_grad_hvp(SPARSE, xb, jnp.ones_like(xb), yb),
            "optax_binary": _loss_and_grad(optax.losses.sparsemax_loss, xb, yb),
            "binary_f16": SPARSE(xb.astype(jnp.float16), yb.astype(jnp.float16)),
            "fy": {
                "lse": _loss_and_grad(fy_lse, small, onehot[GOOD]),
                "optax_lse": optax_fy(small, onehot[GOOD]),
                "weighted": (fy_lse(small, onehot[GOOD], b=W), optax_fy(small, onehot[GOOD], b=W)),
                "positional": fy_lse(small, onehot[GOOD], -1),  # logsumexp(row, axis=-1)
            },
        }

    return jax.device_get(jax.jit(run)(Z, LAB, V, onehot, XB, YB))


# The un-jitted path: each docstring example (run as a doctest) calls its function op by op.


def test_projection_matches_numpy_and_optax():
    _, grad, _ = results()["multi"]
    p = grad[:30] + np.eye(6)[LAB[:30]]  # the gradient is sparsemax(z) - onehot(y)
    want, _ = np_sparsemax(Z64[:30])
    np.testing.assert_allclose(p, want, atol=3e-7)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], np.full(6, 1 / 6), rtol=1e-6)
    np.testing.assert_array_equal(p[1, [1, 3]], 0.0)  # -inf scores
    np.testing.assert_allclose(p[2], np.eye(6)[0])
    assert (p == 0).any(1).mean() > 0.5  # sparse: most rows have exact zeros
    optax_p = results()["optax_multi"][1] + np.eye(6)[LAB_READ]  # also sparsemax(z) - onehot
    np.testing.assert_allclose(optax_p[GOOD], p[GOOD], atol=5e-7)


def test_multiclass_matches_numpy_and_optax():
    loss, grad, hvp = results()["multi"]
    ok = slice(0, 30)
    want, want_grad = np_multiclass_sparsemax(Z64[ok], LAB[ok])
    assert loss.dtype == grad.dtype == np.float32
    chex.assert_shape(loss, (32,))
    np.testing.assert_allclose(loss[ok], want, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(grad[ok], want_grad, atol=3e-7)
    # The Hessian is sparsemax's Jacobian (piecewise constant).
    np.testing.assert_allclose(hvp[ok], np_sparsemax_jacobian_vp(Z64[ok], V[ok]), atol=1e-6)
    np.testing.assert_allclose(loss[1], want[1], rtol=1e-6)  # -inf scores: finite
    optax_loss, optax_grad = results()["optax_multi"]
    np.testing.assert_allclose(loss[GOOD], optax_loss[GOOD], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(grad[GOOD], optax_grad[GOOD], atol=1e-6)


def test_large_scores_keep_float32_digits_where_optax_loses_them():
    loss, theirs = results()["multi"][0][BIG], results()["optax_multi"][0][BIG]
    # The reference on the scores less 1e4 (exact): sparsemax is shift invariant.
    want, _ = np_multiclass_sparsemax(Z64[BIG] - 1e4, LAB[BIG])
    np.testing.assert_allclose(loss, want, rtol=1e-6, atol=1e-6)
    # optax projects the raw scores: its cumulative sums of values near 1e4 round at 1e-3.
    assert np.abs(theirs - want).max() > 1e-4


def test_label_out_of_range_is_nan_where_optax_reads_a_class():
    loss, grad, _ = results()["multi"]
    assert np.isnan(loss[30:]).all() and np.isfinite(loss[:30]).all()
    np.testing.assert_array_equal(grad[30:], 0.0)
    want, _ = np_multiclass_sparsemax(Z64[30:], LAB_READ[30:])
    np.testing.assert_allclose(results()["optax_multi"][0][30:], want, rtol=1e-5)


def test_binary_matches_optax_for_hard_labels():
    loss, grad, _ = results()["binary"]
    optax_loss, optax_grad = results()["optax_binary"]
    hard = PART["hard"]
    want, want_grad = np_binary_sparsemax(XB[hard].astype(np.float64), YB[hard])
    np.testing.assert_allclose(loss[hard], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad[hard], want_grad, atol=1e-7)
    np.testing.assert_allclose(loss[hard], optax_loss[hard], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad[hard], optax_grad[hard], atol=1e-7)


def test_binary_soft_labels_are_the_fenchel_young_loss():
    loss, grad, hvp = results()["binary"]
    soft = PART["soft"]
    x = XB[soft].astype(np.float64)
    want, want_grad = np_binary_sparsemax(x, YB[soft])
    np.testing.assert_allclose(loss[soft], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad[soft], want_grad, atol=1e-6)
    np.testing.assert_allclose(hvp[soft], np.where(np.abs(x) < 1, 0.5, 0.0))  # sparse_sigmoid'
    assert (loss[soft] >= 0).all()
    # Zero where sparse_sigmoid(x) = y (and only there: strictly convex in y).
    np.testing.assert_allclose(loss[PART["zero"]], 0.0, atol=1e-7)
    # optax reads any non-zero label as 1.
    np.testing.assert_allclose(
        results()["optax_binary"][0][soft], np_sparse_plus(-x), rtol=1e-6, atol=1e-7
    )


def test_binary_infinite_logits_and_bad_labels():
    loss, grad, _ = results()["binary"]  # x [inf, -inf, inf, -inf, inf], y [1, 0, .5, .5, 0]
    np.testing.assert_array_equal(loss[PART["inf"]], [0.0, 0.0, INF, INF, INF])
    np.testing.assert_array_equal(grad[PART["inf"]], [0.0, 0.0, 0.5, -0.5, 1.0])
    bad = loss[PART["bad"]]  # labels 1.5, -0.5, 1.0
    assert np.isnan(bad[:2]).all() and np.isfinite(bad[2])


def test_fenchel_young():
    got = results()["fy"]
    z, onehot = Z64[GOOD], np.eye(6)[LAB[GOOD]]
    loss, grad = got["lse"]
    # logsumexp: the softmax cross entropy, with its gradient softmax - y.
    z_y = np.where(onehot > 0, z, 0).sum(-1)
    np.testing.assert_allclose(loss, np_logsumexp(z) - z_y, rtol=1e-5)
    softmax = np.exp(z - np_logsumexp(z)[:, None])
    np.testing.assert_allclose(grad, softmax - onehot, atol=1e-6)
    ok = np.isfinite(z).all(-1)
    np.testing.assert_allclose(loss[ok], got["optax_lse"][ok], rtol=1e-6)
    # A target of 0 on a -inf score (row 1): finite; optax's dot product gives 0 * -inf = NaN.
    assert np.isfinite(loss[1]) and np.isnan(got["optax_lse"][1])
    chex.assert_tree_all_finite(grad)
    # Keyword arguments reach max_fun (logsumexp's weights b); optax's jnp.vectorize drops them
    # silently. Positional ones reach it too (optax: TypeError).
    ours, theirs = got["weighted"]
    want_weighted = np_logsumexp(z, W) - z_y
    np.testing.assert_allclose(ours, want_weighted, rtol=1e-5)
    np.testing.assert_allclose(theirs[ok], loss[ok], rtol=1e-6)
    np.testing.assert_allclose(got["positional"], loss, rtol=1e-6)


def test_vmap_and_half_precision_computed_in_float32():
    multi, binary = results()["vmap_bf16"], results()["binary_f16"]
    assert multi.dtype == binary.dtype == np.float32
    # The inputs are exact in half precision: the same numbers as the float32 run.
    np.testing.assert_allclose(multi, results()["multi"][0][GOOD], rtol=1e-6)
    # Where the labels are exact in float16 too.
    finite = np.isfinite(XB) & (YB >= 0) & (YB <= 1) & (YB.astype(np.float16) == YB)
    np.testing.assert_allclose(binary[finite], results()["binary"][0][finite], rtol=1e-6)


def test_no_retrace_across_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, y):
        return SPARSE(x, y)

    for k in range(3):
        f(XB - k, YB / (k + 1))


# ------------------------------------------------------------------ static errors

FY = jaxloss.make_fenchel_young_loss(logsumexp)
STATIC_ERRORS = [
    (MSPARSE, (Z, LAB.astype(float)), TypeError, r"multiclass_sparsemax_loss: `labels` must be"),
    (MSPARSE, (LAB, LAB), TypeError, r"multiclass_sparsemax_loss: `scores` must be a floating"),
    (MSPARSE, (Z, LAB[:3]), ValueError, r"`labels` must have shape scores.shape\[:-1\]"),
    (MSPARSE, (Z[0, 0], LAB[0]), ValueError, r"`scores` must have a class axis"),
    (MSPARSE, (Z[:, :0], LAB), ValueError, r"`scores` must have at least one class"),
    (SPARSE, (XB, YB[:3]), ValueError, r"sparsemax_loss: `labels` must have the same shape"),
    (SPARSE, (LAB, LAB), TypeError, r"sparsemax_loss: `logits` must be a floating"),
    (FY, (Z, Z[:, :3]), ValueError, r"make_fenchel_young_loss\(logsumexp\): `targets` must have"),
    (FY, (LAB, LAB), TypeError, r"make_fenchel_young_loss\(logsumexp\): `scores` must be a float"),
    (FY, (Z[0, 0], Z[0, 0]), ValueError, r"`scores` must have a class axis"),
]


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    fn, args, exc, match = STATIC_ERRORS[case]
    assert_raises_eager_and_jitted(fn, args, {}, exc, match)


def test_max_fun_must_be_callable():
    with pytest.raises(TypeError, match=r"make_fenchel_young_loss: `max_fun` must be a function"):
        jaxloss.make_fenchel_young_loss("logsumexp")


# ------------------------------------------------------------------ run-time values and checked


def test_checked_raises_for_bad_values():
    # YB has labels 1.5 and -0.5 (PART["bad"]); the integer labels' check is margin's, tested there.
    with pytest.raises(checkify.JaxRuntimeError, match=r"sparsemax_loss: `labels` has values"):
        jaxloss.checked(jax.jit(lambda x, y: SPARSE(x, y)))(XB, YB)
