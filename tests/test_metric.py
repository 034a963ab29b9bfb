"""Metric learning (triplet_margin_loss, ntxent) against torch constants, NumPy float64 references
and optax; zero distances, extreme scales, batches without positives, static errors, NaN policy
and half precision. Assertions are batched into a few compiled programs (each eager call
compiles every primitive anew)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from optax import losses as optax_losses

import jaxloss

TRIPLET = jaxloss.triplet_margin_loss
NTXENT = jaxloss.ntxent
RNG = np.random.default_rng(11)


# ------------------------------------------------------------------ NumPy float64 references


def np_triplet(a, p, n, deg, margin, eps):
    """max(0, d(a, p) - d(a, n) + margin), d = (sum |a - b|^deg + eps)^(1/deg), and d/da."""

    def dist(b):
        diff = a - b
        d = (np.sum(np.abs(diff) ** deg, -1) + eps) ** (1 / deg)
        safe = np.where(d > 0, d, 1)[..., None]
        return d, np.sign(diff) * (np.abs(diff) / safe) ** (deg - 1)

    (dp, gp), (dn, gn) = dist(p), dist(n)
    v = dp - dn + margin
    return np.maximum(v, 0), np.where(v[..., None] > 0, gp - gn, 0.0)


def np_ntxent(x, labels, temperature):
    """Mean over positive pairs (i, j) of -log(e^s_ij / (e^s_ij + sum_neg e^s_ik)), pair by pair."""
    u = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-30)
    s = u @ u.T / temperature
    terms = []
    for i in range(len(x)):
        neg = s[i][labels != labels[i]]
        for j in range(len(x)):
            if j != i and labels[j] == labels[i]:
                m = max(s[i, j], neg.max(initial=-np.inf))
                terms.append(m + np.log(np.exp(s[i, j] - m) + np.exp(neg - m).sum()) - s[i, j])
    return np.mean(terms) if terms else 0.0


# ------------------------------------------------------------------ torch constants
# torch 2.13.0+cpu, float64 (/tmp/bench-venv):
# out = F.triplet_margin_loss(A, P, N, margin=0.9, p=deg, eps=0.0, reduction="none");
# grad = torch.autograd.grad(out.sum(), A). Row 1 has anchor == positive (distance 0).
A = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [-0.3, 0.7, 0.2], [2.0, 0.0, -1.0]])
P = np.array([[0.4, -0.5, 1.5], [1.0, 1.0, 1.0], [0.9, -0.2, 0.4], [1.0, 0.5, -1.5]])
N = np.array([[1.5, 0.0, 2.5], [1.0, 1.5, 1.0], [-0.1, 0.6, 0.0], [3.0, 1.0, 0.0]])
TORCH = {
    2: (
        [0.114142842854285, 0.4, 2.1132745950421556, 0.39269406382271166],
        [
            [0.8066946750694676, -0.0334733753473383, 1.0334733753473382],
            [0.0, 1.0, 0.0],
            [-0.1263156538794411, 0.26140340707624754, -0.7988303867576847],
            [1.393846850117352, 0.16910197872576277, 0.9855985596534889],
        ],
    ),
    1: (
        [0.0, 0.4, 2.6999999999999997, 0.0],
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -2.0], [0.0, 0.0, 0.0]],
    ),
    3: (
        [0.24515855953720922, 0.4, 1.9937172190788126, 0.5349677747085337],
        [
            [0.6301388814971043, -0.023278776930166445, 0.7795380683002358],
            [0.0, 1.0, 0.0],
            [-0.18412739227038544, 0.2926364809946091, -0.62692784491179],
            [1.3425237327818895, 0.2653063877659477, 0.6961933257723245],
        ],
    ),
}
# The same call with torch's default eps=1e-6, which torch adds to each coordinate of a - b: at
# a == p its distance is eps * sqrt(3), and its gradient a unit vector (1, 1, 1)/sqrt(3) in a
# direction set by eps alone (row 1), where the distance has no gradient.
TORCH_DEFAULT_EPS_GRAD_ROW1 = [0.5773482691856259, 1.5773502691856258, 0.5773482691856259]


def _sum_grad(fn, argnums=0):
    """value and gradient of the summed loss, the loss's keywords passed through."""
    return jax.value_and_grad(lambda *a, **kw: jnp.sum(fn(*a, **kw)), argnums=argnums)


