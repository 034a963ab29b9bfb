"""Tests for jaxloss.mining: SSD hard negative mining (vs torchvision's rule), OHEM, mined CE.

Tests marked x64 compare float64 losses with float64 references at float64 tolerance; the others
run in JAX's default float32 mode, as users do.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads

import jaxloss
from jaxloss import mining

# ------------------------------------------------------------------------- NumPy references


def torchvision_mask(losses, positives, neg_pos_ratio):
    """torchvision SSD.compute_loss's selection for one image, transcribed to NumPy.

    torchvision/models/detection/ssd.py:
        negative_loss = cls_loss.clone(); negative_loss[foreground_idxs] = -inf
        values, idx = negative_loss.sort(1, descending=True)
        background_idxs = idx.sort(1)[1] < num_negative   # num_negative = ratio * #foreground
    and the loss sums cls_loss over foreground_idxs and background_idxs. torch's sort is not
    stable, so ties are broken here as jaxloss documents: lower index first (a stable sort).
    """
    negative_loss = np.array(losses, np.float64)
    negative_loss[positives] = -np.inf
    idx = np.argsort(-negative_loss, kind="stable")
    rank = np.argsort(idx, kind="stable")
    # neg_to_pos_ratio (a Python float) times an int64 tensor: a float32 tensor in torch.
    background = rank < np.float32(neg_pos_ratio) * np.float32(positives.sum())
    return positives | background


def caffe_rule_mask(losses, positives, neg_pos_ratio, min_negatives=0):
    """The documented rule: k = min(#neg, max(min_negatives, floor(ratio·#pos))) top negatives,
    the product in float32 like Caffe SSD's `static_cast<int>(num_pos * neg_pos_ratio)`."""
    negatives = np.flatnonzero(~positives)
    ratio_k = int(np.floor(np.float32(neg_pos_ratio) * np.float32(positives.sum())))
    k = min(negatives.size, max(min_negatives, ratio_k))
    order = negatives[np.lexsort((negatives, -np.asarray(losses)[negatives]))]
    mask = positives.copy()
    mask[order[:k]] = True
    return mask


def np_log_softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_cross_entropy(logits, labels, label_smoothing=0.0):
    logp = np_log_softmax(np.asarray(logits, np.float64))
    nll = -np.take_along_axis(logp, np.asarray(labels)[..., None], -1)[..., 0]
    return (1 - label_smoothing) * nll - label_smoothing * logp.mean(-1)


def torchvision_ssd_classification(logits, labels, neg_pos_ratio=3.0):
    """torchvision's classification term: Σ over images of the selected CE / max(1, Σ #pos)."""
    cls_loss = np_cross_entropy(logits, labels)
    total, num_pos = 0.0, 0
    for loss, lab in zip(cls_loss, np.asarray(labels)):
        fg = lab > 0
        bg = torchvision_mask(loss, fg, neg_pos_ratio) & ~fg
        total += loss[fg].sum() + loss[bg].sum()
        num_pos += fg.sum()
    return total / max(1, num_pos)


def _random_problem(seed, n, a, ties):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: many exact ties
        losses = rng.integers(0, 4, size=(n, a)).astype(np.float64)
    else:
        losses = rng.exponential(size=(n, a))
    rates = rng.choice([0.0, 0.05, 0.2, 0.5, 0.9], size=(n, 1))
    positives = rng.random((n, a)) < rates
    return losses, positives


_vmapped_mask = jax.jit(
    jax.vmap(
        lambda l, p, r, m: mining.hard_negative_mask(l, p, neg_pos_ratio=r, min_negatives=m),
        in_axes=(0, 0, None, None),
    )
)


# ----------------------------------------------------------------------- hard_negative_mask


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("ratio", [0.0, 1.0, 3.0, 7.0])
def test_hard_negative_mask_equals_torchvision(ties, ratio):
    losses, positives = _random_problem(int(ratio * 10) + ties, 64, 40, ties)
    ours = np.asarray(_vmapped_mask(losses, positives, ratio, 0))
    expected = np.stack([torchvision_mask(l, p, ratio) for l, p in zip(losses, positives)])
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("ratio, min_negatives", [(2.5, 0), (0.7, 0), (3.0, 2), (0.0, 5)])
def test_hard_negative_mask_fractional_ratio_and_min_negatives(ratio, min_negatives):
    losses, positives = _random_problem(7, 64, 40, ties=True)  # shapes as above: no recompile
    ours = np.asarray(_vmapped_mask(losses, positives, ratio, min_negatives))
    expected = np.stack(
        [caffe_rule_mask(l, p, ratio, min_negatives) for l, p in zip(losses, positives)]
    )
    np.testing.assert_array_equal(ours, expected)


def test_fractional_ratio_is_floor_where_torchvision_takes_ceil():
    losses = jnp.array([0.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    positives = jnp.array([True, False, False, False, False, False])
    ours = mining.hard_negative_mask(losses, positives, neg_pos_ratio=2.5)
    np.testing.assert_array_equal(ours, [True, True, True, False, False, False])
    tv = torchvision_mask(np.asarray(losses), np.asarray(positives), 2.5)  # rank < 2.5: 3 kept
    np.testing.assert_array_equal(tv, [True, True, True, True, False, False])


def test_ratio_product_is_taken_in_float32():
    # 0.29 * 100 is 28.999999999999996 in float64 but 29.0 in float32 (torchvision's and Caffe's).
    losses = jnp.linspace(1.0, 0.0, 200)
    positives = jnp.arange(200) % 2 == 0
    mask = jax.jit(mining.hard_negative_mask)(losses, positives, neg_pos_ratio=0.29)
    assert int(jnp.sum(mask & ~positives)) == 29


def test_ties_take_the_lower_index_and_nan_ranks_highest():
    positives = jnp.zeros(6, bool).at[5].set(True)
    equal = mining.hard_negative_mask(jnp.ones(6), positives, neg_pos_ratio=2.0)
    np.testing.assert_array_equal(equal, [True, True, False, False, False, True])
    with_nan = jnp.array([1.0, 2.0, 0.5, jnp.nan, 0.1, 0.0])
    mask = mining.hard_negative_mask(with_nan, positives, neg_pos_ratio=2.0)
    np.testing.assert_array_equal(mask, [False, True, False, True, False, True])
    zeros = jnp.array([-0.0, 0.0, -0.0, 0.0, 1.0, 0.0])  # ±0 tie
    mask = mining.hard_negative_mask(zeros, positives, neg_pos_ratio=2.0)
    np.testing.assert_array_equal(mask, [True, False, False, False, True, True])


def test_no_positives_and_all_positives():
    losses = jnp.array([0.3, 0.9, 0.1, 0.5])
    none = jnp.zeros(4, bool)
    np.testing.assert_array_equal(mining.hard_negative_mask(losses, none), np.zeros(4, bool))
    np.testing.assert_array_equal(
        mining.hard_negative_mask(losses, none, min_negatives=2), [False, True, False, True]
    )
    np.testing.assert_array_equal(
        mining.hard_negative_mask(losses, none, min_negatives=10), np.ones(4, bool)
    )
    every = jnp.ones(4, bool)
    np.testing.assert_array_equal(mining.hard_negative_mask(losses, every), np.ones(4, bool))


def test_mask_shapes_jit_vmap_and_any_shape():
    losses, positives = _random_problem(3, 5, 24, ties=False)
    traces = []

    @jax.jit
    def f(l, p):
        traces.append(l.shape)
        return mining.hard_negative_mask(l, p)

    out = f(losses[0], positives[0])
    f(losses[1], positives[1])
    assert len(traces) == 1 and out.dtype == jnp.bool_
    chex.assert_shape(out, (24,))
    # A (H, W) sample is mined as one set of positions.
    grid = mining.hard_negative_mask(losses[0].reshape(4, 6), positives[0].reshape(4, 6))
    np.testing.assert_array_equal(grid.ravel(), mining.hard_negative_mask(losses[0], positives[0]))
    # float32 and bfloat16 losses rank the same way as float64 here (no near-ties).
    for dtype in (jnp.float32, jnp.bfloat16):
        l32 = jnp.asarray(np.round(losses[0], 1), dtype)
        np.testing.assert_array_equal(
            mining.hard_negative_mask(l32, positives[0]),
            caffe_rule_mask(np.asarray(l32, np.float64), positives[0], 3.0),
        )


def test_gradient_flows_only_through_selected_losses():
    losses, positives = _random_problem(11, 1, 20, ties=False)
    positives = positives[0].copy()
    positives[0] = True
    losses, positives = jnp.asarray(losses[0]), jnp.asarray(positives)

    def selected_sum(l):
        return jnp.sum(jnp.where(mining.hard_negative_mask(l, positives), l, 0))

    # One jitted program: op by op every primitive compiles separately.
    grad, mask = jax.jit(
        lambda l: (jax.grad(selected_sum)(l), mining.hard_negative_mask(l, positives))
    )(losses)
    np.testing.assert_array_equal(grad, np.asarray(mask, np.float64))
    assert 0 < int(mask.sum()) < 20


# -------------------------------------------------------------------------------- ohem_mask


def np_ohem(losses, num_keep, where):
    cand = np.flatnonzero(where)
    order = cand[np.lexsort((cand, -losses[cand]))]
    mask = np.zeros(losses.shape, bool)
    mask[order[:num_keep]] = True
    return mask


# num_keep traced (an int argument under jit): one compilation for every case.
_vmapped_ohem = jax.jit(
    jax.vmap(lambda l, w, k: mining.ohem_mask(l, num_keep=k, where=w), in_axes=(0, 0, None))
)


@pytest.mark.parametrize("num_keep", [0, 3, 10, 50])
def test_ohem_mask_matches_reference(num_keep):
    losses, where = _random_problem(num_keep, 16, 20, ties=True)
    where = ~where
    expected = np.stack([np_ohem(l, num_keep, w) for l, w in zip(losses, where)])
    np.testing.assert_array_equal(_vmapped_ohem(losses, where, num_keep), expected)


def test_ohem_mask_without_where_and_on_a_grid():
    losses = jnp.array([[0.2, 3.0], [0.1, 1.5]])
    np.testing.assert_array_equal(
        mining.ohem_mask(losses, num_keep=2), [[False, True], [False, True]]
    )
    grad = jax.grad(lambda l: jnp.sum(jnp.where(mining.ohem_mask(l, num_keep=1), l, 0)))(losses)
    np.testing.assert_array_equal(grad, [[0.0, 1.0], [0.0, 0.0]])


# ---------------------------------------------------------------------- mined_cross_entropy


def _anchor_problem(seed, n=6, a=50, c=4, rate=0.06):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, a, c)) * 2
    labels = np.where(rng.random((n, a)) < rate, rng.integers(1, c, size=(n, a)), 0)
    labels[0] = 0  # an image without positives
    return jnp.asarray(logits), jnp.asarray(labels, jnp.int32)


def _ssd_ratio(logits, labels, **kw):
    sums, num_pos = jax.vmap(lambda lg, lb: mining.mined_cross_entropy(lg, lb, **kw))(
        logits, labels
    )
    return sums.sum() / jnp.maximum(num_pos.sum(), 1)


@pytest.mark.x64
def test_mined_cross_entropy_equals_torchvision_ssd_classification_loss():
    logits, labels = _anchor_problem(0)
    # Every image here has at least 3x as many negatives as positives (torchvision's sum would
    # otherwise count some positives twice; see the docstring).
    assert np.all((np.asarray(labels) == 0).sum(1) >= 3 * (np.asarray(labels) > 0).sum(1))
    got = jax.jit(_ssd_ratio)(logits, labels)
    np.testing.assert_allclose(got, torchvision_ssd_classification(logits, labels), rtol=1e-12)


@pytest.mark.x64
def test_mined_cross_entropy_per_sample_values():
    logits, labels = _anchor_problem(1)
    sums, counts = jax.jit(
        jax.vmap(
            lambda lg, lb: mining.mined_cross_entropy(
                lg, lb, background_class=2, neg_pos_ratio=1.5, min_negatives=4, label_smoothing=0.1
            )
        )
    )(logits, labels)
    for lg, lb, s, n in zip(logits, labels, sums, counts):
        ce = np_cross_entropy(lg, lb, 0.1)
        pos = np.asarray(lb) != 2  # background_class = 2
        mask = caffe_rule_mask(ce, pos, 1.5, 4)
        np.testing.assert_allclose(s, ce[mask].sum(), rtol=1e-12)
        assert float(n) == pos.sum()


@pytest.mark.x64
def test_ssd_normalisation_with_objective_and_its_gradient():
    """The docstring's recipe: a summing objective divided by the batch's positives."""
    rng = np.random.default_rng(2)
    feats = jnp.asarray(rng.normal(size=(5, 30, 3)))
    labels = jnp.asarray(np.where(rng.random((5, 30)) < 0.1, rng.integers(1, 3, (5, 30)), 0))
    params = [{"w": jnp.asarray(rng.normal(size=(3, 3))), "b": jnp.asarray(rng.normal(size=3))}]
    _, dense = jaxloss.mlp([3, 3], dtype=jnp.float64)

    def apply_fn(p, anchors):  # one sample: (A, 3) features -> (A, 3) logits
        return jax.vmap(dense, (None, 0))(p, anchors)

    loss_sum = jaxloss.objective(
        apply_fn, lambda lg, lb: jaxloss.mined_cross_entropy(lg, lb)[0], reduction="sum"
    )

    def ssd_objective(p, inputs, labels):
        return loss_sum(p, inputs, labels) / jnp.maximum(jnp.sum(labels != 0), 1)

    logits = jax.vmap(apply_fn, (None, 0))(params, feats)
    value, grads = jax.jit(jax.value_and_grad(ssd_objective))(params, feats, labels)
    np.testing.assert_allclose(value, torchvision_ssd_classification(logits, labels), rtol=1e-12)

    # Gradient reference: the same sum with the selection frozen (NumPy mask) and optax's CE.
    ce = np_cross_entropy(logits, labels)
    masks = np.stack([torchvision_mask(l, lb > 0, 3.0) for l, lb in zip(ce, np.asarray(labels))])
    total_pos = max(1, int((np.asarray(labels) > 0).sum()))

    def frozen(p):
        lg = jax.vmap(apply_fn, (None, 0))(p, feats)
        per = optax.softmax_cross_entropy_with_integer_labels(lg, labels)
        return jnp.sum(jnp.where(masks, per, 0)) / total_pos

    chex.assert_trees_all_close(grads, jax.jit(jax.grad(frozen))(params), rtol=1e-12)


@pytest.mark.x64
def test_mined_cross_entropy_grads_dtypes_and_nan():
    logits, labels = _anchor_problem(3, n=1, a=12, c=3, rate=0.3)
    lg, lb = logits[0], labels[0]
    check_grads(jax.jit(lambda x: mining.mined_cross_entropy(x, lb)[0]), (lg,), order=1, eps=1e-6)
    # Jitted throughout: op by op, the wrapped cross entropy takes seconds to compile (the masks
    # are run un-jitted in the tests above).
    jitted = jax.jit(mining.mined_cross_entropy)
    reference, _ = jitted(lg, lb)
    np.testing.assert_allclose(
        reference,
        np_cross_entropy(lg, lb)[
            caffe_rule_mask(np_cross_entropy(lg, lb), np.asarray(lb) > 0, 3.0)
        ].sum(),
        rtol=1e-12,
    )
    for dtype in (jnp.float32, jnp.bfloat16):  # float16 takes bfloat16's upcast path
        s, n = jitted(lg.astype(dtype), lb)
        assert s.dtype == n.dtype == jnp.float32
        np.testing.assert_allclose(s, reference, rtol=2e-2)
    # A NaN logit at the easiest negative, which mining does not select, still gives NaN.
    ce = np_cross_entropy(lg, lb)
    easiest = int(np.argmin(np.where(np.asarray(lb) == 0, ce, np.inf)))
    # jitted: this mask is incidental here (op by op it compiles every primitive)
    assert not jax.jit(mining.hard_negative_mask)(ce, np.asarray(lb) > 0)[easiest]
    # The bad inputs are built in NumPy: op by op, `.at[].set` compiles a scatter per call.
    nan_logit = np.array(lg)
    nan_logit[easiest, 0] = np.nan
    assert np.isnan(jitted(jnp.asarray(nan_logit), lb)[0])
    # A label out of range gives NaN, and checked() raises.
    bad = np.array(lb)
    bad[0] = 7
    bad = jnp.asarray(bad)
    assert np.isnan(jitted(lg, bad)[0])
    with pytest.raises(checkify.JaxRuntimeError):
        jaxloss.checked(jax.jit(lambda x, y: mining.mined_cross_entropy(x, y)))(lg, bad)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_mined_cross_entropy_float32_value_and_gradient_against_float64_numpy(label_smoothing):
    logits, labels = _anchor_problem(4, n=1, a=20, c=3, rate=0.2)
    lg = np.asarray(logits[0], np.float32)
    lb = np.asarray(labels[0])
    lg64 = lg.astype(np.float64)  # the reference sees exactly the float32 inputs
    ce = np_cross_entropy(lg64, lb, label_smoothing)
    mask = caffe_rule_mask(ce, lb > 0, 3.0)
    # d/dz of the selected smoothed CE: softmax(z) − ((1 − ε) onehot + ε / C) on selected anchors
    p = np.exp(np_log_softmax(lg64))
    target = (1 - label_smoothing) * np.eye(3)[lb] + label_smoothing / 3
    expected_grad = np.where(mask[:, None], p - target, 0.0)

    def loss(x):
        return mining.mined_cross_entropy(x, lb, label_smoothing=label_smoothing)[0]

    value, grad = jax.jit(jax.value_and_grad(loss))(lg)
    assert value.dtype == grad.dtype == jnp.float32
    np.testing.assert_allclose(value, ce[mask].sum(), rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- static errors


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4)),
            TypeError,
            r"hard_negative_mask: `positives` must be a boolean mask",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(3, bool)),
            ValueError,
            r"hard_negative_mask: `positives` must have shape \(4,\)",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), neg_pos_ratio=-1.0),
            ValueError,
            r"hard_negative_mask: `neg_pos_ratio` must lie in \[0, inf\]",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), min_negatives=1.5),
            TypeError,
            r"hard_negative_mask: `min_negatives` must be an integer; got 1.5",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), min_negatives=-1),
            ValueError,
            r"hard_negative_mask: `min_negatives` must lie in",
        ),
        (
            lambda: mining.ohem_mask(jnp.ones(4), num_keep=-2),
            ValueError,
            r"ohem_mask: `num_keep` must lie in",
        ),
        (
            lambda: mining.ohem_mask(jnp.ones(4), num_keep=1, where=jnp.ones(4)),
            TypeError,
            r"ohem_mask: `where` must be a boolean mask",
        ),
        (
            lambda: mining.mined_cross_entropy(jnp.ones((4, 3), int), jnp.zeros(4, int)),
            TypeError,
            r"mined_cross_entropy: `logits` must be a floating-point array",
        ),
        (
            lambda: mining.mined_cross_entropy(jnp.ones((4, 3)), jnp.zeros(4)),
            TypeError,
            r"mined_cross_entropy: `labels` must be an integer array",
        ),
        (
            lambda: mining.mined_cross_entropy(jnp.ones((4, 3)), jnp.zeros(3, int)),
            ValueError,
            r"mined_cross_entropy: `labels` must have shape logits.shape\[:-1\]",
        ),
        (
            lambda: mining.mined_cross_entropy(jnp.ones((2, 4, 3)), jnp.zeros((2, 4), int)),
            ValueError,
            r"mined_cross_entropy: `logits` must have shape \(A, C\)",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), background_class=3
            ),
            ValueError,
            r"mined_cross_entropy: `background_class` must lie in \[0, 2\]",
        ),
        # issue 7: integers outside int32 were an OverflowError; bools were read as 0/1
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), min_negatives=2**40),
            ValueError,
            r"hard_negative_mask: `min_negatives` must lie in \[0, 2147483647\]; got 1099511627776",
        ),
        (
            lambda: mining.ohem_mask(jnp.ones(4), num_keep=2**31),
            ValueError,
            r"ohem_mask: `num_keep` must lie in \[0, 2147483647\]; got 2147483648",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), background_class=2**40
            ),
            ValueError,
            r"mined_cross_entropy: `background_class` must lie in \[0, 2\]; got 1099511627776",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), min_negatives=True),
            TypeError,
            r"hard_negative_mask: `min_negatives` must be an integer; got True",
        ),
        (
            lambda: mining.ohem_mask(jnp.ones(4), num_keep=np.bool_(True)),
            TypeError,
            r"ohem_mask: `num_keep` must be an integer; got ",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), background_class=False
            ),
            TypeError,
            r"mined_cross_entropy: `background_class` must be an integer; got False",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), background_class=1.0
            ),
            TypeError,
            r"mined_cross_entropy: `background_class` must be an integer; got 1.0",
        ),
        # no class; complex, non-numeric or non-scalar inputs
        (
            lambda: mining.mined_cross_entropy(jnp.ones((4, 0)), jnp.zeros(4, int)),
            ValueError,
            r"mined_cross_entropy: `logits` must have at least one class \(its last axis\)",
        ),
        (
            lambda: mining.mined_cross_entropy(jnp.ones((4, 3)) * 1j, jnp.zeros(4, int)),
            TypeError,
            r"mined_cross_entropy: `logits` must be real",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4) * 1j, jnp.ones(4, bool)),
            TypeError,
            r"hard_negative_mask: `losses` must be real",
        ),
        (
            lambda: mining.ohem_mask("abc", num_keep=1),
            TypeError,
            r"ohem_mask: `losses` must be a real number or array; got 'abc'",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), neg_pos_ratio=[1, 2]),
            ValueError,
            r"hard_negative_mask: `neg_pos_ratio` must be a scalar",
        ),
        (
            lambda: mining.hard_negative_mask(jnp.ones(4), jnp.ones(4, bool), neg_pos_ratio=True),
            TypeError,
            r"hard_negative_mask: `neg_pos_ratio` must be a real number",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), neg_pos_ratio=np.nan
            ),
            ValueError,
            r"mined_cross_entropy: `neg_pos_ratio` must lie in \[0, inf\]; got nan",
        ),
        (
            lambda: mining.mined_cross_entropy(
                jnp.ones((4, 3)), jnp.zeros(4, int), label_smoothing=1.5
            ),
            ValueError,
            r"mined_cross_entropy: `label_smoothing` must lie in \[0, 1\]",
        ),
    ],
)
def test_static_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------- traced hyperparameters out of range (issue 7)

