"""Margin losses: binary and multiclass hinge and perceptron losses.

The binary losses are elementwise in a score `f` and a target `t` in {-1, +1}; the multiclass ones
(Crammer-Singer) reduce the class axis (last) of scores against integer labels. All are piecewise
linear: their gradient is a subgradient, 0 at the kink (as torch's `multi_margin_loss`; optax's
`jnp.maximum` gives half the slope there).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks
from jaxloss.classification import _one_hot, _take


def _positive_part(v: jax.Array) -> jax.Array:
    """max(v, 0) with derivative 0 at v = 0 (a branch, not `maximum`, whose tie gives 1/2) and
    NaN kept (`v <= 0` is False for NaN)."""
    return jnp.where(v <= 0, 0, v)


def _signed_targets(fn: str, outputs: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    """Floating outputs and their ±1 targets (same shape); a target other than ±1 makes its
    position's value NaN (the caller applies the returned mask), and `jaxloss.checked` raises."""
    if _checks.real(fn, "targets", targets).dtype == jnp.bool_:
        # {False, True} would read as {0, 1}: the 0/1 labels of the logistic losses, not ±1.
        raise TypeError(
            f"jaxloss.{fn}: `targets` must be -1 or +1 (a float or integer array); got dtype "
            "bool. For 0/1 labels pass `2 * labels - 1`."
        )
    outputs, targets = _checks.float_pair(fn, "predictor_outputs", outputs, "targets", targets)
    _checks.not_nan(fn, "predictor_outputs", outputs)
    _checks.runtime_check(
        fn, (targets == 1) | (targets == -1), "`targets` has values other than -1 and +1."
    )
    return outputs, targets


def _signed_margin_loss(fn: str, outputs: Any, targets: Any, margin: float) -> jax.Array:
    """max(0, margin - f t), NaN where t is not ±1."""
    return _signed_core(*_signed_targets(fn, outputs, targets), margin=margin)


# The numeric cores are jitted: an un-jitted call compiles one program instead of one per
# operation. The checks stay outside them, so `jaxloss.checked` still sees every one.
@functools.partial(jax.jit, static_argnames="margin")
def _signed_core(outputs: jax.Array, targets: jax.Array, margin: float) -> jax.Array:
    loss = _positive_part(margin - outputs * targets)
    return jnp.where((targets == 1) | (targets == -1), loss, jnp.nan)