def test_triplet_against_torch_numpy_and_optax():
    """One compiled program: torch constants (p = 1, 2, 3, a row with anchor == positive) and
    fractional p against NumPy, at traced degrees; per-triplet values and gradients (all three
    arguments) of 64 random triplets against optax, and special triplets in the same vmapped
    call: a zero distance with eps = 0, distances of 3e-30 and 3e25, an infinite negative
    distance, NaN; axis=0 against NumPy; then un-jitted bf16."""
    a, p, n = (x.astype(np.float32) for x in (A, P, N))
    ra, rp, rn = RNG.normal(size=(3, 69, 8)).astype(np.float32)
    margins = RNG.uniform(0.1, 2.0, size=69).astype(np.float32)
    eps = np.full(69, 1e-6, np.float32)
    # Rows 64-68: a == p (eps 0); d(a, p) = 3e-30 and 3e25 (n = a, margin 0, eps 0); d(a, n) = inf;
    # a NaN.
    ra[64:] = 0.0
    rp[64:] = 0.0
    rn[64:] = 0.0
    rn[64, 0] = 0.5
    rp[65, :3], rp[66, :3] = [1e-30, 2e-30, 2e-30], [1e25, 2e25, 2e25]
    rn[67, 0] = np.inf
    ra[68, 0] = np.nan
    margins[64:67], eps[64:67] = [1.0, 0.0, 0.0], 0.0

    def triplet(fn):
        def loss(a, p, n, m, e):
            return fn(a, p, n, margin=m, eps=e)

        return jax.vmap(jax.value_and_grad(loss, argnums=(0, 1, 2)))

    @jax.jit
    def run(a, p, n, degs):
        # Traced degrees: torch's 1, 2, 3 (eps 0), 1.5 and 0.5 (out of range: NaN) with eps 1e-3.
        def loss(a, deg, eps):
            return TRIPLET(a, p, n, norm_degree=deg, margin=0.9, eps=eps)

        per_deg = jax.vmap(
            lambda d, e: (loss(a, d, e), jax.grad(lambda a: jnp.sum(loss(a, d, e)))(a))
        )
        return dict(
            degs=per_deg(degs, jnp.array([0, 0, 0, 1e-3, 1e-3])),
            optax_degs=jax.vmap(
                lambda d: optax_losses.triplet_margin_loss(a, p, n, norm_degree=d, margin=0.9)
            )(degs[jnp.array([3, 0])]),
            ours=triplet(TRIPLET)(ra, rp, rn, margins, eps),
            optax=triplet(optax_losses.triplet_margin_loss)(ra, rp, rn, margins, eps),
            axis0=TRIPLET(ra[:64].T, rp[:64].T, rn[:64].T, axis=0),
        )

    out = run(a, p, n, np.float32([1, 2, 3, 1.5, 0.5]))
    values, grads = out["degs"]
    for i, deg in enumerate((1, 2, 3)):
        np.testing.assert_allclose(values[i], TORCH[deg][0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(grads[i], TORCH[deg][1], rtol=1e-5, atol=1e-6)
    # Row 1, a == p: only d(a, n) has a gradient (torch with its default eps: a spurious one).
    assert not np.allclose(TORCH_DEFAULT_EPS_GRAD_ROW1, grads[1, 1])
    want, want_grad = np_triplet(A, P, N, 1.5, 0.9, 1e-3)
    np.testing.assert_allclose(values[3], want, rtol=1e-6)
    np.testing.assert_allclose(grads[3], want_grad, rtol=1e-5, atol=1e-6)
    assert np.isnan(values[4]).all()
    # optax's bugs: no |.| before the power (p = 1.5 is NaN; p = 1 sums signed differences).
    assert np.isnan(out["optax_degs"][0]).all()
    assert np.abs(out["optax_degs"][1] - np_triplet(A, P, N, 1, 0.9, 0.0)[0]).max() > 0.5

    (value, grad), (o_value, o_grad) = out["ours"], out["optax"]
    first = jax.tree.map(lambda g: g[:64], ((value, grad), (o_value, o_grad)))
    chex.assert_trees_all_close(*first, rtol=2e-5, atol=2e-6)
    assert (value[:64] > 0).sum() > 20  # the comparison saw the active branch
    want = np_triplet(*(v[:64].astype(np.float64) for v in (ra, rp, rn)), 2, 1.0, 1e-6)[0]
    np.testing.assert_allclose(out["axis0"], want, rtol=1e-5, atol=1e-6)
    # a == p with eps 0: d(a, n)'s gradient only; optax's is NaN.
    np.testing.assert_allclose(grad[0][64], -grad[2][64], atol=1e-6)
    np.testing.assert_allclose(grad[0][64, :2], [1.0, 0.0], atol=1e-6)
    assert np.isnan(o_grad[0][64]).any()
    # True distances where optax's squares underflow to 0 and overflow to inf.
    np.testing.assert_allclose(value[65:67], [3e-30, 3e25], rtol=1e-6)
    np.testing.assert_array_equal(o_value[65:67], [0.0, np.inf])
    assert value[67] == 0 and np.isnan(value[68])
    chex.assert_tree_all_finite(jax.tree.map(lambda g: g[:68], grad))

    # Un-jitted: bf16 is computed in float32 (the compiled core of float32 input; the doctest's
    # shapes and options, so the compilation is shared).
    half = [x[:2, :2].astype(jnp.bfloat16) for x in (a, p, n)]
    got = TRIPLET(*half, eps=0.0)
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(got, TRIPLET(*(x.astype(np.float32) for x in half), eps=0.0))


@pytest.mark.x64
def test_triplet_float64_against_numpy():
    a, p, n = RNG.normal(size=(3, 16, 5))

    @jax.jit
    def run(a, p, n):
        return [_sum_grad(TRIPLET)(a, p, n, norm_degree=deg, margin=2.0) for deg in (2, 3)]

    for deg, (value, grad) in zip((2, 3), run(a, p, n)):
        want, want_grad = np_triplet(a, p, n, deg, 2.0, 1e-6)
        np.testing.assert_allclose(value, want.sum(), rtol=1e-13)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-14)


def test_triplet_checked():
    # (NaN inputs give NaN: checked in the program above; `checked` of ntxent raises for them.)
    f = jax.jit(lambda a, deg: TRIPLET(a, P, N, norm_degree=deg))
    with pytest.raises(checkify.JaxRuntimeError, match=r"`norm_degree` must lie in \[1, inf\]"):
        jaxloss.checked(f)(A, 0.5)  # traced: NaN unchecked


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(negatives=np.zeros((4, 2), np.float32)),
            ValueError,
            "`negatives` must have the same",
        ),
        (dict(anchors=np.zeros((4, 3), np.int32)), TypeError, "`anchors` must be a floating"),
        (dict(axis=2), ValueError, "`axis` must name an axis"),
        (dict(axis=1.0), TypeError, "`axis` must be an integer"),
        (dict(norm_degree=0.5), ValueError, r"`norm_degree` must lie in \[1, inf\]"),
        (dict(eps=-1.0), ValueError, "`eps` must lie in"),
        (dict(margin=np.ones(4)), ValueError, "`margin` must be a scalar"),
    ],
)
def test_triplet_static_errors(kwargs, error, match):
    args = dict(anchors=A, positives=P, negatives=N) | kwargs
    with pytest.raises(error, match=f"jaxloss.triplet_margin_loss: {match}"):
        TRIPLET(args.pop("anchors"), args.pop("positives"), args.pop("negatives"), **args)