_LOSSES = jnp.array([0.1, 2.0, 0.5, 0.3, 0.9])
_ONE_POSITIVE = jnp.array([True, False, False, False, False])


def test_numpy_integer_counts_are_accepted():
    # NumPy integers are integers (np.int64(2) gives what 2 gives).
    np.testing.assert_array_equal(
        mining.hard_negative_mask(_LOSSES, _ONE_POSITIVE, min_negatives=np.int64(2)),
        mining.hard_negative_mask(_LOSSES, _ONE_POSITIVE, min_negatives=2),
    )
    np.testing.assert_array_equal(
        mining.ohem_mask(_LOSSES, num_keep=np.uint8(2)), [False, True, False, False, True]
    )
    logits, labels = _anchor_problem(5, n=1, a=8, c=3, rate=0.3)
    # jitted: op by op the cross entropy compiles slowly
    jitted = jax.jit(mining.mined_cross_entropy, static_argnames="background_class")
    loss_sum, count = jitted(logits[0], labels[0], background_class=np.int64(1))
    lb = np.asarray(labels[0])
    ce = np_cross_entropy(np.asarray(logits[0]), lb)
    np.testing.assert_allclose(loss_sum, ce[caffe_rule_mask(ce, lb != 1, 3.0)].sum(), rtol=1e-5)
    assert count == np.sum(lb != 1)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"neg_pos_ratio": -1.0}, "neg_pos_ratio"), ({"min_negatives": -2}, "min_negatives")],
)
def test_traced_bad_mask_hyperparameter_counts_as_zero_and_checked_raises(kwargs, name):
    """The documented rule for the boolean masks: no NaN to give, so the term counts as 0."""
    jitted = jax.jit(mining.hard_negative_mask)
    # A negative ratio keeps no negative from the ratio; a negative min_negatives no minimum.
    expected = caffe_rule_mask(np.asarray(_LOSSES), np.asarray(_ONE_POSITIVE), 0.0, 0)
    if name == "min_negatives":  # the default ratio 3 still applies: 3 hardest negatives
        expected = caffe_rule_mask(np.asarray(_LOSSES), np.asarray(_ONE_POSITIVE), 3.0, 0)
    np.testing.assert_array_equal(jitted(_LOSSES, _ONE_POSITIVE, **kwargs), expected)
    with pytest.raises(
        checkify.JaxRuntimeError, match=rf"^jaxloss.hard_negative_mask: `{name}` must"
    ):
        jaxloss.checked(jitted)(_LOSSES, _ONE_POSITIVE, **kwargs)


