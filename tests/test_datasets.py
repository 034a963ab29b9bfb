"""Tests for jaxloss.datasets: shapes, dtypes, determinism, and the statistics each promises."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import datasets


def _same(a, b):
    chex.assert_trees_all_equal(a, b)


def _differ(a, b):
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ------------------------------------------------------------------------------------ xor


def test_xor_truth_table():
    inputs, targets = datasets.xor()
    chex.assert_shape(inputs, (4, 2))
    chex.assert_shape(targets, (4, 1))
    assert inputs.dtype == targets.dtype == jnp.float32
    x = np.asarray(inputs).astype(int)
    np.testing.assert_array_equal(np.asarray(targets)[:, 0], x[:, 0] ^ x[:, 1])


@pytest.mark.x64
def test_xor_float64():
    inputs, targets = datasets.xor(dtype=jnp.float64)
    assert inputs.dtype == targets.dtype == jnp.float64
    np.testing.assert_array_equal(targets[:, 0], [0.0, 1.0, 1.0, 0.0])


# -------------------------------------------------------------------------------- spirals


def test_spirals_shapes_balance_and_determinism():
    x, y = datasets.spirals(301, classes=3, noise=0.1, key=0)
    chex.assert_shape(x, (301, 2))
    chex.assert_shape(y, (301,))
    assert x.dtype == jnp.float32 and y.dtype == jnp.int32
    counts = np.bincount(np.asarray(y), minlength=3)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 301
    _same(datasets.spirals(301, classes=3, noise=0.1, key=0), (x, y))
    _same(datasets.spirals(301, classes=3, noise=0.1, key=jax.random.key(0)), (x, y))
    _differ(datasets.spirals(301, classes=3, noise=0.1, key=1), (x, y))
    # NumPy integers are integers (sizes and seeds); a legacy uint32 key is a key.
    _same(datasets.spirals(np.int64(301), classes=np.int32(3), noise=0.1, key=np.int64(0)), (x, y))
    legacy = datasets.spirals(301, classes=3, noise=0.1, key=jax.random.PRNGKey(0))
    chex.assert_shape(legacy[0], (301, 2))


def test_spirals_noiseless_points_lie_on_their_arm():
    classes, turns = 4, 1.5
    x, y = map(np.asarray, datasets.spirals(200, classes=classes, noise=0.0, turns=turns, key=3))
    r = np.hypot(x[:, 0], x[:, 1])
    assert np.all(r <= 1 + 1e-6)
    # Independent geometry: the point's polar angle is 2π(c/classes + turns·r) modulo 2π.
    expected = 2 * np.pi * (y / classes + turns * r)
    diff = np.angle(np.exp(1j * (np.arctan2(x[:, 1], x[:, 0]) - expected)))
    keep = r > 1e-3  # the angle of a point at the origin is undefined
    np.testing.assert_allclose(diff[keep], 0, atol=1e-3)


# ---------------------------------------------------------------------- linear regression


def test_linear_regression_matches_its_true_params():
    x, t, true_params = datasets.linear_regression(2000, 3, noise=0.1, key=5)
    chex.assert_shape(x, (2000, 3))
    chex.assert_shape(t, (2000, 1))
    chex.assert_shape(true_params[0]["w"], (3, 1))
    chex.assert_shape(true_params[0]["b"], (1,))
    assert x.dtype == t.dtype == jnp.float32
    w, b = np.asarray(true_params[0]["w"]), np.asarray(true_params[0]["b"])
    residual = np.asarray(t) - (np.asarray(x) @ w + b)
    assert abs(residual.std() - 0.1) < 0.01 and abs(residual.mean()) < 0.01
    # Least squares (the maximum-likelihood fit) recovers the true weights.
    design = np.concatenate([np.asarray(x, np.float64), np.ones((2000, 1))], axis=1)
    fit = np.linalg.lstsq(design, np.asarray(t, np.float64), rcond=None)[0]
    np.testing.assert_allclose(fit[:, 0], np.concatenate([w[:, 0], b]), atol=0.01)
    _same(datasets.linear_regression(2000, 3, noise=0.1, key=5), (x, t, true_params))


def test_linear_regression_noiseless_equals_the_linear_model():
    x, t, true_params = datasets.linear_regression(10, 4, noise=0.0, key=1)
    _, apply_fn = jaxloss.linear(4, 1)
    pred = jax.jit(jax.vmap(apply_fn, (None, 0)))(true_params, x)  # op by op: a compile per op
    chex.assert_trees_all_close(pred, t, atol=1e-6)


# ------------------------------------------------------------------------ imbalanced anchors


def test_imbalanced_anchors_rate_classes_and_determinism():
    feats, labels = datasets.imbalanced_anchors(32, 512, positive_rate=0.05, classes=4, key=2)
    chex.assert_shape(feats, (32, 512, 8))
    chex.assert_shape(labels, (32, 512))
    assert feats.dtype == jnp.float32 and labels.dtype == jnp.int32
    lab = np.asarray(labels)
    assert abs((lab > 0).mean() - 0.05) < 0.01
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    # Features carry the class: each class mean is nearer its own centre than the others'.
    f = np.asarray(feats)
    means = np.stack([f[lab == c].mean(0) for c in range(4)])
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert np.all(dists[~np.eye(4, dtype=bool)] > 0.5)
    _same(
        datasets.imbalanced_anchors(32, 512, positive_rate=0.05, classes=4, key=2), (feats, labels)
    )
    _differ(
        datasets.imbalanced_anchors(32, 512, positive_rate=0.05, classes=4, key=3), (feats, labels)
    )


def test_imbalanced_anchors_rare_positives_leave_some_samples_empty():
    _, labels = datasets.imbalanced_anchors(64, 20, positive_rate=0.02, key=0)
    per_sample = np.asarray(labels > 0).sum(1)
    assert (per_sample == 0).any() and (per_sample > 0).any()
    assert np.asarray(datasets.imbalanced_anchors(2, 5, positive_rate=0.0, key=0)[1]).max() == 0
    assert np.asarray(datasets.imbalanced_anchors(2, 5, positive_rate=1.0, key=0)[1]).min() == 1


# ------------------------------------------------------------------------ segmentation blobs


def test_segmentation_blobs_masks():
    images, masks = datasets.segmentation_blobs(200, 16, key=4)
    chex.assert_shape(images, (200, 16, 16))
    chex.assert_shape(masks, (200, 16, 16))
    assert images.dtype == masks.dtype == jnp.float32
    m = np.asarray(masks)
    assert set(np.unique(m)) == {0.0, 1.0}
    empty = m.sum((1, 2)) == 0
    # 0..3 discs uniformly: a quarter of the masks are empty.
    assert 0.15 < empty.mean() < 0.35
    assert (m.sum((1, 2)) > 0).mean() > 0.5
    _same(datasets.segmentation_blobs(200, 16, key=4), (images, masks))


def test_segmentation_blobs_image_is_mask_plus_noise():
    images, masks = datasets.segmentation_blobs(6, 8, noise=0.0, max_blobs=1, key=7)
    chex.assert_trees_all_equal(images, masks)
    images, masks = datasets.segmentation_blobs(50, 8, noise=0.5, key=7)
    assert abs(float(np.std(np.asarray(images) - np.asarray(masks))) - 0.5) < 0.05


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: datasets.spirals(0, key=0), ValueError, r"spirals: `n` must lie in \[1, inf\]"),
        (lambda: datasets.spirals(5, classes=1, key=0), ValueError, r"`classes` must lie in \[2,"),
        (lambda: datasets.spirals(5, noise=-1.0, key=0), ValueError, r"`noise` must lie in"),
        (lambda: datasets.spirals(5, key=None), TypeError, r"spirals: `key` must be a jax.random"),
        # One rule: wrong type -> TypeError (floats and bools are not integers or seeds).
        (lambda: datasets.spirals(5.0, key=0), TypeError, r"spirals: `n` must be an integer"),
        (lambda: datasets.spirals(True, key=0), TypeError, r"spirals: `n` must be an integer"),
        (lambda: datasets.spirals(5, key=0.5), TypeError, r"spirals: `key` must be a jax.random"),
        (lambda: datasets.spirals(5, key=True), TypeError, r"spirals: `key` must be a jax.random"),
        (
            lambda: datasets.linear_regression(5, 0, key=0),
            ValueError,
            r"linear_regression: `dim` must lie in \[1, inf\]",
        ),
        (
            lambda: datasets.imbalanced_anchors(2, 5, positive_rate=1.5, key=0),
            ValueError,
            r"imbalanced_anchors: `positive_rate` must lie in \[0, 1\]",
        ),
        (
            lambda: datasets.segmentation_blobs(2, 3, key=0),
            ValueError,
            r"segmentation_blobs: `size` must lie in \[4, inf\]",
        ),
        (
            lambda: datasets.segmentation_blobs(2, 8, max_blobs=0, key=0),
            ValueError,
            r"`max_blobs` must lie in \[1, inf\]",
        ),
    ],
)
def test_static_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
