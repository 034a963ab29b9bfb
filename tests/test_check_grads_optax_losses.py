"""The Taylor remainder test (`jaxloss.testing.assert_gradient_consistent`, float64) for the
optax losses whose own test files check gradients against torch constants, NumPy references and
optax instead: margin, sparsemax, metric learning, ranking, CTC and generalized dice. (float32,
every public loss: tests/test_losses_self_checks.py.)

Inputs are away from kinks (hinge corners, sparsemax support changes), where a step straddles
two pieces.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss.testing import assert_gradient_consistent

RNG = np.random.default_rng(0)
SCORES = np.array([[2.0, 0.4, -1.0], [0.1, 1.5, 0.6]])  # distinct, margins ≥ 0.2 from every kink
LABELS = np.array([0, 2])
RELEVANCE = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])


def _cases():
    anchors, positives, negatives = (RNG.normal(size=(3, 4)) for _ in range(3))
    embeddings = RNG.normal(size=(6, 3))
    ctc_logits = RNG.normal(size=(2, 6, 4))
    ctc_paddings = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]], np.float64)
    ctc_labels = np.array([[1, 2, 2], [3, 1, 0]])
    label_paddings = np.array([[0, 0, 0], [0, 0, 1]], np.float64)
    fenchel_young = jaxloss.make_fenchel_young_loss(jax.scipy.special.logsumexp)
    return {
        "hinge_loss": (
            lambda f: jaxloss.hinge_loss(f, jnp.array([1, -1, 1])),
            np.array([2.0, 0.3, -0.5]),  # 1 - f t = -1, 1.3, 1.5
        ),
        "perceptron_loss": (
            lambda f: jaxloss.perceptron_loss(f, jnp.array([1, -1, 1])),
            np.array([2.0, 0.3, -0.5]),  # -f t = -2, 0.3, 0.5
        ),
        "multiclass_hinge_loss": (lambda s: jaxloss.multiclass_hinge_loss(s, LABELS), SCORES),
        "multiclass_perceptron_loss": (
            lambda s: jaxloss.multiclass_perceptron_loss(s, LABELS),
            SCORES,
        ),
        "sparsemax_loss": (
            lambda x: jaxloss.sparsemax_loss(x, jnp.array([1.0, 0.0, 1.0])),
            np.array([0.3, -0.4, 2.0]),  # pieces: |x| < 1 quadratic, x > 1 linear
        ),
        "multiclass_sparsemax_loss": (
            lambda s: jaxloss.multiclass_sparsemax_loss(s, LABELS),
            SCORES,
        ),
        "make_fenchel_young_loss": (
            lambda s: fenchel_young(s, jax.nn.one_hot(LABELS, 3, dtype=s.dtype)),
            SCORES,
        ),
        "triplet_margin_loss": (
            lambda a: jaxloss.triplet_margin_loss(a, positives, negatives, margin=10.0),
            anchors,  # a large margin: every triplet is active, away from the hinge
        ),
        "ntxent": (
            lambda e: jaxloss.ntxent(e, jnp.array([0, 0, 1, 1, 2, 2]), temperature=0.5),
            embeddings,
        ),
        "ranking_softmax_loss": (
            lambda s: jaxloss.ranking_softmax_loss(s, RELEVANCE),
            SCORES,
        ),
        "ctc_loss": (
            lambda x: jaxloss.ctc_loss(x, ctc_paddings, ctc_labels, label_paddings),
            ctc_logits,
        ),
        "generalized_dice_loss": (
            lambda x: jaxloss.generalized_dice_loss(x, jnp.array([0, 1, 1, 2])),
            RNG.normal(size=(4, 3)),
        ),
    }


CASES = _cases()


@pytest.mark.x64
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_consistent(name):
    fn, x = CASES[name]
    assert_gradient_consistent(lambda x: jnp.sum(fn(x)), jnp.asarray(x, jnp.float64))
