"""Metric-learning losses: the triplet margin loss and NT-Xent (SimCLR's contrastive loss).

Both compare embeddings rather than a prediction with a target: `triplet_margin_loss` the distances
anchor-positive and anchor-negative of each triplet, `ntxent` the cosine similarities within a
whole batch (the batch is its one sample: the loss couples every pair in it).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxloss import _checks
from jaxloss.margin import _positive_part
from jaxloss.regression import _abs


def _lp_norm(x: jax.Array, p: Any, axis: int, extra: Any = None) -> jax.Array:
    """`(sum_i |x_i|^p + extra^p)^(1/p)` along `axis`, the p-norm of x with one more coordinate
    `extra` >= 0 (if given); no underflow or overflow, and a zero (finite) gradient where the
    norm is 0.

    Scaled by the largest coordinate, a constant for autodiff: the norm is homogeneous of degree 1,
    so every derivative is unchanged, while |x / s| <= 1 keeps |x|^p in range (|x|^2 underflows
    to 0 from |x| ~ 1e-19 in float32). The double `where` keeps 0/0 and inf/inf out of the
    gradient at a zero and at an infinite norm.
    """
    a = _abs(x)  # slope 0 at 0: the L1 norm's symmetric subgradient (torch's too)
    scale = lax.stop_gradient(jnp.max(a, axis=axis, keepdims=True))
    if extra is not None:
        scale = jnp.maximum(scale, extra)
    ok = jnp.isfinite(scale) & (scale > 0)
    safe = jnp.where(ok, scale, 1)
    total = jnp.sum(jnp.where(ok, a / safe, 0) ** p, axis=axis, keepdims=True)
    if extra is not None:
        total = total + jnp.where(ok, extra / safe, 0) ** p
    norm = safe * jnp.where(ok, total, 1) ** (1 / p)
    # A zero, infinite or NaN scale is the norm itself.
    return jnp.squeeze(jnp.where(ok, norm, scale), axis)


def _feature_axis(fn: str, name: str, x: jax.Array, axis: Any) -> int:
    """`axis` as a Python int naming an existing, non-empty axis of `x`."""
    axis = _checks.integer(fn, "axis", axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"jaxloss.{fn}: `axis` must name an axis of `{name}` (shape {x.shape}); got {axis}."
        )
    _checks.non_empty(fn, name, x, axis=axis)
    return axis


def triplet_margin_loss(
    anchors: Any,
    positives: Any,
    negatives: Any,
    *,
    axis: int = -1,
    norm_degree: Any = 2,
    margin: Any = 1.0,
    eps: Any = 1e-6,
) -> jax.Array:
    """Triplet margin loss `max(0, d(a, p) − d(a, n) + margin)` with p-norm distances.

    `d(a, b) = (Σ_i |a_i − b_i|^p + eps)^(1/p)` along `axis`: optax's distance, eps included, so
    the default gives optax's numbers; `eps=0` gives the exact distance.

    Args:
      anchors: float array (..., D, ...) of embeddings, the feature axis at `axis`.
      positives: array of the same shape (embeddings meant to be close to the anchors).
      negatives: array of the same shape (embeddings meant to be far from them).
      axis: the feature axis (static int), -1 by default; it must not be empty.
      norm_degree: p >= 1 (a scalar, may be traced; a traced value out of range gives NaN and
        `jaxloss.checked` raises). Distances use |a − b|: optax raises the signed difference to
        the power p, which for odd p (p = 1: Manhattan) is not a distance, and NaN for a
        fractional one. Computed scaled by the largest |a_i − b_i|: no underflow or overflow
        (optax's squares vanish below ~1e-19 and overflow above ~1e19 in float32).
      margin: scalar, the gap wanted between the two distances.
      eps: scalar >= 0 added to Σ|a − b|^p. It is not needed for a finite gradient here: at a
        zero distance (anchor == positive) the gradient is 0 whatever eps, where optax's with
        eps = 0 is NaN. torch adds eps to each coordinate instead, d = ‖a − b + eps‖_p: that
        distance is not symmetric, is eps·D^(1/p) at a = b, and has there a gradient of norm 1
        along (1, ..., 1), set by eps alone.

    Returns:
      loss of the inputs' shape without `axis` (one value per triplet); float32 for
      half-precision inputs. Its gradient is 0 at the hinge's kink (as jaxloss's margin losses);
      NaN inputs give NaN, infinite ones the limits (an infinite d(a, n) gives 0).

    Example:
      >>> a = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> p = jnp.array([[0.0, 0.0], [1.0, 2.0]])
      >>> n = jnp.array([[3.0, 4.0], [1.0, 1.5]])
      >>> print(jaxloss.triplet_margin_loss(a, p, n, eps=0.0))
      [0.  1.5]

    Reference: Balntas et al., "Learning local feature descriptors with triplets and shallow
    convolutional neural networks", BMVC 2016. Equals `optax.losses.triplet_margin_loss` for even p
    (p = 2 by default), and `torch.nn.functional.triplet_margin_loss(reduction="none", eps=0)`.
    """
    fn = "triplet_margin_loss"
    anchors, positives = _checks.float_pair(fn, "anchors", anchors, "positives", positives)
    anchors, negatives = _checks.float_pair(fn, "anchors", anchors, "negatives", negatives)
    positives = positives.astype(anchors.dtype)  # a float64 negatives promotes all three
    axis = _feature_axis(fn, "anchors", anchors, axis)
    for name, value in (("norm_degree", norm_degree), ("margin", margin), ("eps", eps)):
        _checks.scalar(fn, name, value)
    p_ok = _checks.hyperparameter_ok(fn, "norm_degree", norm_degree, low=1.0)
    eps_ok = _checks.hyperparameter_ok(fn, "eps", eps, low=0.0)
    for name, x in (("anchors", anchors), ("positives", positives), ("negatives", negatives)):
        _checks.not_nan(fn, name, x)
    _checks.not_nan(fn, "margin", margin)
    # A static integer p stays an integer power (exact, and cheaper than exp(p log x)).
    static_p = norm_degree if isinstance(norm_degree, int) else None
    return _triplet_core(
        anchors, positives, negatives, norm_degree, p_ok, eps, eps_ok, margin, axis, static_p
    )


# The numeric cores are jitted (as in margin.py): an un-jitted call compiles one program instead
# of one per operation. The checks stay outside them, so `jaxloss.checked` still sees every one.
@functools.partial(jax.jit, static_argnames=("axis", "static_p"))
def _triplet_core(anchors, positives, negatives, p, p_ok, eps, eps_ok, margin, axis, static_p):
    dtype = anchors.dtype
    if static_p is None:
        p = jnp.where(p_ok, jnp.asarray(p, dtype), jnp.nan)
    else:
        p = static_p
    # optax's eps inside the sum is one more coordinate eps^(1/p) of the difference vector.
    extra = jnp.where(eps_ok, jnp.asarray(eps, dtype), jnp.nan) ** (1 / p)
    d_pos = _lp_norm(anchors - positives, p, axis, extra)
    d_neg = _lp_norm(anchors - negatives, p, axis, extra)
    return _positive_part(d_pos - d_neg + jnp.asarray(margin, dtype))


def _cosine_similarities(x: jax.Array) -> jax.Array:
    """All pairwise cosines of the rows of x (N, D), a zero row's being 0 (as optax's, which
    floors each squared norm at the dtype's eps); overflow-free norms."""
    norm = _lp_norm(x, 2, -1)
    unit = x / jnp.maximum(norm, jnp.sqrt(jnp.finfo(x.dtype).eps))[:, None]
    return unit @ unit.T