def _integer_scores(fn: str, scores: Any, labels: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Checked scores (..., C) and integer labels (...): the labels with out-of-range ones
    replaced by 0 (safe to gather), and the mask of those (their loss is NaN; `checked` raises)."""
    scores = _checks.as_logits(fn, "scores", scores)
    labels = _checks.real(fn, "labels", labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        # optax's one_hot reads a float label 1.5 as no class at all, silently.
        raise TypeError(
            f"jaxloss.{fn}: `labels` must be an integer array of class indices; got dtype "
            f"{labels.dtype}."
        )
    _checks.integer_labels_shape(fn, scores, labels, logits_name="scores")
    _checks.non_empty(fn, "scores", scores, axis=-1)
    num_classes = scores.shape[-1]
    bad = (labels < 0) | (labels >= num_classes)
    _checks.runtime_check(fn, ~bad, f"`labels` has values outside [0, {num_classes}).")
    _checks.not_nan(fn, "scores", scores)
    return scores, jnp.where(bad, 0, labels), bad


def _multiclass_margin_loss(fn: str, scores: Any, labels: Any, margin: float) -> jax.Array:
    """max(0, margin + max_{c != y} s_c - s_y), NaN for a label out of range."""
    return _multiclass_core(*_integer_scores(fn, scores, labels), margin=margin)


@functools.partial(jax.jit, static_argnames="margin")
def _multiclass_core(scores: jax.Array, safe: jax.Array, bad: jax.Array, margin: float):
    is_label = _one_hot(safe, scores.shape, jnp.bool_)
    # The label's own score is left out of the max, not 0 * s_y'd out of a dot product: a -inf
    # score elsewhere (a masked class) stays harmless, and s_y = +inf gives the limit 0.
    rival = jnp.max(jnp.where(is_label, -jnp.inf, scores), axis=-1)
    loss = _positive_part(margin + rival - _take(scores, safe))
    return jnp.where(bad, jnp.nan, loss)


def hinge_loss(predictor_outputs: Any, targets: Any) -> jax.Array:
    """Elementwise binary hinge loss `max(0, 1 - f * t)` of scores f against targets t = ±1.

    Args:
      predictor_outputs: float array f of any shape (scores of a decision function); ±inf allowed.
      targets: array of the same shape, values -1 or +1 (float or integer; a bool array is a
        TypeError, since 0/1 labels are not ±1). Any other value gives NaN (optax computes a
        number from it) and `jaxloss.checked` raises.

    Returns:
      loss of predictor_outputs' shape; float32 for half-precision inputs. The gradient is -t
      where f t < 1 and 0 from the kink f t = 1 on.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.hinge_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, 1, 1])))
      [0.  0.5 2. ]

    Reference: equals `optax.losses.hinge_loss` for ±1 targets (except the half slope optax's
    `jnp.maximum` gives at the kink) and
    `2 * torch.nn.functional.multi_margin_loss(stack([-f/2, f/2], -1), (t + 1) / 2,
    reduction='none')`, the two-class form of the same margin.
    """
    return _signed_margin_loss("hinge_loss", predictor_outputs, targets, 1.0)


def perceptron_loss(predictor_outputs: Any, targets: Any) -> jax.Array:
    """Elementwise binary perceptron loss `max(0, -f * t)` of scores f against targets t = ±1.

    Args:
      predictor_outputs: float array f of any shape; ±inf allowed.
      targets: array of the same shape, values -1 or +1 (float or integer; bool is a
        TypeError); any other value gives NaN and `jaxloss.checked` raises.

    Returns:
      loss of predictor_outputs' shape; float32 for half-precision inputs. The gradient is -t
      where f t < 0 (a mistake) and 0 elsewhere, also at f t = 0.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> print(jaxloss.perceptron_loss(jnp.array([2.0, 0.5, -1.0]), jnp.array([1, -1, 1])))
      [0.  0.5 1. ]

    Reference: Rosenblatt's perceptron criterion; equals `optax.losses.perceptron_loss` for ±1
    targets (except its half slope at f t = 0) and `2 * torch.nn.functional.multi_margin_loss(
    stack([-f/2, f/2], -1), (t + 1) / 2, margin=0, reduction='none')`.
    """
    return _signed_margin_loss("perceptron_loss", predictor_outputs, targets, 0.0)


def multiclass_hinge_loss(scores: Any, labels: Any) -> jax.Array:
    """Multiclass (Crammer-Singer) hinge loss over the last axis, against integer labels.

    `loss = max(0, 1 + max_{c != y} s_c - s_y) = max_c (s_c + 1 - [c = y]) - s_y`: the largest
    margin violation by any other class.

    Args:
      scores: float array (..., C), C >= 1; -inf allowed (a class switched off).
      labels: integer array of shape scores.shape[:-1], values in [0, C); any other value gives
        NaN (optax's one-hot silently reads it as no class) and `jaxloss.checked` raises.

    Returns:
      loss of shape scores.shape[:-1]; float32 for half-precision inputs. The gradient is +1 at
      the most violating class and -1 at the label where the loss is positive, 0 elsewhere
      (also at the kink).

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> scores = jnp.array([[2.0, 0.5, 1.8], [0.0, 3.0, -jnp.inf]])
      >>> print(jaxloss.multiclass_hinge_loss(scores, jnp.array([0, 0])))
      [0.8 4. ]

    Reference: Crammer & Singer, "On the algorithmic implementation of multiclass kernel-based
    vector machines", JMLR 2001; equals `optax.losses.multiclass_hinge_loss` (which, un-jitted,
    gives NaN for a -inf score: 0 * -inf in its one-hot dot product; and a number for a label
    out of range). torch's `multi_margin_loss` averages the violations instead of taking the
    largest: this loss is the max over c != y of `2 * multi_margin_loss(s[[y, c]], 0)`, and for
    C = 2 it is `2 * multi_margin_loss(s, y)`.
    """
    return _multiclass_margin_loss("multiclass_hinge_loss", scores, labels, 1.0)


def multiclass_perceptron_loss(scores: Any, labels: Any) -> jax.Array:
    """Multiclass perceptron loss over the last axis: `max_c s_c - s_y`, against integer labels.

    Args:
      scores: float array (..., C), C >= 1; -inf allowed (a class switched off).
      labels: integer array of shape scores.shape[:-1], values in [0, C); any other value gives
        NaN and `jaxloss.checked` raises.

    Returns:
      loss of shape scores.shape[:-1]; float32 for half-precision inputs. The gradient is +1 at
      the highest-scoring class and -1 at the label when they differ, 0 when the label's score
      is (also tied for) the highest.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> scores = jnp.array([[2.0, 0.5, 1.8], [0.0, 3.0, -jnp.inf]])
      >>> print(jaxloss.multiclass_perceptron_loss(scores, jnp.array([0, 0])))
      [0. 3.]

    Reference: Collins, "Discriminative training methods for hidden Markov models: theory and
    experiments with perceptron algorithms", EMNLP 2002; equals
    `optax.losses.multiclass_perceptron_loss` (NaN for a -inf score there, un-jitted) and, for
    C = 2, `2 * torch.nn.functional.multi_margin_loss(s, y, margin=0)`.
    """
    return _multiclass_margin_loss("multiclass_perceptron_loss", scores, labels, 0.0)
