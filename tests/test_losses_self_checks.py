"""jaxloss.testing on jaxloss itself: every public loss (and so every custom_jvp rule inside:
the sigmoid, focal, softmax and probability cross-entropy cores, log_cosh, cosine, the
divergences, sparsemax) has a gradient consistent with its value (Taylor remainder test,
float32, with respect to every floating-point argument: logits, labels, hyperparameters given as
arrays) and a finite gradient wherever its value is finite at extreme logits/predictions (±1e4,
0), in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.testing import assert_finite_gradients, assert_gradient_consistent

rng = np.random.default_rng(0)
F32 = np.float32
X = (1.5 * rng.normal(size=(3, 4))).astype(F32)  # logits / predictions / scores
T = rng.normal(size=(3, 4)).astype(F32)  # regression targets
INT = np.array([0, 2, 3], np.int32)  # integer class labels
SOFT = rng.uniform(0.2, 1.0, size=(3, 4)).astype(F32)
SOFT = (SOFT / SOFT.sum(-1, keepdims=True)).astype(F32)  # probability rows, interior
ONE_HOT = np.eye(4, dtype=F32)[INT]
P01 = rng.uniform(0.15, 0.85, size=(3, 4)).astype(F32)  # binary probabilities, interior
HARD01 = (P01 > 0.5).astype(F32)  # binary labels 0 and 1 (where p_t reaches 1)
SIGNS = np.where(T > 0, 1.0, -1.0).astype(F32)
LOGP = np.asarray(jax.nn.log_softmax(X), F32)
LOGQ = np.log(SOFT).astype(F32)


def first(fn):
    """The loss of a function that returns (loss, extras)."""
    return lambda *args: fn(*args)[0]


def fenchel_young(scores, labels):
    return jaxloss.make_fenchel_young_loss(jax.scipy.special.logsumexp)(scores, labels)


def focal(x, y, gamma):  # gamma < 1: (1 - p_t)**gamma has an infinite slope at p_t = 1
    return jaxloss.sigmoid_focal_loss(x, y, gamma=gamma)


def softmax_focal(x, y, gamma):
    return jaxloss.softmax_focal_loss(x, y, gamma=gamma)


def gaussian(mean, targets, log_std):
    return jaxloss.gaussian_nll(mean, targets, log_std=log_std)


def laplace(location, targets, log_scale):
    return jaxloss.laplace_nll(location, targets, log_scale=log_scale)


CTC_LOGITS = (1.5 * rng.normal(size=(2, 5, 4))).astype(F32)  # 2 sequences, 5 frames, 4 symbols
CTC = (np.zeros((2, 5), F32), np.array([[1, 2], [3, 3]], np.int32), np.zeros((2, 2), F32))

# Public losses that are another one's core with more outputs (checked through that one).
SAME_CORE = {"ctc_loss_with_forward_probs": "ctc_loss", "cosine_distance": "cosine_similarity"}

# name: (loss, args for the gradient check, args for the finite check). Both vary and
# differentiate the first argument; the gradient check all the floating-point ones (labels with
# probabilities strictly inside (0, 1): a step from 0 or 1 leaves the domain at once).
LOSSES = {
    # regression
    "squared_error": (jaxloss.squared_error, (X, T), (X, T)),
    "l2_loss": (jaxloss.l2_loss, (X, T), (X, T)),
    "absolute_error": (jaxloss.absolute_error, (X, T), (X, T)),
    "mse": (jaxloss.mse, (X, T), (X, T)),
    "rmse": (jaxloss.rmse, (X, T), (X, T)),
    "mae": (jaxloss.mae, (X, T), (X, T)),
    "huber_loss": (jaxloss.huber_loss, (X, T), (X, T)),
    "log_cosh": (jaxloss.log_cosh, (X, T), (X, T)),
    "cosine_similarity": (jaxloss.cosine_similarity, (X, T), (X, T)),
    # classification
    "sigmoid_binary_cross_entropy": (jaxloss.sigmoid_binary_cross_entropy, (X, P01), (X, HARD01)),
    "sigmoid_focal_loss": (focal, (X, P01, F32(0.5)), (X, HARD01, 0.5)),
    "softmax_cross_entropy": (jaxloss.softmax_cross_entropy, (X, SOFT), (X, ONE_HOT)),
    "softmax_cross_entropy_with_integer_labels": (
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (X, INT),
        (X, INT),
    ),
    "softmax_focal_loss": (softmax_focal, (X, SOFT, F32(0.5)), (X, ONE_HOT, 0.5)),
    "softmax_focal_loss_with_integer_labels": (
        lambda x, y: jaxloss.softmax_focal_loss_with_integer_labels(x, y, gamma=0.5),
        (X, INT),
        (X, INT),
    ),
    "poly_loss_cross_entropy": (jaxloss.poly_loss_cross_entropy, (X, SOFT), (X, ONE_HOT)),
    # divergences
    "kl_divergence": (jaxloss.kl_divergence, (LOGP, SOFT), (LOGP, ONE_HOT)),
    "kl_divergence_with_log_targets": (
        jaxloss.kl_divergence_with_log_targets,
        (LOGP, LOGQ),
        (LOGP, LOGQ),
    ),
    "generalized_kl_divergence": (jaxloss.generalized_kl_divergence, (LOGP, SOFT), (LOGP, ONE_HOT)),
    "convex_kl_divergence": (jaxloss.convex_kl_divergence, (LOGP, SOFT), (LOGP, ONE_HOT)),
    # margin
    "hinge_loss": (jaxloss.hinge_loss, (X, SIGNS), (X, SIGNS)),
    "perceptron_loss": (jaxloss.perceptron_loss, (X, SIGNS), (X, SIGNS)),
    "multiclass_hinge_loss": (jaxloss.multiclass_hinge_loss, (X, INT), (X, INT)),
    "multiclass_perceptron_loss": (jaxloss.multiclass_perceptron_loss, (X, INT), (X, INT)),
    # sparsemax / Fenchel-Young
    "sparsemax_loss": (jaxloss.sparsemax_loss, (X, P01), (X, HARD01)),
    "multiclass_sparsemax_loss": (jaxloss.multiclass_sparsemax_loss, (X, INT), (X, INT)),
    "make_fenchel_young_loss": (fenchel_young, (X, SOFT), (X, ONE_HOT)),
    # metric learning, ranking
    "triplet_margin_loss": (jaxloss.triplet_margin_loss, (X, T, X[::-1] + 1), (X, T, X + 1)),
    # temperature 1: at the default 0.07 these embeddings give a loss of 1e-6, all roundoff
    "ntxent": (lambda x, y: jaxloss.ntxent(x, y, temperature=1.0), (X, INT % 2), (X, INT % 2)),
    "ranking_softmax_loss": (jaxloss.ranking_softmax_loss, (X, P01), (X, HARD01)),
    # sequences
    "ctc_loss": (jaxloss.ctc_loss, (CTC_LOGITS, *CTC), (CTC_LOGITS, *CTC)),
    # segmentation: (pixels, classes) logits against integer labels or probabilities
    "dice_loss": (jaxloss.dice_loss, (X, SOFT), (X, INT)),
    "jaccard_loss": (jaxloss.jaccard_loss, (X, SOFT), (X, INT)),
    "tversky_loss": (jaxloss.tversky_loss, (X, SOFT), (X, INT)),
    "generalized_dice_loss": (jaxloss.generalized_dice_loss, (X, SOFT), (X, INT)),
    # mining, likelihood
    "mined_cross_entropy": (first(jaxloss.mined_cross_entropy), (X, INT), (X, INT)),
    "gaussian_nll": (gaussian, (X[0], T[0], X[1]), (X[0], T[0], X[1])),
    "laplace_nll": (laplace, (X[0], T[0], X[1]), (X[0], T[0], X[1])),
    "bernoulli_nll": (jaxloss.bernoulli_nll, (X, P01), (X, HARD01)),
    "categorical_nll": (jaxloss.categorical_nll, (X, INT), (X, INT)),
}


def test_every_public_loss_is_in_the_table():
    losses = {
        name
        for name in jaxloss.__all__
        if getattr(getattr(jaxloss, name), "__module__", "").split(".")[-1]
        in {
            "regression",
            "classification",
            "divergences",
            "margin",
            "sparsemax",
            "metric",
            "ranking",
            "sequence",
            "segmentation",
            "mining",
            "likelihood",
        }
    }
    # Not losses: a label transform and the masks that mined_cross_entropy applies.
    assert losses - set(LOSSES) - set(SAME_CORE) == {
        "smooth_labels",
        "hard_negative_mask",
        "ohem_mask",
    }


def summed(fn):
    return lambda args: jnp.sum(fn(*args))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_consistent_and_finite(name):
    fn, grad_args, finite_args = LOSSES[name]
    # params: the whole argument tuple (integer labels pass through untouched).
    assert_gradient_consistent(summed(fn), tuple(jnp.asarray(a) for a in grad_args))
    # Every floating-point argument varied (one at a time) and differentiated; float32 only:
    # every loss computes half precision in float32 (test_*_half_precision_*).
    floating = tuple(i for i, a in enumerate(finite_args) if np.asarray(a).dtype.kind == "f")
    assert_finite_gradients(fn, *finite_args, argnums=floating, half_precision=False)