def test_triplet_empty_feature_axis_raises():
    with pytest.raises(ValueError, match="at least one"):
        TRIPLET(np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0)))


# ------------------------------------------------------------------ ntxent


def test_ntxent_against_optax_and_numpy():
    """One vmapped value-and-gradient over 32 random batches (two temperatures) and 7 edge cases,
    ours and optax's: values and gradients against optax, values against the pair-by-pair NumPy
    loop. Edge cases: no positive pair (0, zero gradient; optax NaN), one label only (no
    negatives: 0), a zero embedding (finite, as optax), embeddings of 1e20 (optax's squares
    overflow and its cosines collapse to 0), temperature 1e-3, NaN, a traced temperature 0 (NaN).
    Then un-jitted bf16."""
    x = RNG.normal(size=(32, 9, 5)).astype(np.float32)
    # Each batch: pairs plus one triple, shuffled, so every anchor has a positive.
    base = np.array([i // 2 for i in range(8)] + [0])
    labels = np.stack([RNG.permutation(base) for _ in range(32)]).astype(np.int32)
    temps = np.repeat(np.float32([0.07, 0.5]), 16)
    e, pairs = x[0], labels[0]
    edge_x = np.stack([e, e, e.copy(), 1e20 * e, e, e.copy(), e])
    edge_x[2, 3] = 0.0
    edge_x[5, 1, 2] = np.nan
    edge_labels = np.stack([np.arange(9), np.zeros(9)] + [pairs] * 5).astype(np.int32)
    edge_temps = np.float32([0.07, 0.07, 0.07, 0.07, 1e-3, 0.07, 0.0])
    xs, ys, ts = (
        np.concatenate(v) for v in ((x, edge_x), (labels, edge_labels), (temps, edge_temps))
    )

    def ours(x, y, t):
        return NTXENT(x, y, temperature=t)

    @jax.jit
    def run(xs, ys, ts):
        return dict(
            ours=jax.vmap(jax.value_and_grad(ours))(xs, ys, ts),
            optax=jax.vmap(jax.value_and_grad(optax_losses.ntxent))(xs, ys, ts),
        )

    res = run(xs, ys, ts)
    (value, grad), (optax_value, optax_grad) = res["ours"], res["optax"]
    want = [np_ntxent(xi.astype(np.float64), yi, float(ti)) for xi, yi, ti in zip(xs[:37], ys, ts)]
    # Random batches and the zero embedding (index 34): values and gradients as optax.
    agree = np.r_[0:32, 34]
    chex.assert_trees_all_close(
        (value[agree], grad[agree]), (optax_value[agree], optax_grad[agree]), rtol=2e-5, atol=1e-5
    )
    finite = np.r_[0:32, 33:37]  # 1e20 and temperature 1e-3 too, against NumPy
    np.testing.assert_allclose(value[finite], np.array(want)[finite], rtol=1e-5)
    chex.assert_tree_all_finite((value[:37], grad[:37]))
    # No positive pair (32) and no negatives (33): 0 with a zero gradient; optax NaN for 32.
    np.testing.assert_array_equal(value[32:34], [0.0, 0.0])
    assert not np.any(grad[32:34])
    assert np.isnan(optax_value[32])
    assert not np.isclose(optax_value[35], want[35], rtol=1e-2)  # 1e20: optax's cosines are 0
    assert np.isnan(value[37:]).all()  # a NaN embedding; a (traced) temperature 0
    # Un-jitted: bf16 is computed in float32 (the compiled core of float32 input; the doctest's
    # shapes, so the compilation is shared).
    half, four = e[:4, :2].astype(jnp.bfloat16), jnp.array([0, 0, 1, 1])
    got = NTXENT(half, four, temperature=0.5)
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(got, NTXENT(half.astype(np.float32), four, temperature=0.5))


def test_ntxent_checked():
    e = RNG.normal(size=(4, 3)).astype(np.float32)
    labels = np.array([0, 1, 0, 1])
    f = jax.jit(lambda e, t: NTXENT(e, labels, temperature=t))
    # A traced temperature out of range gives NaN (the program above) and `checked` raises.
    with pytest.raises(checkify.JaxRuntimeError, match=r"`temperature` must lie in \(0, inf\]"):
        jaxloss.checked(f)(e, 0.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((4, 3, 2)), np.zeros(4, int)), {}, ValueError, r"must have shape \(N, D\)"),
        ((np.zeros((4, 3)), np.zeros(4)), {}, TypeError, "`labels` must be an integer"),
        ((np.zeros((4, 3)), np.zeros(3, int)), {}, ValueError, r"shape \(4,\), one label"),
        ((np.zeros((4, 3), int), np.zeros(4, int)), {}, TypeError, "must be a floating"),
        ((np.zeros((4, 3)), np.zeros(4, int)), dict(temperature=0.0), ValueError, "temperature"),
        ((np.zeros((4, 0)), np.zeros(4, int)), {}, ValueError, "at least one"),
    ],
)
def test_ntxent_static_errors(args, kwargs, error, match):
    with pytest.raises(error, match=f"jaxloss.ntxent: .*{match}"):
        NTXENT(*args, **kwargs)


def test_ntxent_temperature_is_keyword_only():
    with pytest.raises(TypeError):
        NTXENT(np.zeros((2, 2)), np.zeros(2, int), 0.1)
