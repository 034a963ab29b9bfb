"""Hard negative mining: train on the positives and only the hardest negatives.

In a detector most anchors are easy background; summed, their small losses swamp the few
positives. Mining keeps every positive and the highest-loss negatives (SSD's 3:1 rule, or OHEM's
top-k). Each function sees the positions of ONE sample (all elements of its arrays, e.g. the A
anchors of one image); use `jax.vmap` for a batch. Outputs have static shapes (a boolean mask, never
a gathered subset), so everything works under `jax.jit` and `jax.vmap`.

Ranking is by loss, but the mask is a constant for autodiff: the gradient flows only through the
selected losses, `jnp.where(mask, losses, 0)`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss import _checks
from jaxloss.classification import softmax_cross_entropy_with_integer_labels


def _count(fn: str, name: str, value: Any) -> tuple[jax.Array, jax.Array]:
    """A non-negative int32 count and whether it is valid.

    A static count (Python or NumPy int) is checked here: bool or float is a TypeError, outside
    [0, 2**31 - 1] a ValueError. A traced integer scalar (e.g. an int argument under `jax.jit`)
    stays allowed; a negative one is invalid at run time (`jaxloss.checked` raises).
    """
    if isinstance(value, jax.core.Tracer):
        if value.ndim or not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(
                f"jaxloss.{fn}: `{name}` must be an integer scalar; got a traced "
                f"{value.dtype} array of shape {value.shape}."
            )
        # Saturate, not wrap, a traced int64/uint32 beyond int32 (bounds in the value's dtype).
        info, own = np.iinfo(np.int32), jnp.iinfo(value.dtype)
        if own.max > info.max:
            value = jnp.minimum(value, jnp.asarray(info.max, value.dtype))
        if own.min < info.min:
            value = jnp.maximum(value, jnp.asarray(info.min, value.dtype))
        count = value.astype(jnp.int32)
    else:
        count = jnp.int32(_checks.integer(fn, name, value, low=0, high=np.iinfo(np.int32).max))
    valid = count >= 0
    _checks.runtime_check(fn, valid, f"`{name}` must be a non-negative integer.")
    return count, valid


def _descending_rank(losses: jax.Array, last: jax.Array) -> jax.Array:
    """Rank of every position by loss, highest first; `last` positions after all others.

    Ties in loss go to the lower index first (a stable sort), NaN ranks as the highest loss (as in
    torch's descending sort), and -0.0 ties with 0.0. Positions with rank < k are the top k.
    """
    flat = jax.lax.stop_gradient(losses).ravel()
    # Ascending sort on (last, -loss); NaN -> -inf puts it first (XLA's sort already equates ±0).
    key = jnp.where(jnp.isnan(flat), -jnp.inf, -flat)
    iota = jnp.arange(flat.size, dtype=jnp.int32)
    order = jax.lax.sort((last.ravel().astype(jnp.int32), key, iota), num_keys=2, is_stable=True)[2]
    # The inverse permutation (torchvision's second argsort), as a scatter.
    return jnp.zeros_like(iota).at[order].set(iota).reshape(losses.shape)


def _loss_and_mask_inputs(fn: str, losses: Any, mask_name: str, mask: Any) -> tuple:
    losses = _checks.as_float(fn, "losses", losses)
    if mask is not None:
        mask = _checks.real(fn, mask_name, mask)
        _checks.mask_shape(fn, mask_name, mask, losses.shape)
    return losses, mask


def _hard_negative_mask(
    fn: str, losses: Any, positives: Any, neg_pos_ratio: Any, min_negatives: Any
) -> tuple[jax.Array, jax.Array]:
    """`hard_negative_mask`'s mask, and False where a traced hyperparameter is out of range.

    Checks and run-time errors name `fn`, the function the user called.
    """
    losses, positives = _loss_and_mask_inputs(fn, losses, "positives", positives)
    if positives is None:
        raise TypeError(f"jaxloss.{fn}: `positives` must be a boolean mask; got None.")
    _checks.scalar(fn, "neg_pos_ratio", neg_pos_ratio)
    valid = _checks.hyperparameter_ok(fn, "neg_pos_ratio", neg_pos_ratio, low=0.0)
    min_negatives, count_ok = _count(fn, "min_negatives", min_negatives)
    num_pos = jnp.sum(positives, dtype=jnp.int32)
    num_neg = positives.size - num_pos
    # float32 product, as torchvision (a float32 tensor) and Caffe (float) compute it. A negative
    # or NaN ratio (traced: static ones raise) keeps no negative; a huge or inf one is capped at
    # 2**30 (exact in float32, above any #negatives) before the cast to int32.
    product = jnp.asarray(neg_pos_ratio, jnp.float32) * num_pos.astype(jnp.float32)
    product = jnp.where(product >= 0, jnp.minimum(product, 2.0**30), 0)
    ratio_k = jnp.floor(product).astype(jnp.int32)
    k = jnp.minimum(num_neg, jnp.maximum(min_negatives, ratio_k))
    # Positives rank after every negative, so rank < k selects exactly the top k negatives.
    rank = _descending_rank(losses, positives)
    return positives | (rank < k), valid & count_ok


def hard_negative_mask(
    losses: jax.Array,
    positives: jax.Array,
    *,
    neg_pos_ratio: float = 3.0,
    min_negatives: int = 0,
) -> jax.Array:
    """SSD hard negative mining: every positive plus the k highest-loss negatives.

    `k = min(#negatives, max(min_negatives, ⌊neg_pos_ratio · #positives⌋))`, the product taken
    in float32 as torchvision and Caffe take it (so ratio 0.29 with 100 positives keeps 29).

    Same selection as torchvision's `SSD.compute_loss` (`foreground | background_idxs`: positives
    set to −inf, descending sort, inverse permutation, rank < neg_pos_ratio · #positives) whenever
    `neg_pos_ratio · #positives` is an integer (always for the default 3.0) and `min_negatives=0`.
    For a fractional product torchvision's `rank < r·n` keeps ⌈r·n⌉ negatives; this keeps ⌊r·n⌋,
    as the original Caffe SSD (`static_cast<int>(num_pos * neg_pos_ratio)`), so the ratio is at
    most `neg_pos_ratio` as the paper states. Ties in loss: the lower index is taken first
    (torch's unstable sort leaves this unspecified); a NaN loss counts as the highest.
    `min_negatives` fills the hole that a sample without positives otherwise trains on nothing
    (gluon-cv's `min_hard_negatives`; torchvision has it commented out).

    Args:
      losses: per-position losses of one sample (e.g. `(A,)` per-anchor cross entropy), any
        shape; only their order matters and they receive no gradient through the mask.
      positives: boolean mask of the same shape, True for positive (foreground) positions.
      neg_pos_ratio: negatives kept per positive, a real scalar >= 0 (may be traced); `inf`
        keeps every negative when there is a positive.
      min_negatives: negatives kept at least, a non-negative integer below 2**31 (Python or
        NumPy int; a traced integer scalar too), capped at #negatives.

    Returns:
      Boolean mask of `losses.shape`: positives | the k mined negatives.

      A traced hyperparameter out of range (a negative or NaN `neg_pos_ratio`, a negative
      `min_negatives`) cannot give NaN in a boolean mask: the unchecked mask then counts it as 0
      (no negative from that term), and `jaxloss.checked` raises. `mined_cross_entropy`, a loss,
      gives NaN there. Static values out of range raise `ValueError` at trace time.

    Example:
      >>> losses = jnp.array([0.1, 2.0, 0.5, 0.3, 0.9])
      >>> jaxloss.hard_negative_mask(losses, jnp.array([True] + [False] * 4), neg_pos_ratio=2.0)
      Array([ True,  True, False, False,  True], dtype=bool)

    Reference: Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, §2.2 "Hard negative
    mining"; torchvision.models.detection.ssd.SSD.compute_loss.
    """
    mask, _ = _hard_negative_mask(
        "hard_negative_mask", losses, positives, neg_pos_ratio, min_negatives
    )
    return mask


def ohem_mask(losses: jax.Array, *, num_keep: int, where: jax.Array | None = None) -> jax.Array:
    """Online hard example mining: the `num_keep` highest-loss positions (among `where`).

    Args:
      losses: per-position losses of one sample, any shape (e.g. `(R,)` RoIs or `(H, W)` pixels).
      num_keep: how many to keep, a non-negative integer below 2**31 (all of `where` if it has
        fewer). A traced integer scalar is allowed; a negative one keeps nothing and
        `jaxloss.checked` raises.
      where: optional boolean mask of candidate positions, shape of `losses`; default all.

    Returns:
      Boolean mask of `losses.shape` with `min(num_keep, #candidates)` True entries. Ties go to
      the lower index, NaN counts as the highest loss. No gradient flows through the mask.

    Example:
      >>> jaxloss.ohem_mask(jnp.array([0.2, 3.0, 0.1, 1.5]), num_keep=2)
      Array([False,  True, False,  True], dtype=bool)

    Reference: Shrivastava, Gupta & Girshick, "Training Region-based Object Detectors with Online
    Hard Example Mining", CVPR 2016 (without its NMS de-duplication step).
    """
    fn = "ohem_mask"
    losses, where = _loss_and_mask_inputs(fn, losses, "where", where)
    num_keep, _ = _count(fn, "num_keep", num_keep)
    candidates = jnp.ones(losses.shape, bool) if where is None else where
    return candidates & (_descending_rank(losses, ~candidates) < num_keep)


def mined_cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    background_class: int = 0,
    neg_pos_ratio: float = 3.0,
    min_negatives: int = 0,
    label_smoothing: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """SSD's classification loss for one sample: cross entropy summed over positives and mined
    negatives, and the number of positives.

    `(Σ_{a ∈ mask} CE(logits_a, labels_a), #positives)` with `mask = hard_negative_mask(CE,
    labels != background_class, ...)`; CE is `softmax_cross_entropy_with_integer_labels` (with
    `label_smoothing`), which also ranks the negatives.

    Why the count is returned: SSD divides the batch's summed loss by the batch's total number of
    positives, `L = Σ_i S_i / max(1, Σ_i P_i)` — a ratio of sums, not a sum of per-sample terms
    `Σ_i S_i / P_i` (which would weight an image with one positive like one with fifty, and divide
    by zero for an image with none). The denominator is a batch statistic, so compute the
    numerator with a summing objective and divide outside (it depends only on the labels, so the
    gradient is the summed gradient times a constant; for data parallelism sum both over shards):

      >>> def apply_fn(w, anchors):  # one sample: (A, 2) features -> (A, 2) logits
      ...     return anchors @ w
      >>> loss_sum = jaxloss.objective(
      ...     apply_fn, lambda lg, lb: jaxloss.mined_cross_entropy(lg, lb)[0], reduction="sum")
      >>> def ssd_objective(params, inputs, labels):
      ...     return loss_sum(params, inputs, labels) / jnp.maximum(jnp.sum(labels != 0), 1)
      >>> inputs = jnp.ones((2, 4, 2)); labels = jnp.array([[1, 0, 0, 0], [0, 0, 0, 0]])
      >>> jax.jit(ssd_objective)(jnp.eye(2), inputs, labels)  # 4 anchors · log 2 / 1 positive
      Array(2.7725..., dtype=float32)

    Args:
      logits: `(A, C)` per-anchor class logits of one sample (floating, C ≥ 1). A = 0 anchors
        give `(0, 0)`: a sum over nothing.
      labels: `(A,)` integer classes in [0, C); `background_class` marks negatives.
      background_class: the background label, a Python or NumPy int in [0, C).
      neg_pos_ratio, min_negatives: as in `hard_negative_mask`.
      label_smoothing: as in `softmax_cross_entropy_with_integer_labels`, in [0, 1].

    Returns:
      `(loss_sum, num_positives)`: scalars of the logits' float dtype (float32 for half input).
      `loss_sum` is NaN when a per-anchor loss is NaN (a label out of range, a NaN or +inf
      logit) or a traced hyperparameter is out of range (`neg_pos_ratio` or `min_negatives`
      negative, `label_smoothing` outside [0, 1]); `jaxloss.checked` raises there, naming
      `mined_cross_entropy`.

    Example:
      >>> logits = jnp.array([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
      >>> labels = jnp.array([1, 0, 0, 0])  # one positive, three negatives
      >>> s, n = jax.jit(jaxloss.mined_cross_entropy)(logits, labels, neg_pos_ratio=1.0)
      >>> s, n  # CE of anchor 0 plus the hardest negative, anchor 2: 0.1269 + 1.3133
      (Array(1.4401..., dtype=float32), Array(1., dtype=float32))

    Reference: Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, eq. (1)-(2); the
    classification term of torchvision's `SSD.compute_loss` (there summed over the batch; it
    double-counts positives when a sample has fewer than `ratio · #positives` negatives, which
    the cap on k avoids here).
    """
    fn = "mined_cross_entropy"
    logits = _checks.as_logits(fn, "logits", logits)
    labels = _checks.as_integer_labels(fn, "labels", labels)
    _checks.integer_labels_shape(fn, logits, labels)
    if logits.ndim != 2:
        raise ValueError(
            f"jaxloss.{fn}: `logits` must have shape (A, C), the anchors of one sample (use "
            f"jax.vmap for a batch); got {logits.shape}."
        )
    _checks.non_empty(fn, "logits", logits, axis=-1)
    num_classes = logits.shape[-1]
    background_class = _checks.integer(
        fn, "background_class", background_class, low=0, high=num_classes - 1
    )
    # The cross entropy checks these too, but under its own name: checked() reports the first
    # failed check, so the user's function is checked first.
    _checks.scalar(fn, "label_smoothing", label_smoothing)
    valid = _checks.hyperparameter_ok(fn, "label_smoothing", label_smoothing, low=0.0, high=1.0)
    _checks.runtime_check(
        fn,
        (labels >= 0) & (labels < num_classes),
        f"`labels` has values outside [0, {num_classes}).",
    )
    _checks.softmax_logits(fn, "logits", logits)
    per_anchor = softmax_cross_entropy_with_integer_labels(
        logits, labels, label_smoothing=label_smoothing
    )
    positives = labels != background_class
    mask, mask_ok = _hard_negative_mask(fn, per_anchor, positives, neg_pos_ratio, min_negatives)
    # where (not mask * loss): an unselected inf/NaN loss must not poison the gradient.
    total = jnp.sum(jnp.where(mask, per_anchor, 0))
    # An unselected NaN would otherwise vanish, and a traced hyperparameter out of range has no
    # meaningful sum: value problems give NaN.
    bad = jnp.any(jnp.isnan(per_anchor)) | ~(valid & mask_ok)
    total = jnp.where(bad, jnp.nan, total)
    return total, jnp.sum(positives).astype(total.dtype)
