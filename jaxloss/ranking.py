"""Ranking losses: scores of the items of a list against their relevance labels.

A list is one sample (its items on the last axis); leading axes are lists of a batch, reduced by
`reduce_fn` as optax does (the mean over lists by default).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _checks
from jaxloss.classification import _prob_ce


def ranking_softmax_loss(
    logits: Any,
    labels: Any,
    *,
    where: Any = None,
    weights: Any = None,
    reduce_fn: Callable[..., Any] | None = jnp.mean,
) -> jax.Array:
    """ListNet-style softmax loss of a list: `−Σ_i w_i y_i log softmax(s)_i` over its valid items.

    The softmax runs over the items selected by `where` only; relevance labels y (times the
    optional weights w) are not normalised, as in optax.

    Args:
      logits: float array (..., L), the scores s of L items per list, L >= 1; -inf allowed (an
        item ranked out: it adds nothing where its label is 0, where optax gives NaN, 0 · −inf).
      labels: array of the same shape, relevance labels y >= 0 (float or integer); a negative or
        NaN label of a valid item gives NaN and `jaxloss.checked` raises.
      where: optional boolean mask of the same shape, the valid items. A list with no valid item
        (empty) has loss 0 and a zero gradient, and is left out of the mean.
      weights: optional array of the same shape, per-item weights >= 0 (as labels for the NaN
        policy).
      reduce_fn: how the per-list losses are reduced: `jnp.mean` (default: over non-empty
        lists, 0 when all are empty), `jnp.sum`, `None` (the per-list losses, shape
        logits.shape[:-1]), or any function called as `reduce_fn(losses, where=non_empty)`.

    Returns:
      a scalar (or per-list losses for `reduce_fn=None`); float32 for half-precision inputs.

    Example:
      >>> s = jnp.array([[2.0, 1.0, -jnp.inf], [1.0, 0.5, 1.5]])
      >>> y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
      >>> print(jaxloss.ranking_softmax_loss(s, y, reduce_fn=None))
      [0.31326163 0.68026966]

    Reference: Cao et al., "Learning to rank: from pairwise approach to listwise approach"
    (ListNet), ICML 2007; Bruch et al., "An analysis of the softmax cross entropy loss for
    learning-to-rank with binary relevance", ICTIR 2019. Equals `optax.losses.ranking_softmax_loss`
    (which gives NaN for a -inf score and computes a number from a negative label).
    """
    fn = "ranking_softmax_loss"
    logits, labels = _checks.float_pair(fn, "logits", logits, "labels", labels)
    _checks.has_class_axis(fn, "logits", logits)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    if weights is not None:
        weights = _checks.as_float(fn, "weights", weights)
        _checks.same_shape(fn, "logits", logits, "weights", weights)
        weights = weights.astype(labels.dtype)
    if where is not None:
        where = _checks.real(fn, "where", where)
        _checks.mask_shape(fn, "where", where, logits.shape)
    if not (reduce_fn is None or callable(reduce_fn)):
        raise TypeError(
            f"jaxloss.{fn}: `reduce_fn` must be jnp.mean, jnp.sum, None or a function "
            f"reduce_fn(losses, where=mask); got {reduce_fn!r}."
        )
    out, logits_ok, labels_ok = _ranking_core(logits, labels, where, weights, reduce_fn)
    _checks.runtime_check(fn, logits_ok, "`logits` contains NaN or +inf.")
    name = "labels" if weights is None else "labels * weights"
    _checks.runtime_check(fn, labels_ok, f"`{name}` has negative or NaN values.")
    return out


# The numeric core is jitted (as in margin.py): an un-jitted call compiles one program instead of
# one per operation. The checks stay outside it, so `jaxloss.checked` still sees every one.
@functools.partial(jax.jit, static_argnames="reduce_fn")
def _ranking_core(logits, labels, where, weights, reduce_fn):
    """The reduced loss, and whether the valid items' logits (no NaN, +inf) and labels (>= 0)
    are fine (the run-time checks' predicates, computed in this one program)."""
    valid = jnp.ones(logits.shape, bool) if where is None else where
    if weights is not None:
        labels = labels * weights
    ok = (jnp.all(~valid | (logits < jnp.inf)), jnp.all(~valid | (labels >= 0)))
    non_empty = jnp.any(valid, axis=-1)
    # Masked items leave the softmax (-inf) and the sum (label 0); an empty list gets all-zero
    # logits instead (no -inf - -inf), its loss 0. `where` keeps every masked value, NaN or inf,
    # out of the value and the gradient.
    z = jnp.where(valid, logits, jnp.where(non_empty[..., None], -jnp.inf, 0))
    v = jnp.where(valid, labels, 0)
    nan_if_bad = jnp.where(v >= 0, 0, jnp.nan).astype(logits.dtype)
    losses = _prob_ce(z, jnp.where(v >= 0, v, 0), nan_if_bad)

    if reduce_fn is None:
        return losses, *ok
    if reduce_fn is jnp.mean:
        count = jnp.maximum(jnp.sum(non_empty), 1).astype(losses.dtype)
        return jnp.sum(jnp.where(non_empty, losses, 0)) / count, *ok
    if reduce_fn is jnp.sum:
        return jnp.sum(losses), *ok
    return reduce_fn(losses, where=non_empty), *ok