def ntxent(embeddings: Any, labels: Any, *, temperature: Any = 0.07) -> jax.Array:
    """NT-Xent: the mean over positive pairs (i, j) of `−log(e^{s_ij} / (e^{s_ij} + Σ_k e^{s_ik}))`.

    `s_ij = cos(x_i, x_j) / temperature`; a positive pair is i != j with labels_i == labels_j, and k
    runs over i's negatives (labels_k != labels_i). Computed as `logaddexp(s_ij, lse_k s_ik) −
    s_ij` (stable for any temperature).

    Args:
      embeddings: float array (N, D), one batch of N embeddings (the batch is one sample: this loss
        couples every pair in it). Their norms are computed scaled: embeddings of 1e20 keep
        their cosines, where optax's squares overflow and its cosines become 0.
      labels: integer array (N,); equal labels mark positive pairs (SimCLR: the two augmented
        views of one image share a label).
      temperature: scalar > 0 (keyword-only; may be traced: a traced value <= 0 gives NaN and
        `jaxloss.checked` raises).

    Returns:
      scalar; float32 for half-precision inputs. An anchor without negatives contributes 0 for
      each of its pairs (nothing to contrast). A batch without any positive pair (all labels
      distinct, or N = 1) gives 0 with a zero gradient, as a mask selecting nothing does in
      `jaxloss.mse` (optax gives NaN: 0 / 0). A NaN or infinite embedding gives NaN.

    Example:
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
      >>> print(jaxloss.ntxent(x, jnp.array([0, 0, 1, 1]), temperature=0.5))
      0.43019032

    Reference: Chen et al., "A simple framework for contrastive learning of visual
    representations" (SimCLR), ICML 2020, in the form of pytorch-metric-learning's NTXentLoss;
    equals `optax.losses.ntxent` (except for the batch without positives, and that half precision is
    computed in float32 here, with float32's eps for a zero embedding).
    """
    fn = "ntxent"
    x = _checks.as_logits(fn, "embeddings", embeddings)
    labels = _checks.real(fn, "labels", labels)
    if x.ndim != 2:
        raise ValueError(
            f"jaxloss.{fn}: `embeddings` must have shape (N, D), one batch of N embeddings; got "
            f"{x.shape}."
        )
    _checks.non_empty(fn, "embeddings", x, axis=-1)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"jaxloss.{fn}: `labels` must be an integer array (equal labels mark positive "
            f"pairs); got dtype {labels.dtype}."
        )
    if labels.shape != x.shape[:1]:
        raise ValueError(
            f"jaxloss.{fn}: `labels` must have shape ({x.shape[0]},), one label per embedding; "
            f"got {labels.shape}."
        )
    _checks.scalar(fn, "temperature", temperature)
    t_ok = _checks.hyperparameter_ok(fn, "temperature", temperature, low=0.0, low_inclusive=False)
    _checks.not_nan(fn, "embeddings", x)
    return _ntxent_core(x, labels, temperature, t_ok)


@jax.jit
def _ntxent_core(x, labels, temperature, t_ok):
    temperature = jnp.where(t_ok, jnp.asarray(temperature, x.dtype), jnp.nan)

    s = _cosine_similarities(x) / temperature
    same = labels[:, None] == labels[None, :]
    positive = same & ~jnp.eye(x.shape[0], dtype=bool)
    # -inf where k is no negative: logaddexp(s_ij, -inf) = s_ij gives 0 without negatives.
    lse_neg = jax.nn.logsumexp(jnp.where(same, -jnp.inf, s), axis=-1, keepdims=True)
    per_pair = jnp.logaddexp(s, lse_neg) - s
    count = jnp.sum(positive)
    return jnp.sum(jnp.where(positive, per_pair, 0)) / jnp.maximum(count, 1).astype(x.dtype)