def test_traced_negative_num_keep_keeps_nothing_and_checked_raises():
    jitted = jax.jit(mining.ohem_mask)
    np.testing.assert_array_equal(jitted(_LOSSES, num_keep=-1), np.zeros(5, bool))
    with pytest.raises(checkify.JaxRuntimeError, match=r"^jaxloss.ohem_mask: `num_keep` must"):
        jaxloss.checked(jitted)(_LOSSES, num_keep=-1)


def test_infinite_ratio_keeps_every_negative():
    # ⌊inf · 1⌋ negatives, capped at #negatives = 4; with no positive, inf · 0 keeps none
    # (torchvision: rank < nan is False).
    mask = mining.hard_negative_mask(_LOSSES, _ONE_POSITIVE, neg_pos_ratio=np.inf)
    np.testing.assert_array_equal(mask, np.ones(5, bool))
    mask = mining.hard_negative_mask(_LOSSES, jnp.zeros(5, bool), neg_pos_ratio=np.inf)
    np.testing.assert_array_equal(mask, np.zeros(5, bool))


def test_mined_cross_entropy_bad_values_give_nan_and_checked_names_it():
    """Traced hyperparameters out of range and bad values: NaN, and checked raises naming
    mined_cross_entropy (not the cross entropy or the mask it calls)."""
    logits, labels = _anchor_problem(6, n=1, a=8, c=3, rate=0.3)
    lg, lb = logits[0], labels[0]
    bad_lb, nan_lg = np.array(lb), np.array(lg)  # NumPy: no eager scatter to compile
    bad_lb[0], nan_lg[0, 0] = 3, np.nan
    jitted = jax.jit(mining.mined_cross_entropy)
    cases = [
        ((lg, lb), {"neg_pos_ratio": -1.0}, r"`neg_pos_ratio` must lie in \[0, inf\]"),
        ((lg, lb), {"min_negatives": -1}, r"`min_negatives` must be a non-negative integer"),
        ((lg, lb), {"label_smoothing": 1.5}, r"`label_smoothing` must lie in \[0, 1\]"),
        ((lg, jnp.asarray(bad_lb)), {}, r"`labels` has values outside \[0, 3\)"),
        ((jnp.asarray(nan_lg), lb), {}, r"`logits` contains NaN or \+inf"),
    ]
    # Every unchecked call first: checked() clears jitted's cache, so interleaving them would
    # recompile the unchecked function for every case.
    for args, kwargs, _ in cases:
        loss_sum, count = jitted(*args, **kwargs)
        assert np.isnan(loss_sum)
        assert count == np.sum(np.asarray(args[1]) != 0)  # the count stays the count
    for args, kwargs, match in cases:
        with pytest.raises(
            checkify.JaxRuntimeError, match=rf"^jaxloss.mined_cross_entropy: {match}"
        ):
            jaxloss.checked(jitted)(*args, **kwargs)


def test_mined_cross_entropy_without_anchors_is_an_empty_sum():
    # jitted: op by op the cross entropy compiles every primitive (shapes stay static)
    loss_sum, count = jax.jit(mining.mined_cross_entropy)(
        jnp.zeros((0, 3)), jnp.zeros(0, jnp.int32)
    )
    assert float(loss_sum) == 0.0 and float(count) == 0.0


@pytest.mark.x64
def test_traced_counts_of_any_integer_dtype_saturate_at_int32():
    # A traced int64 beyond int32 keeps everything (before: wrapped around); a uint32 count is
    # read as its value (clipping it against a negative int32 bound would wrap it).
    jitted = jax.jit(mining.ohem_mask)
    np.testing.assert_array_equal(jitted(_LOSSES, num_keep=2**40), np.ones(5, bool))
    np.testing.assert_array_equal(
        jitted(_LOSSES, num_keep=jnp.uint32(2)), [False, True, False, False, True]
    )
    np.testing.assert_array_equal(jitted(_LOSSES, num_keep=jnp.uint64(2**63)), np.ones(5, bool))
    with pytest.raises(TypeError, match=r"^jaxloss.ohem_mask: `num_keep` must be an integer sc"):
        jitted(_LOSSES, num_keep=2.0)
